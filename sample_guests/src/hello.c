/* hello: print one line and exit 0. */
#include "guest.h"

int guest_main(uint32_t mbi)
{
    (void)mbi;
    serial_puts("Hello from rdebug guest\n");
    return 0;
}

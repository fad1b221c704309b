/* memcopy: store-heavy copy loop (see memcopy_work.S for the workload). */
#include "guest.h"
#include "passes.h"

/* Pass count; default from `make MEMCOPY_PASSES=N`.  Kept in .data (even if
 * 0) so that a benchmark can patch it in the ELF file. */
volatile uint32_t memcopy_passes __attribute__((section(".data"))) = MEMCOPY_PASSES;

extern volatile uint32_t memcopy_result;
void memcopy_workload(void);

int guest_main(uint32_t mbi)
{
    (void)mbi;
    cli(); /* already off at entry; the workload runs with IF=0 */
    uint32_t passes = memcopy_passes;
    memcopy_workload();
    printk("memcopy passes %u: checksum 0x%08x\n", passes, memcopy_result);
    return 0;
}

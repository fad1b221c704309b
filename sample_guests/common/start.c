/* C entry point called by boot.S: initialise COM1, check the multiboot
 * magic, run the guest's guest_main() and exit with its return value. */
#include "guest.h"

#define MULTIBOOT_BOOTLOADER_MAGIC 0x2BADB002u

int guest_main(uint32_t mbi);

void guest_start(uint32_t magic, uint32_t mbi) __attribute__((noreturn));
void guest_start(uint32_t magic, uint32_t mbi)
{
    serial_init();
    if (magic != MULTIBOOT_BOOTLOADER_MAGIC) {
        printk("bad multiboot magic 0x%x\n", magic);
        guest_exit(2);
    }
    guest_exit((uint8_t)guest_main(mbi));
}

void guest_exit(uint8_t code)
{
    outb(EXIT_PORT, code);
    /* No exit device: stop here forever. */
    for (;;)
        __asm__ volatile("cli; hlt");
}

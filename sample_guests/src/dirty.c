/* dirty: writes one word in every page of a large RAM region, pass after pass, so that
 * every pass dirties the whole region (memory-hungry checkpoints and seeks).
 *
 * `dirty_mib` MiB from 4 MiB up are written `dirty_passes` times (0: forever, a
 * CPU-bound guest that only a signal or an instruction limit ends), with `dirty_spin`
 * rounds of register-only work per page in between (so a pass spans many of the
 * replay's checkpoint intervals).  All three are in .data
 * so that a test or benchmark can patch them in the ELF file.  The machine needs
 * 4 + dirty_mib MiB of RAM at least. */
#include "guest.h"

volatile uint32_t dirty_mib __attribute__((section(".data"))) = 128;
volatile uint32_t dirty_passes __attribute__((section(".data"))) = 4;
volatile uint32_t dirty_spin __attribute__((section(".data"))) = 32;

#define REGION_START 0x400000u
#define PAGE 4096u

int guest_main(uint32_t mbi)
{
    (void)mbi;
    uint32_t mib = dirty_mib;
    uint32_t passes = dirty_passes;
    uint32_t spin = dirty_spin;
    uint32_t end = REGION_START + mib * 0x100000u;
    uint32_t sum = 0;
    printk("dirty: %u MiB, %u passes\n", mib, passes);
    for (uint32_t pass = 1; passes == 0 || pass <= passes; pass++) {
        for (uint32_t addr = REGION_START; addr < end; addr += PAGE) {
            volatile uint32_t *word = (volatile uint32_t *)addr;
            uint32_t x = pass ^ addr;
            for (uint32_t i = 0; i < spin; i++)
                x = x * 1103515245u + 12345u;
            *word = x;
            sum += *word;
        }
    }
    printk("dirty %u MiB x %u: sum 0x%08x\n", mib, passes, sum);
    return 0;
}

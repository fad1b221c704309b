/* crc: CPU-bound bitwise CRC-32 (see crc_work.S for the workload). */
#include "guest.h"
#include "passes.h"

/* Pass count; default from `make CRC_PASSES=N`.  Kept in .data (even if 0)
 * so that a benchmark can patch it in the ELF file. */
volatile uint32_t crc_passes __attribute__((section(".data"))) = CRC_PASSES;

extern volatile uint32_t crc_result;
void crc_workload(void);

int guest_main(uint32_t mbi)
{
    (void)mbi;
    cli(); /* already off at entry; the workload runs with IF=0 */
    uint32_t passes = crc_passes;
    crc_workload();
    printk("crc passes %u: 0x%08x\n", passes, crc_result);
    return 0;
}

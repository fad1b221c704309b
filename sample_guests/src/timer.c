/* timer: PIT channel 0, mode 2 (rate generator) at 100 Hz on IRQ0.
 * The main loop halts until interrupts arrive and reports every 10th tick
 * up to 50.  The reported numbers never depend on timing: each multiple of
 * 10 is printed exactly once even if several ticks arrive between checks. */
#include "guest.h"

#define PIT_CH0 0x40
#define PIT_CMD 0x43
#define PIT_HZ 1193182u
#define TICK_HZ 100u
#define REPORT_EVERY 10u
#define TOTAL_TICKS 50u

volatile uint32_t ticks;

static void timer_irq(struct regs *r)
{
    (void)r;
    ticks++; /* EOI is sent by isr_dispatch after this returns */
}

int guest_main(uint32_t mbi)
{
    (void)mbi;
    idt_init();
    pic_remap();
    isr_register(PIC1_VECTOR + 0, timer_irq);

    uint32_t divisor = (PIT_HZ + TICK_HZ / 2) / TICK_HZ; /* 11932 */
    outb(PIT_CMD, 0x34); /* channel 0, lobyte/hibyte, mode 2, binary */
    outb(PIT_CH0, (uint8_t)divisor);
    outb(PIT_CH0, (uint8_t)(divisor >> 8));

    pic_unmask(0);
    uint32_t reported = 0;
    while (reported < TOTAL_TICKS) {
        sti_hlt_cli();
        while (ticks >= reported + REPORT_EVERY && reported < TOTAL_TICKS) {
            reported += REPORT_EVERY;
            printk("tick %u\n", reported);
        }
    }
    pic_mask(0);
    printk("timer done: %u ticks\n", reported);
    return 0;
}

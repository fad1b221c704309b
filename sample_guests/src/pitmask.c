/* pitmask: the PIT's IRQ0 at 20 kHz, masked at the 8259 most of the time.
 *
 * Eight rounds of: a busy loop with IRQ0 masked (the 8259 keeps the first edge latched
 * in IRR, so every later tick changes nothing), then IRQ0 unmasked (the latched tick
 * comes in at once) for a shorter loop that takes ticks, then masked again.  The handler
 * counts the ticks.  Then, with IF=0, the 8259 is initialized again (which clears the
 * latched edge) and the IRR read after a loop shows the next tick latched.  Before
 * that, a slower period (5 ms) ticks masked through a loop; then counter 0 gets a new
 * control word and the 20 kHz count, and IRQ0 is unmasked at once: the new period's
 * ticks come from the new count, not from where the slow period would have ticked next.
 * For rdebug's test of the idle PIT expiries its counter takes without stopping
 * (tests/integration/test_ticker.py): which tick lands where depends on virtual time,
 * so the output is compared between rdebug's paths, not with QEMU. */
#include "guest.h"

#define PIT_CH0 0x40
#define PIT_CMD 0x43
#define DIVISOR 60u /* 1193182 / 60: about 19.9 kHz */
#define SLOW_DIVISOR 6000u /* about 5 ms */
#define ROUNDS 8u

volatile uint32_t ticks;

static void timer_irq(struct regs *r)
{
    (void)r;
    ticks++; /* EOI is sent by isr_dispatch after this returns */
}

static uint32_t spin(uint32_t n, uint32_t x)
{
    for (uint32_t i = 0; i < n; i++)
        x = x * 1103515245u + 12345u + (x >> 7);
    return x;
}

static void program_pit(uint32_t divisor)
{
    outb(PIT_CMD, 0x34); /* channel 0, lobyte/hibyte, mode 2, binary */
    outb(PIT_CH0, (uint8_t)divisor);
    outb(PIT_CH0, (uint8_t)(divisor >> 8));
}

int guest_main(uint32_t mbi)
{
    (void)mbi;
    idt_init();
    pic_remap();
    isr_register(PIC1_VECTOR + 0, timer_irq);
    pic_mask(0);
    program_pit(DIVISOR);

    uint32_t x = 1;
    __asm__ volatile("sti");
    for (uint32_t round = 0; round < ROUNDS; round++) {
        x = spin(20000u + round * 777u, x); /* masked: idle ticks */
        pic_unmask(0);
        x = spin(3000u + round * 131u, x); /* unmasked: ticks taken */
        pic_mask(0);
        printk("round %u: %u ticks\n", round, ticks);
    }
    program_pit(SLOW_DIVISOR);
    x = spin(40000u, x); /* masked: idle ticks of the slow period */
    program_pit(DIVISOR);
    uint32_t before = ticks;
    pic_unmask(0);
    x = spin(3000u, x); /* about 3 ms */
    pic_mask(0);
    printk("after a new count: %u ticks\n", ticks - before);
    /* With IF=0: ICW1 clears the 8259's IRR (the latched tick goes), and the next
     * tick must latch it again while the loop runs. */
    __asm__ volatile("cli");
    pic_remap();
    x = spin(5000u, x);
    outb(0x20, 0x0a); /* OCW3: read IRR */
    printk("irr after init and a loop: %x\n", inb(0x20));
    printk("pitmask done: %u ticks, x %x\n", ticks, x);
    return 0;
}

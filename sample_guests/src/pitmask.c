/* pitmask: the PIT's IRQ0 at 20 kHz, masked at the 8259 most of the time.
 *
 * Eight rounds of: a busy loop with IRQ0 masked (the 8259 keeps the first edge latched
 * in IRR, so every later tick changes nothing), then IRQ0 unmasked (the latched tick
 * comes in at once) for a shorter loop that takes ticks, then masked again.  The handler
 * counts the ticks.  Then, with IF=0, the 8259 is initialized again (which clears the
 * latched edge) and the IRR read after a loop shows the next tick latched.  For rdebug's test of the idle PIT expiries its counter takes
 * without stopping (tests/integration/test_ticker.py): which tick lands where depends
 * on virtual time, so the output is compared between rdebug's paths, not with QEMU. */
#include "guest.h"

#define PIT_CH0 0x40
#define PIT_CMD 0x43
#define DIVISOR 60u /* 1193182 / 60: about 19.9 kHz */
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

int guest_main(uint32_t mbi)
{
    (void)mbi;
    idt_init();
    pic_remap();
    isr_register(PIC1_VECTOR + 0, timer_irq);
    pic_mask(0);
    outb(PIT_CMD, 0x34); /* channel 0, lobyte/hibyte, mode 2, binary */
    outb(PIT_CH0, (uint8_t)DIVISOR);
    outb(PIT_CH0, (uint8_t)(DIVISOR >> 8));

    uint32_t x = 1;
    __asm__ volatile("sti");
    for (uint32_t round = 0; round < ROUNDS; round++) {
        x = spin(20000u + round * 777u, x); /* masked: idle ticks */
        pic_unmask(0);
        x = spin(3000u + round * 131u, x); /* unmasked: ticks taken */
        pic_mask(0);
        printk("round %u: %u ticks\n", round, ticks);
    }
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

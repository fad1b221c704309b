/* bug: an interrupt handler corrupts a variable through a stray pointer.
 * Built with -g (DWARF), for source-level reverse debugging: `watch balance` and
 * reverse-continue finds the store in timer_irq that overwrites it; reverse-finish and
 * reverse-next walk back through the accumulation loop.
 *
 * timer_irq records the interrupted EIP into a 4-entry sample ring, but its index is
 * never wrapped: the 5th sample lands one past the array, on `balance`. */
#include "guest.h"

#define PIT_CH0 0x40
#define PIT_CMD 0x43

struct account {
    volatile uint32_t samples[4]; /* the handler's ring (too small: see timer_irq) */
    volatile uint32_t balance;    /* the victim, right after it */
};

struct account acct;
volatile uint32_t sample_index;
volatile uint32_t rounds;

static void timer_irq(struct regs *r)
{
    acct.samples[sample_index] = r->eip; /* BUG: sample_index is never wrapped */
    sample_index++;
}

static uint32_t deposit(uint32_t amount)
{
    uint32_t before = acct.balance;
    acct.balance = before + amount;
    return acct.balance;
}

static uint32_t one_round(void)
{
    uint32_t total = 0;
    for (uint32_t i = 1; i <= 10; i++)
        total = deposit(i);
    return total;
}

int guest_main(uint32_t mbi)
{
    (void)mbi;
    idt_init();
    pic_remap();
    isr_register(PIC1_VECTOR + 0, timer_irq);
    outb(PIT_CMD, 0x34); /* channel 0, mode 2, 1 kHz */
    outb(PIT_CH0, (uint8_t)1193);
    outb(PIT_CH0, (uint8_t)(1193 >> 8));
    pic_unmask(0);

    uint32_t expected = 0;
    acct.balance = 0;
    __asm__ volatile("sti");
    while (rounds < 100000) {
        uint32_t got = one_round();
        expected += 55;
        rounds++;
        if (got != expected) {
            __asm__ volatile("cli");
            printk("balance corrupted after %u rounds: %u, expected %u\n", rounds, got,
                   expected);
            return 0;
        }
    }
    __asm__ volatile("cli");
    printk("no corruption seen\n");
    return 1;
}

/* echo: COM1 receive interrupts (IRQ4) fill a ring buffer; the main loop
 * echoes each byte back.  'q' ends the session (it is not echoed).  A
 * received CR is echoed as LF so that output lines end with "\n". */
#include "guest.h"

#define RING_SIZE 256u /* power of two */

static volatile uint8_t ring[RING_SIZE];
static volatile uint32_t ring_head; /* written by the IRQ handler */
static volatile uint32_t ring_tail; /* written by the main loop */
volatile uint32_t rx_dropped;

static void com1_drain(void)
{
    while (inb(COM1 + UART_LSR) & LSR_DR) {
        uint8_t c = inb(COM1 + UART_RBR);
        if (ring_head - ring_tail < RING_SIZE) {
            ring[ring_head % RING_SIZE] = c;
            ring_head++;
        } else {
            rx_dropped++;
        }
    }
}

static void com1_irq(struct regs *r)
{
    (void)r;
    com1_drain();
}

int guest_main(uint32_t mbi)
{
    (void)mbi;
    idt_init();
    pic_remap();
    isr_register(PIC1_VECTOR + 4, com1_irq);

    serial_puts("echo: type, q quits\n");

    /* Keep anything received before interrupts were enabled. */
    com1_drain();
    outb(COM1 + UART_IER, 0x01); /* received-data-available interrupt */
    pic_unmask(4);

    for (;;) {
        /* IF=0 here: check the ring, halt with interrupts on if empty. */
        if (ring_tail == ring_head) {
            sti_hlt_cli();
            continue;
        }
        uint8_t c = ring[ring_tail % RING_SIZE];
        ring_tail++;
        if (c == 'q')
            break;
        serial_putc(c == '\r' ? '\n' : (char)c);
    }
    outb(COM1 + UART_IER, 0x00);
    pic_mask(4);
    serial_puts("\nbye\n");
    return 0;
}

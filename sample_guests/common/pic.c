/* 8259A PIC pair: remap the master to 0x20 and the slave to 0x28. */
#include "guest.h"

#define PIC1_CMD 0x20
#define PIC1_DATA 0x21
#define PIC2_CMD 0xA0
#define PIC2_DATA 0xA1

void pic_remap(void)
{
    outb(PIC1_CMD, 0x11);            /* ICW1: edge, cascade, ICW4 needed */
    io_wait();
    outb(PIC2_CMD, 0x11);
    io_wait();
    outb(PIC1_DATA, PIC1_VECTOR);    /* ICW2: vector base */
    io_wait();
    outb(PIC2_DATA, PIC2_VECTOR);
    io_wait();
    outb(PIC1_DATA, 0x04);           /* ICW3: slave on IRQ2 */
    io_wait();
    outb(PIC2_DATA, 0x02);           /* ICW3: slave identity 2 */
    io_wait();
    outb(PIC1_DATA, 0x01);           /* ICW4: 8086 mode, normal EOI */
    io_wait();
    outb(PIC2_DATA, 0x01);
    io_wait();
    outb(PIC1_DATA, 0xFF);           /* mask everything */
    outb(PIC2_DATA, 0xFF);
}

void pic_unmask(uint8_t irq)
{
    if (irq >= 8) {
        outb(PIC2_DATA, inb(PIC2_DATA) & ~(1u << (irq - 8)));
        irq = 2; /* cascade line */
    }
    outb(PIC1_DATA, inb(PIC1_DATA) & ~(1u << irq));
}

void pic_mask(uint8_t irq)
{
    if (irq >= 8)
        outb(PIC2_DATA, inb(PIC2_DATA) | (1u << (irq - 8)));
    else
        outb(PIC1_DATA, inb(PIC1_DATA) | (1u << irq));
}

void pic_eoi(uint8_t irq)
{
    if (irq >= 8)
        outb(PIC2_CMD, 0x20);
    outb(PIC1_CMD, 0x20);
}

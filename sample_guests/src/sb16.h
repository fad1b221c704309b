/* Sound Blaster 16 and 8237 DMA helpers shared by the audio sample guests
 * (microphone.c, playback.c).  The card at its classic resources: base 0x220,
 * IRQ 5, 8-bit DMA channel 1, 16-bit DMA channel 5. */
#ifndef SB16_H
#define SB16_H

#include "guest.h"

#define SB_BASE 0x220
#define SB_MIXER_INDEX (SB_BASE + 0x4)
#define SB_MIXER_DATA (SB_BASE + 0x5)
#define SB_RESET (SB_BASE + 0x6)
#define SB_READ (SB_BASE + 0xA)
#define SB_WRITE (SB_BASE + 0xC)
#define SB_READ_STATUS (SB_BASE + 0xE) /* reading also acknowledges the 8-bit IRQ */
#define SB_ACK16 (SB_BASE + 0xF)
#define SB_IRQ 5

static volatile uint32_t sb_irqs;

static inline void dsp_write(uint8_t v)
{
    while (inb(SB_WRITE) & 0x80)
        ;
    outb(SB_WRITE, v);
}

static inline int dsp_read(void)
{
    for (uint32_t i = 0; i < 100000; i++)
        if (inb(SB_READ_STATUS) & 0x80)
            return inb(SB_READ);
    return -1;
}

/* Reset the DSP; 1 if it answered 0xAA and reports version 4.x. */
static inline int dsp_reset(void)
{
    outb(SB_RESET, 1);
    for (int i = 0; i < 8; i++)
        io_wait();
    outb(SB_RESET, 0);
    if (dsp_read() != 0xAA)
        return 0;
    dsp_write(0xE1);
    int major = dsp_read(), minor = dsp_read();
    printk("sb16 dsp %d.%02d\n", major, minor);
    return major == 4;
}

static void sb_irq(struct regs *r)
{
    (void)r;
    outb(SB_MIXER_INDEX, 0x82); /* interrupt status: bit 0 8-bit, bit 1 16-bit */
    uint8_t status = inb(SB_MIXER_DATA);
    if (status & 1)
        (void)inb(SB_READ_STATUS);
    if (status & 2)
        (void)inb(SB_ACK16);
    sb_irqs++; /* EOI is sent by isr_dispatch */
}

static inline void sb_irq_init(void)
{
    idt_init();
    pic_remap();
    isr_register(PIC1_VECTOR + SB_IRQ, sb_irq);
    pic_unmask(SB_IRQ);
}

/* Halt until the card has raised `n` interrupts in all. */
static inline void sb_wait_irqs(uint32_t n)
{
    while (sb_irqs < n)
        sti_hlt_cli();
}

/* Keep running a while (about 0.5 s of virtual time at rdebug's and QEMU's
 * -icount shift=7) so that an emulator's audio back end writes out the last samples
 * before the guest powers off. */
static inline void sb_drain(void)
{
    for (volatile uint32_t i = 0; i < 800000u; i++)
        ;
}

static inline void dsp_rate(uint8_t command, uint16_t hz)
{
    dsp_write(command); /* 0x41 output, 0x42 input */
    dsp_write((uint8_t)(hz >> 8));
    dsp_write((uint8_t)hz);
}

/* Program 8-bit DMA channel 1: `mode` without its channel bits (0x44 single write,
 * 0x48 single read, | 0x10 auto-init), `len` bytes at physical `addr`. */
static inline void dma8_channel1(uint32_t addr, uint32_t len, uint8_t mode)
{
    outb(0x0A, 0x04 | 1); /* mask channel 1 */
    outb(0x0C, 0);        /* clear the flip-flop */
    outb(0x0B, mode | 1);
    outb(0x02, (uint8_t)addr);
    outb(0x02, (uint8_t)(addr >> 8));
    outb(0x83, (uint8_t)(addr >> 16)); /* page */
    outb(0x03, (uint8_t)(len - 1));
    outb(0x03, (uint8_t)((len - 1) >> 8));
    outb(0x0A, 1); /* unmask */
}

/* Program 16-bit DMA channel 5: `words` 16-bit words at physical `addr` (even). */
static inline void dma16_channel5(uint32_t addr, uint32_t words, uint8_t mode)
{
    outb(0xD4, 0x04 | 1); /* mask channel 5 (channel 1 of controller 2) */
    outb(0xD8, 0);
    outb(0xD6, mode | 1);
    outb(0xC4, (uint8_t)(addr >> 1));
    outb(0xC4, (uint8_t)(addr >> 9));
    outb(0x8B, (uint8_t)(addr >> 16));
    outb(0xC6, (uint8_t)(words - 1));
    outb(0xC6, (uint8_t)((words - 1) >> 8));
    outb(0xD4, 1);
}

#endif

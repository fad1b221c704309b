/* microphone: record 4000 bytes from the Sound Blaster 16's microphone (8-bit
 * unsigned mono at 8000 Hz, DMA channel 1 in auto-init mode, two halves of 2000
 * bytes with an IRQ each), print their CRC-32 and peak, then play a 440 Hz square
 * wave for 0.25 s (8-bit single-cycle output) and exit.
 *
 *   mic n=4000 crc32=XXXXXXXX peak=NNN
 *
 * The CRC is IEEE CRC-32 of the bytes as captured; peak is the largest distance of
 * a sample from the mid-scale value 128. */
#include "sb16.h"

#define RATE 8000u
#define CAPTURE 4000u
#define HALF (CAPTURE / 2)
#define TONE_HZ 440u
#define TONE_SAMPLES (RATE / 4) /* 0.25 s */

/* 8 KiB-aligned: a DMA buffer must not cross a 64 KiB boundary. */
static uint8_t capture[CAPTURE] __attribute__((aligned(8192)));
static uint8_t tone[TONE_SAMPLES] __attribute__((aligned(8192)));

static uint32_t crc32(const uint8_t *p, uint32_t n)
{
    uint32_t crc = 0xFFFFFFFFu;
    for (uint32_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int b = 0; b < 8; b++)
            crc = (crc >> 1) ^ (0xEDB88320u & -(crc & 1));
    }
    return ~crc;
}

int guest_main(uint32_t mbi)
{
    (void)mbi;
    if (!dsp_reset()) {
        printk("no sb16\n");
        return 3;
    }
    sb_irq_init();

    /* Capture: DMA single mode, device -> memory, auto-init over the whole buffer;
     * the DSP interrupts after each half. */
    dma8_channel1((uint32_t)capture, CAPTURE, 0x44 | 0x10);
    dsp_rate(0x42, RATE);
    dsp_write(0xCE);            /* 8-bit input, auto-init, FIFO */
    dsp_write(0x00);            /* unsigned mono */
    dsp_write((uint8_t)(HALF - 1));
    dsp_write((uint8_t)((HALF - 1) >> 8));
    sb_wait_irqs(1);
    dsp_write(0xDA);            /* exit auto-init after the second half */
    sb_wait_irqs(2);

    uint32_t peak = 0;
    for (uint32_t i = 0; i < CAPTURE; i++) {
        uint32_t d = capture[i] >= 128 ? capture[i] - 128u : 128u - capture[i];
        if (d > peak)
            peak = d;
    }
    printk("mic n=%u crc32=%08x peak=%u\n", CAPTURE, crc32(capture, CAPTURE), peak);

    /* Play: a square wave, single-cycle. */
    for (uint32_t i = 0; i < TONE_SAMPLES; i++)
        tone[i] = ((i * TONE_HZ * 2 / RATE) & 1) ? 0x40 : 0xC0;
    dma8_channel1((uint32_t)tone, TONE_SAMPLES, 0x48);
    dsp_write(0xD1);            /* speaker on */
    dsp_rate(0x41, RATE);
    dsp_write(0xC0);            /* 8-bit output, single-cycle */
    dsp_write(0x00);
    dsp_write((uint8_t)(TONE_SAMPLES - 1));
    dsp_write((uint8_t)((TONE_SAMPLES - 1) >> 8));
    sb_wait_irqs(3);
    dsp_write(0xD3);            /* speaker off */
    printk("played %u samples\n", TONE_SAMPLES);
    sb_drain();
    return 0;
}

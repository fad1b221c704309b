/* playback: play through the Sound Blaster 16 what the multiboot command line names
 * (no command line: both, in this order):
 *
 *   mono8     a 440 Hz square wave, 8-bit unsigned mono at 8000 Hz for 0.25 s,
 *             one single-cycle transfer on DMA channel 1
 *   stereo16  16-bit signed stereo at 22050 Hz, two auto-init blocks of 1024 frames
 *             on DMA channel 5 (left a sawtooth, right a 689 Hz square), with an IRQ
 *             per block and the auto-init ended after the first
 *
 * Both buffers are filled once before playing, so what is played does not depend on
 * when the card fetches it (the QEMU comparison relies on this). */
#include "sb16.h"

#define MONO_RATE 8000u
#define MONO_SAMPLES (MONO_RATE / 4)
#define STEREO_RATE 22050u
#define BLOCK_FRAMES 1024u

static uint8_t mono[MONO_SAMPLES] __attribute__((aligned(8192)));
/* 16-bit DMA must not cross a 128 KiB boundary: 8 KiB-aligned 8 KiB. */
static int16_t stereo[2 * 2 * BLOCK_FRAMES] __attribute__((aligned(8192)));

static int has(const char *cmdline, const char *word)
{
    if (!cmdline || !*cmdline)
        return 1;
    for (const char *p = cmdline; *p; p++) {
        const char *a = p, *b = word;
        while (*b && *a == *b)
            a++, b++;
        if (!*b && (*a == 0 || *a == ' '))
            return 1;
    }
    return 0;
}

static void play_mono8(void)
{
    for (uint32_t i = 0; i < MONO_SAMPLES; i++)
        mono[i] = ((i * 440u * 2 / MONO_RATE) & 1) ? 0x40 : 0xC0;
    uint32_t before = sb_irqs;
    dma8_channel1((uint32_t)mono, MONO_SAMPLES, 0x48);
    dsp_write(0xD1);
    dsp_rate(0x41, MONO_RATE);
    dsp_write(0xC0); /* 8-bit output, single-cycle */
    dsp_write(0x00); /* unsigned mono */
    dsp_write((uint8_t)(MONO_SAMPLES - 1));
    dsp_write((uint8_t)((MONO_SAMPLES - 1) >> 8));
    sb_wait_irqs(before + 1);
    printk("mono8 played %u samples\n", MONO_SAMPLES);
}

static void play_stereo16(void)
{
    for (uint32_t i = 0; i < 2 * BLOCK_FRAMES; i++) {
        stereo[2 * i] = (int16_t)((i * 397u) & 0xFFFF) - 0x4000;      /* left */
        stereo[2 * i + 1] = ((i / 16u) & 1) ? -12000 : 12000;          /* right */
    }
    uint32_t before = sb_irqs;
    dma16_channel5((uint32_t)stereo, 2 * 2 * BLOCK_FRAMES, 0x48 | 0x10);
    dsp_rate(0x41, STEREO_RATE);
    dsp_write(0xB6); /* 16-bit output, auto-init, FIFO */
    dsp_write(0x30); /* signed stereo */
    dsp_write((uint8_t)(2 * BLOCK_FRAMES - 1)); /* samples per block, both channels */
    dsp_write((uint8_t)((2 * BLOCK_FRAMES - 1) >> 8));
    sb_wait_irqs(before + 1);
    dsp_write(0xD9); /* exit auto-init after this block */
    sb_wait_irqs(before + 2);
    printk("stereo16 played %u frames\n", 2 * BLOCK_FRAMES);
}

int guest_main(uint32_t mbi)
{
    const char *cmdline = 0;
    if (mbi && (*(volatile uint32_t *)mbi & 4))
        cmdline = (const char *)*(volatile uint32_t *)(mbi + 16);
    if (!dsp_reset()) {
        printk("no sb16\n");
        return 3;
    }
    sb_irq_init();
    if (has(cmdline, "mono8"))
        play_mono8();
    if (has(cmdline, "stereo16"))
        play_stereo16();
    sb_drain();
    return 0;
}

/* Interrupt-driven devices of the minikernel: COM1 input (IRQ4), the i8042
 * keyboard (IRQ1, scan code set 1) and ATA PIO on the IDE slave (IRQ14).
 * Typed characters are echoed on COM1 and collected into a line; a complete
 * line wakes the process waiting for it. */
#include "kernel.h"

/* ---- line discipline --------------------------------------------------
 * Received characters queue up in a ring (typed-ahead lines are kept); a
 * reader takes one line at a time, and only then is it echoed, so that what
 * COM1 shows depends on what was typed, not on when it arrived. */
#define RING 1024

struct line {
    char ring[RING];
    uint32_t head, tail; /* head: next to read; tail: next to write */
    uint32_t lines;      /* complete lines in the ring */
    int skip_lf;         /* the last terminator was CR: drop one LF after it */
};

static struct line com1_line, kbd_line;

static void line_put(struct line *l, char c)
{
    if (c == '\n' && l->skip_lf) {
        l->skip_lf = 0;
        return;
    }
    l->skip_lf = c == '\r';
    if (c == '\r')
        c = '\n';
    if (l->tail - l->head >= RING - 1 && c != '\n')
        return; /* full: keep room for a terminator */
    if (l->tail - l->head >= RING)
        return;
    l->ring[l->tail++ % RING] = c;
    if (c == '\n') {
        l->lines++;
        wake_readers();
    }
}

static int line_take(struct line *l, char *dst, uint32_t max)
{
    if (!l->lines)
        return -1;
    uint32_t n = 0;
    for (;;) {
        char c = l->ring[l->head++ % RING];
        if (c == '\n')
            break;
        if (c == '\b' || c == 0x7F) {
            if (n)
                n--;
        } else if (c >= ' ' && c < 0x7F && n < max) {
            dst[n++] = c;
        }
    }
    l->lines--;
    serial_write(dst, n);
    serial_putc('\n');
    return (int)n;
}

/* ---- COM1 ------------------------------------------------------------- */
/* Bytes that arrived since serial_init() (which polled LSR while printing the
 * banner) are kept: the FIFO is not cleared, and what waits is taken now. */
void uart_rx_init(void)
{
    outb(COM1 + UART_FCR, 0x01); /* FIFOs on, trigger at 1 byte */
    outb(COM1 + UART_IER, 0x01); /* received data available */
    uart_irq();
}

void uart_irq(void)
{
    for (int i = 0; i < 64 && (inb(COM1 + UART_LSR) & LSR_DR); i++)
        line_put(&com1_line, (char)inb(COM1 + UART_RBR));
}

int uart_take_line(char *dst, uint32_t max) { return line_take(&com1_line, dst, max); }

/* ---- i8042 keyboard --------------------------------------------------- */
#define KBD_DATA 0x60
#define KBD_STATUS 0x64
#define KBD_CMD 0x64
#define KBD_OBF 0x01
#define KBD_IBF 0x02

static int have_kbd;

static int kbd_wait_input_empty(void)
{
    for (int i = 0; i < 100000; i++)
        if (!(inb(KBD_STATUS) & KBD_IBF))
            return 0;
    return -1;
}

static int kbd_wait_output_full(void)
{
    for (int i = 0; i < 100000; i++)
        if (inb(KBD_STATUS) & KBD_OBF)
            return 0;
    return -1;
}

static void kbd_scan_code(uint8_t code);

/* Enable IRQ1 (and scan code translation) in the controller's command byte.
 * The keyboard interface is disabled meanwhile; a key already waiting in the
 * output buffer (typed before we got here) is kept as input, not flushed. */
int kbd_init(void)
{
    if (inb(KBD_STATUS) == 0xFF)
        return -1;
    if (kbd_wait_input_empty() < 0)
        return -1;
    outb(KBD_CMD, 0xAD);
    for (int i = 0; i < 32 && (inb(KBD_STATUS) & KBD_OBF); i++)
        kbd_scan_code(inb(KBD_DATA));
    if (kbd_wait_input_empty() < 0)
        return -1;
    outb(KBD_CMD, 0x20);
    if (kbd_wait_output_full() < 0)
        return -1;
    uint8_t config = inb(KBD_DATA);
    config = (uint8_t)((config | 0x01 | 0x40) & ~0x10); /* IRQ1, translate, clock on */
    if (kbd_wait_input_empty() < 0)
        return -1;
    outb(KBD_CMD, 0x60);
    if (kbd_wait_input_empty() < 0)
        return -1;
    outb(KBD_DATA, config);
    have_kbd = 1;
    return 0;
}

int kbd_present(void) { return have_kbd; }

/* Scan code set 1 make codes to ASCII (no shift): 0 = ignored. */
static const char keymap[0x3A] = {
    [0x02] = '1', '2', '3', '4', '5', '6', '7', '8', '9', '0', '-', '=', '\b',
    [0x10] = 'q', 'w', 'e', 'r', 't', 'y', 'u', 'i', 'o', 'p',
    [0x1C] = '\n',
    [0x1E] = 'a', 's', 'd', 'f', 'g', 'h', 'j', 'k', 'l',
    [0x2C] = 'z', 'x', 'c', 'v', 'b', 'n', 'm', ',', '.', '/',
    [0x39] = ' ',
};

static void kbd_scan_code(uint8_t code)
{
    if (code < sizeof(keymap) && keymap[code])
        line_put(&kbd_line, keymap[code]);
}

void kbd_irq(void)
{
    for (int i = 0; i < 16 && (inb(KBD_STATUS) & KBD_OBF); i++)
        kbd_scan_code(inb(KBD_DATA));
}

int kbd_take_line(char *dst, uint32_t max) { return line_take(&kbd_line, dst, max); }

/* ---- IDE slave -------------------------------------------------------- */
#define ATA_DATA 0x1F0
#define ATA_COUNT 0x1F2
#define ATA_LBA0 0x1F3
#define ATA_LBA1 0x1F4
#define ATA_LBA2 0x1F5
#define ATA_DEVICE 0x1F6
#define ATA_STATUS 0x1F7
#define ATA_COMMAND 0x1F7
#define ATA_ALT_STATUS 0x3F6
#define ATA_CONTROL 0x3F6
#define ST_BSY 0x80
#define ST_DRDY 0x40
#define ST_DRQ 0x08
#define ST_ERR 0x01
#define DEV_SLAVE 0xF0 /* LBA, slave */

volatile uint32_t ide_irqs;
static int have_slave;

static int wait_not_busy(void)
{
    for (uint32_t i = 0; i < 1000000; i++) {
        uint8_t st = inb(ATA_ALT_STATUS);
        if (!(st & ST_BSY))
            return st;
    }
    return -1;
}

int ide_init(void)
{
    outb(ATA_DEVICE, DEV_SLAVE);
    for (int i = 0; i < 4; i++)
        inb(ATA_ALT_STATUS);
    uint8_t st = inb(ATA_STATUS);
    if (st == 0x00 || st == 0xFF)
        return -1;
    if (wait_not_busy() < 0)
        return -1;
    outb(ATA_CONTROL, 0x00); /* nIEN clear: the device interrupts */
    have_slave = 1;
    return 0;
}

void ide_irq(void)
{
    inb(ATA_STATUS); /* acknowledges INTRQ */
    ide_irqs++;
}

/* Wait (halting, interrupts on) for the IRQ after `seen`. */
static int wait_irq(uint32_t seen)
{
    for (uint32_t i = 0; i < 100000 && ide_irqs == seen; i++)
        __asm__ volatile("sti; hlt" ::: "memory");
    return ide_irqs != seen ? 0 : -1;
}

/* One sector, 32-bit PIO (rep insl / rep outsl), completion by IRQ14. */
int ide_slave_rw(uint32_t lba, void *buf, int write)
{
    if (!have_slave || wait_not_busy() < 0)
        return -1;
    uint32_t seen = ide_irqs;
    outb(ATA_DEVICE, (uint8_t)(DEV_SLAVE | ((lba >> 24) & 0x0F)));
    outb(ATA_COUNT, 1);
    outb(ATA_LBA0, (uint8_t)lba);
    outb(ATA_LBA1, (uint8_t)(lba >> 8));
    outb(ATA_LBA2, (uint8_t)(lba >> 16));
    outb(ATA_COMMAND, write ? 0x30 : 0x20);
    uint32_t dwords = 128;
    if (write) {
        int st = wait_not_busy();
        if (st < 0 || (st & ST_ERR) || !(st & ST_DRQ))
            return -1;
        __asm__ volatile("rep outsl" : "+S"(buf), "+c"(dwords) : "d"(ATA_DATA) : "memory");
        if (wait_irq(seen) < 0)
            return -1;
    } else {
        if (wait_irq(seen) < 0)
            return -1;
        int st = inb(ATA_ALT_STATUS);
        if ((st & ST_ERR) || !(st & ST_DRQ))
            return -1;
        __asm__ volatile("rep insl" : "+D"(buf), "+c"(dwords) : "d"(ATA_DATA) : "memory");
    }
    int st = wait_not_busy();
    return st >= 0 && !(st & (ST_ERR | ST_DRQ)) && (st & ST_DRDY) ? 0 : -1;
}

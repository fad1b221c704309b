/* portregs: byte registers read back through their I/O ports.
 *
 * The IDE Command Block on the primary channel (a disk on the primary master):
 * Sector Count and the LBA registers read back what was written, by the byte
 * and by 16-bit accesses that cover two of them, in a loop of 1000 rounds whose
 * checksum is printed; a write to Features leaves the Error register as it is;
 * the Device register reads back, and selecting the absent slave makes Status
 * read 0x00.  Device Control written again and again with the value it holds,
 * then changed: READ SECTORS of sector 0 with nIEN clear (one IRQ14 through the
 * PIC) and with nIEN set (none, Alternate Status polled).  The CRT controller
 * (0x3D4/0x3D5): the cursor location written and read back through the index,
 * a byte at a time and with `outw` (index and data at once), in a loop.
 *
 * Only what QEMU and rdebug both define is printed (no light-pen registers,
 * no index read back above 0x1F).  Exit code 0, or 5 on a failed wait. */
#include "guest.h"

#define ATA_DATA 0x1F0
#define ATA_ERROR 0x1F1 /* read */
#define ATA_FEATURES 0x1F1 /* write */
#define ATA_SECTOR_COUNT 0x1F2
#define ATA_LBA_LOW 0x1F3
#define ATA_LBA_MID 0x1F4
#define ATA_LBA_HIGH 0x1F5
#define ATA_DEVICE 0x1F6
#define ATA_STATUS 0x1F7 /* read */
#define ATA_COMMAND 0x1F7 /* write */
#define ATA_ALT_STATUS 0x3F6 /* read */
#define ATA_DEVICE_CONTROL 0x3F6 /* write */

#define ST_BSY 0x80
#define ST_DRQ 0x08
#define ST_ERR 0x01
#define CTL_SRST 0x04
#define CTL_NIEN 0x02
#define DEV_MASTER 0xE0 /* LBA, master */
#define DEV_SLAVE 0xF0  /* LBA, slave */
#define CMD_READ_SECTORS 0x20

#define CRTC_INDEX 0x3D4
#define CRTC_DATA 0x3D5
#define CURSOR_HIGH 0x0E
#define CURSOR_LOW 0x0F

#define IDE_IRQ 14
#define POLL_LIMIT 10000000u
#define ROUNDS 1000u
#define FAIL 5

static uint16_t sector[256];
static volatile uint32_t irq_count;
static volatile uint8_t irq_status;

static inline void outw(uint16_t port, uint16_t v)
{
    __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint16_t inw(uint16_t port)
{
    uint16_t v;
    __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

static inline void insw(uint16_t port, void *buf, uint32_t words)
{
    __asm__ volatile("rep insw" : "+D"(buf), "+c"(words) : "d"(port) : "memory");
}

static void ide_irq(struct regs *r)
{
    (void)r;
    irq_status = inb(ATA_STATUS); /* acknowledges INTRQ */
    irq_count++;
}

static void delay400(void)
{
    for (int i = 0; i < 4; i++)
        inb(ATA_ALT_STATUS);
}

/* Alternate Status (which acknowledges nothing) once BSY is clear, or -1. */
static int wait_alt_not_busy(void)
{
    for (uint32_t i = 0; i < POLL_LIMIT; i++) {
        uint8_t st = inb(ATA_ALT_STATUS);
        if (!(st & ST_BSY))
            return st;
    }
    return -1;
}

static uint32_t checksum(const void *data, uint32_t len)
{
    const uint8_t *p = data;
    uint32_t sum = 0;
    for (uint32_t i = 0; i < len; i++)
        sum = sum * 31 + p[i];
    return sum;
}

static void issue_read(uint8_t lba)
{
    outb(ATA_DEVICE, DEV_MASTER);
    outb(ATA_SECTOR_COUNT, 1);
    outb(ATA_LBA_LOW, lba);
    outb(ATA_LBA_MID, 0);
    outb(ATA_LBA_HIGH, 0);
    outb(ATA_COMMAND, CMD_READ_SECTORS);
}

static int task_file(void)
{
    outb(ATA_SECTOR_COUNT, 0x5A);
    outb(ATA_LBA_LOW, 0xA5);
    outb(ATA_LBA_MID, 0x3C);
    outb(ATA_LBA_HIGH, 0xC3);
    printk("task file: %02x %02x %02x %02x\n", inb(ATA_SECTOR_COUNT), inb(ATA_LBA_LOW),
           inb(ATA_LBA_MID), inb(ATA_LBA_HIGH));
    outw(ATA_SECTOR_COUNT, 0x1234);
    outw(ATA_LBA_MID, 0x5678);
    printk("task file by words: %02x %02x %02x %02x, %04x %04x\n", inb(ATA_SECTOR_COUNT),
           inb(ATA_LBA_LOW), inb(ATA_LBA_MID), inb(ATA_LBA_HIGH), inw(ATA_SECTOR_COUNT),
           inw(ATA_LBA_MID));
    uint32_t sum = 0;
    for (uint32_t n = 0; n < ROUNDS; n++) {
        outb(ATA_SECTOR_COUNT, (uint8_t)n);
        outb(ATA_LBA_LOW, (uint8_t)(n * 3));
        outb(ATA_LBA_MID, (uint8_t)(n * 5));
        outb(ATA_LBA_HIGH, (uint8_t)(n * 7));
        if (n % 10 == 0)
            outw(ATA_LBA_LOW, (uint16_t)(n * 257));
        sum = sum * 31 + inb(ATA_SECTOR_COUNT);
        sum = sum * 31 + inb(ATA_LBA_LOW);
        sum = sum * 31 + inb(ATA_LBA_MID);
        sum = sum * 31 + inb(ATA_LBA_HIGH);
    }
    printk("task file loop: %u rounds, sum %08x\n", ROUNDS, sum);
    uint8_t error = inb(ATA_ERROR);
    outb(ATA_FEATURES, 0x77);
    printk("error before and after a features write: %02x %02x\n", error, inb(ATA_ERROR));
    outb(ATA_DEVICE, DEV_MASTER);
    outb(ATA_DEVICE, DEV_MASTER);
    printk("device: %02x, status %02x\n", inb(ATA_DEVICE), inb(ATA_ALT_STATUS) & ~0x10);
    outb(ATA_DEVICE, DEV_SLAVE);
    delay400();
    printk("device: %02x, status %02x (no slave)\n", inb(ATA_DEVICE), inb(ATA_STATUS));
    outb(ATA_DEVICE, DEV_MASTER);
    delay400();
    return 0;
}

static int device_control(void)
{
    /* nIEN clear: the value written again and again, then a read with IRQ14. */
    for (int i = 0; i < 8; i++)
        outb(ATA_DEVICE_CONTROL, 0x00);
    inb(ATA_STATUS); /* nothing left pending */
    irq_count = 0;
    pic_unmask(IDE_IRQ);
    issue_read(0);
    while (irq_count == 0)
        sti_hlt_cli();
    if ((irq_status & (ST_BSY | ST_ERR | ST_DRQ)) != ST_DRQ)
        return FAIL;
    insw(ATA_DATA, sector, 256);
    uint32_t first = checksum(sector, sizeof sector);
    /* nIEN set, written again and again: the same read, polled, no interrupt. */
    for (int i = 0; i < 8; i++)
        outb(ATA_DEVICE_CONTROL, CTL_NIEN);
    issue_read(0);
    int st = wait_alt_not_busy();
    if (st < 0 || (st & (ST_ERR | ST_DRQ)) != ST_DRQ)
        return FAIL;
    sti();
    for (int i = 0; i < 1000; i++)
        __asm__ volatile("nop");
    cli();
    insw(ATA_DATA, sector, 256);
    inb(ATA_STATUS);
    pic_mask(IDE_IRQ);
    printk("sector 0 read twice: %08x %08x, %u interrupt(s), status %02x\n", first,
           checksum(sector, sizeof sector), irq_count, irq_status);
    return 0;
}

static uint8_t crtc_read(uint8_t index)
{
    outb(CRTC_INDEX, index);
    return inb(CRTC_DATA);
}

static void crtc(void)
{
    outb(CRTC_INDEX, CURSOR_HIGH);
    outb(CRTC_DATA, 0x01);
    outb(CRTC_INDEX, CURSOR_LOW);
    outb(CRTC_DATA, 0x23);
    printk("cursor: %02x%02x, index %02x\n", crtc_read(CURSOR_HIGH), crtc_read(CURSOR_LOW),
           inb(CRTC_INDEX));
    outw(CRTC_INDEX, 0x4500 | CURSOR_HIGH);
    outw(CRTC_INDEX, 0x6700 | CURSOR_LOW);
    printk("cursor by words: %02x%02x\n", crtc_read(CURSOR_HIGH), crtc_read(CURSOR_LOW));
    uint32_t sum = 0;
    for (uint32_t n = 0; n < ROUNDS; n++) {
        uint16_t pos = (uint16_t)(n * 81 % 2000);
        outb(CRTC_INDEX, CURSOR_HIGH);
        outb(CRTC_DATA, (uint8_t)(pos >> 8));
        outb(CRTC_INDEX, CURSOR_LOW);
        outb(CRTC_DATA, (uint8_t)pos);
        sum = sum * 31 + crtc_read(CURSOR_HIGH);
        sum = sum * 31 + crtc_read(CURSOR_LOW);
    }
    printk("cursor loop: %u rounds, sum %08x\n", ROUNDS, sum);
    outw(CRTC_INDEX, 0x0000 | CURSOR_HIGH);
    outw(CRTC_INDEX, 0x0000 | CURSOR_LOW);
}

/* CRTC accesses that QEMU's VGA and rdebug's CGA define differently (the CGA's
 * light-pen register R16, R19 past its 18 registers, an index above 0x1F): made,
 * their values kept in RAM, where the tests compare them between rdebug's runs,
 * and not printed (a loop runs it 50 times). */
volatile uint32_t unprinted;

/* Index, data, read back: a block of its own (one with more I/O instructions than
 * rdebug's native hooks place is left to Python). */
static __attribute__((noinline)) uint8_t crtc_write_read(uint8_t index, uint8_t value)
{
    outb(CRTC_INDEX, index);
    outb(CRTC_DATA, value);
    return inb(CRTC_DATA);
}

static __attribute__((noinline)) uint8_t crtc_index_read(void)
{
    return inb(CRTC_INDEX);
}

static void crtc_undefined(void)
{
    unprinted = unprinted * 31 + crtc_write_read(0x10, 0x5A);
    unprinted = unprinted * 31 + crtc_write_read(0x13, 0x77);
    unprinted = unprinted * 31 + crtc_write_read(0x20 | CURSOR_HIGH, 0x03);
    unprinted = unprinted * 31 + crtc_index_read();
    unprinted = unprinted * 31 + crtc_read(CURSOR_HIGH);
    outw(CRTC_INDEX, 0x0000 | CURSOR_HIGH);
}

int guest_main(uint32_t mbi)
{
    (void)mbi;
    idt_init();
    pic_remap();
    isr_register(PIC2_VECTOR + (IDE_IRQ - 8), ide_irq);
    outb(ATA_DEVICE, DEV_MASTER);
    delay400();
    outb(ATA_DEVICE_CONTROL, CTL_SRST | CTL_NIEN);
    delay400();
    outb(ATA_DEVICE_CONTROL, CTL_NIEN);
    delay400();
    int st = wait_alt_not_busy();
    if (st <= 0 || st == 0xFF) {
        printk("master: absent\n");
        return FAIL;
    }
    inb(ATA_STATUS);
    if (task_file() || device_control()) {
        printk("portregs: a wait failed, status %02x\n", inb(ATA_ALT_STATUS));
        return FAIL;
    }
    crtc();
    for (int i = 0; i < 50; i++) /* hot: the native port hooks know its blocks */
        crtc_undefined();
    printk("portregs done\n");
    return 0;
}

/* disk: ATA PIO on the primary IDE channel (0x1F0-0x1F7, 0x3F6, IRQ14).
 *
 * On the primary master: soft reset, IDENTIFY DEVICE (model, LBA28 sector
 * count), READ SECTORS of sector 0 (its first bytes and CRC-32), WRITE
 * SECTORS of a known pattern to sectors 1-3 (count 3), FLUSH CACHE, then READ
 * SECTORS of 1-3 (count 3) and a check against the pattern.  Everything is
 * polled with nIEN set, except the read-back, which waits for IRQ14 through
 * the PIC before each sector and uses 32-bit data transfers (rep insl).
 * Then the primary slave: absent if its Status reads 0x00 (or 0xFF),
 * otherwise IDENTIFY and the CRC-32 of its sector 0.
 *
 * Sector 0 may hold anything: only what it holds is printed.  Exit code 0,
 * or 5 on a failed check (with a line saying which). */
#include "guest.h"

/* Command Block and Control Block registers (ATA/ATAPI-6 names). */
#define ATA_DATA 0x1F0
#define ATA_ERROR 0x1F1
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
#define ST_DRDY 0x40
#define ST_DRQ 0x08
#define ST_ERR 0x01
#define CTL_SRST 0x04
#define CTL_NIEN 0x02
#define DEV_LBA 0x40
#define DEV_SLAVE 0x10

#define CMD_READ_SECTORS 0x20
#define CMD_WRITE_SECTORS 0x30
#define CMD_FLUSH_CACHE 0xE7
#define CMD_IDENTIFY_DEVICE 0xEC

#define IDE_IRQ 14
#define SECTOR 512u
#define PATTERN_SECTORS 3u
#define POLL_LIMIT 10000000u /* Status reads before a wait gives up */
#define FAIL 5

static uint16_t identify[256];
static uint8_t sector0[SECTOR];
static uint32_t pattern[PATTERN_SECTORS * SECTOR / 4];
static uint32_t readback[PATTERN_SECTORS * SECTOR / 4];

static volatile uint32_t irq_count;
static volatile uint8_t irq_status; /* Status as the IRQ handler read it */

static inline void insw(uint16_t port, void *buf, uint32_t words)
{
    __asm__ volatile("rep insw" : "+D"(buf), "+c"(words) : "d"(port) : "memory");
}

static inline void insl(uint16_t port, void *buf, uint32_t dwords)
{
    __asm__ volatile("rep insl" : "+D"(buf), "+c"(dwords) : "d"(port) : "memory");
}

static inline void outsw(uint16_t port, const void *buf, uint32_t words)
{
    __asm__ volatile("rep outsw" : "+S"(buf), "+c"(words) : "d"(port) : "memory");
}

/* Standard CRC-32 (reflected, polynomial 0xEDB88320), as zlib.crc32. */
static uint32_t crc32(const void *data, uint32_t len)
{
    const uint8_t *p = data;
    uint32_t crc = 0xFFFFFFFFu;
    while (len--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xEDB88320u & -(crc & 1u));
    }
    return ~crc;
}

static int fail(const char *what)
{
    printk("disk: %s failed, status 0x%02x error 0x%02x\n", what,
           inb(ATA_ALT_STATUS), inb(ATA_ERROR));
    return FAIL;
}

/* The 400 ns a device may take to show a new Status: four Alternate Status reads. */
static void delay400(void)
{
    for (int i = 0; i < 4; i++)
        inb(ATA_ALT_STATUS);
}

/* Status once BSY is clear (reading Status also acknowledges INTRQ), or -1. */
static int wait_not_busy(void)
{
    for (uint32_t i = 0; i < POLL_LIMIT; i++) {
        uint8_t st = inb(ATA_STATUS);
        if (!(st & ST_BSY))
            return st;
    }
    return -1;
}

/* Wait for a DRQ block: 0 when the device wants data moved, -1 on error. */
static int wait_drq(void)
{
    int st = wait_not_busy();
    return st >= 0 && !(st & ST_ERR) && (st & ST_DRQ) ? 0 : -1;
}

/* Wait for the end of a command: 0 when ready without error or DRQ. */
static int wait_done(void)
{
    int st = wait_not_busy();
    return st >= 0 && (st & (ST_DRDY | ST_ERR | ST_DRQ)) == ST_DRDY ? 0 : -1;
}

static void select_drive(uint32_t slave)
{
    outb(ATA_DEVICE, DEV_LBA | 0xA0 | (slave ? DEV_SLAVE : 0));
    delay400();
}

/* Command Block for an LBA28 command on the selected drive, then Command. */
static void issue(uint32_t slave, uint8_t command, uint32_t lba, uint8_t count)
{
    outb(ATA_DEVICE, DEV_LBA | 0xA0 | (slave ? DEV_SLAVE : 0) | ((lba >> 24) & 0x0F));
    outb(ATA_SECTOR_COUNT, count);
    outb(ATA_LBA_LOW, (uint8_t)lba);
    outb(ATA_LBA_MID, (uint8_t)(lba >> 8));
    outb(ATA_LBA_HIGH, (uint8_t)(lba >> 16));
    outb(ATA_COMMAND, command);
}

/* IDENTIFY DEVICE, polled: prints "NAME: MODEL, N sectors"; N, or 0 on failure. */
static uint32_t identify_drive(uint32_t slave, const char *name)
{
    static char model[41];
    issue(slave, CMD_IDENTIFY_DEVICE, 0, 0);
    if (wait_drq() < 0)
        return 0;
    insw(ATA_DATA, identify, 256);
    if (wait_done() < 0 || !(identify[49] & 0x0200)) /* LBA supported */
        return 0;
    /* Words 27-46, two characters a word, the first in the high byte. */
    for (int i = 0; i < 20; i++) {
        model[2 * i] = (char)(identify[27 + i] >> 8);
        model[2 * i + 1] = (char)identify[27 + i];
    }
    int n = 40;
    while (n > 0 && model[n - 1] == ' ')
        n--;
    model[n] = '\0';
    uint32_t sectors = identify[60] | (uint32_t)identify[61] << 16;
    printk("%s: %s, %u sectors\n", name, model, sectors);
    return sectors;
}

/* READ SECTORS, polled, 16-bit: one sector into buf. */
static int read_sector_polled(uint32_t slave, uint32_t lba, void *buf)
{
    issue(slave, CMD_READ_SECTORS, lba, 1);
    if (wait_drq() < 0)
        return -1;
    insw(ATA_DATA, buf, SECTOR / 2);
    return wait_done();
}

static void ide_irq(struct regs *r)
{
    (void)r;
    irq_status = inb(ATA_STATUS); /* acknowledges INTRQ */
    irq_count++;
}

static void print_first_bytes(const char *name, const uint8_t *buf)
{
    printk("%s:", name);
    for (int i = 0; i < 16; i++)
        printk(" %02x", buf[i]);
    printk("\n");
}

int guest_main(uint32_t mbi)
{
    (void)mbi;
    idt_init();
    pic_remap();
    isr_register(PIC2_VECTOR + (IDE_IRQ - 8), ide_irq);

    /* Soft reset of the channel, interrupts masked in the device (nIEN).  The
     * master is selected first: the firmware may have left the slave selected,
     * and a device busy in its reset ignores writes to the Device register. */
    select_drive(0);
    outb(ATA_DEVICE_CONTROL, CTL_SRST | CTL_NIEN);
    delay400();
    outb(ATA_DEVICE_CONTROL, CTL_NIEN);
    delay400();
    int st = wait_not_busy();
    if (st == 0x00 || st == 0xFF) {
        printk("master: absent\n");
        return FAIL;
    }
    if (st < 0 || (st & (ST_DRDY | ST_ERR | ST_DRQ)) != ST_DRDY)
        return fail("reset");
    printk("disk: reset, status 0x%02x error 0x%02x\n", st, inb(ATA_ERROR));

    uint32_t sectors = identify_drive(0, "master");
    if (sectors == 0)
        return fail("IDENTIFY DEVICE");
    if (sectors < 1 + PATTERN_SECTORS) {
        printk("disk: too small\n");
        return FAIL;
    }

    if (read_sector_polled(0, 0, sector0) < 0)
        return fail("READ SECTORS 0");
    print_first_bytes("sector 0", sector0);
    printk("sector 0 crc32: 0x%08x\n", crc32(sector0, SECTOR));

    /* A xorshift32 stream, the same on every run. */
    uint32_t x = 0xD15C0001u;
    for (uint32_t i = 0; i < PATTERN_SECTORS * SECTOR / 4; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        pattern[i] = x;
    }

    /* WRITE SECTORS 1-3 in one command: a DRQ block per sector, polled. */
    issue(0, CMD_WRITE_SECTORS, 1, PATTERN_SECTORS);
    for (uint32_t s = 0; s < PATTERN_SECTORS; s++) {
        if (wait_drq() < 0)
            return fail("WRITE SECTORS");
        outsw(ATA_DATA, (const uint8_t *)pattern + s * SECTOR, SECTOR / 2);
    }
    if (wait_done() < 0)
        return fail("WRITE SECTORS");
    issue(0, CMD_FLUSH_CACHE, 0, 0);
    if (wait_done() < 0)
        return fail("FLUSH CACHE");
    printk("sectors 1-3: written (polled, 16-bit), flushed\n");

    /* READ SECTORS 1-3 in one command, an IRQ14 before each DRQ block. */
    inb(ATA_STATUS); /* nothing left pending */
    irq_count = 0;
    outb(ATA_DEVICE_CONTROL, 0x00); /* nIEN clear */
    pic_unmask(IDE_IRQ);
    issue(0, CMD_READ_SECTORS, 1, PATTERN_SECTORS);
    for (uint32_t s = 0; s < PATTERN_SECTORS; s++) {
        while (irq_count <= s)
            sti_hlt_cli();
        if ((irq_status & (ST_BSY | ST_ERR | ST_DRQ)) != ST_DRQ)
            return fail("READ SECTORS (IRQ)");
        insl(ATA_DATA, (uint8_t *)readback + s * SECTOR, SECTOR / 4);
    }
    pic_mask(IDE_IRQ);
    outb(ATA_DEVICE_CONTROL, CTL_NIEN);
    if (wait_done() < 0)
        return fail("READ SECTORS (IRQ)");
    uint32_t mismatch = PATTERN_SECTORS * SECTOR / 4;
    for (uint32_t i = 0; i < PATTERN_SECTORS * SECTOR / 4; i++) {
        if (readback[i] != pattern[i]) {
            mismatch = i;
            break;
        }
    }
    printk("sectors 1-3: read back (IRQ14, 32-bit), %u interrupts, crc32 0x%08x\n",
           irq_count, crc32(readback, PATTERN_SECTORS * SECTOR));
    if (mismatch != PATTERN_SECTORS * SECTOR / 4) {
        printk("sectors 1-3: differ at byte %u\n", mismatch * 4);
        return FAIL;
    }
    printk("sectors 1-3: verify ok\n");

    /* The slave: an absent drive reads 0x00 in Status (0xFF: nothing at all). */
    select_drive(1);
    st = inb(ATA_STATUS);
    if (st == 0x00 || st == 0xFF) {
        printk("slave: absent\n");
    } else {
        if (wait_done() < 0 || identify_drive(1, "slave") == 0)
            return fail("slave IDENTIFY DEVICE");
        if (read_sector_polled(1, 0, sector0) < 0)
            return fail("slave READ SECTORS 0");
        print_first_bytes("slave sector 0", sector0);
        printk("slave sector 0 crc32: 0x%08x\n", crc32(sector0, SECTOR));
    }
    select_drive(0);
    printk("disk done\n");
    return 0;
}

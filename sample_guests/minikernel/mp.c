/* Finding the interrupt controllers the way a PC kernel does: the Intel MP
 * floating pointer ("_MP_") in the first KiB of the EBDA, the last KiB of base
 * memory or the BIOS ROM area 0xF0000-0xFFFFF, then its configuration table
 * ("PCMP"): the LAPIC address, the processors, the IOAPIC and the ISA IRQ to
 * IOAPIC pin assignments.  Then the LAPIC (timer, EOI) and IOAPIC routing. */
#include "kernel.h"

struct mp_info mp;

struct mp_float {
    char sig[4];
    uint32_t config;
    uint8_t length, revision, checksum, feature1;
    uint8_t feature2, feature3[3];
} __attribute__((packed));

struct mp_config {
    char sig[4];
    uint16_t length;
    uint8_t revision, checksum;
    char oem[8], product[12];
    uint32_t oem_table;
    uint16_t oem_length, entries;
    uint32_t lapic;
    uint16_t ext_length;
    uint8_t ext_checksum, reserved;
} __attribute__((packed));

static uint8_t sum_bytes(const uint8_t *p, uint32_t len)
{
    uint8_t s = 0;
    while (len--)
        s = (uint8_t)(s + *p++);
    return s;
}

static const struct mp_float *scan(uint32_t start, uint32_t len)
{
    for (uint32_t a = start; a + 16 <= start + len; a += 16) {
        const struct mp_float *f = (const struct mp_float *)a;
        if (f->sig[0] == '_' && f->sig[1] == 'M' && f->sig[2] == 'P' &&
            f->sig[3] == '_' && f->length == 1 && sum_bytes((const uint8_t *)f, 16) == 0)
            return f;
    }
    return 0;
}

/* A word of the BIOS data area (the address hidden from the compiler, which
 * would otherwise warn about dereferencing a small constant). */
static uint16_t bda_word(uint32_t addr)
{
    __asm__("" : "+r"(addr));
    return *(volatile uint16_t *)addr;
}

static const struct mp_float *find_float(void)
{
    const struct mp_float *f = 0;
    uint32_t ebda = (uint32_t)bda_word(0x40E) << 4;
    uint32_t base_kib = bda_word(0x413);
    if (ebda)
        f = scan(ebda, 1024);
    if (!f && base_kib >= 1)
        f = scan(base_kib * 1024 - 1024, 1024);
    if (!f)
        f = scan(0xF0000, 0x10000);
    return f;
}

int mp_find(void)
{
    const struct mp_float *f = find_float();
    if (!f) {
        printk("mp: no floating pointer\n");
        return -1;
    }
    if (f->config == 0) {
        printk("mp: default configuration %u is not supported\n", f->feature1);
        return -1;
    }
    const struct mp_config *c = (const struct mp_config *)f->config;
    if (c->sig[0] != 'P' || c->sig[1] != 'C' || c->sig[2] != 'M' || c->sig[3] != 'P' ||
        sum_bytes((const uint8_t *)c, c->length) != 0) {
        printk("mp: bad configuration table\n");
        return -1;
    }
    for (uint32_t i = 0; i < 16; i++)
        mp.isa_pin[i] = (uint8_t)i;
    mp.lapic = c->lapic;
    int isa_bus = -1;
    const uint8_t *p = (const uint8_t *)(c + 1), *end = (const uint8_t *)c + c->length;
    for (uint32_t i = 0; i < c->entries && p < end; i++) {
        switch (p[0]) {
        case 0: /* processor */
            if (p[3] & 1)
                mp.cpus++;
            p += 20;
            break;
        case 1: /* bus */
            if (p[2] == 'I' && p[3] == 'S' && p[4] == 'A')
                isa_bus = p[1];
            p += 8;
            break;
        case 2: /* IOAPIC */
            if ((p[3] & 1) && !mp.ioapic) {
                mp.ioapic_id = p[1];
                mp.ioapic = *(const uint32_t *)(p + 4);
            }
            p += 8;
            break;
        case 3: /* I/O interrupt: type, flags, bus, IRQ, IOAPIC, pin */
            if (p[1] == 0 && p[4] == isa_bus && p[5] < 16)
                mp.isa_pin[p[5]] = p[7];
            p += 8;
            break;
        case 4: /* local interrupt */
            p += 8;
            break;
        default:
            printk("mp: unknown entry type %u\n", p[0]);
            return -1;
        }
    }
    if (!mp.lapic || !mp.ioapic || !mp.cpus) {
        printk("mp: no LAPIC, IOAPIC or processor\n");
        return -1;
    }
    return 0;
}

/* ---- LAPIC ------------------------------------------------------------ */
#define LAPIC_ID 0x020
#define LAPIC_TPR 0x080
#define LAPIC_EOI 0x0B0
#define LAPIC_SVR 0x0F0
#define LAPIC_ESR 0x280
#define LAPIC_LVT_TIMER 0x320
#define LAPIC_LVT_LINT0 0x350
#define LAPIC_LVT_LINT1 0x360
#define LAPIC_LVT_ERROR 0x370
#define LAPIC_TIMER_INIT 0x380
#define LAPIC_TIMER_DIV 0x3E0
#define LVT_MASKED 0x10000
#define LVT_PERIODIC 0x20000

static inline void lapic_w(uint32_t reg, uint32_t v)
{
    *(volatile uint32_t *)(mp.lapic + reg) = v;
    (void)*(volatile uint32_t *)(mp.lapic + LAPIC_ID); /* wait for the write */
}
static inline uint32_t lapic_r(uint32_t reg) { return *(volatile uint32_t *)(mp.lapic + reg); }

uint32_t lapic_id(void) { return lapic_r(LAPIC_ID) >> 24; }

void lapic_init(uint32_t timer_initial_count)
{
    lapic_w(LAPIC_SVR, 0x100 | SPURIOUS_VECTOR); /* software enable */
    lapic_w(LAPIC_TIMER_DIV, 0x3);               /* divide by 16 */
    lapic_w(LAPIC_LVT_TIMER, LVT_PERIODIC | TIMER_VECTOR);
    lapic_w(LAPIC_TIMER_INIT, timer_initial_count);
    lapic_w(LAPIC_LVT_LINT0, LVT_MASKED);
    lapic_w(LAPIC_LVT_LINT1, LVT_MASKED);
    lapic_w(LAPIC_LVT_ERROR, LAPIC_ERROR_VECTOR);
    lapic_w(LAPIC_ESR, 0); /* back-to-back writes clear it */
    lapic_w(LAPIC_ESR, 0);
    lapic_w(LAPIC_EOI, 0);
    lapic_w(LAPIC_TPR, 0);
}

void lapic_eoi(void) { lapic_w(LAPIC_EOI, 0); }

/* ---- IOAPIC ----------------------------------------------------------- */
static uint32_t ioapic_r(uint32_t reg)
{
    *(volatile uint32_t *)mp.ioapic = reg;
    return *(volatile uint32_t *)(mp.ioapic + 0x10);
}
static void ioapic_w(uint32_t reg, uint32_t v)
{
    *(volatile uint32_t *)mp.ioapic = reg;
    *(volatile uint32_t *)(mp.ioapic + 0x10) = v;
}

uint32_t ioapic_pins(void) { return ((ioapic_r(1) >> 16) & 0xFF) + 1; }
uint32_t ioapic_id(void) { return (ioapic_r(0) >> 24) & 0xF; }

/* Every pin masked first; then ISA IRQ -> vector, edge, active high, fixed
 * delivery, physical destination apic_id. */
void ioapic_route(uint32_t isa_irq, uint8_t vector, uint32_t apic_id)
{
    static int masked;
    if (!masked) {
        for (uint32_t pin = 0; pin < ioapic_pins(); pin++) {
            ioapic_w(0x10 + 2 * pin, LVT_MASKED | (IRQ_VECTOR + pin));
            ioapic_w(0x11 + 2 * pin, 0);
        }
        masked = 1;
    }
    uint32_t pin = mp.isa_pin[isa_irq];
    ioapic_w(0x11 + 2 * pin, apic_id << 24);
    ioapic_w(0x10 + 2 * pin, vector);
}

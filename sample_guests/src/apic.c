/* apic: what a kernel like xv6 does with the MP table, the local APIC and the IOAPIC.
 *
 * Finds the MP floating pointer (EBDA, top of base memory, BIOS ROM), walks the
 * configuration table, masks the 8259s, then checks the LAPIC timer (periodic and
 * one-shot, current count), IOAPIC routing of the PIT (ISA IRQ0 via the MP table's
 * pin), self-IPIs, TPR masking, priority order, IRR/ISR, IPIs to absent CPUs, ESR.
 * Nothing printed depends on timing, only on what happened and in which order. */
#include "guest.h"

#define LAPIC_ID 0x020
#define LAPIC_VER 0x030
#define LAPIC_TPR 0x080
#define LAPIC_EOI 0x0B0
#define LAPIC_SVR 0x0F0
#define LAPIC_ISR 0x100
#define LAPIC_IRR 0x200
#define LAPIC_ESR 0x280
#define LAPIC_ICRLO 0x300
#define LAPIC_ICRHI 0x310
#define LAPIC_TIMER 0x320
#define LAPIC_LINT0 0x350
#define LAPIC_LINT1 0x360
#define LAPIC_ERROR 0x370
#define LAPIC_TICR 0x380
#define LAPIC_TCCR 0x390
#define LAPIC_TDCR 0x3E0

#define MASKED 0x10000
#define PERIODIC 0x20000
#define DELIVS 0x1000
#define SELF 0x40000
#define BCAST 0x80000
#define INIT 0x500
#define STARTUP 0x600
#define ASSERT 0x4000
#define LEVEL 0x8000

static volatile uint32_t *lapic;
static volatile uint32_t *ioapic;

static uint32_t lapic_r(uint32_t off) { return lapic[off / 4]; }
static void lapic_w(uint32_t off, uint32_t v)
{
    lapic[off / 4] = v;
    (void)lapic[LAPIC_ID / 4]; /* wait for the write to finish, as xv6 does */
}
static void lapic_eoi(void) { lapic_w(LAPIC_EOI, 0); }
static void wait_delivery(void)
{
    while (lapic_r(LAPIC_ICRLO) & DELIVS)
        ;
}
static uint32_t ioapic_r(uint32_t reg)
{
    ioapic[0] = reg;
    return ioapic[4];
}
static void ioapic_w(uint32_t reg, uint32_t v)
{
    ioapic[0] = reg;
    ioapic[4] = v;
}

/* ---- MP tables (Intel MP spec 1.4, chapter 4) ------------------------ */
struct mp {
    char sig[4];
    uint32_t physaddr;
    uint8_t length, specrev, checksum, type, imcrp, reserved[3];
};
struct mpconf {
    char sig[4];
    uint16_t length;
    uint8_t version, checksum;
    char product[20];
    uint32_t oemtable;
    uint16_t oemlength, entry;
    uint32_t lapicaddr;
    uint16_t xlength;
    uint8_t xchecksum, reserved;
};

static uint8_t sum(const uint8_t *p, uint32_t len)
{
    uint8_t s = 0;
    for (uint32_t i = 0; i < len; i++)
        s += p[i];
    return s;
}
static struct mp *mpsearch1(uint32_t a, uint32_t len)
{
    for (uint8_t *p = (uint8_t *)a; p < (uint8_t *)(a + len); p += sizeof(struct mp))
        if (p[0] == '_' && p[1] == 'M' && p[2] == 'P' && p[3] == '_' &&
            sum(p, sizeof(struct mp)) == 0)
            return (struct mp *)p;
    return 0;
}
static struct mp *mpsearch(void)
{
    uint8_t *bda = (uint8_t *)0x400;
    struct mp *mp;
    uint32_t p = (uint32_t)((bda[0x0F] << 8) | bda[0x0E]) << 4;
    if (p && (mp = mpsearch1(p, 1024)))
        return mp;
    p = (uint32_t)((bda[0x14] << 8) | bda[0x13]) * 1024;
    if ((mp = mpsearch1(p - 1024, 1024)))
        return mp;
    return mpsearch1(0xF0000, 0x10000);
}

static uint32_t ioapic_id_mp, irq0_pin = 0xFF, irq4_pin = 0xFF, ncpu, nioapic;

static int mpinit(void)
{
    struct mp *mp = mpsearch();
    if (!mp || !mp->physaddr)
        return -1;
    struct mpconf *conf = (struct mpconf *)mp->physaddr;
    if (conf->sig[0] != 'P' || conf->sig[1] != 'C' || conf->sig[2] != 'M' ||
        conf->sig[3] != 'P' || (conf->version != 1 && conf->version != 4) ||
        sum((uint8_t *)conf, conf->length) != 0)
        return -2;
    lapic = (volatile uint32_t *)conf->lapicaddr;
    uint8_t *p = (uint8_t *)(conf + 1), *e = (uint8_t *)conf + conf->length;
    while (p < e) {
        switch (*p) {
        case 0: /* processor */
            if (p[3] & 1)
                ncpu++;
            p += 20;
            break;
        case 2: /* IOAPIC */
            ioapic_id_mp = p[1];
            ioapic = (volatile uint32_t *)*(uint32_t *)(p + 4);
            nioapic++;
            p += 8;
            break;
        case 3: /* I/O interrupt: type, flags, bus, bus irq, apic, pin */
            if (p[1] == 0 && p[5] == 0)
                irq0_pin = p[7];
            if (p[1] == 0 && p[5] == 4)
                irq4_pin = p[7];
            p += 8;
            break;
        case 1:
        case 4:
            p += 8;
            break;
        default:
            return -3;
        }
    }
    return 0;
}

/* ---- interrupt handlers ------------------------------------------------ */
#define V_PERIODIC 0x20
#define V_ONESHOT 0x21
#define V_PIT 0x22
#define V_SELF 0x23
#define V_TPR 0x24
#define V_SPURIOUS 0x2F

static volatile uint32_t periodic_ticks, oneshot_fired, pit_ticks, self_ipis, tpr_ipis;
static volatile uint32_t order[8], norder, isr_seen;

static void on_periodic(struct regs *r) { (void)r; periodic_ticks++; lapic_eoi(); }
static void on_oneshot(struct regs *r) { (void)r; oneshot_fired++; lapic_eoi(); }
static void on_pit(struct regs *r) { (void)r; pit_ticks++; lapic_eoi(); }
static void on_self(struct regs *r) { (void)r; self_ipis++; lapic_eoi(); }
static void on_tpr(struct regs *r) { (void)r; tpr_ipis++; lapic_eoi(); }
static void on_ordered(struct regs *r)
{
    if (norder < 8)
        order[norder++] = r->vector;
    if (r->vector == 0x26 && (lapic_r(LAPIC_ISR + 0x10) & (1u << 6)))
        isr_seen = 1;
    lapic_eoi();
}

static void self_ipi(uint32_t vector)
{
    lapic_w(LAPIC_ICRHI, 0);
    lapic_w(LAPIC_ICRLO, SELF | vector);
    wait_delivery();
}

static void open_window(void) { __asm__ volatile("sti; nop; nop; cli" ::: "memory"); }

int guest_main(uint32_t mbi)
{
    (void)mbi;
    idt_init();
    pic_remap(); /* and mask every 8259 line: the APICs do the work */
    int err = mpinit();
    if (err) {
        printk("mp: not found (%d)\n", err);
        return 1;
    }
    printk("mp: %u cpu, %u ioapic, lapic at %x, ioapic at %x\n", ncpu, nioapic,
           (uint32_t)lapic, (uint32_t)ioapic);
    printk("mp: isa irq0 -> pin %u, irq4 -> pin %u\n", irq0_pin, irq4_pin);
    uint32_t ver = ioapic_r(1);
    printk("ioapic: max entry %u, id %s the mp table\n", (ver >> 16) & 0xFF,
           (ioapic_r(0) >> 24) == ioapic_id_mp ? "matches" : "differs from");
    for (uint32_t pin = 0; pin <= ((ver >> 16) & 0xFF); pin++) {
        ioapic_w(0x10 + 2 * pin, MASKED | (0x30 + pin));
        ioapic_w(0x11 + 2 * pin, 0);
    }

    isr_register(V_PERIODIC, on_periodic);
    isr_register(V_ONESHOT, on_oneshot);
    isr_register(V_PIT, on_pit);
    isr_register(V_SELF, on_self);
    isr_register(V_TPR, on_tpr);
    for (int v = 0x25; v <= 0x2A; v++)
        isr_register((uint8_t)v, on_ordered);

    lapic_w(LAPIC_SVR, 0x100 | V_SPURIOUS);
    uint32_t lver = lapic_r(LAPIC_VER);
    printk("lapic: id %u, version %x, max lvt %u\n", lapic_r(LAPIC_ID) >> 24, lver & 0xFF,
           (lver >> 16) & 0xFF);
    lapic_w(LAPIC_LINT0, MASKED);
    lapic_w(LAPIC_LINT1, MASKED);
    lapic_w(LAPIC_ERROR, MASKED | 0x2E);
    lapic_w(LAPIC_ESR, 0);
    lapic_w(LAPIC_ESR, 0);
    lapic_eoi();
    lapic_w(LAPIC_TPR, 0);

    /* Periodic timer, divide by 1, 100 us. */
    lapic_w(LAPIC_TDCR, 0xB);
    lapic_w(LAPIC_TIMER, PERIODIC | V_PERIODIC);
    lapic_w(LAPIC_TICR, 100000);
    while (periodic_ticks < 5)
        sti_hlt_cli();
    lapic_w(LAPIC_TIMER, MASKED);
    lapic_w(LAPIC_TICR, 0);
    printk("timer: periodic reached %u ticks\n", periodic_ticks);

    /* One-shot, divide by 16: the count goes down, fires once, stays at 0. */
    lapic_w(LAPIC_TDCR, 0x3);
    lapic_w(LAPIC_TIMER, V_ONESHOT);
    lapic_w(LAPIC_TICR, 50000);
    uint32_t c1 = lapic_r(LAPIC_TCCR);
    for (volatile int i = 0; i < 200; i++)
        ;
    uint32_t c2 = lapic_r(LAPIC_TCCR);
    printk("timer: one-shot counts down: %s\n", (c1 <= 50000 && c2 < c1 && c2 > 0) ? "yes" : "no");
    /* running, not halted: the expiry interrupts code (a tickless kernel's every tick) */
    while (!oneshot_fired)
        open_window();
    for (volatile int i = 0; i < 20000; i++)
        open_window();
    printk("timer: one-shot fired %u time(s), count now %u\n", oneshot_fired, lapic_r(LAPIC_TCCR));

    /* The PIT through the IOAPIC pin the MP table names for ISA IRQ0. */
    ioapic_w(0x10 + 2 * irq0_pin, V_PIT);
    ioapic_w(0x11 + 2 * irq0_pin, 0 << 24);
    outb(0x43, 0x34);
    outb(0x40, (uint8_t)1193);
    outb(0x40, (uint8_t)(1193 >> 8));
    while (pit_ticks < 3)
        sti_hlt_cli();
    ioapic_w(0x10 + 2 * irq0_pin, MASKED | V_PIT);
    printk("ioapic: %u pit ticks\n", pit_ticks);

    /* A self-IPI, taken at the next interrupt window. */
    self_ipi(V_SELF);
    uint32_t before = self_ipis;
    open_window();
    printk("ipi: self %u before the window, %u after\n", before, self_ipis);

    /* TPR: class 2 blocked by TPR 0x20, delivered once it is lowered. */
    lapic_w(LAPIC_TPR, 0x20);
    self_ipi(V_TPR);
    open_window();
    uint32_t blocked = tpr_ipis;
    lapic_w(LAPIC_TPR, 0x10);
    open_window();
    printk("tpr: %u while raised, %u after lowering\n", blocked, tpr_ipis);
    lapic_w(LAPIC_TPR, 0);

    /* Priority: the highest vector first; IRR and ISR show the requests. */
    self_ipi(0x25);
    self_ipi(0x2A);
    self_ipi(0x26);
    self_ipi(0x28);
    uint32_t irr = lapic_r(LAPIC_IRR + 0x10);
    open_window();
    printk("priority:");
    for (uint32_t i = 0; i < norder; i++)
        printk(" %x", order[i]);
    printk("; irr %x, isr seen %u\n", irr & 0x07E0, isr_seen);

    /* xv6's AP start-up sequence to a CPU that is not there, then its INIT de-assert. */
    lapic_w(LAPIC_ICRHI, 1u << 24);
    lapic_w(LAPIC_ICRLO, INIT | LEVEL | ASSERT);
    wait_delivery();
    lapic_w(LAPIC_ICRLO, INIT | LEVEL);
    wait_delivery();
    for (int i = 0; i < 2; i++) {
        lapic_w(LAPIC_ICRHI, 1u << 24);
        lapic_w(LAPIC_ICRLO, STARTUP | (0x7000 >> 12));
        wait_delivery();
    }
    lapic_w(LAPIC_ICRHI, 0);
    lapic_w(LAPIC_ICRLO, BCAST | INIT | LEVEL);
    wait_delivery();
    lapic_w(LAPIC_ESR, 0);
    printk("ipi: absent cpus ignored, esr %x, lapic id still %u\n", lapic_r(LAPIC_ESR),
           lapic_r(LAPIC_ID) >> 24);
    printk("apic done\n");
    return 0;
}

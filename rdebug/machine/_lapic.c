/*
 * The local APIC's priority logic, and its timer expiries and interrupt deliveries taken
 * without a Python round trip.
 *
 * Knows nothing of devices, logs or gdb.  struct rd_lapic (_lapic.h) holds the APIC's
 * IRR, ISR and TMR; the device (devices/lapic.py) owns everything else and calls the
 * rd_lapic_* functions below for every change of those three, so that Python and the
 * native paths share one implementation of SDM vol. 3A 10.8 (accept, acknowledge, EOI,
 * the processor priority).  The native counter's block hook (_icount.c) calls:
 *
 *   rd_lapic_expire   at a branch boundary at or after the timer's deadline: what the
 *                     device's on_timer does (the LVT vector into the IRR unless masked;
 *                     periodic: the next deadline of its schedule, the current count
 *                     published; one-shot: no deadline, the count 0 and no longer
 *                     published), for a vector >= 16; otherwise 0, and the counter stops
 *                     for Python.
 *   rd_lapic_window   at an IRQ window (IF=1, outside a shadow): what the machine's
 *                     _deliver_irqs does for the APIC's highest deliverable vector (it is
 *                     moved into service, logged in the native interrupt hook's syncs as
 *                     an interrupt, and delivered through its IDT gate by
 *                     rd_deliver_external); 0 (nothing changed) when the case is not the
 *                     common one: the counter stops for Python.
 *
 * Both are taken only while `wired` (the machine's native paths are in place and no
 * interrupt probe watches), the APIC is software-enabled and LINT0 does not pass the
 * 8259 through (ExtINT): then the CPU's INTR is this APIC's alone.
 *
 *   rd_lapic_store_hook  UC_HOOK_MEM_WRITE_PROT on the register page (for
 *                     machine/regpages.py): an EOI (a 32-bit store of 0 at +0xB0, once
 *                     per interrupt) that lets no other interrupt in ends the interrupt
 *                     in service here, as the device would; every other store, and an
 *                     EOI after which the CPU must stop to take the next interrupt, goes
 *                     to `fallback` (the Python hook), with nothing changed.
 */
#include <stdint.h>
#include <string.h>

#include "_lapic.h"

typedef void uc_engine;
typedef int (*rd_store_fallback_fn)(uc_engine *uc, int type, uint64_t addr, int size,
                                    int64_t value);

/* The register page's store hook (rdebug/machine/lapiccore.py mirrors it). */
struct rd_lapic_store {
    struct rd_lapic *lapic;
    uint64_t eoi_addr; /* the page's guest-physical base + 0xB0 */
    rd_store_fallback_fn fallback;
    uint64_t eois; /* statistics: EOIs taken here */
};

#define SVR_ENABLE 0x100u
#define LVT_MASKED 0x10000u
#define DELIVERY_EXTINT 7u
#define OFF_PPR 0xa0u
#define OFF_ISR 0x100u
#define OFF_TMR 0x180u
#define OFF_IRR 0x200u

uint32_t rd_countdown_publish(struct rd_countdown *cd, uint64_t icount); /* _icount.c */
void rd_countdown_ended(struct rd_countdown *cd);                         /* _icount.c */
int rd_intr_room(struct rd_intr *s);                                    /* _intr.c */
void rd_intr_log(struct rd_intr *s, uint64_t entry);
int rd_deliver_external(struct rd_vtlb *v, uint32_t vector, uint64_t linear_pc); /* _vtlb.c */

/* A sync entry of an external interrupt (_intr.c: software interrupts have bit 63 clear) */
#define RD_SYNC_INTERRUPT (UINT64_C(1) << 63)

static int highest(const uint32_t bits[8]) {
    for (int i = 7; i >= 0; i--)
        if (bits[i])
            return 32 * i + 31 - __builtin_clz(bits[i]);
    return -1;
}

static inline void set_bit(uint32_t bits[8], int v) { bits[v >> 5] |= 1u << (v & 31); }
static inline void clear_bit(uint32_t bits[8], int v) { bits[v >> 5] &= ~(1u << (v & 31)); }

static inline void put32(uint8_t *page, uint32_t offset, uint32_t value) {
    page[offset] = (uint8_t)value;
    page[offset + 1] = (uint8_t)(value >> 8);
    page[offset + 2] = (uint8_t)(value >> 16);
    page[offset + 3] = (uint8_t)(value >> 24);
}

/* Processor priority: the TPR, or the class of the highest vector in service. */
static uint32_t ppr_of(uint32_t tpr, const uint32_t isr[8]) {
    int isrv = highest(isr);
    uint32_t in_service = isrv < 0 ? 0 : (uint32_t)isrv;
    return (tpr >> 4) >= (in_service >> 4) ? tpr : (in_service & 0xf0u);
}

uint32_t rd_lapic_ppr(const struct rd_lapic *l) { return ppr_of(l->tpr, l->isr); }

/* `vector` may be delivered under processor priority `ppr`. */
static int above(const struct rd_lapic *l, int vector, uint32_t ppr) {
    return vector >= 16 && (l->svr & SVR_ENABLE) && ((uint32_t)vector >> 4) > (ppr >> 4);
}

static int deliverable(const struct rd_lapic *l, int vector) {
    return above(l, vector, rd_lapic_ppr(l));
}

/* ISR, TMR and IRR (eight words 16 bytes apart each) and the PPR into the register
 * page: only the words that changed since the last call (an interrupt changes one bit of
 * one or two of them).  The page holds what the last call wrote, or the device wrote
 * the same values (rd_lapic_shown resets the record after it writes the whole page). */
void rd_lapic_publish(struct rd_lapic *l) {
    const uint32_t *now[3] = {l->isr, l->tmr, l->irr};
    static const uint32_t base[3] = {OFF_ISR, OFF_TMR, OFF_IRR};
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < 8; i++)
            if (now[k][i] != l->shown[k][i]) {
                put32(l->page, base[k] + 16 * i, now[k][i]);
                l->shown[k][i] = now[k][i];
            }
    put32(l->page, OFF_PPR, rd_lapic_ppr(l)); /* TPR stores change it too */
}

/* The page now holds ISR, TMR and IRR as they are (the device wrote it whole). */
void rd_lapic_shown(struct rd_lapic *l) {
    for (int i = 0; i < 8; i++) {
        l->shown[0][i] = l->isr[i];
        l->shown[1][i] = l->tmr[i];
        l->shown[2][i] = l->irr[i];
    }
}

/* INTR again from the IRR and the priorities; 1 when it rose. */
int rd_lapic_update(struct rd_lapic *l) {
    uint32_t was = l->int_out;
    l->int_out = (uint32_t)deliverable(l, highest(l->irr));
    return l->int_out && !was;
}

/* An interrupt message for this APIC with vector >= 16 (the device handles the rest):
 * requested, edge or level; 1 when INTR rose. */
int rd_lapic_accept(struct rd_lapic *l, uint32_t vector, uint32_t level) {
    if (!(l->svr & SVR_ENABLE) || vector < 16 || vector > 255)
        return 0;
    set_bit(l->irr, (int)vector);
    if (level)
        set_bit(l->tmr, (int)vector);
    else
        clear_bit(l->tmr, (int)vector);
    rd_lapic_publish(l);
    return rd_lapic_update(l);
}

/* The INTA cycle: the highest requested vector moves into service and is returned; -1
 * when nothing is deliverable (the device answers the spurious vector). */
int rd_lapic_acknowledge(struct rd_lapic *l) {
    int vector = highest(l->irr);
    if (!deliverable(l, vector))
        return -1;
    clear_bit(l->irr, vector);
    set_bit(l->isr, vector);
    rd_lapic_publish(l);
    rd_lapic_update(l);
    return vector;
}

/* End of interrupt: the highest vector in service leaves it; 1 when INTR rose. */
int rd_lapic_eoi(struct rd_lapic *l) {
    int vector = highest(l->isr);
    if (vector < 0)
        return 0;
    clear_bit(l->isr, vector);
    clear_bit(l->tmr, vector);
    rd_lapic_publish(l);
    return rd_lapic_update(l);
}

static uint64_t icount_reaching(int64_t ns, int64_t bias_ns, uint32_t shift) {
    if (ns == RD_LAPIC_NO_DEADLINE)
        return UINT64_MAX;
    int64_t d = ns - bias_ns;
    if (d <= 0)
        return 0;
    return ((uint64_t)d + ((UINT64_C(1) << shift) - 1)) >> shift;
}

/* The timer's next expiry (ns, RD_LAPIC_NO_DEADLINE: none), the origin of its periodic
 * schedule and its period (0: one-shot). */
void rd_lapic_set_timer(struct rd_lapic *l, int64_t deadline_ns, int64_t start_ns,
                        int64_t period_ns) {
    l->deadline_ns = deadline_ns;
    l->start_ns = start_ns;
    l->period_ns = period_ns;
    l->deadline_icount = icount_reaching(deadline_ns, l->bias_ns, l->icount_shift);
    if (l->limit)
        *l->limit = 0;
}

/* Virtual time is (icount << shift) + bias_ns (set before each run: warps move it). */
void rd_lapic_set_clock(struct rd_lapic *l, uint32_t shift, int64_t bias_ns) {
    l->icount_shift = shift;
    l->bias_ns = bias_ns;
    l->deadline_icount = icount_reaching(l->deadline_ns, bias_ns, shift);
    if (l->limit)
        *l->limit = 0;
}

static int native(const struct rd_lapic *l) {
    uint32_t lint0 = l->lvt_lint0;
    int extint = !(lint0 & LVT_MASKED) && ((lint0 >> 8) & 7) == DELIVERY_EXTINT;
    return l->wired && (l->svr & SVR_ENABLE) && !extint;
}

int rd_lapic_expire(struct rd_lapic *l, uint64_t icount) {
    if (!native(l))
        return 0;
    uint32_t lvt = l->lvt_timer;
    if (!(lvt & LVT_MASKED) && (lvt & 0xffu) < 16)
        return 0; /* an illegal vector: the device sets the ESR */
    if (!(lvt & LVT_MASKED))
        rd_lapic_accept(l, lvt & 0xffu, 0);
    if (l->period_ns <= 0) {
        /* one-shot (a tickless kernel's every tick): no next deadline, and the count,
         * at 0 from now on, no longer published (the device's _schedule) */
        rd_lapic_set_timer(l, RD_LAPIC_NO_DEADLINE, l->start_ns, 0);
        if (l->countdown)
            rd_countdown_ended(l->countdown);
        l->expiries++;
        return 1;
    }
    /* the next deadline strictly after now, as the device's _schedule computes it */
    int64_t now = (int64_t)(icount << l->icount_shift) + l->bias_ns;
    int64_t since = now > l->start_ns ? now - l->start_ns : 0;
    int64_t done = since / l->period_ns;
    rd_lapic_set_timer(l, l->start_ns + (done + 1) * l->period_ns, l->start_ns, l->period_ns);
    if (l->countdown)
        rd_countdown_publish(l->countdown, icount); /* the count reloads */
    l->expiries++;
    return 1;
}

int rd_lapic_window(struct rd_lapic *l, uint64_t icount, uint64_t linear_pc) {
    if (!native(l) || !l->int_out || !rd_intr_room(l->intr))
        return 0;
    int vector = highest(l->irr);
    if (!deliverable(l, vector))
        return 0;
    if (rd_deliver_external(l->vtlb, (uint32_t)vector, linear_pc) != 0)
        return 0; /* nothing changed: Python delivers (or raises the fault) */
    rd_intr_log(l->intr, icount | RD_SYNC_INTERRUPT);
    rd_lapic_acknowledge(l);
    l->delivered++;
    return 1;
}

/* Would an EOI now raise INTR (a vector waiting below the one in service)? */
static int eoi_raises(const struct rd_lapic *l) {
    int vector = highest(l->isr);
    if (vector < 0 || l->int_out)
        return 0;
    uint32_t isr[8]; /* the ISR after that EOI */
    memcpy(isr, l->isr, sizeof isr);
    clear_bit(isr, vector);
    return above(l, highest(l->irr), ppr_of(l->tpr, isr));
}

int rd_lapic_store_hook(uc_engine *uc, int type, uint64_t addr, int size, int64_t value,
                        void *user) {
    struct rd_lapic_store *s = user;
    struct rd_lapic *l = s->lapic;
    if (l->wired && addr == s->eoi_addr && size == 4 && (uint32_t)value == 0 && !eoi_raises(l)) {
        rd_lapic_eoi(l); /* the page still reads 0 there: nothing to settle */
        s->eois++;
        return 1;
    }
    return s->fallback(uc, type, addr, size, value);
}

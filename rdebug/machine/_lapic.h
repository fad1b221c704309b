/*
 * The local APIC's interrupt state, shared by the device (rdebug/machine/devices/lapic.py,
 * through rdebug/machine/lapiccore.py, which mirrors this struct as a ctypes.Structure:
 * keep both in step) and the native counter (_icount.c), which takes the timer's
 * expiries and delivers the APIC's interrupts at IRQ windows without a Python round
 * trip (_lapic.c).  Knows nothing of devices, logs or gdb.
 */
#ifndef RD_LAPIC_H
#define RD_LAPIC_H

#include <stdint.h>

struct rd_intr;      /* _intr.c */
struct rd_vtlb;      /* _vtlb.c */
struct rd_countdown; /* _icount.c */

#define RD_LAPIC_NO_DEADLINE INT64_MAX

struct rd_lapic {
    /* IRR, ISR and TMR: bit v of vector v, 32 to a word (the device's registers: it
     * reads and writes them here) */
    uint32_t irr[8];
    uint32_t isr[8];
    uint32_t tmr[8];
    /* ISR, TMR and IRR as rd_lapic_publish last wrote them into the register page */
    uint32_t shown[3][8];
    uint8_t *page;
    /* copies of the registers only the device writes (it copies them at every write) */
    uint32_t tpr;
    uint32_t svr;
    uint32_t lvt_timer;
    uint32_t lvt_lint0;
    /* a vector is deliverable (the CPU's INTR from this APIC) */
    uint32_t int_out;
    /* the machine lets C take timer expiries and deliver (native counter and interrupt
     * hooks in place, no interrupt probe): 0 sends every event to Python */
    uint32_t wired;
    /* the timer: its next expiry (virtual ns; RD_LAPIC_NO_DEADLINE: none), the start
     * of its periodic schedule and its period (0: one-shot) */
    int64_t deadline_ns;
    int64_t start_ns;
    int64_t period_ns;
    /* virtual time is (icount << icount_shift) + bias_ns; deadline_icount is the first
     * icount at or after deadline_ns (UINT64_MAX: none): the counter's check */
    int64_t bias_ns;
    uint32_t icount_shift;
    uint32_t _pad;
    uint64_t deadline_icount;
    /* what the native paths use */
    struct rd_countdown *countdown; /* the timer's current count, published at expiries */
    struct rd_intr *intr;           /* where delivered interrupts are logged */
    struct rd_vtlb *vtlb;           /* the page walk and rd_deliver_external */
    /* statistics */
    uint64_t expiries; /* timer expiries taken natively */
    uint64_t delivered; /* interrupts delivered natively */
    /* the counter's fast-path limit (struct rd_counter), zeroed at every change of the
     * deadline; NULL when no counter takes the expiries */
    uint64_t *limit;
};

/* _lapic.c, for the counter's block hook (both at a block entry, before it runs) */
int rd_lapic_expire(struct rd_lapic *l, uint64_t icount);
int rd_lapic_window(struct rd_lapic *l, uint64_t icount, uint64_t linear_pc);

#endif

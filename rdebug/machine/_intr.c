/*
 * Software interrupts (INT n, n >= 32: system calls) taken without a Python round trip.
 *
 * Knows nothing of devices, logs or gdb.  rdebug/machine/intr.py owns the structs below
 * (mirrored as ctypes.Structures: keep both in step) and registers the hooks.
 *
 *   rd_intr_hook   UC_HOOK_INTR, every interrupt and exception unicorn reports.  For an
 *                  INT n with n >= 32 (the CPU raises nothing above 31: only INT n can)
 *                  that is the last instruction of the block the counter is running
 *                  (_icount.c), in protected mode through a 32-bit gate (rd_deliver,
 *                  _vtlb.c), it does what machine.py's _on_interrupt does for it:
 *                  the counter takes the trap, its icount is kept in `syncs` (the
 *                  machine passes them on to its inputs, in order, before anything else
 *                  reaches them: a recorder logs each one), and the interrupt is
 *                  delivered.  Anything else goes to `fallback`, the Python hook, with
 *                  nothing changed.
 *   rd_cr2_hook    UC_HOOK_INTR for cpu.py: keeps CR2 when a page fault (#PF) is raised.
 *
 * The local APIC's native deliveries (_lapic.c) are logged in the same `syncs`, so that
 * the machine passes every interrupt taken in C on in the order they were taken.
 */
#include <stdint.h>

typedef void uc_engine;
typedef int (*uc_reg_read_fn)(uc_engine *, int, void *);
typedef void (*rd_intr_fallback_fn)(uint32_t intno);

struct rd_counter; /* _icount.c */
struct rd_vtlb;    /* _vtlb.c */
int rd_counter_trap_at_block_end(struct rd_counter *st, uint64_t pc, uint64_t *icount);
int rd_after_int(struct rd_vtlb *v, uint32_t vector, uint64_t *pc);
int rd_deliver(struct rd_vtlb *v, uint32_t vector, uint32_t software, uint32_t has_error,
               uint32_t error_code);

struct rd_intr {
    struct rd_counter *counter;
    struct rd_vtlb *vtlb;
    rd_intr_fallback_fn fallback;
    uint64_t *syncs;   /* icounts of the interrupts taken, not yet passed on: software
                        * interrupts; with bit 63 set, the local APIC's (_lapic.c) */
    uint32_t count;    /* entries used in syncs */
    uint32_t capacity; /* full: the Python hook takes the next one (and empties it) */
    uint32_t native;   /* 0: every interrupt goes to the Python hook */
    uint32_t _pad;
    uint64_t handled;  /* statistics: software interrupts taken here */
};

void rd_intr_hook(uc_engine *uc, uint32_t intno, void *user) {
    struct rd_intr *s = user;
    (void)uc;
    uint64_t pc, icount;
    if (intno >= 32 && s->native && s->count < s->capacity &&
        rd_after_int(s->vtlb, intno, &pc) == 0 &&
        rd_counter_trap_at_block_end(s->counter, pc, &icount) &&
        rd_deliver(s->vtlb, intno, 1, 0, 0) == 0) {
        s->syncs[s->count++] = icount;
        s->handled++;
        return;
    }
    s->fallback(intno);
}

/* For the local APIC's native deliveries (_lapic.c): is there room in `syncs`, and an
 * entry to append (the icount, with bit 63 set for an external interrupt). */
int rd_intr_room(struct rd_intr *s) {
    return s != 0 && s->native && s->count < s->capacity;
}

void rd_intr_log(struct rd_intr *s, uint64_t entry) {
    s->syncs[s->count++] = entry;
}

struct rd_cr2 {
    uc_reg_read_fn reg_read;
    int32_t cr2_regid;
    uint32_t seen; /* a #PF was raised since Python last cleared it */
    uint64_t cr2;
};

void rd_cr2_hook(uc_engine *uc, uint32_t intno, void *user) {
    struct rd_cr2 *s = user;
    if (intno != 14)
        return;
    uint64_t cr2 = 0;
    s->reg_read(uc, s->cr2_regid, &cr2);
    s->cr2 = cr2;
    s->seen = 1;
}

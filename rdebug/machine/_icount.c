/*
 * The exact instruction counter: native unicorn hooks, loaded through ctypes.
 *
 * Knows nothing of devices, logs or gdb.  rdebug/machine/icount_binding.py mirrors the
 * struct below (as a ctypes.Structure: keep both in step) and registers the hooks
 * with the binding's low-level uc_hook_add, passing the struct as user data.
 *
 *   rd_block_hook   UC_HOOK_BLOCK, every translation block on entry:
 *                   icount += instructions in the block (from a table filled once
 *                   per new block by a callback into Python, which decodes it).
 *                   It stops the engine BEFORE the block runs when the block would
 *                   cross the target icount, when the block must be translated again
 *                   first, when an IRQ is waiting and the guest has just opened
 *                   an interrupt window (EFLAGS.IF=1 outside an STI/MOV SS shadow),
 *                   or when the soft deadline has passed and the previous block ended
 *                   with a control transfer (a "branch boundary": a position that
 *                   depends only on the instructions executed, never on how unicorn
 *                   happened to cut translation blocks).
 *                   While a countdown is armed (struct rd_countdown: the LAPIC timer's
 *                   current count), a block entered at a branch boundary first writes
 *                   the count at that icount into the device's register page (see
 *                   rd_countdown_publish: the guest reads it with no memory hook), or,
 *                   published lazily, keeps that icount for the page's read alias.
 *                   The LAPIC timer's expiries (_lapic.c) and a PIT expiry that
 *                   changes nothing (struct rd_ticker) are taken here, not stopped for.
 *   rd_code_hook    UC_HOOK_CODE restricted to single addresses: breakpoints, and the
 *                   instruction after an I/O instruction (a code hook makes unicorn
 *                   check for a stop request right there, so a stop asked for by an
 *                   I/O handler lands exactly after the I/O instruction).
 *
 * A stop is only ever requested through uc_emu_stop, whose address the Python side
 * places in the struct (so nothing here links against unicorn).
 */
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "_lapic.h"

typedef void uc_engine;
typedef int (*uc_emu_stop_fn)(uc_engine *);
typedef int (*uc_reg_read_fn)(uc_engine *, int, void *);
typedef uint32_t (*rd_miss_fn)(uint64_t addr, uint32_t size);

/* Block info word: bump nothing here without changing icount_binding.py. */
#define RD_INFO_COUNT_MASK 0x00ffffffu /* instructions in the block */
#define RD_INFO_SHADOW 0x01000000u     /* last instruction is STI / MOV SS / POP SS */
#define RD_INFO_RETRANSLATE 0x02000000u /* stop before running it: hooks must be added */
#define RD_INFO_BRANCH 0x04000000u     /* last instruction is a control transfer */
#define RD_INFO_MMU 0x08000000u        /* writes CR0/CR3/CR4 or INVLPG: mappings may change */
#define RD_INFO_SETS_IF 0x10000000u    /* holds STI, POPF, IRET...: may set EFLAGS.IF */
#define RD_INFO_EMPTY 0xffffffffu

enum rd_stop {
    RD_STOP_NONE = 0,
    RD_STOP_TARGET = 1,      /* the next block would cross `target` */
    RD_STOP_IRQ_WINDOW = 2,  /* irq_check set and IF=1 outside a shadow */
    RD_STOP_BREAKPOINT = 3,  /* a breakpoint address is about to execute */
    RD_STOP_RETRANSLATE = 4, /* a new block needs per-address hooks first */
    RD_STOP_REQUESTED = 5,   /* set by Python (I/O or interrupt handler) */
    RD_STOP_DEADLINE = 6     /* soft_target passed, at a branch boundary */
};

#define RD_NO_ADDR UINT64_MAX
#define RD_RECENT_SIZE 2048
#define RD_RECENT_MASK (RD_RECENT_SIZE - 1)

/* An entry of the direct-mapped cache in front of the block table: what the fast path
 * reads, 16 bytes.  A Linux boot runs through far more blocks than a small kernel's
 * loops: with 256 entries, 110 million of its 592 million block entries missed the
 * cache and took the hook's full path and the table (8% of the boot's time); with 2048
 * (32 KiB), 31 million, and the boot records 3-4% faster.  4096 missed less still but
 * made xv6's tests 2-3% slower. */
struct rd_recent {
    uint64_t addr;
    uint32_t size;
    uint32_t info;
};

/* A block is known by its linear address and size, but the same (addr, size) may hold
 * other code in another address space (two processes' programs at the same virtual
 * address).  So each entry keeps a hash of the code bytes it was decoded from, and the
 * epoch in which it was last found to match: the epoch moves on whenever the mappings
 * may have changed (a block that wrote CR0/CR3/CR4 or ran INVLPG, a restored state), and
 * an entry from an older epoch, or one whose block the engine has just translated again
 * (code written over in place: rd_translated_hook), is checked against the bytes now at
 * its address before it is used (and decoded again when they differ). */
struct rd_block {
    uint64_t addr;
    uint32_t size;
    uint32_t info;
    uint64_t hash;
    uint64_t epoch;
};

/* A down-counter whose value the guest reads in a register page (the LAPIC timer's
 * current count).  Virtual time is ns(icount) = (icount << icount_shift) + bias_ns; the
 * count is `initial` at start_ns and goes down by one every 2^divide_shift ns (periodic:
 * back to `initial` after 1; one-shot: stays at 0).  While `armed`, the block hook writes
 * the count at the icount of every block entered at a branch boundary (the first
 * instruction after a control transfer: a position that depends only on the
 * instructions executed) into page + offset, so a guest read returns the count at the
 * last branch boundary at or before it (or at the last register store that reloaded
 * it).  Python owns it (rdebug/machine/countdown.py mirrors it: keep both in step). */
struct rd_countdown {
    uint32_t armed;
    uint32_t periodic;
    uint32_t initial;
    uint32_t divide_shift;
    uint32_t icount_shift;
    uint32_t published; /* the value last written into the page */
    int64_t bias_ns;
    int64_t start_ns;
    uint8_t *page;
    uint64_t offset;
    uint64_t publications; /* statistics: values written by rd_countdown_publish */
    int64_t period_start_ns; /* countdown_value's cache: start_ns plus whole periods */
    /* countdown_value's fast path: the count is linear in icount over the stretch
     * [fast_from, fast_from + fast_span) of the current period (or of a one-shot's
     * countdown), initial - (((icount << icount_shift) + fast_off) >> divide_shift).
     * Set by the full computation; fast_span = 0 (Python, at every change of the
     * parameters) sends the next value through it again. */
    uint64_t fast_from;
    uint64_t fast_span;
    int64_t fast_off;
    /* Lazy publication (with the native counter and the page walk, machine/countdown.py):
     * the hook publishes nothing; the guest reads the page through an MMIO alias
     * (rd_countdown_mmio_read) and the machine at every stop and before a device store,
     * each of which first brings the page up to date (rd_countdown_catch_up): the count
     * at the last branch boundary, `*boundary` (the counter's), unless the page holds it
     * or a later one already (`published_at`). */
    uint32_t lazy;
    uint32_t _pad_lazy;
    uint64_t published_at; /* the boundary the page holds the count of (RD_NO_ADDR: none) */
    const uint64_t *boundary;
    uint64_t reads; /* statistics: guest reads of the page through the MMIO alias */
};

/* The first icount whose virtual time is at or after `ns`. */
static inline uint64_t icount_reaching(int64_t ns, int64_t bias_ns, uint32_t icount_shift) {
    int64_t d = ns - bias_ns;
    if (d <= 0)
        return 0;
    return ((uint64_t)d + ((UINT64_C(1) << icount_shift) - 1)) >> icount_shift;
}

/* Over virtual times [from_ns, until_ns) the count is initial - ((now - from_ns) >>
 * divide_shift): the fast path's stretch. */
static inline void countdown_linear(struct rd_countdown *cd, int64_t from_ns, int64_t until_ns) {
    uint64_t from = icount_reaching(from_ns, cd->bias_ns, cd->icount_shift);
    uint64_t until = icount_reaching(until_ns, cd->bias_ns, cd->icount_shift);
    cd->fast_from = from;
    cd->fast_span = until > from ? until - from : 0;
    cd->fast_off = cd->bias_ns - from_ns;
}

/* The count at `icount`.  Periodic: `period_start_ns` caches the start of the current
 * period (start_ns plus whole periods), so that the common case is a subtraction and a
 * shift, not a 64-bit division at every publication; the value does not depend on it. */
__attribute__((noinline)) static uint32_t countdown_value_full(struct rd_countdown *cd, uint64_t icount) {
    if (!cd->initial)
        return 0;
    int64_t now = (int64_t)(icount << cd->icount_shift) + cd->bias_ns;
    if (now <= cd->start_ns)
        return cd->initial;
    if (!cd->periodic) {
        uint64_t counts = (uint64_t)(now - cd->start_ns) >> cd->divide_shift;
        if (counts >= cd->initial)
            return 0;
        countdown_linear(cd, cd->start_ns, cd->start_ns + ((int64_t)cd->initial << cd->divide_shift));
        return cd->initial - (uint32_t)counts;
    }
    int64_t period = (int64_t)cd->initial << cd->divide_shift;
    if (now < cd->period_start_ns || cd->period_start_ns < cd->start_ns)
        cd->period_start_ns = cd->start_ns; /* earlier than the cache (a restored state) */
    int64_t into = now - cd->period_start_ns;
    if (into >= period) {
        cd->period_start_ns += into / period * period;
        into = now - cd->period_start_ns;
    }
    countdown_linear(cd, cd->period_start_ns, cd->period_start_ns + period);
    return cd->initial - (uint32_t)((uint64_t)into >> cd->divide_shift);
}

/* The count at `icount` (published at every branch boundary while armed: the common
 * case is the fast path's shift, add and shift). */
static inline uint32_t countdown_value(struct rd_countdown *cd, uint64_t icount) {
    if (icount - cd->fast_from < cd->fast_span) {
        int64_t into = (int64_t)(icount << cd->icount_shift) + cd->fast_off;
        return cd->initial - (uint32_t)((uint64_t)into >> cd->divide_shift);
    }
    return countdown_value_full(cd, icount);
}

static inline uint32_t countdown_publish(struct rd_countdown *cd, uint64_t icount) {
    uint32_t value = countdown_value(cd, icount);
    memcpy(cd->page + cd->offset, &value, 4);
    cd->published = value;
    cd->publications++;
    cd->published_at = icount;
    return value;
}

#define RD_NONE UINT64_MAX

/* The page as the hook publishing at every branch boundary would have left it. */
void rd_countdown_catch_up(struct rd_countdown *cd) {
    if (!cd->armed || !cd->boundary)
        return;
    uint64_t at = *cd->boundary;
    if (at != RD_NONE && at != cd->published_at)
        countdown_publish(cd, at);
}

/* A guest read of the page, through its MMIO alias (the page walk maps every read of
 * the page there, _vtlb.c): the bytes the page holds once brought up to date. */
uint64_t rd_countdown_mmio_read(void *uc, uint64_t offset, unsigned size, void *user) {
    struct rd_countdown *cd = user;
    (void)uc;
    cd->reads++;
    rd_countdown_catch_up(cd);
    uint64_t value = 0;
    if (offset < 4096 && size <= 8 && offset + size <= 4096)
        memcpy(&value, cd->page + offset, size); /* little-endian: the low byte first */
    return value;
}

/* Never called: the page walk sends no write to the alias (writes go to the page). */
void rd_countdown_mmio_write(void *uc, uint64_t offset, unsigned size, uint64_t value,
                             void *user) {
    (void)uc, (void)offset, (void)size, (void)value, (void)user;
}

/* The device wrote the page itself (a register store, a restored state): it holds the
 * count as of now. */
void rd_countdown_written(struct rd_countdown *cd) {
    cd->published_at = cd->boundary ? *cd->boundary : RD_NONE;
}

/* A one-shot countdown reached 0 (its expiry, taken by _lapic.c): what the device's
 * Countdown.disarm then write(0) do. */
void rd_countdown_ended(struct rd_countdown *cd) {
    uint32_t zero = 0;
    cd->armed = 0;
    cd->fast_span = 0;
    memcpy(cd->page + cd->offset, &zero, 4);
    cd->published = 0;
    rd_countdown_written(cd);
}

uint32_t rd_countdown_value(struct rd_countdown *cd, uint64_t icount) {
    return countdown_value(cd, icount);
}

/* Write the count at `icount` into the page (and `published`); returns it. */
uint32_t rd_countdown_publish(struct rd_countdown *cd, uint64_t icount) {
    return countdown_publish(cd, icount);
}

/* The indexes of a block's I/O and RDTSC instructions (Block.specials), for the native
 * RDTSC hook: the Nth such instruction the block runs is its Nth special (the hooks of
 * both count them in `special_seen`).  Blocks with more than RD_SPECIALS_MAX are left to
 * Python. */
#define RD_SPECIALS_MAX 10
struct rd_specials {
    uint64_t addr;
    uint32_t size;
    uint16_t count; /* 0xffff: empty slot */
    uint16_t index[RD_SPECIALS_MAX];
};
#define RD_SPECIALS_EMPTY 0xffffu

/* A periodic device timer whose expiries the block hook may take itself: the PIT's
 * counter 0 in mode 2 or 3, whose every expiry is an IRQ0 pulse.  While `idle`, that
 * pulse changes nothing (both interrupt controllers already hold an IRQ0 edge that they
 * mask: Python decides it before each run, machine/ticker.py, and clears it at any I/O a
 * device answers during the run).  Then at a branch boundary at or after
 * `deadline_icount` the hook moves `edge_tick` to the next rising edge after now, as the
 * device's on_timer would at a stop there, instead of stopping.  Time is the counter's:
 * ns = (icount << icount_shift) + bias_ns; PIT ticks = ns * 1193182 / 1e9 (floor), and a
 * tick's deadline is the first ns reaching it (ceiling), as devices/pit.py computes them.
 * machine/ticker.py mirrors the struct (keep both in step). */
struct rd_ticker {
    uint32_t wired;        /* Python's timer for it is left out of soft_target */
    uint32_t idle;         /* an expiry now changes nothing (else: stop at the deadline) */
    uint32_t icount_shift;
    uint32_t _pad;
    int64_t bias_ns;
    int64_t start_tick;
    int64_t period;           /* ticks, > 0 */
    int64_t edge_tick;        /* the next rising edge */
    uint64_t deadline_icount; /* the first icount whose time reaches edge_tick */
    uint64_t taken;           /* expiries taken here */
};

#define RD_PIT_HZ 1193182
#define RD_NS_PER_S 1000000000

static inline int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* The edge after now, and its deadline (devices/pit.py next_edge, tick_deadline_ns;
 * clock.py icount_at). */
static void ticker_expire(struct rd_ticker *tk, uint64_t icount) {
    int64_t now_ns = (int64_t)(icount << tk->icount_shift) + tk->bias_ns;
    int64_t t = (int64_t)(((__int128)now_ns * RD_PIT_HZ) / RD_NS_PER_S);
    if (now_ns < 0 && ((__int128)now_ns * RD_PIT_HZ) % RD_NS_PER_S != 0)
        t -= 1; /* floor */
    int64_t edge = tk->start_tick + (floor_div(t - tk->start_tick, tk->period) + 1) * tk->period;
    __int128 scaled = (__int128)edge * RD_NS_PER_S;
    int64_t deadline_ns = (int64_t)(scaled / RD_PIT_HZ);
    if (scaled > 0 && scaled % RD_PIT_HZ != 0)
        deadline_ns += 1; /* ceiling */
    int64_t delta = deadline_ns - tk->bias_ns;
    tk->edge_tick = edge;
    tk->deadline_icount =
        delta <= 0 ? 0 : ((uint64_t)delta + ((UINT64_C(1) << tk->icount_shift) - 1)) >> tk->icount_shift;
    tk->taken++;
}

struct rd_counter {
    /* time */
    uint64_t icount;     /* instructions started, the current block counted whole */
    uint64_t target;     /* never start instruction number `target` + 1 */
    uint64_t soft_target; /* stop at the first branch boundary at or after it */
    /* The block hook's fast path: a block whose last instruction is at most `limit`,
     * entered after a block whose info has none of the bits of `prev_mask`, runs with
     * nothing else checked (see rd_block_hook).  0 makes the next block entry take the
     * full path, which sets all three again (and keeps `limit` at 0 while a stop is on
     * its way, a breakpoint is being stepped over or an IRQ waits with IF not known to
     * be 0): whoever changes target, soft_target, stop_at, a native timer's deadline,
     * stop_reason, bp_skip_addr, irq_check, if_clear or the countdown's armed or lazy
     * while the engine runs sets it to 0. */
    uint64_t limit;
    uint32_t prev_mask; /* RD_INFO_MMU, and RD_INFO_SETS_IF while irq_check */
    uint32_t publish;   /* the countdown is armed and published eagerly */
    /* the icount of the last block entered at a branch boundary (RD_NONE: none since the
     * last restore), for the countdown's lazy publication */
    uint64_t boundary;
    uint64_t block_base; /* icount before the current block */
    uint64_t block_addr; /* the current (last entered) block */
    uint32_t block_size;
    uint32_t block_info;
    /* stop */
    uint32_t stop_reason;
    uint32_t irq_check;
    uint64_t stop_addr; /* the block not run (TARGET, IRQ_WINDOW, RETRANSLATE) or bp */
    uint32_t stop_size;
    uint32_t stop_info;
    /* breakpoint to step over when resuming on it */
    uint64_t bp_skip_addr;
    uint32_t bp_skip_blocks;
    int32_t eflags_regid;
    uint32_t prev_info; /* info of the block run before the current one */
    uint32_t special_seen; /* I/O and RDTSC instructions of the current block run so far */
    /* wiring */
    uc_engine *uc;
    uc_emu_stop_fn emu_stop;
    uc_reg_read_fn reg_read;
    rd_miss_fn miss;
    /* block table: open addressing on (addr, size) */
    struct rd_block *blocks;
    uint32_t blocks_mask;
    uint32_t blocks_used;
    /* breakpoint set: open addressing on addr, RD_NO_ADDR = empty, 1 = deleted */
    uint64_t *bps;
    uint32_t bps_mask;
    uint32_t bps_used;
    uint64_t blocks_seen; /* statistics: table misses */
    /* stops asked for by an I/O handler, which must not call uc_emu_stop itself (a
     * stop requested inside a string I/O instruction makes unicorn run it again) */
    uint64_t stop_at;      /* stop at the first block entry at or after this icount */
    uint32_t stop_pending; /* stop at the next hooked instruction (after a mid-block I/O) */
    /* EFLAGS.IF was read as 0 since the last block that may set it (irq_check): the next
     * block entries need not read EFLAGS (a register read computes the lazy flags, 7% of
     * a kernel's run while it keeps interrupts off with one pending).  Cleared by every
     * execute, by traps and by any block with RD_INFO_SETS_IF. */
    uint32_t if_clear;
    /* address spaces (see struct rd_block) */
    uint64_t epoch;
    const uint8_t *ram; /* guest RAM at physical 0, for reading code through the page tables */
    uint64_t ram_size;
    int32_t cr0_regid;
    int32_t cr3_regid;
    int32_t cr4_regid;
    uint32_t _pad3;
    uint64_t revalidations; /* statistics: entries checked against their code again */
    /* a direct-mapped cache in front of the table (Python only sizes it); an entry holds
     * its block's linear address (below 2^33) ORed with the tag of the epoch it was
     * filled in, `recent_tag` (see epoch_advance) */
    uint64_t recent_tag;
    struct rd_recent recent[RD_RECENT_SIZE];
    /* the countdown published at branch boundaries, or NULL */
    struct rd_countdown *countdown;
    /* blocks with I/O or RDTSC instructions: their indexes (see struct rd_specials) */
    struct rd_specials *specials;
    uint32_t specials_mask;
    uint32_t specials_used;
    /* the local APIC whose timer expiries and interrupts the hook takes (_lapic.c), or
     * NULL; its timer is then not in soft_target (the machine leaves it out) */
    struct rd_lapic *lapic;
    /* the periodic timer whose idle expiries the hook takes (struct rd_ticker), or NULL */
    struct rd_ticker *ticker;
};

/* For the check of the ctypes mirror (icount_binding.py) against this layout. */
size_t rd_counter_size(void) { return sizeof(struct rd_counter); }

static inline uint32_t hash64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (uint32_t)x;
}

static int blocks_alloc(struct rd_counter *st, uint32_t capacity) {
    struct rd_block *old = st->blocks;
    uint32_t old_cap = old ? st->blocks_mask + 1 : 0;
    struct rd_block *nb = malloc(sizeof(struct rd_block) * capacity);
    if (!nb)
        return -1;
    for (uint32_t i = 0; i < capacity; i++)
        nb[i].info = RD_INFO_EMPTY;
    st->blocks = nb;
    st->blocks_mask = capacity - 1;
    st->blocks_used = 0;
    for (uint32_t i = 0; i < old_cap; i++) {
        if (old[i].info == RD_INFO_EMPTY)
            continue;
        uint32_t h = hash64(old[i].addr ^ ((uint64_t)old[i].size << 40)) & st->blocks_mask;
        while (nb[h].info != RD_INFO_EMPTY)
            h = (h + 1) & st->blocks_mask;
        nb[h] = old[i];
        st->blocks_used++;
    }
    free(old);
    return 0;
}

/* Set the info of block (addr, size); returns 0, or -1 when out of memory. */
static void recent_forget(struct rd_counter *st, uint64_t addr) {
    struct rd_recent *slot = &st->recent[(addr ^ (addr >> 7)) & RD_RECENT_MASK];
    slot->addr = RD_NO_ADDR; /* (no tagged address is: linear ones are below 2^33) */
    slot->info = RD_INFO_EMPTY;
}

int rd_block_set(struct rd_counter *st, uint64_t addr, uint32_t size, uint32_t info) {
    recent_forget(st, addr);
    if (!st->blocks || (st->blocks_used + 1) * 2 > st->blocks_mask + 1) {
        uint32_t cap = st->blocks ? (st->blocks_mask + 1) * 2 : 4096;
        if (blocks_alloc(st, cap) < 0)
            return -1;
    }
    uint32_t h = hash64(addr ^ ((uint64_t)size << 40)) & st->blocks_mask;
    while (st->blocks[h].info != RD_INFO_EMPTY) {
        if (st->blocks[h].addr == addr && st->blocks[h].size == size) {
            st->blocks[h].info = info;
            return 0;
        }
        h = (h + 1) & st->blocks_mask;
    }
    st->blocks[h].addr = addr;
    st->blocks[h].size = size;
    st->blocks[h].info = info;
    st->blocks[h].hash = 0;
    st->blocks[h].epoch = st->epoch;
    st->blocks_used++;
    return 0;
}

static struct rd_block *block_find(struct rd_counter *st, uint64_t addr, uint32_t size) {
    if (!st->blocks)
        return NULL;
    uint32_t h = hash64(addr ^ ((uint64_t)size << 40)) & st->blocks_mask;
    for (;;) {
        struct rd_block *b = &st->blocks[h];
        if (b->info == RD_INFO_EMPTY)
            return NULL;
        if (b->addr == addr && b->size == size)
            return b;
        h = (h + 1) & st->blocks_mask;
    }
}

static void recent_clear(struct rd_counter *st) {
    for (uint32_t i = 0; i < RD_RECENT_SIZE; i++) {
        st->recent[i].addr = RD_NO_ADDR;
        st->recent[i].info = RD_INFO_EMPTY;
    }
}

/* A new epoch.  The recent cache's entries all miss from now on (their tags are the old
 * epoch's) without a pass over them: xv6's test suite changes address spaces 270,000
 * times.  It is cleared only when the tag's 31 bits wrap around. */
#define RD_TAG_MASK ((UINT64_C(1) << 31) - 1)
static void epoch_advance(struct rd_counter *st) {
    st->epoch++;
    st->recent_tag = (st->epoch & RD_TAG_MASK) << 33;
    if (!st->recent_tag)
        recent_clear(st);
}

/* An epoch the counter never reaches: an entry in it is checked against its code. */
#define RD_EPOCH_STALE UINT64_MAX

/* unicorn's uc_tb (unicorn.h) */
struct rd_uc_tb {
    uint64_t pc;
    uint16_t icount;
    uint16_t size;
};

/* UC_HOOK_EDGE_GENERATED, which unicorn calls right after it translates a block (every
 * translation once one block has run: `uc->last_tb` is never reset).  The engine
 * translates a block again when its translation was dropped, and it drops it when the
 * guest writes over its code: in place, with the same CR3, the new code may have the
 * same address and size as the old and other instructions, which the table would go on
 * counting as the old ones.  So the entry of every block translated anew is checked
 * against the bytes now at its address when it next runs, as after an epoch change. */
void rd_translated_hook(uc_engine *uc, const struct rd_uc_tb *tb, const struct rd_uc_tb *prev,
                        void *user_data) {
    (void)uc;
    (void)prev;
    struct rd_counter *st = user_data;
    struct rd_block *b = block_find(st, tb->pc, tb->size);
    if (b) {
        b->epoch = RD_EPOCH_STALE;
        recent_forget(st, tb->pc);
    }
}

/* The mappings may have changed (called by Python after restoring a state). */
void rd_space_changed(struct rd_counter *st) {
    epoch_advance(st);
}

/* Guest-physical address of linear `addr` through the current page tables (4 KiB and
 * 4 MiB pages, no PAE), or UINT64_MAX.  Reads RAM only: no accessed bits are set. */
static uint64_t linear_to_physical(const struct rd_counter *st, uint64_t addr, uint64_t cr0,
                                   uint64_t cr3, uint64_t cr4) {
    addr &= 0xffffffffu;
    if (!(cr0 & 0x80000000u))
        return addr;
    uint64_t pde_at = (cr3 & 0xfffff000u) + ((addr >> 22) << 2);
    if (pde_at + 4 > st->ram_size)
        return UINT64_MAX;
    uint32_t pde;
    memcpy(&pde, st->ram + pde_at, 4);
    if (!(pde & 1))
        return UINT64_MAX;
    if ((pde & 0x80) && (cr4 & 0x10))
        return (pde & 0xffc00000u) | (addr & 0x3fffffu);
    uint64_t pte_at = (pde & 0xfffff000u) + (((addr >> 12) & 0x3ff) << 2);
    if (pte_at + 4 > st->ram_size)
        return UINT64_MAX;
    uint32_t pte;
    memcpy(&pte, st->ram + pte_at, 4);
    if (!(pte & 1))
        return UINT64_MAX;
    return (pte & 0xfffff000u) | (addr & 0xfffu);
}

/* FNV-1a of the `size` code bytes at linear `addr`; 0 when they cannot be read (then
 * the engine cannot fetch them either: the entry is kept as it is). */
static uint64_t code_hash(struct rd_counter *st, uc_engine *uc, uint64_t addr, uint32_t size) {
    if (!st->ram)
        return 0;
    uint64_t cr0 = 0, cr3 = 0, cr4 = 0;
    st->reg_read(uc, st->cr0_regid, &cr0);
    if (cr0 & 0x80000000u) {
        st->reg_read(uc, st->cr3_regid, &cr3);
        st->reg_read(uc, st->cr4_regid, &cr4);
    }
    uint64_t h = 0xcbf29ce484222325ULL;
    uint64_t pos = addr;
    uint64_t end = addr + size;
    while (pos < end) {
        uint64_t page_end = (pos | 0xfffu) + 1;
        uint64_t chunk = (end < page_end ? end : page_end) - pos;
        uint64_t phys = linear_to_physical(st, pos, cr0, cr3, cr4);
        if (phys == UINT64_MAX || phys + chunk > st->ram_size)
            return 0;
        for (uint64_t i = 0; i < chunk; i++) {
            h ^= st->ram[phys + i];
            h *= 0x100000001b3ULL;
        }
        pos += chunk;
    }
    return h | 1; /* never 0 */
}

/* What the block decoder needs of a new block, in one call (the Python equivalents,
 * Cpu.read_linear, cs_base, code_is_32bit and linear_to_physical, cost ~10 register reads
 * and two page walks a block: a fifth of a Linux boot's time went there).  Keep both in
 * step: CS's base and default size come from its descriptor in the GDT or LDT (read
 * through the page tables; real and virtual-8086 mode: selector << 4, 16-bit; a selector
 * past the table's limit or a descriptor not mapped: base 0, 32-bit).  */
struct rd_block_code {
    uint64_t cs_base;
    uint64_t page_first; /* physical address of the block's first byte, or UINT64_MAX */
    uint64_t page_last;  /* ... of its last byte */
    uint32_t code32;
    uint32_t _pad;
};

/* Copy `size` bytes from linear `addr` into `out`; 0, or -1 when a page is not mapped. */
static int read_linear(const struct rd_counter *st, uint64_t addr, uint32_t size, uint8_t *out,
                       uint64_t cr0, uint64_t cr3, uint64_t cr4) {
    uint64_t pos = addr;
    uint64_t end = addr + size;
    while (pos < end) {
        uint64_t page_end = (pos | 0xfffu) + 1;
        uint64_t chunk = (end < page_end ? end : page_end) - pos;
        uint64_t phys = linear_to_physical(st, pos, cr0, cr3, cr4);
        if (phys == UINT64_MAX || phys + chunk > st->ram_size)
            return -1;
        memcpy(out + (pos - addr), st->ram + phys, chunk);
        pos += chunk;
    }
    return 0;
}

/* 0; -1: the code is not mapped; -2: PAE paging (not supported). `out` holds `size`
 * bytes.  The register ids are unicorn's (EFLAGS is the struct's). */
int rd_block_code(struct rd_counter *st, uint64_t addr, uint32_t size, int32_t cs_regid,
                  int32_t gdtr_regid, int32_t ldtr_regid, uint8_t *out,
                  struct rd_block_code *info) {
    uc_engine *uc = st->uc;
    uint64_t cr0 = 0, cr3 = 0, cr4 = 0, eflags = 0, cs = 0;
    st->reg_read(uc, st->cr0_regid, &cr0);
    st->reg_read(uc, st->cr4_regid, &cr4);
    if (cr0 & 0x80000000u) {
        if (cr4 & 0x20)
            return -2;
        st->reg_read(uc, st->cr3_regid, &cr3);
    }
    st->reg_read(uc, st->eflags_regid, &eflags);
    st->reg_read(uc, cs_regid, &cs);
    cs &= 0xffff;
    if (!(cr0 & 1) || (eflags & 0x20000)) {
        info->cs_base = cs << 4;
        info->code32 = 0;
    } else {
        struct {
            uint16_t selector;
            uint64_t base;
            uint32_t limit;
            uint32_t flags;
        } table;
        memset(&table, 0, sizeof table);
        st->reg_read(uc, (cs & 4) ? ldtr_regid : gdtr_regid, &table);
        uint64_t index = cs & 0xfff8;
        uint8_t raw[8];
        info->cs_base = 0;
        info->code32 = 1;
        if (index + 7 <= table.limit &&
            read_linear(st, (table.base + index) & 0xffffffffu, 8, raw, cr0, cr3, cr4) == 0) {
            uint32_t lo, hi;
            memcpy(&lo, raw, 4);
            memcpy(&hi, raw + 4, 4);
            info->cs_base = (lo >> 16) | ((hi & 0xff) << 16) | (hi & 0xff000000u);
            info->code32 = (hi >> 22) & 1;
        }
    }
    info->page_first = linear_to_physical(st, addr, cr0, cr3, cr4);
    info->page_last = linear_to_physical(st, addr + (size ? size : 1) - 1, cr0, cr3, cr4);
    return read_linear(st, addr, size, out, cr0, cr3, cr4);
}

uint32_t rd_block_get(struct rd_counter *st, uint64_t addr, uint32_t size) {
    if (!st->blocks)
        return RD_INFO_EMPTY;
    uint32_t h = hash64(addr ^ ((uint64_t)size << 40)) & st->blocks_mask;
    for (;;) {
        struct rd_block *b = &st->blocks[h];
        if (b->info == RD_INFO_EMPTY)
            return RD_INFO_EMPTY;
        if (b->addr == addr && b->size == size)
            return b->info;
        h = (h + 1) & st->blocks_mask;
    }
}

static void specials_clear(struct rd_counter *st);

/* Forget every block (after the translation cache was flushed). */
void rd_blocks_clear(struct rd_counter *st) {
    epoch_advance(st);
    if (!st->blocks) {
        specials_clear(st);
        return;
    }
    for (uint32_t i = 0; i <= st->blocks_mask; i++)
        st->blocks[i].info = RD_INFO_EMPTY;
    st->blocks_used = 0;
    specials_clear(st);
}

static struct rd_specials *specials_find(const struct rd_counter *st, uint64_t addr,
                                         uint32_t size) {
    if (!st->specials)
        return NULL;
    uint32_t h = hash64(addr ^ ((uint64_t)size << 40)) & st->specials_mask;
    for (;;) {
        struct rd_specials *e = &st->specials[h];
        if (e->count == RD_SPECIALS_EMPTY)
            return NULL;
        if (e->addr == addr && e->size == size)
            return e;
        h = (h + 1) & st->specials_mask;
    }
}

static int specials_alloc(struct rd_counter *st, uint32_t capacity) {
    struct rd_specials *old = st->specials;
    uint32_t old_cap = old ? st->specials_mask + 1 : 0;
    struct rd_specials *table = malloc(sizeof(struct rd_specials) * capacity);
    if (!table)
        return -1;
    for (uint32_t i = 0; i < capacity; i++)
        table[i].count = RD_SPECIALS_EMPTY;
    st->specials = table;
    st->specials_mask = capacity - 1;
    st->specials_used = 0;
    for (uint32_t i = 0; i < old_cap; i++) {
        if (old[i].count == RD_SPECIALS_EMPTY)
            continue;
        uint32_t h = hash64(old[i].addr ^ ((uint64_t)old[i].size << 40)) & st->specials_mask;
        while (table[h].count != RD_SPECIALS_EMPTY)
            h = (h + 1) & st->specials_mask;
        table[h] = old[i];
        st->specials_used++;
    }
    free(old);
    return 0;
}

/* Keep the `count` special indexes of block (addr, size); count 0 (none) is kept too, so
 * that a block decoded again without them forgets the old ones.  More than
 * RD_SPECIALS_MAX: kept as "unknown" (the RDTSC hook leaves the block to Python).
 * 0, or -1 when out of memory. */
int rd_specials_set(struct rd_counter *st, uint64_t addr, uint32_t size, const uint16_t *index,
                    uint32_t count) {
    struct rd_specials *e = specials_find(st, addr, size);
    if (!e) {
        if (!st->specials || (st->specials_used + 1) * 2 > st->specials_mask + 1) {
            uint32_t cap = st->specials ? (st->specials_mask + 1) * 2 : 1024;
            if (specials_alloc(st, cap) < 0)
                return -1;
        }
        uint32_t h = hash64(addr ^ ((uint64_t)size << 40)) & st->specials_mask;
        while (st->specials[h].count != RD_SPECIALS_EMPTY)
            h = (h + 1) & st->specials_mask;
        e = &st->specials[h];
        e->addr = addr;
        e->size = size;
        st->specials_used++;
    }
    if (count > RD_SPECIALS_MAX) {
        e->count = RD_SPECIALS_MAX + 1;
        return 0;
    }
    e->count = (uint16_t)count;
    for (uint32_t i = 0; i < count; i++)
        e->index[i] = index[i];
    return 0;
}

static void specials_clear(struct rd_counter *st) {
    if (!st->specials)
        return;
    for (uint32_t i = 0; i <= st->specials_mask; i++)
        st->specials[i].count = RD_SPECIALS_EMPTY;
    st->specials_used = 0;
}

static int bps_alloc(struct rd_counter *st, uint32_t capacity) {
    uint64_t *old = st->bps;
    uint32_t old_cap = old ? st->bps_mask + 1 : 0;
    uint64_t *nb = malloc(sizeof(uint64_t) * capacity);
    if (!nb)
        return -1;
    for (uint32_t i = 0; i < capacity; i++)
        nb[i] = RD_NO_ADDR;
    st->bps = nb;
    st->bps_mask = capacity - 1;
    st->bps_used = 0;
    for (uint32_t i = 0; i < old_cap; i++) {
        if (old[i] == RD_NO_ADDR || old[i] == 1)
            continue;
        uint32_t h = hash64(old[i]) & st->bps_mask;
        while (nb[h] != RD_NO_ADDR)
            h = (h + 1) & st->bps_mask;
        nb[h] = old[i];
        st->bps_used++;
    }
    free(old);
    return 0;
}

static inline int bp_contains(const struct rd_counter *st, uint64_t addr) {
    if (!st->bps)
        return 0;
    uint32_t h = hash64(addr) & st->bps_mask;
    for (;;) {
        uint64_t v = st->bps[h];
        if (v == RD_NO_ADDR)
            return 0;
        if (v == addr)
            return 1;
        h = (h + 1) & st->bps_mask;
    }
}

int rd_bp_add(struct rd_counter *st, uint64_t addr) {
    if (bp_contains(st, addr))
        return 0;
    if (!st->bps || (st->bps_used + 1) * 2 > st->bps_mask + 1) {
        uint32_t cap = st->bps ? (st->bps_mask + 1) * 2 : 64;
        if (bps_alloc(st, cap) < 0)
            return -1;
    }
    uint32_t h = hash64(addr) & st->bps_mask;
    while (st->bps[h] != RD_NO_ADDR && st->bps[h] != 1)
        h = (h + 1) & st->bps_mask;
    st->bps[h] = addr;
    st->bps_used++;
    return 0;
}

int rd_bp_remove(struct rd_counter *st, uint64_t addr) {
    if (!st->bps)
        return 0;
    uint32_t h = hash64(addr) & st->bps_mask;
    for (;;) {
        uint64_t v = st->bps[h];
        if (v == RD_NO_ADDR)
            return 0;
        if (v == addr) {
            st->bps[h] = 1; /* tombstone keeps probe chains intact */
            return 1;
        }
        h = (h + 1) & st->bps_mask;
    }
}

void rd_counter_free(struct rd_counter *st) {
    free(st->blocks);
    free(st->bps);
    free(st->specials);
    st->blocks = NULL;
    st->bps = NULL;
    st->specials = NULL;
}

static inline void stop_before(struct rd_counter *st, uc_engine *uc, uint32_t reason,
                               uint64_t addr, uint32_t size, uint32_t info) {
    st->stop_reason = reason;
    st->limit = 0;
    st->stop_addr = addr;
    st->stop_size = size;
    st->stop_info = info;
    st->emu_stop(uc);
}

/* The full path of rd_block_hook: every check, in the order the run loop would make
 * them; when the block runs, the new `limit` for the fast path. */
__attribute__((noinline)) static void block_hook_full(struct rd_counter *st, uc_engine *uc, uint64_t addr,
                            uint32_t size) {
    st->limit = 0; /* until the block is known to run: every early return keeps it */
    if (st->stop_reason != RD_STOP_NONE)
        return; /* a stop is already on its way: this block will not run */
    if (st->icount >= st->stop_at) {
        stop_before(st, uc, RD_STOP_REQUESTED, addr, size, 0);
        return;
    }
    if (__builtin_expect(st->block_info & RD_INFO_MMU, 0))
        rd_space_changed(st); /* the block just run may have changed the mappings */
    uint32_t info;
    struct rd_recent *slot = &st->recent[(addr ^ (addr >> 7)) & RD_RECENT_MASK];
    if (__builtin_expect(slot->addr == (addr | st->recent_tag) && slot->size == size, 1) &&
        slot->info != RD_INFO_EMPTY) {
        info = slot->info; /* hot loops hit this small direct-mapped cache (this epoch) */
    } else {
        struct rd_block *b = block_find(st, addr, size);
        info = RD_INFO_EMPTY;
        uint64_t code = 0;
        if (b && b->epoch == st->epoch) {
            info = b->info;
        } else if (b) {
            st->revalidations++;
            code = code_hash(st, uc, addr, size);
            if (code == 0 || b->hash == 0 || code == b->hash) {
                b->epoch = st->epoch;
                if (b->hash == 0)
                    b->hash = code;
                info = b->info;
            }
        } else {
            code = code_hash(st, uc, addr, size);
        }
        if (info == RD_INFO_EMPTY) {
            info = st->miss(addr, size); /* Python decodes the code now at addr */
            st->blocks_seen++;
            if (rd_block_set(st, addr, size, info) < 0) {
                info |= RD_INFO_RETRANSLATE; /* out of memory: let Python see it */
            } else {
                b = block_find(st, addr, size);
                if (b) {
                    b->hash = code;
                    b->epoch = st->epoch;
                }
            }
        }
        if (!(info & RD_INFO_RETRANSLATE)) {
            slot->addr = addr | st->recent_tag;
            slot->size = size;
            slot->info = info;
        }
    }
    if (info & RD_INFO_RETRANSLATE) {
        stop_before(st, uc, RD_STOP_RETRANSLATE, addr, size, info);
        return;
    }
    uint64_t n = info & RD_INFO_COUNT_MASK;
    struct rd_lapic *lapic = st->lapic;
    /* Python, at a stop, fires the timers that are due and then delivers: the LAPIC's
     * expiry and delivery are taken here only when no other timer is due at this
     * boundary and the run may go on (before `target`: nothing else happens there). */
    int others_due = (st->block_info & RD_INFO_BRANCH) && st->icount >= st->soft_target;
    struct rd_ticker *ticker = st->ticker;
    if (ticker && ticker->wired && (st->block_info & RD_INFO_BRANCH) &&
        st->icount >= ticker->deadline_icount) {
        if (others_due || st->icount >= st->target || !ticker->idle) {
            stop_before(st, uc, RD_STOP_DEADLINE, addr, size, info);
            return;
        }
        ticker_expire(ticker, st->icount);
    }
    if (lapic && (st->block_info & RD_INFO_BRANCH) && st->icount >= lapic->deadline_icount) {
        if (others_due || st->icount >= st->target || !rd_lapic_expire(lapic, st->icount)) {
            stop_before(st, uc, RD_STOP_DEADLINE, addr, size, info);
            return;
        }
        st->irq_check = lapic->int_out; /* the CPU's INTR is the APIC's alone here */
        st->if_clear = 0;
    }
    if (st->irq_check) {
        if (st->block_info & RD_INFO_SETS_IF)
            st->if_clear = 0;
        if (!st->if_clear && !(st->block_info & RD_INFO_SHADOW)) {
            uint64_t eflags = 0;
            st->reg_read(uc, st->eflags_regid, &eflags);
            if (eflags & 0x200) {
                if (lapic && !others_due && st->icount < st->target &&
                    rd_lapic_window(lapic, st->icount, addr)) {
                    /* Delivered: the engine resumes in the handler (its EIP was
                     * written), and this block runs after the handler returns. */
                    st->irq_check = lapic->int_out;
                    st->if_clear = 0;
                    st->block_addr = RD_NO_ADDR;
                    st->block_info = RD_INFO_BRANCH;
                    st->bp_skip_addr = RD_NO_ADDR; /* a breakpoint in the handler is a hit */
                    return;
                }
                stop_before(st, uc, RD_STOP_IRQ_WINDOW, addr, size, info);
                return;
            }
            st->if_clear = 1;
        }
    }
    if (others_due) {
        stop_before(st, uc, RD_STOP_DEADLINE, addr, size, info);
        return;
    }
    if (st->icount + n > st->target) {
        stop_before(st, uc, RD_STOP_TARGET, addr, size, info);
        return;
    }
    /* The block runs. */
    struct rd_countdown *cd = st->countdown;
    st->publish = cd && cd->armed && !cd->lazy;
    if (st->block_info & RD_INFO_BRANCH) { /* a branch boundary */
        st->boundary = st->icount;
        if (st->publish)
            countdown_publish(cd, st->icount);
    }
    if (st->bp_skip_addr != RD_NO_ADDR) {
        if (st->bp_skip_blocks)
            st->bp_skip_blocks--;
        else
            st->bp_skip_addr = RD_NO_ADDR;
    }
    st->block_base = st->icount;
    st->special_seen = 0;
    st->icount += n;
    st->block_addr = addr;
    st->block_size = size;
    st->prev_info = st->block_info;
    st->block_info = info;
    /* Below `limit` no stop is due at any entry: not the target, not a requested stop,
     * and no deadline (each one is checked from the block entry at or after it). */
    uint64_t limit = st->target;
    if (st->stop_at < limit)
        limit = st->stop_at;
    if (st->soft_target < limit)
        limit = st->soft_target;
    if (lapic && lapic->deadline_icount < limit)
        limit = lapic->deadline_icount;
    if (ticker && ticker->wired && ticker->deadline_icount < limit)
        limit = ticker->deadline_icount;
    /* the checks the fast path leaves out: an IRQ waiting with IF not known to be 0 (with
     * IF read as 0, a block that may set it: prev_mask), a breakpoint being stepped over */
    if ((st->irq_check && !st->if_clear) || st->bp_skip_addr != RD_NO_ADDR)
        limit = 0;
    st->prev_mask = RD_INFO_MMU | (st->irq_check ? RD_INFO_SETS_IF : 0);
    st->limit = limit;
}

/* Out of line, so that the fast path below makes no call but tail calls and needs no
 * stack frame (a frame for an inlined publication cost the minikernel 6% of its time). */
__attribute__((noinline)) static void publish_at_boundary(struct rd_countdown *cd, uint64_t icount) {
    countdown_publish(cd, icount);
}

/* Every block entry.  The fast path is the full path's outcome for a block found in the
 * recent cache that ends at or below `limit` (so no target, requested stop or deadline
 * can be due at its entry, no stop is on its way, no breakpoint is being stepped over
 * and no IRQ waits for a window that may be open), entered after a block that did not
 * touch the mappings nor (while an IRQ waits with IF read as 0: a kernel holding a lock
 * with an interrupt pending) may have set IF: the block runs, the countdown published at
 * a branch boundary.  Each check costs: a block of the minikernel's ring-3 loop takes
 * ~30 cycles in all, hook included, and folding four checks into `limit` and
 * `prev_mask` made it a tenth faster. */
void rd_block_hook(uc_engine *uc, uint64_t addr, uint32_t size, void *user) {
    struct rd_counter *st = user;
    const struct rd_recent *slot = &st->recent[(addr ^ (addr >> 7)) & RD_RECENT_MASK];
    uint32_t prev = st->block_info;
    if (__builtin_expect(slot->addr == (addr | st->recent_tag) && slot->size == size &&
                             !(prev & st->prev_mask), 1)) {
        uint32_t info = slot->info;
        uint64_t icount = st->icount;
        uint64_t next = icount + (info & RD_INFO_COUNT_MASK);
        if (__builtin_expect(next <= st->limit, 1)) {
            st->block_base = icount;
            st->special_seen = 0;
            st->icount = next;
            st->block_addr = addr;
            st->block_size = size;
            st->prev_info = prev;
            st->block_info = info;
            if (prev & RD_INFO_BRANCH) {
                st->boundary = icount;
                if (st->publish) /* last: a tail call */
                    publish_at_boundary(st->countdown, icount);
            }
            return;
        }
    }
    block_hook_full(st, uc, addr, size);
}

void rd_code_hook(uc_engine *uc, uint64_t addr, uint32_t size, void *user) {
    struct rd_counter *st = user;
    (void)size;
    if (st->stop_reason != RD_STOP_NONE)
        return;
    if (st->stop_pending) { /* the I/O instruction before this one asked for a stop */
        st->stop_pending = 0;
        st->stop_reason = RD_STOP_REQUESTED;
        st->limit = 0;
        st->stop_addr = addr;
        st->emu_stop(uc);
        return;
    }
    if (!bp_contains(st, addr))
        return; /* hooked only for its stop check after an I/O instruction */
    if (addr == st->bp_skip_addr) {
        st->bp_skip_addr = RD_NO_ADDR; /* resuming on this breakpoint: step over it */
        return;
    }
    st->stop_reason = RD_STOP_BREAKPOINT;
    st->limit = 0;
    st->stop_addr = addr;
    st->emu_stop(uc);
}

/* For the native interrupt hook (_intr.c), which never touches this struct itself: a
 * trap (INT n) raised by the last instruction of the block being run, whose address
 * after it is `pc`?  If so the counter takes it as counter.py's exception_taken does
 * (the block is counted whole: icount is the trap's position; the handler's first block
 * follows a control transfer), *icount is set and 1 returned; otherwise nothing changes. */
int rd_counter_trap_at_block_end(struct rd_counter *st, uint64_t pc, uint64_t *icount) {
    if (st->block_addr == RD_NO_ADDR || st->block_addr + st->block_size != pc)
        return 0;
    st->block_info = RD_INFO_BRANCH;
    st->if_clear = 0; /* the gate may have loaded another EFLAGS */
    st->limit = 0;
    *icount = st->icount;
    return 1;
}

/* RDTSC and RDTSCP (UC_HOOK_INSN): a 1 GHz time-stamp counter of virtual nanoseconds at
 * the reading instruction, ns(icount) = (icount << icount_shift) + bias_ns, as
 * machine/cpuid.py computes it (a Linux boot runs half a million RDTSCs: a Python call
 * each cost a tenth of its time).  The instruction's icount is its block's start plus its
 * index, the block's next special (struct rd_specials); a block without a known entry
 * goes to the Python hook, `fallback`.  Unicorn syncs EIP before the hook; returning 1
 * skips its own (host) TSC.  Python owns the struct (cpuid.py mirrors it) and sets the
 * clock before each run. */
typedef int (*rd_insn_fn)(uc_engine *uc, void *user);
typedef int (*uc_reg_write_fn)(uc_engine *uc, int regid, const void *value);

struct rd_tsc {
    struct rd_counter *counter;
    uc_reg_write_fn reg_write;
    rd_insn_fn fallback_rdtsc;
    rd_insn_fn fallback_rdtscp;
    int64_t bias_ns;
    uint32_t icount_shift;
    int32_t eax_regid;
    int32_t edx_regid;
    int32_t ecx_regid;
    uint64_t native; /* statistics: reads answered here */
};

static int tsc_read(struct rd_tsc *t, uc_engine *uc, int with_aux) {
    struct rd_counter *st = t->counter;
    if (st->block_addr == RD_NO_ADDR)
        return -1;
    const struct rd_specials *e = specials_find(st, st->block_addr, st->block_size);
    if (!e || e->count > RD_SPECIALS_MAX || st->special_seen >= e->count)
        return -1;
    uint64_t icount = st->block_base + e->index[st->special_seen];
    st->special_seen++;
    uint64_t tsc = (uint64_t)((int64_t)(icount << t->icount_shift) + t->bias_ns);
    uint64_t lo = tsc & 0xffffffffu, hi = (tsc >> 32) & 0xffffffffu, zero = 0;
    t->reg_write(uc, t->eax_regid, &lo);
    t->reg_write(uc, t->edx_regid, &hi);
    if (with_aux)
        t->reg_write(uc, t->ecx_regid, &zero);
    t->native++;
    return 1;
}

int rd_rdtsc_hook(uc_engine *uc, void *user) {
    struct rd_tsc *t = user;
    int done = tsc_read(t, uc, 0);
    return done < 0 ? t->fallback_rdtsc(uc, user) : done;
}

int rd_rdtscp_hook(uc_engine *uc, void *user) {
    struct rd_tsc *t = user;
    int done = tsc_read(t, uc, 1);
    return done < 0 ? t->fallback_rdtscp(uc, user) : done;
}

/* Port I/O data windows (UC_HOOK_INSN IN and OUT): a device's data port in the middle of
 * a PIO block, served here without a Python call (an IDE sector moved by REP OUTSD is
 * 128 OUTs; one Python call each was a sixth of an xv6 recording).  A device opens a
 * window while a block is under way: `buf` is its block buffer, `pos` the next byte the
 * guest moves, `end` the block's size.  Here an access of 2 or 4 bytes to the window's
 * port in its direction moves bytes while it does not reach `end`: the access that
 * completes the block, any other port or size, an instruction the counter cannot place
 * and anything ring 3 does go to the Python hook, `fallback`, which first takes `pos`
 * back (ioports.py, devices/ide.py).  Such an access changes nothing else in the device
 * (no register, no IRQ line, no time), so skipping the Python hook's other work (probes
 * aside: `enabled` is cleared while one watches) changes nothing the guest can see.
 * Python owns both structs (ioports.py mirrors them) and the buffer. */
#define RD_PIO_WINDOWS 4
struct rd_pio_window {
    uint32_t active;
    uint32_t port;
    uint32_t out; /* 1: OUTs fill buf; 0: INs read it */
    uint32_t pos;
    uint32_t end;
    uint32_t _pad;
    uint8_t *buf;
};

typedef void (*rd_out_fn)(uc_engine *uc, uint32_t port, int size, uint32_t value, void *user);
typedef uint32_t (*rd_in_fn)(uc_engine *uc, uint32_t port, int size, void *user);

/* Port registers: a device's byte register that the guest reads back as written, or
 * writes with no effect but the stored value (an IDE task-file register, a CRTC index),
 * is served here too.  `cell` is the register, or register 0 of a file that the byte at
 * `index` selects (then only the registers whose bit is set in `valid`); a write stores
 * `value & wmask`, or with RD_REG_SAME is served only when it leaves the register as it
 * is (a Device Control write that changes nothing).  Byte accesses only; everything
 * else goes to Python.  Python owns the structs and the cells (machine/portregs.py). */
#define RD_PIO_REGS 16
#define RD_REG_READ 1u
#define RD_REG_WRITE 2u
#define RD_REG_SAME 4u
struct rd_pio_reg {
    uint32_t port;
    uint32_t flags;
    uint32_t wmask;
    uint32_t valid;
    uint8_t *cell;
    uint8_t *index;
};

struct rd_portio {
    struct rd_counter *counter;
    rd_out_fn fallback_out;
    rd_in_fn fallback_in;
    uint32_t enabled;
    int32_t cs_regid;
    uint32_t nwindows;
    uint32_t nregs;
    struct rd_pio_window *windows[RD_PIO_WINDOWS];
    struct rd_pio_reg *regs[RD_PIO_REGS];
    uint64_t native; /* statistics: accesses moved here */
};

/* Whether the I/O instruction now running may be served here: the counter places it
 * (the block's next I/O instruction, as Python's begin_special would) and it runs at
 * CPL 0 or in real mode (ring 3's permission check is Python's).  Counts it if so. */
static int pio_native_ok(struct rd_portio *p, uc_engine *uc) {
    struct rd_counter *st = p->counter;
    if (st->block_addr == RD_NO_ADDR)
        return 0;
    const struct rd_specials *e = specials_find(st, st->block_addr, st->block_size);
    if (!e || e->count > RD_SPECIALS_MAX || st->special_seen >= e->count)
        return 0;
    uint64_t cs = 0, cr0 = 0;
    st->reg_read(uc, p->cs_regid, &cs);
    if (cs & 3) { /* CPL 3 in protected mode: the permission check is Python's */
        st->reg_read(uc, st->cr0_regid, &cr0);
        if (cr0 & 1)
            return 0;
    }
    st->special_seen++; /* the instruction is the block's next I/O one, as in Python */
    p->native++;
    return 1;
}

static struct rd_pio_window *pio_window(struct rd_portio *p, uint32_t port, int size,
                                        uint32_t out) {
    if (size != 2 && size != 4)
        return NULL;
    for (uint32_t i = 0; i < p->nwindows && i < RD_PIO_WINDOWS; i++) {
        struct rd_pio_window *w = p->windows[i];
        if (w->active && w->port == port && w->out == out)
            return w->pos + (uint32_t)size < w->end ? w : NULL;
    }
    return NULL;
}

/* The byte a port register access reads or writes (its register in `*reg`), or NULL
 * when Python must take it. */
static uint8_t *pio_reg(struct rd_portio *p, uint32_t port, int size, uint32_t out,
                        uint32_t value, const struct rd_pio_reg **reg) {
    if (size != 1)
        return NULL;
    for (uint32_t i = 0; i < p->nregs && i < RD_PIO_REGS; i++) {
        const struct rd_pio_reg *r = p->regs[i];
        if (r->port != port)
            continue;
        if (!(r->flags & (out ? RD_REG_WRITE | RD_REG_SAME : RD_REG_READ)))
            return NULL;
        uint8_t *cell = r->cell;
        if (r->index) {
            uint32_t selected = *r->index;
            if (selected >= 32 || !((r->valid >> selected) & 1))
                return NULL;
            cell += selected;
        }
        if (out && (r->flags & RD_REG_SAME) && (value & r->wmask) != *cell)
            return NULL;
        *reg = r;
        return cell;
    }
    return NULL;
}

void rd_out_hook(uc_engine *uc, uint32_t port, int size, uint32_t value, void *user) {
    struct rd_portio *p = user;
    if (p->enabled) {
        struct rd_pio_window *w = pio_window(p, port, size, 1);
        if (w && pio_native_ok(p, uc)) {
            memcpy(w->buf + w->pos, &value, (size_t)size); /* little-endian: low word first */
            w->pos += (uint32_t)size;
            return;
        }
        const struct rd_pio_reg *r = NULL;
        uint8_t *cell = w ? NULL : pio_reg(p, port, size, 1, value, &r);
        if (cell && pio_native_ok(p, uc)) {
            if (!(r->flags & RD_REG_SAME))
                *cell = (uint8_t)(value & r->wmask);
            return;
        }
    }
    p->fallback_out(uc, port, size, value, user);
}

uint32_t rd_in_hook(uc_engine *uc, uint32_t port, int size, void *user) {
    struct rd_portio *p = user;
    if (p->enabled) {
        struct rd_pio_window *w = pio_window(p, port, size, 0);
        if (w && pio_native_ok(p, uc)) {
            uint32_t value = 0;
            memcpy(&value, w->buf + w->pos, (size_t)size);
            w->pos += (uint32_t)size;
            return value;
        }
        const struct rd_pio_reg *r = NULL;
        uint8_t *cell = w ? NULL : pio_reg(p, port, size, 0, 0, &r);
        if (cell && pio_native_ok(p, uc))
            return *cell;
    }
    return p->fallback_in(uc, port, size, user);
}

/* An importable module only so that the build and the import machinery find the file. */
static struct PyModuleDef rd_module = {PyModuleDef_HEAD_INIT, "_icount", NULL, -1, NULL};

PyMODINIT_FUNC PyInit__icount(void) { return PyModule_Create(&rd_module); }

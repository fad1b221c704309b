/*
 * Which 4 KiB pages of the guest RAM changed, for checkpoints: by write faults on
 * write-protected RAM (below), or, where that cannot be had, by comparing RAM with a
 * shadow copy.  The _pages extension, called through ctypes by rdebug/machine/pages.py;
 * knows nothing of snapshots.
 */
#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#define RD_PAGE 4096u

static const uint64_t rd_zero_page[RD_PAGE / 8];

/* Whether two pages differ: a quick word-wise pass (most pages are identical). */
static inline int pages_differ(const uint64_t *a, const uint64_t *b) {
    uint64_t diff = 0;
    for (uint32_t w = 0; w < RD_PAGE / 8; w += 8)
        diff |= (a[w] ^ b[w]) | (a[w + 1] ^ b[w + 1]) | (a[w + 2] ^ b[w + 2]) |
                (a[w + 3] ^ b[w + 3]) | (a[w + 4] ^ b[w + 4]) | (a[w + 5] ^ b[w + 5]) |
                (a[w + 6] ^ b[w + 6]) | (a[w + 7] ^ b[w + 7]);
    return diff != 0;
}

/* Compare `npages` pages of `ram` with `shadow`; copy each page that differs into the
 * shadow and append its index to `out`. Returns the number of pages that differed. */
uint32_t rd_pages_sync(const uint8_t *ram, uint8_t *shadow, uint32_t npages, uint32_t *out) {
    uint32_t n = 0;
    for (uint32_t i = 0; i < npages; i++) {
        const uint64_t *a = (const uint64_t *)(ram + (size_t)i * RD_PAGE);
        uint64_t *b = (uint64_t *)(shadow + (size_t)i * RD_PAGE);
        if (pages_differ(a, b)) {
            memcpy(b, a, RD_PAGE);
            out[n++] = i;
        }
    }
    return n;
}

/* Write the index of each of `npages` pages of `ram` that holds a non-zero byte into
 * `out`. Returns how many did. */
uint32_t rd_pages_nonzero(const uint8_t *ram, uint32_t npages, uint32_t *out) {
    uint32_t n = 0;
    for (uint32_t i = 0; i < npages; i++) {
        if (pages_differ((const uint64_t *)(ram + (size_t)i * RD_PAGE), rd_zero_page))
            out[n++] = i;
    }
    return n;
}

/*
 * Write-fault dirty tracking.  A tracked region (the guest RAM buffer) is made
 * read-only; the first write to each page faults, the handler below marks the page in
 * the region's dirty map and makes that page writable again, and the write is retried.
 * So a checkpoint costs the pages the guest wrote since the last one, not a scan of RAM.
 * Faults outside tracked regions go to whatever handler was installed before.
 */

#define RD_MAX_REGIONS 32

struct rd_region {
    uintptr_t base;
    size_t size;
    uint8_t *dirty; /* one byte per page */
    int active;
};

static struct rd_region rd_regions[RD_MAX_REGIONS];
static struct sigaction rd_previous;

static void rd_on_fault(int sig, siginfo_t *info, void *context) {
    uintptr_t addr = (uintptr_t)info->si_addr;
    for (int i = 0; i < RD_MAX_REGIONS; i++) {
        struct rd_region *r = &rd_regions[i];
        if (r->active && addr >= r->base && addr < r->base + r->size) {
            size_t page = (addr - r->base) / RD_PAGE;
            r->dirty[page] = 1;
            if (mprotect((void *)(r->base + page * RD_PAGE), RD_PAGE, PROT_READ | PROT_WRITE) == 0)
                return;
            break; /* cannot make it writable: a real crash */
        }
    }
    if (rd_previous.sa_flags & SA_SIGINFO) {
        rd_previous.sa_sigaction(sig, info, context);
    } else if (rd_previous.sa_handler == SIG_DFL || rd_previous.sa_handler == SIG_IGN) {
        signal(sig, SIG_DFL);
        raise(sig);
    } else {
        rd_previous.sa_handler(sig);
    }
}

/* Make sure our handler is the one installed (another may have replaced it). */
static int rd_install(void) {
    struct sigaction current;
    if (sigaction(SIGSEGV, NULL, &current) != 0)
        return -1;
    if ((current.sa_flags & SA_SIGINFO) && current.sa_sigaction == rd_on_fault)
        return 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = rd_on_fault;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    return sigaction(SIGSEGV, &sa, &rd_previous);
}

/* Start tracking writes to [base, base+size); `dirty` has one byte per page. */
int rd_track(void *base, size_t size, uint8_t *dirty) {
    for (int i = 0; i < RD_MAX_REGIONS; i++) {
        if (!rd_regions[i].active) {
            if (rd_install() != 0)
                return -1;
            rd_regions[i].base = (uintptr_t)base;
            rd_regions[i].size = size;
            rd_regions[i].dirty = dirty;
            memset(dirty, 0, size / RD_PAGE);
            rd_regions[i].active = 1;
            if (mprotect(base, size, PROT_READ) != 0) {
                rd_regions[i].active = 0;
                return -1;
            }
            return i;
        }
    }
    return -1;
}

/* Forget what was written and watch again (after a checkpoint or a restore). */
int rd_rearm(int slot) {
    struct rd_region *r = &rd_regions[slot];
    if (rd_install() != 0)
        return -1;
    memset(r->dirty, 0, r->size / RD_PAGE);
    return mprotect((void *)r->base, r->size, PROT_READ);
}

/* Let the region be written freely (before the host writes a lot of it). */
int rd_unprotect(int slot) {
    struct rd_region *r = &rd_regions[slot];
    return mprotect((void *)r->base, r->size, PROT_READ | PROT_WRITE);
}

void rd_untrack(int slot) {
    struct rd_region *r = &rd_regions[slot];
    if (!r->active)
        return;
    mprotect((void *)r->base, r->size, PROT_READ | PROT_WRITE);
    r->active = 0;
}

/* mprotect the runs of pages whose dirty byte is `want` to `prot`. */
static int rd_protect_runs(struct rd_region *r, uint8_t want, int prot, int clear) {
    size_t pages = r->size / RD_PAGE;
    size_t i = 0;
    while (i < pages) {
        if (r->dirty[i] != want) {
            i++;
            continue;
        }
        size_t start = i;
        while (i < pages && r->dirty[i] == want) {
            if (clear)
                r->dirty[i] = 0;
            i++;
        }
        if (mprotect((void *)(r->base + start * RD_PAGE), (i - start) * RD_PAGE, prot) != 0)
            return -1;
    }
    return 0;
}

/* Watch again, re-protecting only the pages written since the last time (cheap when
 * few were; one mprotect of the whole region walks every page table entry). */
int rd_rearm_dirty(int slot) {
    struct rd_region *r = &rd_regions[slot];
    if (rd_install() != 0)
        return -1;
    return rd_protect_runs(r, 1, PROT_READ, 1);
}

/* Make these pages writable (and count them as written) before the host rewrites them. */
int rd_open_pages(int slot, const uint32_t *pages, uint32_t count) {
    struct rd_region *r = &rd_regions[slot];
    for (uint32_t k = 0; k < count; k++)
        if (pages[k] < r->size / RD_PAGE)
            r->dirty[pages[k]] = 2;
    int rc = rd_protect_runs(r, 2, PROT_READ | PROT_WRITE, 0);
    for (uint32_t k = 0; k < count; k++)
        if (pages[k] < r->size / RD_PAGE)
            r->dirty[pages[k]] = 1;
    return rc;
}

/* An importable module, so that setuptools builds and installs it beside the package;
 * every entry point above is reached through ctypes. */
static struct PyModuleDef rd_pages_module = {PyModuleDef_HEAD_INIT, "_pages", NULL, -1, NULL};

PyMODINIT_FUNC PyInit__pages(void) { return PyModule_Create(&rd_pages_module); }

/*
 * Which 4 KiB pages of the guest RAM changed, for checkpoints: by write faults on
 * write-protected RAM (below), or, where that cannot be had, by comparing RAM with a
 * shadow copy.  The _pages extension, called through ctypes by rdebug/machine/pages.py;
 * knows nothing of snapshots.
 */
#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#ifdef __linux__
#include <linux/userfaultfd.h>
#endif

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
 * Write-fault dirty tracking, so that a checkpoint costs the pages the guest wrote since
 * the last one, not a scan of RAM.  Two ways, the first the kernel offers:
 *
 * - Resolved in the kernel (Linux 6.7+): the region is registered with a userfaultfd
 *   in asynchronous write-protect mode (UFFD_FEATURE_WP_ASYNC) and write-protected; the
 *   first write to a page faults, and the kernel itself clears the page's protection
 *   bit and retries the write (no signal, no handler: about 1 us where a signal costs
 *   6-18 us).  Which pages were written is read from the page tables by the
 *   PAGEMAP_SCAN ioctl of /proc/self/pagemap (`rd_collect`), which also protects them
 *   again (`rd_rearm_dirty`).  A write by the kernel on the process's behalf (read()
 *   into the region) is resolved and counted the same way.
 * - By a signal: the region is made read-only; the first write to each page faults, the
 *   SIGSEGV handler below marks the page in the region's dirty map and makes that page
 *   writable again, and the write is retried.  Faults outside tracked regions go to
 *   whatever handler was installed before.
 *
 * Either way the dirty map (one byte per page) says which pages were written once
 * `rd_collect` has run.
 */

#define RD_MAX_REGIONS 32

struct rd_region {
    uintptr_t base;
    size_t size;
    uint8_t *dirty; /* one byte per page */
    int active;
    int uffd;    /* the userfaultfd of a kernel-resolved region; -1: signals */
    int pagemap; /* /proc/self/pagemap, open for PAGEMAP_SCAN; -1: signals */
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

#if defined(__linux__) && defined(UFFDIO_WRITEPROTECT) && defined(SYS_userfaultfd)
/* What older kernel headers lack of the ABI (linux/userfaultfd.h, linux/fs.h). */
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#define RD_UFFD_WP_UNPOPULATED (1ull << 13)
#define RD_UFFD_WP_ASYNC (1ull << 15)
struct rd_page_region {
    uint64_t start, end, categories;
};
struct rd_pm_scan_arg {
    uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
    uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
#define RD_PAGEMAP_SCAN _IOWR('f', 16, struct rd_pm_scan_arg)
#define RD_PM_SCAN_WP_MATCHING 1ull
#define RD_PM_SCAN_CHECK_WPASYNC 2ull
#define RD_PAGE_IS_WRITTEN 2ull
#define RD_SCAN_VEC 512

/* Write-protect [base, base+size) (`on`) or lift the protection. */
static int uffd_protect(int uffd, uintptr_t base, size_t size, int on) {
    struct uffdio_writeprotect wp;
    memset(&wp, 0, sizeof wp);
    wp.range.start = base;
    wp.range.len = size;
    wp.mode = on ? UFFDIO_WRITEPROTECT_MODE_WP : 0;
    return ioctl(uffd, UFFDIO_WRITEPROTECT, &wp);
}

/* The pages of `r` written since they were last protected: marked in its dirty map
 * (`mark`), and protected again (`protect`). */
static int uffd_scan(struct rd_region *r, int mark, int protect) {
    struct rd_page_region vec[RD_SCAN_VEC];
    struct rd_pm_scan_arg arg;
    uintptr_t end = r->base + r->size;
    uintptr_t at = r->base;
    while (at < end) {
        memset(&arg, 0, sizeof arg);
        arg.size = sizeof arg;
        arg.flags = protect ? (RD_PM_SCAN_WP_MATCHING | RD_PM_SCAN_CHECK_WPASYNC) : 0;
        arg.start = at;
        arg.end = end;
        arg.vec = (uintptr_t)vec;
        arg.vec_len = RD_SCAN_VEC;
        arg.category_mask = RD_PAGE_IS_WRITTEN;
        arg.return_mask = RD_PAGE_IS_WRITTEN;
        long found = ioctl(r->pagemap, RD_PAGEMAP_SCAN, &arg);
        if (found < 0)
            return -1;
        if (mark)
            for (long k = 0; k < found; k++)
                memset(r->dirty + (vec[k].start - r->base) / RD_PAGE, 1,
                       (vec[k].end - vec[k].start) / RD_PAGE);
        if (arg.walk_end <= at)
            return -1; /* no progress: never loop forever */
        at = arg.walk_end;
    }
    return 0;
}

/* Track `r` with a userfaultfd (see above); 0, or -1 if the kernel does not offer it. */
static int uffd_track(struct rd_region *r) {
    int uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
    if (uffd < 0)
        return -1;
    struct uffdio_api api;
    memset(&api, 0, sizeof api);
    api.api = UFFD_API;
    api.features = RD_UFFD_WP_ASYNC | RD_UFFD_WP_UNPOPULATED;
    struct uffdio_register reg;
    memset(&reg, 0, sizeof reg);
    reg.range.start = r->base;
    reg.range.len = r->size;
    reg.mode = UFFDIO_REGISTER_MODE_WP;
    int pagemap = -1;
    if (ioctl(uffd, UFFDIO_API, &api) != 0 || ioctl(uffd, UFFDIO_REGISTER, &reg) != 0)
        goto refused;
    pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (pagemap < 0)
        goto unregister;
    r->uffd = uffd;
    r->pagemap = pagemap;
    /* Protected, and PAGEMAP_SCAN answers (it came with WP_ASYNC, but a kernel may
     * refuse the ioctl): nothing is written yet. */
    if (uffd_protect(uffd, r->base, r->size, 1) == 0 && uffd_scan(r, 1, 0) == 0) {
        memset(r->dirty, 0, r->size / RD_PAGE);
        return 0;
    }
    uffd_protect(uffd, r->base, r->size, 0);
    close(pagemap);
    r->uffd = r->pagemap = -1;
unregister:;
    struct uffdio_range range = {.start = r->base, .len = r->size};
    ioctl(uffd, UFFDIO_UNREGISTER, &range);
refused:
    close(uffd);
    return -1;
}

static void uffd_untrack(struct rd_region *r) {
    uffd_protect(r->uffd, r->base, r->size, 0);
    struct uffdio_range range = {.start = r->base, .len = r->size};
    ioctl(r->uffd, UFFDIO_UNREGISTER, &range);
    close(r->pagemap);
    close(r->uffd);
    r->uffd = r->pagemap = -1;
}
#else
static int uffd_scan(struct rd_region *r, int mark, int protect) {
    (void)r, (void)mark, (void)protect;
    return -1;
}
static int uffd_track(struct rd_region *r) {
    (void)r;
    return -1;
}
static void uffd_untrack(struct rd_region *r) { (void)r; }
#endif

/* Start tracking writes to [base, base+size); `dirty` has one byte per page.  With
 * `kernel`, by faults the kernel resolves where it can, else by signals.  The slot, or
 * -1 if the region cannot be tracked. */
int rd_track(void *base, size_t size, uint8_t *dirty, int kernel) {
    for (int i = 0; i < RD_MAX_REGIONS; i++) {
        struct rd_region *r = &rd_regions[i];
        if (!r->active) {
            r->base = (uintptr_t)base;
            r->size = size;
            r->dirty = dirty;
            r->uffd = r->pagemap = -1;
            memset(dirty, 0, size / RD_PAGE);
            if (kernel && uffd_track(r) == 0) {
                r->active = 1;
                return i;
            }
            if (rd_install() != 0)
                return -1;
            r->active = 1;
            if (mprotect(base, size, PROT_READ) != 0) {
                r->active = 0;
                return -1;
            }
            return i;
        }
    }
    return -1;
}

/* 1 if the faults of the region in `slot` are resolved in the kernel, 0 by signals. */
int rd_track_kernel(int slot) { return rd_regions[slot].uffd >= 0; }

/* Bring the dirty map up to date (the kernel-resolved faults are read from the page
 * tables; signals mark it as they come). */
int rd_collect(int slot) {
    struct rd_region *r = &rd_regions[slot];
    return r->uffd >= 0 ? uffd_scan(r, 1, 0) : 0;
}

void rd_untrack(int slot) {
    struct rd_region *r = &rd_regions[slot];
    if (!r->active)
        return;
    if (r->uffd >= 0)
        uffd_untrack(r);
    else
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
    if (r->uffd >= 0) {
        memset(r->dirty, 0, r->size / RD_PAGE);
        return uffd_scan(r, 0, 1);
    }
    if (rd_install() != 0)
        return -1;
    return rd_protect_runs(r, 1, PROT_READ, 1);
}

/* Make these pages writable (and count them as written) before the host rewrites them
 * (a kernel-resolved region needs nothing more than the count: the host's writes fault
 * like the guest's). */
int rd_open_pages(int slot, const uint32_t *pages, uint32_t count) {
    struct rd_region *r = &rd_regions[slot];
    if (r->uffd >= 0) {
        for (uint32_t k = 0; k < count; k++)
            if (pages[k] < r->size / RD_PAGE)
                r->dirty[pages[k]] = 1;
        return 0;
    }
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

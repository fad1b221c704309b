/*
 * RAM page comparison for checkpoints: which 4 KiB pages of the guest RAM changed since
 * the shadow copy was last brought up to date, bringing those pages up to date as it goes.
 * Part of the _icount extension (loaded through ctypes); knows nothing of snapshots.
 */
#include <stdint.h>
#include <string.h>

#define RD_PAGE 4096u

/* Compare `npages` pages of `ram` with `shadow`; copy each page that differs into the
 * shadow and append its index to `out`. Returns the number of pages that differed. */
uint32_t rd_pages_sync(const uint8_t *ram, uint8_t *shadow, uint32_t npages, uint32_t *out) {
    uint32_t n = 0;
    for (uint32_t i = 0; i < npages; i++) {
        const uint64_t *a = (const uint64_t *)(ram + (size_t)i * RD_PAGE);
        uint64_t *b = (uint64_t *)(shadow + (size_t)i * RD_PAGE);
        /* a quick word-wise pass: most pages are identical */
        uint64_t diff = 0;
        for (uint32_t w = 0; w < RD_PAGE / 8; w += 8) {
            diff |= (a[w] ^ b[w]) | (a[w + 1] ^ b[w + 1]) | (a[w + 2] ^ b[w + 2]) |
                    (a[w + 3] ^ b[w + 3]) | (a[w + 4] ^ b[w + 4]) | (a[w + 5] ^ b[w + 5]) |
                    (a[w + 6] ^ b[w + 6]) | (a[w + 7] ^ b[w + 7]);
        }
        if (diff) {
            memcpy(b, a, RD_PAGE);
            out[n++] = i;
        }
    }
    return n;
}

/* Block decoding in C: what the instruction counter needs to know of a translation block
 * (machine/blocks.py describes each field), decoded with capstone's C library.
 *
 * The counter decodes every block the engine translates: through capstone's Python
 * binding that costs a Python loop per instruction, and importing that binding loads
 * every architecture capstone has (~30 ms of each process's start).  Here the library
 * the capstone package ships is opened with dlopen (the Python side finds its file
 * without importing the package), and a block is decoded in one call.  The rules are
 * the ones machine/blocks.py states; tests/oracle/block_decoder.py is the same decoder
 * written over the Python binding, and the tests hold the two to the same answers.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <capstone/capstone.h>

typedef cs_err (*cs_open_fn)(cs_arch, cs_mode, csh *);
typedef cs_err (*cs_close_fn)(csh *);
typedef cs_insn *(*cs_malloc_fn)(csh);
typedef void (*cs_free_fn)(cs_insn *, size_t);
typedef bool (*cs_disasm_iter_fn)(csh, const uint8_t **, size_t *, uint64_t *, cs_insn *);
typedef unsigned int (*cs_version_fn)(int *, int *);

struct rd_decoder {
    void *lib;
    cs_close_fn close;
    cs_free_fn free;
    cs_disasm_iter_fn disasm_iter;
    csh handle[2]; /* [0]: 16-bit code, [1]: 32-bit code */
    cs_insn *insn[2];
};

/* What `rd_decode` found; the arrays it fills are the caller's (see there). */
struct rd_decoded {
    uint32_t count;       /* instructions (offsets[0..count)) */
    uint32_t flags;       /* RD_DECODED_* */
    uint32_t specials;    /* entries in `specials` */
    uint32_t after_io;    /* entries in `after_io` */
    uint32_t flag_syncs;  /* entries in `flag_syncs` */
    uint32_t length;      /* rd_decode_one: the instruction's length (0: none decoded) */
    char mnemonic[CS_MNEMONIC_SIZE]; /* rd_decode_one: its mnemonic */
};

#define RD_DECODED_SHADOW 1u
#define RD_DECODED_HALTS 2u
#define RD_DECODED_BRANCH 4u
#define RD_DECODED_MMU 8u
#define RD_DECODED_SETS_IF 16u

void rd_decoder_close(struct rd_decoder *d) {
    if (!d)
        return;
    for (int i = 0; i < 2; i++) {
        if (d->insn[i])
            d->free(d->insn[i], 1);
        if (d->handle[i])
            d->close(&d->handle[i]);
    }
    /* the library keeps this reference (dlopen counts them): the next decoder finds it
     * loaded, not read again from its file */
    free(d);
}

/* A decoder over the capstone library at `path`, or NULL with why in `error`. */
struct rd_decoder *rd_decoder_open(const char *path, char *error, size_t error_size) {
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (!lib) {
        snprintf(error, error_size, "%s", dlerror());
        return NULL;
    }
    cs_open_fn open = (cs_open_fn)dlsym(lib, "cs_open");
    cs_version_fn version = (cs_version_fn)dlsym(lib, "cs_version");
    struct rd_decoder *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(error, error_size, "out of memory");
        dlclose(lib);
        return NULL;
    }
    d->lib = lib;
    d->close = (cs_close_fn)dlsym(lib, "cs_close");
    d->free = (cs_free_fn)dlsym(lib, "cs_free");
    d->disasm_iter = (cs_disasm_iter_fn)dlsym(lib, "cs_disasm_iter");
    cs_malloc_fn alloc = (cs_malloc_fn)dlsym(lib, "cs_malloc");
    if (!open || !version || !d->close || !d->free || !d->disasm_iter || !alloc) {
        snprintf(error, error_size, "%s is not capstone's library", path);
        free(d);
        dlclose(lib);
        return NULL;
    }
    int major = 0, minor = 0;
    version(&major, &minor);
    if (major != CS_API_MAJOR) {
        /* cs_insn's layout is the header's: another major version may differ */
        snprintf(error, error_size, "%s is capstone %d.%d, built against %d.x", path, major,
                 minor, CS_API_MAJOR);
        free(d);
        dlclose(lib);
        return NULL;
    }
    const cs_mode modes[2] = {CS_MODE_16, CS_MODE_32};
    for (int i = 0; i < 2; i++) {
        if (open(CS_ARCH_X86, modes[i], &d->handle[i]) != CS_ERR_OK ||
            !(d->insn[i] = alloc(d->handle[i]))) {
            snprintf(error, error_size, "capstone cannot decode x86 code");
            rd_decoder_close(d);
            return NULL;
        }
    }
    return d;
}

static int in_set(const char *name, const char *const *set) {
    for (; *set; set++)
        if (strcmp(name, *set) == 0)
            return 1;
    return 0;
}

/* Port I/O: their hooks do not see a synced EIP, so the counter tells them apart by
 * their order in the block (`specials`), and the instruction after each gets a code hook
 * (`after_io`).  So do RDTSC's. */
static const char *const IO[] = {"in",    "out",   "insb",  "insw",  "insd",
                                 "outsb", "outsw", "outsd", NULL};
static const char *const TIMESTAMP[] = {"rdtsc", "rdtscp", NULL};
/* Instructions whose helper in unicorn 2.1.4 computes EFLAGS from the flags operation
 * stored in the CPU state without the translator storing the current one first.  Inside
 * a block, after an instruction that set flags, the stored operation is stale: after a
 * CMPXCHG8B that had run before (a retry loop), the stale operation says "the flags are
 * CC_SRC" while CC_SRC holds the last ADD's operand, so the flags become that operand --
 * a kernel pointer -- IF, DF and IOPL included, and every later engine stop writes them
 * into EFLAGS (Linux then takes interrupts with them off and crashes; issue 14).  A code
 * hook at the instruction makes unicorn store the current operation first (and one at
 * the block's first instruction resets its "stored already" shortcut, which starts
 * uninitialised): `flag_syncs`.  The flags other than ZF it computes there can still
 * differ from a CPU's (docs/machine.md). */
static const char *const FLAG_READERS[] = {"cmpxchg8b", NULL};
/* Instructions that can set EFLAGS.IF (`sets_if`): IF goes from 0 to 1 by no other
 * means (an interrupt or exception gate clears it or keeps it; one through a task gate
 * loads the new task's EFLAGS, and so may a far JMP or CALL). */
static const char *const IF_SETTERS[] = {"sti",   "popf",  "popfd", "popfw", "iret",
                                         "iretd", "iretw", "ljmp",  "lcall", "int",
                                         "int1",  "int3",  "into",  "sysenter",
                                         "sysexit", NULL};
/* After these, and every jump (`j*`), QEMU always ends a translation block: a branch
 * boundary (`branch`). */
static const char *const BRANCHES[] = {"call",  "lcall", "ret",      "retf",    "iret",
                                       "iretd", "iretw", "int",      "int3",    "into",
                                       "int1",  "loop",  "loope",    "loopne",  "hlt",
                                       "sysenter", "sysexit", "ljmp", NULL};

/* The mnemonic's last word ("rep insb" -> "insb"), copied into `out`. */
static void last_word(const char *mnemonic, char *out) {
    size_t end = strlen(mnemonic);
    while (end > 0 && (mnemonic[end - 1] == ' ' || mnemonic[end - 1] == '\t'))
        end--;
    size_t start = end;
    while (start > 0 && mnemonic[start - 1] != ' ' && mnemonic[start - 1] != '\t')
        start--;
    memcpy(out, mnemonic + start, end - start);
    out[end - start] = 0;
}

static int is_prefix(uint8_t byte) {
    switch (byte) {
    case 0x26: case 0x2e: case 0x36: case 0x3e: case 0x64: case 0x65: case 0x66:
    case 0x67: case 0xf0: case 0xf2: case 0xf3:
        return 1;
    default:
        return 0;
    }
}

/* STI, POP SS or MOV SS,r/m: the next instruction runs before any IRQ (blocks.py). */
static int opens_shadow(const uint8_t *insn, size_t size) {
    size_t i = 0;
    while (i < size && is_prefix(insn[i]))
        i++;
    if (i >= size)
        return 0;
    if (insn[i] == 0xfb || insn[i] == 0x17)
        return 1;
    return insn[i] == 0x8e && i + 1 < size && ((insn[i + 1] >> 3) & 7) == 2;
}

static int is_hlt(const uint8_t *insn, size_t size) {
    size_t i = 0;
    while (i < size && is_prefix(insn[i]))
        i++;
    return i < size && insn[i] == 0xf4;
}

/* The instruction at *at (*left bytes, linear *address) in `insn`, the three moved past
 * it; 0 when capstone decodes none there. */
static int next_insn(struct rd_decoder *d, int code32, const uint8_t **at, size_t *left,
                     uint64_t *address, cs_insn **insn) {
    *insn = d->insn[code32 ? 1 : 0];
    return *left > 0 && d->disasm_iter(d->handle[code32 ? 1 : 0], at, left, address, *insn);
}

/* Decode the block of `size` bytes `code` found at linear `addr`, in 32-bit code or not.
 * `offsets` has room for size + 1 entries, `specials` for size, `after_io` and
 * `flag_syncs` for size + 1: a block has at most one instruction a byte.  0, or -1 for a
 * bad argument. */
int rd_decode(struct rd_decoder *d, uint64_t addr, const uint8_t *code, uint32_t size,
              int code32, struct rd_decoded *out, uint16_t *offsets, uint16_t *specials,
              uint64_t *after_io, uint64_t *flag_syncs) {
    if (!d || size > 0xffff)
        return -1;
    memset(out, 0, sizeof *out);
    const uint8_t *at = code;
    size_t left = size;
    uint64_t address = addr;
    cs_insn *insn;
    uint32_t pos = 0;
    int last_decoded = 0;
    char name[CS_MNEMONIC_SIZE];
    char last[CS_MNEMONIC_SIZE] = "";
    while (next_insn(d, code32, &at, &left, &address, &insn)) {
        last_word(insn->mnemonic, name);
        if (in_set(name, FLAG_READERS) && pos > 0) {
            if (out->flag_syncs == 0)
                flag_syncs[out->flag_syncs++] = addr;
            flag_syncs[out->flag_syncs++] = addr + pos;
        }
        if (strcmp(name, "invlpg") == 0 ||
            (strcmp(name, "mov") == 0 && strncmp(insn->op_str, "cr", 2) == 0))
            out->flags |= RD_DECODED_MMU;
        int io = in_set(name, IO);
        if (io || in_set(name, TIMESTAMP))
            specials[out->specials++] = (uint16_t)out->count;
        if (in_set(name, IF_SETTERS))
            out->flags |= RD_DECODED_SETS_IF;
        offsets[out->count++] = (uint16_t)pos;
        memcpy(last, name, sizeof last);
        last_decoded = 1;
        pos += insn->size;
        if (io && pos < size)
            after_io[out->after_io++] = addr + pos;
    }
    if (pos < size) {
        /* capstone stopped at bytes it cannot decode: the engine raises #UD there, so
         * that instruction starts (and faults) as the block's last */
        offsets[out->count++] = (uint16_t)pos;
        last_decoded = 0;
    }
    if (out->count > 0) {
        uint32_t start = offsets[out->count - 1];
        if (opens_shadow(code + start, size - start))
            out->flags |= RD_DECODED_SHADOW;
        if (is_hlt(code + start, size - start))
            out->flags |= RD_DECODED_HALTS;
        if (last_decoded && (last[0] == 'j' || in_set(last, BRANCHES)))
            out->flags |= RD_DECODED_BRANCH;
    }
    return 0;
}

/* The first instruction of `code` (`size` bytes): its length and mnemonic in `out`
 * (length 0: capstone decodes none there).  0, or -1 for a bad argument. */
int rd_decode_one(struct rd_decoder *d, const uint8_t *code, uint32_t size, int code32,
                  struct rd_decoded *out) {
    if (!d)
        return -1;
    memset(out, 0, sizeof *out);
    const uint8_t *at = code;
    size_t left = size;
    uint64_t address = 0;
    cs_insn *insn;
    if (next_insn(d, code32, &at, &left, &address, &insn)) {
        out->length = insn->size;
        memcpy(out->mnemonic, insn->mnemonic, sizeof out->mnemonic);
    }
    return 0;
}

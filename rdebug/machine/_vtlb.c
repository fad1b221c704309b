/*
 * The guest's memory path: unicorn's virtual-TLB mode with rdebug's own i386 page walk.
 *
 * Knows nothing of devices, logs or gdb.  rdebug/machine/vtlb.py owns the struct below
 * (mirrored as a ctypes.Structure: keep both in step) and registers rd_tlb_fill as a
 * UC_HOOK_TLB_FILL hook, passing the struct as user data.
 *
 * Why: in unicorn 2.1.4 a store goes through the slow path (notdirty_write) for as long
 * as its TLB entry is executable, and unicorn's own i386 MMU makes every entry
 * executable (no NX).  Here a data fill is granted READ/WRITE only, so after its first
 * store the entry takes TCG's inline fast path; EXEC is granted on instruction-fetch
 * fills, and on data fills of physical pages code was ever fetched from (so stores to
 * code keep invalidating its translations, whatever linear address they use; the set
 * only grows, which costs speed on pages that held code once, never correctness).
 *
 * The walk is the one of unicorn's (QEMU's) i386 MMU without PAE: 4 KiB pages and 4 MiB
 * PSE pages, U/S and R/W of the PDE and PTE combined and checked against the CPL and
 * CR0.WP, the Accessed bit set in the PDE of a present 4 KiB table and in the entry that
 * maps the page, the Dirty bit set on a write fill, and WRITE granted only when Dirty is
 * set (so the first store to a clean page comes back here).  A refused fill returns
 * false: unicorn stops with UC_ERR_EXCEPTION, EIP at the faulting instruction, and the
 * run loop raises the #PF (error code and the kind of failure are left here; the exact
 * address is unicorn's).  Paging off: identity.
 *
 * Implicit supervisor accesses (descriptor-table reads and accessed-bit writes made by a
 * ring-3 segment load, far transfer, IRET, LAR/LSL/VERR/VERW) come here with no mmu
 * index: a fill refused for ring 3 is granted as a supervisor access when the faulting
 * instruction is one of those and the page holds the GDT, the LDT or the TSS.
 *
 * rd_deliver (at the end) delivers an interrupt through a 32-bit IDT gate in protected
 * mode, the common case of interrupts.py, without a Python round trip.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

typedef void uc_engine;
typedef int (*uc_reg_read_fn)(uc_engine *, int, void *);
typedef int (*uc_ctl_fn)(uc_engine *, int, ...);
typedef int (*uc_reg_write_fn)(uc_engine *, int, const void *);

/* unicorn.h values */
#define UC_MEM_READ 16
#define UC_MEM_WRITE 17
#define UC_MEM_FETCH 18
#define UC_PROT_READ 1
#define UC_PROT_WRITE 2
#define UC_PROT_EXEC 4

struct uc_tlb_entry {
    uint64_t paddr;
    int32_t perms;
};

struct uc_x86_mmr {
    uint16_t selector;
    uint64_t base;
    uint32_t limit;
    uint32_t flags;
};

/* Why the last fill was refused (rd_vtlb.fault). */
enum rd_fault {
    RD_FAULT_NONE = 0,
    RD_FAULT_PAGE = 1, /* a guest #PF: fault_error holds its error code */
    RD_FAULT_PAE = 2   /* PAE paging is on: not supported */
};

#define PG_P 0x001u
#define PG_RW 0x002u
#define PG_US 0x004u
#define PG_A 0x020u
#define PG_D 0x040u
#define PG_PS 0x080u
#define CR0_PE 0x00000001u
#define CR0_WP 0x00010000u
#define CR0_PG 0x80000000u
#define CR4_PSE 0x10u
#define CR4_PAE 0x20u

struct rd_vtlb {
    uc_engine *uc;
    uc_reg_read_fn reg_read;
    uc_ctl_fn ctl;
    uint8_t *ram;         /* guest RAM at physical 0 */
    uint64_t ram_size;
    uint8_t *code_pages;  /* bit per RAM page: code was fetched from it */
    int32_t flush_ctl;    /* UC_CTL_WRITE(UC_CTL_TLB_FLUSH, 0) */
    int32_t cr0_regid;
    int32_t cr3_regid;
    int32_t cr4_regid;
    int32_t cs_regid;
    int32_t eip_regid;
    int32_t gdtr_regid;
    int32_t ldtr_regid;
    int32_t tr_regid;
    /* the last refused fill (cleared by Python when it takes the fault) */
    uint32_t fault;
    uint32_t fault_error;
    /* > 0 while rdebug itself (not a guest instruction) makes the engine access memory:
     * a segment register written from Python loads its descriptor.  Such accesses are
     * the CPU's own supervisor accesses and must never be refused (a refusal outside
     * guest execution would unwind to a stale jump buffer). */
    uint32_t host;
    uint64_t fault_page;
    /* statistics */
    uint64_t fills;
    uint64_t refused;
    uint64_t code_flushes;
    uint64_t refused_host;
    /* interrupt delivery (rd_deliver) */
    uc_reg_write_fn reg_write;
    int32_t ss_regid;
    int32_t esp_regid;
    int32_t eflags_regid;
    int32_t idtr_regid;
    uint64_t delivered;
    /* A page whose reads go to an MMIO alias (a lazily published countdown's, _icount.c),
     * or 0: a read fill of guest-physical `countdown_page` maps `countdown_alias` (read
     * only), a write fill the page itself (write only), a fetch fill the page (execute
     * only), so that no TLB entry ever reads the page itself. */
    uint64_t countdown_page;
    uint64_t countdown_alias;
};

static inline uint32_t load32(const struct rd_vtlb *v, uint64_t paddr) {
    uint32_t x;
    if (paddr + 4 > v->ram_size)
        return 0; /* no RAM there: reads as not present */
    memcpy(&x, v->ram + paddr, 4);
    return x;
}

static inline void store32(struct rd_vtlb *v, uint64_t paddr, uint32_t x) {
    if (paddr + 4 <= v->ram_size)
        memcpy(v->ram + paddr, &x, 4);
}

static inline uint64_t reg(const struct rd_vtlb *v, int32_t regid) {
    uint64_t x = 0;
    v->reg_read(v->uc, regid, &x);
    return x;
}

/* Physical address of linear `addr` (no checks, no A/D bits), or UINT64_MAX. */
static uint64_t peek_physical(const struct rd_vtlb *v, uint64_t addr, uint64_t cr0,
                              uint64_t cr3, uint64_t cr4) {
    addr &= 0xffffffffu;
    if (!(cr0 & CR0_PG))
        return addr;
    uint32_t pde = load32(v, (cr3 & 0xfffff000u) + ((addr >> 22) << 2));
    if (!(pde & PG_P))
        return UINT64_MAX;
    if ((pde & PG_PS) && (cr4 & CR4_PSE))
        return (pde & 0xffc00000u) | (addr & 0x3fffffu);
    uint32_t pte = load32(v, (pde & 0xfffff000u) + (((addr >> 12) & 0x3ff) << 2));
    if (!(pte & PG_P))
        return UINT64_MAX;
    return (pte & 0xfffff000u) | (addr & 0xfffu);
}

static int peek_linear(const struct rd_vtlb *v, uint64_t addr, uint8_t *out, uint32_t n,
                       uint64_t cr0, uint64_t cr3, uint64_t cr4) {
    for (uint32_t i = 0; i < n; i++) {
        uint64_t p = peek_physical(v, addr + i, cr0, cr3, cr4);
        if (p == UINT64_MAX || p >= v->ram_size)
            return -1;
        out[i] = v->ram[p];
    }
    return 0;
}

/* Base of the code segment (from the GDT or LDT; 0 if it cannot be read). */
static uint64_t cs_base(const struct rd_vtlb *v, uint64_t cr0, uint64_t cr3, uint64_t cr4) {
    uint64_t cs = reg(v, v->cs_regid);
    struct uc_x86_mmr table;
    memset(&table, 0, sizeof table);
    v->reg_read(v->uc, (cs & 4) ? v->ldtr_regid : v->gdtr_regid, &table);
    uint32_t index = cs & 0xfff8u;
    if (index + 7 > table.limit)
        return 0;
    uint8_t raw[8];
    if (peek_linear(v, table.base + index, raw, 8, cr0, cr3, cr4) < 0)
        return 0;
    return (uint64_t)raw[2] | ((uint64_t)raw[3] << 8) | ((uint64_t)raw[4] << 16) |
           ((uint64_t)raw[7] << 24);
}

/* Does the instruction at CS:EIP make implicit descriptor-table accesses? */
static int system_instruction(const struct rd_vtlb *v, uint64_t cr0, uint64_t cr3,
                              uint64_t cr4) {
    uint8_t code[16];
    uint64_t pc = (cs_base(v, cr0, cr3, cr4) + reg(v, v->eip_regid)) & 0xffffffffu;
    if (peek_linear(v, pc, code, sizeof code, cr0, cr3, cr4) < 0)
        return 0;
    uint32_t i = 0;
    while (i < 15 && (code[i] == 0x26 || code[i] == 0x2e || code[i] == 0x36 ||
                      code[i] == 0x3e || code[i] == 0x64 || code[i] == 0x65 ||
                      code[i] == 0x66 || code[i] == 0x67 || code[i] == 0xf0 ||
                      code[i] == 0xf2 || code[i] == 0xf3))
        i++;
    uint8_t op = code[i];
    uint8_t modrm_reg = (code[i + 1] >> 3) & 7;
    switch (op) {
    case 0x8e:             /* mov sreg, r/m */
    case 0x07:             /* pop es */
    case 0x17:             /* pop ss */
    case 0x1f:             /* pop ds */
    case 0xc4:             /* les */
    case 0xc5:             /* lds */
    case 0xea:             /* jmp far */
    case 0x9a:             /* call far */
    case 0xca:             /* retf imm */
    case 0xcb:             /* retf */
    case 0xcf:             /* iret */
        return 1;
    case 0xff: /* call far m / jmp far m */
        return modrm_reg == 3 || modrm_reg == 5;
    case 0x0f: {
        uint8_t op2 = code[i + 1];
        uint8_t reg2 = (code[i + 2] >> 3) & 7;
        if (op2 == 0xa1 || op2 == 0xa9 || op2 == 0xb2 || op2 == 0xb4 || op2 == 0xb5)
            return 1; /* pop fs/gs, lss/lfs/lgs */
        if (op2 == 0x02 || op2 == 0x03)
            return 1; /* lar, lsl */
        if (op2 == 0x00)
            return reg2 >= 2; /* lldt, ltr, verr, verw */
        return 0;
    }
    default:
        return 0;
    }
}

static int page_in_table(const struct rd_vtlb *v, uint64_t page, int32_t regid) {
    struct uc_x86_mmr table;
    memset(&table, 0, sizeof table);
    v->reg_read(v->uc, regid, &table);
    if (table.limit == 0 && table.base == 0)
        return 0;
    uint64_t first = table.base & ~0xfffull;
    uint64_t last = (table.base + table.limit) | 0xfffull;
    return page >= first && page <= last;
}

/* A ring-3 fill refused for U/S or R/W: was it the CPU's own supervisor access? */
static int implicit_supervisor(const struct rd_vtlb *v, uint64_t page, uint64_t cr0,
                               uint64_t cr3, uint64_t cr4) {
    if (!(page_in_table(v, page, v->gdtr_regid) || page_in_table(v, page, v->ldtr_regid) ||
          page_in_table(v, page, v->tr_regid)))
        return 0;
    return system_instruction(v, cr0, cr3, cr4);
}

static inline int is_code_page(const struct rd_vtlb *v, uint64_t paddr) {
    uint64_t n = paddr >> 12;
    return paddr < v->ram_size && (v->code_pages[n >> 3] >> (n & 7)) & 1;
}

/* A fetch from `paddr`: remember its page as code.  A page that just became code may be
 * reachable through data TLB entries on the fast path (which would not invalidate the
 * translations about to be made): flush them. */
static void mark_code(struct rd_vtlb *v, uint64_t paddr) {
    if (paddr >= v->ram_size)
        return;
    uint64_t n = paddr >> 12;
    uint8_t bit = (uint8_t)(1u << (n & 7));
    if (v->code_pages[n >> 3] & bit)
        return;
    v->code_pages[n >> 3] |= bit;
    v->code_flushes++;
    v->ctl(v->uc, v->flush_ctl);
}

static bool grant(struct rd_vtlb *v, struct uc_tlb_entry *e, uint64_t paddr, int type,
                  int writable) {
    int32_t perms = UC_PROT_READ;
    if (writable)
        perms |= UC_PROT_WRITE;
    if (type == UC_MEM_FETCH) {
        mark_code(v, paddr);
        perms |= UC_PROT_EXEC;
    } else if (is_code_page(v, paddr)) {
        perms |= UC_PROT_EXEC; /* stores there must keep invalidating translations */
    }
    if (v->countdown_alias && (paddr & ~0xfffull) == v->countdown_page) {
        if (type == UC_MEM_READ) {
            paddr = v->countdown_alias | (paddr & 0xfffull);
            perms = UC_PROT_READ;
        } else {
            perms &= type == UC_MEM_WRITE ? UC_PROT_WRITE : UC_PROT_EXEC;
        }
    }
    e->paddr = paddr;
    e->perms = perms;
    return true;
}

static bool refuse(struct rd_vtlb *v, uint64_t page, enum rd_fault why, uint32_t error) {
    v->refused++;
    v->fault = why;
    v->fault_error = error;
    v->fault_page = page;
    return false;
}

static bool fill(struct rd_vtlb *v, uint64_t addr, int type, struct uc_tlb_entry *e) {
    if (addr > 0xffffffffull) {
        /* Not a guest address: unicorn probing the `until` address of emu_start (a
         * 32-bit guest never reaches it).  No side effects, nothing mapped there. */
        e->paddr = addr;
        e->perms = UC_PROT_READ | UC_PROT_EXEC;
        return true;
    }
    int is_write = type == UC_MEM_WRITE;
    uint64_t cr0 = reg(v, v->cr0_regid);
    if (!(cr0 & CR0_PG))
        return grant(v, e, addr, type, 1);
    uint64_t cr3 = reg(v, v->cr3_regid);
    uint64_t cr4 = reg(v, v->cr4_regid);
    if (cr4 & CR4_PAE)
        return refuse(v, addr, RD_FAULT_PAE, 0);
    int user_mode = (cr0 & CR0_PE) && (reg(v, v->cs_regid) & 3) == 3;
    uint64_t pde_at = (cr3 & 0xfffff000u) + ((addr >> 22) << 2);
    uint32_t pde = load32(v, pde_at);
    uint32_t error = (is_write ? 2u : 0u) | (user_mode ? 4u : 0u);
    if (!(pde & PG_P))
        return refuse(v, addr, RD_FAULT_PAGE, error);
    uint64_t entry_at;
    uint32_t entry;
    uint32_t rights; /* U/S and R/W of the whole walk */
    uint64_t paddr;
    if ((pde & PG_PS) && (cr4 & CR4_PSE)) {
        if (pde & 0x200000u) /* reserved bit of a 4 MiB entry */
            return refuse(v, addr, RD_FAULT_PAGE, error | 1u | 8u);
        entry_at = pde_at;
        entry = pde;
        rights = pde;
        paddr = ((uint64_t)(pde & 0xffc00000u) | ((uint64_t)(pde & 0x1fe000u) << 19)) +
                (addr & 0x3ff000u);
    } else {
        if (!(pde & PG_A)) {
            pde |= PG_A;
            store32(v, pde_at, pde);
        }
        entry_at = (pde & 0xfffff000u) + (((addr >> 12) & 0x3ff) << 2);
        entry = load32(v, entry_at);
        if (!(entry & PG_P))
            return refuse(v, addr, RD_FAULT_PAGE, error);
        rights = pde & entry;
        paddr = entry & 0xfffff000u;
    }
    int supervisor = !user_mode;
    if (user_mode && (!(rights & PG_US) || (is_write && !(rights & PG_RW)))) {
        if (!v->host && !implicit_supervisor(v, addr, cr0, cr3, cr4))
            return refuse(v, addr, RD_FAULT_PAGE, error | 1u);
        supervisor = 1;
    }
    int writable = (rights & PG_RW) || (supervisor && !(cr0 & CR0_WP)) || v->host;
    if (is_write && !writable)
        return refuse(v, addr, RD_FAULT_PAGE, (error & ~4u) | (supervisor ? 0u : 4u) | 1u);
    uint32_t updated = entry | PG_A | (is_write ? PG_D : 0u);
    if (updated != entry) {
        entry = updated;
        store32(v, entry_at, entry);
    }
    return grant(v, e, paddr, type, writable && (entry & PG_D));
}

/* Drop every TLB entry (the machine, so that the countdown's page is read through a
 * fill again). */
void rd_vtlb_flush(struct rd_vtlb *v) {
    v->ctl(v->uc, v->flush_ctl);
}

bool rd_tlb_fill(uc_engine *uc, uint64_t addr, int type, struct uc_tlb_entry *e, void *user) {
    struct rd_vtlb *v = user;
    (void)uc;
    v->fills++;
    if (fill(v, addr, type, e))
        return true;
    if (!v->host)
        return false;
    /* rdebug checked what it loads through its own walk first, so this is not reached;
     * if it were, refusing here would unwind to a stale jump buffer. */
    v->refused--;
    v->refused_host++;
    v->fault = RD_FAULT_NONE;
    return grant(v, e, addr, type, 1);
}

/* -- interrupt delivery --------------------------------------------------------------- */

static int peek_u32(const struct rd_vtlb *v, uint64_t addr, uint32_t *out, uint64_t cr0,
                    uint64_t cr3, uint64_t cr4) {
    uint8_t raw[4];
    if (peek_linear(v, addr, raw, 4, cr0, cr3, cr4) < 0)
        return -1;
    memcpy(out, raw, 4);
    return 0;
}

/* The descriptor of `selector` (GDT or LDT) as its two words; -1 beyond the limit or
 * unmapped. */
static int descriptor(const struct rd_vtlb *v, uint32_t selector, uint32_t *lo, uint32_t *hi,
                      uint64_t cr0, uint64_t cr3, uint64_t cr4) {
    struct uc_x86_mmr table;
    memset(&table, 0, sizeof table);
    v->reg_read(v->uc, (selector & 4) ? v->ldtr_regid : v->gdtr_regid, &table);
    uint32_t index = selector & 0xfff8u;
    if (index + 7 > table.limit)
        return -1;
    if (peek_u32(v, table.base + index, lo, cr0, cr3, cr4) < 0 ||
        peek_u32(v, table.base + index + 4, hi, cr0, cr3, cr4) < 0)
        return -1;
    return 0;
}

static uint32_t descriptor_base(uint32_t lo, uint32_t hi) {
    return (lo >> 16) | ((hi & 0xffu) << 16) | (hi & 0xff000000u);
}

static void put(struct rd_vtlb *v, int32_t regid, uint64_t value) {
    v->reg_write(v->uc, regid, &value);
}

/* Deliver interrupt `vector` through a 32-bit interrupt or trap gate of the IDT, in
 * protected mode, the common case of interrupts.py's _deliver_protected, step for step
 * and with the same results.  Returns 0 when delivered, 1 when anything is out of the
 * ordinary (real or virtual-8086 mode, a 16-bit, task or absent gate, a privilege
 * check that fails, a descriptor, TSS or stack that cannot be read or written): then
 * nothing was changed and the Python code delivers (or raises the fault). */
static int deliver_at(struct rd_vtlb *v, uint32_t vector, uint32_t software, uint32_t has_error,
                      uint32_t error_code, int have_eip, uint64_t given_eip);

int rd_deliver(struct rd_vtlb *v, uint32_t vector, uint32_t software, uint32_t has_error,
               uint32_t error_code) {
    return deliver_at(v, vector, software, has_error, error_code, 0, 0);
}

/* rd_deliver for an external interrupt taken by the counter's block hook before the
 * block at linear address `linear_pc` runs.  There the engine's EIP holds that linear
 * address (unicorn syncs it so for its hooks), not the offset in CS: the frame gets
 * linear_pc - cs.base, read from CS's descriptor (1, nothing changed, if it cannot be). */
int rd_deliver_external(struct rd_vtlb *v, uint32_t vector, uint64_t linear_pc) {
    uint64_t cr0 = reg(v, v->cr0_regid);
    if (!(cr0 & CR0_PE))
        return 1;
    uint64_t cr3 = reg(v, v->cr3_regid);
    uint64_t cr4 = reg(v, v->cr4_regid);
    if ((cr0 & CR0_PG) && (cr4 & CR4_PAE))
        return 1;
    uint32_t lo, hi;
    if (descriptor(v, (uint32_t)reg(v, v->cs_regid), &lo, &hi, cr0, cr3, cr4) < 0)
        return 1;
    return deliver_at(v, vector, 0, 0, 0, 1, (linear_pc - descriptor_base(lo, hi)) & 0xffffffffu);
}

static int deliver_at(struct rd_vtlb *v, uint32_t vector, uint32_t software, uint32_t has_error,
                      uint32_t error_code, int have_eip, uint64_t given_eip) {
    uint64_t cr0 = reg(v, v->cr0_regid);
    if (!(cr0 & CR0_PE))
        return 1;
    uint64_t eflags = reg(v, v->eflags_regid);
    if (eflags & 0x20000u) /* VM */
        return 1;
    uint64_t cr3 = reg(v, v->cr3_regid);
    uint64_t cr4 = reg(v, v->cr4_regid);
    if ((cr0 & CR0_PG) && (cr4 & CR4_PAE))
        return 1;
    struct uc_x86_mmr idtr;
    memset(&idtr, 0, sizeof idtr);
    v->reg_read(v->uc, v->idtr_regid, &idtr);
    if (vector * 8 + 7 > idtr.limit)
        return 1;
    uint32_t lo, hi;
    if (peek_u32(v, idtr.base + vector * 8, &lo, cr0, cr3, cr4) < 0 ||
        peek_u32(v, idtr.base + vector * 8 + 4, &hi, cr0, cr3, cr4) < 0)
        return 1;
    uint32_t gate_type = (hi >> 8) & 0x1f;
    uint32_t gate_dpl = (hi >> 13) & 3;
    uint64_t old_cs = reg(v, v->cs_regid);
    uint32_t cpl = old_cs & 3;
    if (gate_type != 0xe && gate_type != 0xf)
        return 1;
    if (software && gate_dpl < cpl)
        return 1;
    if (!(hi & 0x8000u))
        return 1;
    uint32_t selector = lo >> 16;
    uint32_t offset = (lo & 0xffffu) | (hi & 0xffff0000u);
    uint32_t dlo, dhi;
    if ((selector & 0xfffcu) == 0 || descriptor(v, selector, &dlo, &dhi, cr0, cr3, cr4) < 0)
        return 1;
    uint32_t access = (dhi >> 8) & 0xff;
    if ((access & 0x18) != 0x18 || !(access & 0x80))
        return 1;
    uint32_t new_cpl = (access & 0x04) ? cpl : (access >> 5) & 3;
    if (new_cpl > cpl)
        return 1;
    uint64_t old_ss = reg(v, v->ss_regid);
    uint64_t old_esp = reg(v, v->esp_regid);
    uint64_t eip = have_eip ? given_eip : reg(v, v->eip_regid);
    uint32_t new_ss, new_esp;
    uint32_t words[6];
    uint32_t n = 0;
    if (new_cpl < cpl) {
        struct uc_x86_mmr tr;
        memset(&tr, 0, sizeof tr);
        v->reg_read(v->uc, v->tr_regid, &tr);
        if (tr.limit < 8 * new_cpl + 9)
            return 1;
        uint32_t ss;
        if (peek_u32(v, tr.base + 4 + 8 * new_cpl, &new_esp, cr0, cr3, cr4) < 0 ||
            peek_u32(v, tr.base + 8 + 8 * new_cpl, &ss, cr0, cr3, cr4) < 0)
            return 1;
        new_ss = ss & 0xffffu;
        words[n++] = (uint32_t)old_ss;
        words[n++] = (uint32_t)old_esp;
    } else {
        new_ss = (uint32_t)old_ss;
        new_esp = (uint32_t)old_esp;
    }
    uint32_t slo, shi, stack_base = 0;
    if (descriptor(v, new_ss, &slo, &shi, cr0, cr3, cr4) == 0)
        stack_base = descriptor_base(slo, shi);
    words[n++] = (uint32_t)eflags;
    words[n++] = (uint32_t)old_cs;
    words[n++] = (uint32_t)eip;
    if (has_error)
        words[n++] = error_code;
    new_esp -= 4 * n;
    /* the frame, lowest address first: every byte must be mapped before any is written */
    uint64_t frame = (stack_base + new_esp) & 0xffffffffu;
    uint64_t phys[6 * 4];
    for (uint32_t i = 0; i < 4 * n; i++) {
        phys[i] = peek_physical(v, frame + i, cr0, cr3, cr4);
        if (phys[i] == UINT64_MAX || phys[i] >= v->ram_size)
            return 1;
    }
    for (uint32_t k = 0; k < n; k++) {
        uint32_t w = words[n - 1 - k];
        for (uint32_t b = 0; b < 4; b++)
            v->ram[phys[4 * k + b]] = (uint8_t)(w >> (8 * b));
    }
    v->host++;
    if (new_cpl < cpl) {
        /* unicorn refuses a ring-0 SS at CPL 3: load it with PE clear (interrupts.py) */
        put(v, v->cr0_regid, cr0 & ~(uint64_t)CR0_PE);
        put(v, v->ss_regid, 0);
        put(v, v->cr0_regid, cr0);
        put(v, v->ss_regid, new_ss);
    }
    put(v, v->cs_regid, (selector & 0xfffcu) | new_cpl);
    v->host--;
    put(v, v->esp_regid, new_esp);
    uint64_t cleared = 0x100u | 0x4000u | 0x10000u | 0x20000u; /* TF NT RF VM */
    if (gate_type == 0xe)
        cleared |= 0x200u; /* IF */
    put(v, v->eflags_regid, eflags & ~cleared);
    put(v, v->eip_regid, offset);
    v->delivered++;
    return 0;
}

/* For the native interrupt hook (_intr.c): the engine reports trap `vector` with CS:EIP
 * after the instruction that raised it.  Sets *pc to that linear address (cs.base + eip,
 * as cpu.py's linear_pc) and returns 0 when the two bytes before it are INT `vector`
 * (CD imm8) and the byte before those is no prefix; returns 1 (and the Python hook
 * decides, from the decoded block) in any other case: real or virtual-8086 mode, code
 * that cannot be read, an INT with a prefix, anything else. */
int rd_after_int(struct rd_vtlb *v, uint32_t vector, uint64_t *pc) {
    uint64_t cr0 = reg(v, v->cr0_regid);
    if (!(cr0 & CR0_PE) || (reg(v, v->eflags_regid) & 0x20000u))
        return 1;
    uint64_t cr3 = reg(v, v->cr3_regid);
    uint64_t cr4 = reg(v, v->cr4_regid);
    if ((cr0 & CR0_PG) && (cr4 & CR4_PAE))
        return 1;
    uint64_t at = (cs_base(v, cr0, cr3, cr4) + reg(v, v->eip_regid)) & 0xffffffffu;
    if (at < 3)
        return 1;
    uint8_t code[3];
    if (peek_linear(v, at - 3, code, 3, cr0, cr3, cr4) < 0)
        return 1;
    if (code[1] != 0xcd || code[2] != vector)
        return 1;
    switch (code[0]) { /* a prefix of this INT, or the end of the instruction before? */
    case 0x26: case 0x2e: case 0x36: case 0x3e: case 0x64: case 0x65:
    case 0x66: case 0x67: case 0xf0: case 0xf2: case 0xf3:
        return 1;
    default:
        break;
    }
    *pc = at;
    return 0;
}

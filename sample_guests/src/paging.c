/* paging: what the MMU does, printed so that it can be compared with QEMU.
 *
 * Accessed and Dirty bits (page directory and page table, 4 KiB and 4 MiB
 * pages), CR0.WP for supervisor writes to read-only pages, not-present and
 * protection faults from ring 0 and ring 3 with their CR2, error code and
 * faulting instruction, a load that crosses into a missing page, a ring-3
 * fetch from a supervisor page, ring-3 segment loads (the CPU's own supervisor
 * reads of the GDT) next to a ring-3 read of kernel data in the GDT's page,
 * INVLPG after a page-table change, CR3 reloads between two directories, and
 * code rewritten through a second mapping of its page after it ran. */
#include "guest.h"

#define PTE_P 0x001u
#define PTE_W 0x002u
#define PTE_U 0x004u
#define PTE_A 0x020u
#define PTE_D 0x040u
#define PDE_PS 0x080u
#define PAGE 4096u

#define KERNEL_CS 0x08
#define KERNEL_DS 0x10
#define USER_CS (0x18 | 3)
#define USER_DS (0x20 | 3)
#define TSS_SEL 0x28

struct tss {
    uint32_t link, esp0, ss0, esp1, ss1, esp2, ss2, cr3, eip, eflags;
    uint32_t eax, ecx, edx, ebx, esp, ebp, esi, edi;
    uint32_t es, cs, ss, ds, fs, gs, ldt;
    uint16_t trap, iomap_base;
} __attribute__((packed));

/* The GDT and a kernel variable share one page: ring 3 may load segments
 * (the CPU reads the GDT as a supervisor) but not read the variable. */
struct gdt_page {
    uint64_t gdt[6];
    uint32_t secret;
};
struct gdt_page gdt_page __attribute__((aligned(4096))) = {
    {
        0x0000000000000000ull, /* 0x00 null */
        0x00CF9A000000FFFFull, /* 0x08 ring-0 code */
        0x00CF92000000FFFFull, /* 0x10 ring-0 data */
        0x00CFFA000000FFFFull, /* 0x18 ring-3 code */
        0x00CFF2000000FFFFull, /* 0x20 ring-3 data */
        0,                     /* 0x28 TSS */
    },
    0x5EC2E7u,
};

static struct tss tss;
static uint8_t intr_stack[8192] __attribute__((aligned(16)));

static uint32_t dir_a[1024] __attribute__((aligned(4096)));
static uint32_t dir_b[1024] __attribute__((aligned(4096)));
static uint32_t pt_low[1024] __attribute__((aligned(4096)));  /* 0..4 MiB */
static uint32_t pt_test[1024] __attribute__((aligned(4096))); /* 8..12 MiB in dir_a */
static uint32_t pt_test_b[1024] __attribute__((aligned(4096))); /* the same in dir_b */
static uint8_t frames[8][PAGE] __attribute__((aligned(4096)));
static uint8_t code_page[PAGE] __attribute__((aligned(4096))); /* code written at run time */

#define TEST_BASE 0x00800000u /* pt_test maps 8..12 MiB */
#define V_READ (TEST_BASE + 0 * PAGE)   /* supervisor RW, read first */
#define V_WRITE (TEST_BASE + 1 * PAGE)  /* supervisor RW, written first */
#define V_RO (TEST_BASE + 2 * PAGE)     /* supervisor read-only */
#define V_SWAP (TEST_BASE + 3 * PAGE)   /* remapped: INVLPG, CR3 */
#define V_USER (TEST_BASE + 4 * PAGE)   /* user RW */
#define V_USER_RO (TEST_BASE + 5 * PAGE) /* user read-only */
#define V_EDGE (TEST_BASE + 6 * PAGE)   /* present; the page after it is not */
#define V_ABSENT (TEST_BASE + 7 * PAGE) /* not present */
#define V_NO_PDE 0x00C00000u            /* no page table at all */
#define V_BIG 0x40000000u               /* a 4 MiB page onto physical 4..8 MiB */
#define USER_STACK_TOP (TEST_BASE + 9 * PAGE)
#define V_ALIAS (TEST_BASE + 10 * PAGE) /* a second mapping of code_page */

extern char __user_start[], __user_end[];
extern char user_main[];
extern char probe_load_insn[], probe_load_fix[], probe_store_insn[], probe_store_fix[];
extern char user_load_insn[], user_load_fix[], user_store_insn[], user_store_fix[];
extern char user_call_insn[];
uint32_t probe_load(uint32_t addr);
uint32_t probe_store(uint32_t addr, uint32_t value);
uint32_t enter_user(uint32_t eip, uint32_t esp);
void user_exit_to_kernel(uint32_t code) __attribute__((noreturn));

static volatile uint32_t faults;

static uint32_t read_cr2(void)
{
    uint32_t v;
    __asm__ volatile("mov %%cr2, %0" : "=r"(v));
    return v;
}

static uint32_t read_cr0(void)
{
    uint32_t v;
    __asm__ volatile("mov %%cr0, %0" : "=r"(v));
    return v;
}

static void write_cr0(uint32_t v) { __asm__ volatile("mov %0, %%cr0" : : "r"(v) : "memory"); }
static void write_cr3(uint32_t v) { __asm__ volatile("mov %0, %%cr3" : : "r"(v) : "memory"); }
static void invlpg(uint32_t a) { __asm__ volatile("invlpg (%0)" : : "r"(a) : "memory"); }

static const char *where(uint32_t eip)
{
    if (eip == (uint32_t)probe_load_insn)
        return "kernel load";
    if (eip == (uint32_t)probe_store_insn)
        return "kernel store";
    if (eip == (uint32_t)user_load_insn)
        return "user load";
    if (eip == (uint32_t)user_store_insn)
        return "user store";
    return "elsewhere";
}

static void page_fault(struct regs *r)
{
    uint32_t cr2 = read_cr2();
    faults++;
    uint32_t eip = r->eip;
    if ((r->cs & 3) == 3 && cr2 == (uint32_t)probe_load) {
        /* a ring-3 call into a supervisor page: return to the caller */
        uint32_t *sp = (uint32_t *)r->user_esp;
        printk("#PF cr2=%08x err=%x ring 3 fetch, called from %s\n", cr2, r->err,
               sp[0] == (uint32_t)user_call_insn + 2 ? "user call" : "elsewhere");
        r->eip = sp[0];
        r->user_esp += 4;
        return;
    }
    printk("#PF cr2=%08x err=%x at %s\n", cr2, r->err, where(eip));
    if (eip == (uint32_t)probe_load_insn)
        r->eip = (uint32_t)probe_load_fix;
    else if (eip == (uint32_t)probe_store_insn)
        r->eip = (uint32_t)probe_store_fix;
    else if (eip == (uint32_t)user_load_insn)
        r->eip = (uint32_t)user_load_fix;
    else if (eip == (uint32_t)user_store_insn)
        r->eip = (uint32_t)user_store_fix;
    else {
        printk("paging: unexpected #PF at %p\n", eip);
        guest_exit(3);
    }
}

static void syscall(struct regs *r)
{
    switch (r->eax) {
    case 1: /* print EBX as a labelled value (ECX = label) */
        printk("ring 3: %s %08x\n", (const char *)r->ecx, r->ebx);
        return;
    case 2:
        user_exit_to_kernel(r->ebx);
    default:
        r->eax = (uint32_t)-1;
    }
}

static void bits(const char *what, uint32_t entry)
{
    printk("%s: A=%u D=%u\n", what, (entry & PTE_A) ? 1 : 0, (entry & PTE_D) ? 1 : 0);
}

static void setup_gdt_tss(void)
{
    uint32_t base = (uint32_t)&tss, limit = sizeof(tss) - 1;
    tss.ss0 = KERNEL_DS;
    tss.esp0 = (uint32_t)(intr_stack + sizeof(intr_stack));
    tss.iomap_base = sizeof(tss);
    gdt_page.gdt[TSS_SEL / 8] = (limit & 0xFFFFull) | ((uint64_t)(base & 0xFFFFFF) << 16) |
                                (0x89ull << 40) | ((uint64_t)((limit >> 16) & 0xF) << 48) |
                                ((uint64_t)(base >> 24) << 56);
    struct gdt_ptr p = {sizeof(gdt_page.gdt) - 1, (uint32_t)gdt_page.gdt};
    gdt_load(&p, KERNEL_CS, KERNEL_DS);
    __asm__ volatile("ltr %w0" : : "r"(TSS_SEL));
}

static void setup_tables(void)
{
    for (uint32_t i = 1; i < 1024; i++) {
        uint32_t a = i * PAGE;
        uint32_t flags = PTE_P | PTE_W;
        if (a >= (uint32_t)__user_start && a < (uint32_t)__user_end)
            flags = PTE_P | PTE_U;
        pt_low[i] = a | flags;
    }
    for (uint32_t i = 0; i < 8; i++)
        for (uint32_t j = 0; j < PAGE / 4; j++)
            ((uint32_t *)frames[i])[j] = 0x11111111u * (i + 1);
    pt_test[0] = (uint32_t)frames[0] | PTE_P | PTE_W;
    pt_test[1] = (uint32_t)frames[1] | PTE_P | PTE_W;
    pt_test[2] = (uint32_t)frames[2] | PTE_P;
    pt_test[3] = (uint32_t)frames[3] | PTE_P | PTE_W;
    pt_test[4] = (uint32_t)frames[4] | PTE_P | PTE_W | PTE_U;
    pt_test[5] = (uint32_t)frames[5] | PTE_P | PTE_U;
    pt_test[6] = (uint32_t)frames[6] | PTE_P | PTE_W | PTE_U;
    /* pt_test[7] stays not present */
    pt_test[8] = (uint32_t)frames[7] | PTE_P | PTE_W | PTE_U; /* the user stack */
    pt_test[10] = (uint32_t)code_page | PTE_P | PTE_W;
    for (uint32_t i = 0; i < 1024; i++)
        pt_test_b[i] = pt_test[i];
    pt_test_b[3] = (uint32_t)frames[5] | PTE_P | PTE_W;
    dir_a[0] = (uint32_t)pt_low | PTE_P | PTE_W | PTE_U;
    dir_a[TEST_BASE >> 22] = (uint32_t)pt_test | PTE_P | PTE_W | PTE_U;
    dir_a[V_BIG >> 22] = 0x00400000u | PDE_PS | PTE_P | PTE_W;
    dir_a[1] = 0x00400000u | PDE_PS | PTE_P | PTE_W; /* identity 4..8 MiB */
    for (uint32_t i = 0; i < 1024; i++)
        dir_b[i] = dir_a[i];
    dir_b[TEST_BASE >> 22] = (uint32_t)pt_test_b | PTE_P | PTE_W | PTE_U;
}

int guest_main(uint32_t mbi)
{
    (void)mbi;
    setup_gdt_tss();
    idt_init();
    pic_remap();
    isr_register(14, page_fault);
    isr_register(0x80, syscall);
    idt_set_gate(0x80, (uint32_t)isr_stub_0x80, KERNEL_CS, GATE_TRAP | GATE_DPL3);
    setup_tables();

    uint32_t cr4;
    __asm__ volatile("mov %%cr4, %0" : "=r"(cr4));
    __asm__ volatile("mov %0, %%cr4" : : "r"(cr4 | 0x10) : "memory"); /* PSE */
    write_cr3((uint32_t)dir_a);
    write_cr0(read_cr0() | 0x80000000u); /* PG, WP still clear */
    printk("paging: on (WP=0)\n");

    bits("pde 8M before", dir_a[TEST_BASE >> 22]);
    printk("read %08x\n", probe_load(V_READ + 0x10));
    bits("pde 8M after a read", dir_a[TEST_BASE >> 22]);
    bits("pte read page after a read", pt_test[0]);
    probe_store(V_READ + 0x10, 0xABCD0001u);
    bits("pte read page after a write", pt_test[0]);
    bits("pte write page before", pt_test[1]);
    probe_store(V_WRITE + 0x20, 0xABCD0002u);
    bits("pte write page after a write", pt_test[1]);
    pt_test[0] &= ~(PTE_A | PTE_D);
    invlpg(V_READ);
    printk("read again %08x\n", probe_load(V_READ + 0x10));
    bits("pte read page after clear+invlpg+read", pt_test[0]);

    /* supervisor writes to a read-only page */
    probe_store(V_RO + 0x30, 0xABCD0003u);
    printk("WP=0: read-only page written: %08x\n", probe_load(V_RO + 0x30));
    write_cr0(read_cr0() | 0x10000u);
    printk("WP=1\n");
    printk("store returned %08x\n", probe_store(V_RO + 0x34, 0xABCD0004u));
    printk("read-only page holds %08x\n", probe_load(V_RO + 0x34));

    /* not present */
    printk("load returned %08x\n", probe_load(V_ABSENT + 0x44));
    printk("store returned %08x\n", probe_store(V_ABSENT + 0x48, 1));
    printk("load returned %08x\n", probe_load(V_NO_PDE + 0x123));
    printk("load returned %08x\n", probe_load(V_EDGE + PAGE - 2)); /* crosses */
    bits("pte edge page", pt_test[6]);

    /* 4 MiB pages */
    bits("pde 4M before", dir_a[V_BIG >> 22]);
    *(volatile uint32_t *)(0x00400000u + 0x1234) = 0x4B16B16Bu; /* identity view */
    printk("big read %08x\n", probe_load(V_BIG + 0x1234));
    bits("pde 4M after a read", dir_a[V_BIG >> 22]);
    probe_store(V_BIG + 0x1238, 0xB16B00B5u);
    bits("pde 4M after a write", dir_a[V_BIG >> 22]);
    printk("identity view %08x\n", *(volatile uint32_t *)(0x00400000u + 0x1238));
    bits("pde identity 4M", dir_a[1]);

    /* INVLPG and CR3 */
    printk("swap page %08x\n", probe_load(V_SWAP));
    pt_test[3] = (uint32_t)frames[4] | PTE_P | PTE_W;
    invlpg(V_SWAP);
    printk("after remap+invlpg %08x\n", probe_load(V_SWAP));
    write_cr3((uint32_t)dir_b);
    printk("directory b %08x\n", probe_load(V_SWAP));
    write_cr3((uint32_t)dir_a);
    printk("directory a %08x\n", probe_load(V_SWAP));

    /* code rewritten through another mapping of its page, after it ran */
    static const uint8_t ret_1[] = {0xB8, 0x01, 0x00, 0x00, 0x00, 0xC3}; /* mov eax,1; ret */
    for (uint32_t i = 0; i < sizeof ret_1; i++)
        code_page[i] = ret_1[i];
    uint32_t (*fn)(void) = (uint32_t (*)(void))(uint32_t)code_page;
    uint32_t first = fn();
    *(volatile uint32_t *)(V_ALIAS + 0x800) = 0x12345678u; /* data in the same page */
    *(volatile uint8_t *)(V_ALIAS + 1) = 0x02;             /* mov eax,2 */
    uint32_t second = fn();
    printk("code patched through an alias: %u then %u\n", first, second);

    /* ring 3 */
    uint32_t code = enter_user((uint32_t)user_main, USER_STACK_TOP);
    printk("ring 3 exited with %u\n", code);
    bits("pte user page", pt_test[4]);
    bits("pte user read-only page", pt_test[5]);
    printk("faults %u\n", faults);
    printk("paging done\n");
    return 0;
}

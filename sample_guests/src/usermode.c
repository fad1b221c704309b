/* usermode: GDT with ring-0/ring-3 segments and a TSS, an IDT with a DPL-3
 * syscall trap gate (0x80), a #PF handler that maps missing user pages and a
 * #GP handler that skips ring-3 port I/O; paging with 4 KiB pages; a trip to
 * ring 3 through IRET and back through the exit syscall. */
#include "guest.h"
#include "usermode.h"

#define PTE_P 0x001
#define PTE_W 0x002
#define PTE_U 0x004
#define PAGE_SIZE 4096u

#define PF_ERR_P 0x1 /* protection violation (page was present) */

struct tss {
    uint32_t link, esp0, ss0, esp1, ss1, esp2, ss2, cr3, eip, eflags;
    uint32_t eax, ecx, edx, ebx, esp, ebp, esi, edi;
    uint32_t es, cs, ss, ds, fs, gs, ldt;
    uint16_t trap, iomap_base;
} __attribute__((packed));

static uint64_t gdt[6] __attribute__((aligned(8))) = {
    0x0000000000000000ull, /* 0x00 null */
    0x00CF9A000000FFFFull, /* 0x08 ring-0 code */
    0x00CF92000000FFFFull, /* 0x10 ring-0 data */
    0x00CFFA000000FFFFull, /* 0x18 ring-3 code (DPL 3) */
    0x00CFF2000000FFFFull, /* 0x20 ring-3 data (DPL 3) */
    0,                     /* 0x28 TSS, filled in at run time */
};

static struct tss tss;
/* Ring-0 stack used for interrupts and syscalls coming from ring 3. */
static uint8_t intr_stack[8192] __attribute__((aligned(16)));

static uint32_t page_dir[1024] __attribute__((aligned(4096)));
static uint32_t pt_low[1024] __attribute__((aligned(4096)));  /* 0..4 MiB */
static uint32_t pt_user[1024] __attribute__((aligned(4096))); /* 4..8 MiB */
#define NFRAMES 4
static uint8_t frames[NFRAMES][PAGE_SIZE] __attribute__((aligned(4096)));
static uint32_t frames_used;

extern char __user_start[], __user_end[];
extern char user_main[];
uint32_t enter_user(uint32_t eip, uint32_t esp);
void user_exit_to_kernel(uint32_t code) __attribute__((noreturn));

volatile uint32_t page_faults;
volatile uint32_t gp_faults;

static void fail(const char *what, struct regs *r)
{
    printk("usermode: %s: vector %u err 0x%x at %x:%p\n", what, r->vector,
           r->err, r->cs, r->eip);
    guest_exit(3);
}

static uint32_t read_cr2(void)
{
    uint32_t v;
    __asm__ volatile("mov %%cr2, %0" : "=r"(v));
    return v;
}

static void invlpg(uint32_t addr)
{
    __asm__ volatile("invlpg (%0)" : : "r"(addr) : "memory");
}

static int user_range_ok(uint32_t p, uint32_t len)
{
    uint32_t end = p + len;
    if (end < p)
        return 0;
    if (p >= (uint32_t)__user_start && end <= (uint32_t)__user_end)
        return 1;
    return p >= USER_REGION_START && end <= USER_REGION_END;
}

static uint32_t alloc_frame(void)
{
    if (frames_used >= NFRAMES)
        return 0;
    uint32_t f = (uint32_t)frames[frames_used++];
    for (uint32_t i = 0; i < PAGE_SIZE / 4; i++)
        ((volatile uint32_t *)f)[i] = 0;
    return f;
}

static void map_user_page(uint32_t vaddr, uint32_t frame)
{
    pt_user[(vaddr - USER_REGION_START) / PAGE_SIZE] = frame | PTE_P | PTE_W | PTE_U;
    invlpg(vaddr);
}

static void page_fault(struct regs *r)
{
    uint32_t addr = read_cr2();
    page_faults++;
    printk("page fault at 0x%08x err 0x%x\n", addr, r->err);
    if ((r->err & PF_ERR_P) || addr < USER_REGION_START || addr >= USER_REGION_END)
        fail("unexpected page fault", r);
    uint32_t frame = alloc_frame();
    if (!frame)
        fail("out of frames", r);
    map_user_page(addr & ~(PAGE_SIZE - 1), frame);
    /* returning retries the faulting instruction */
}

static void general_protection(struct regs *r)
{
    gp_faults++;
    if ((r->cs & 3) != 3)
        fail("#GP in ring 0", r);
    printk("#GP from ring 3, err 0x%x\n", r->err);
    if (!user_range_ok(r->eip, 2))
        fail("#GP at a bad address", r);
    uint8_t op = *(const uint8_t *)r->eip;
    if (op >= 0xEC && op <= 0xEF)      /* in/out with the port in DX */
        r->eip += 1;
    else if (op >= 0xE4 && op <= 0xE7) /* in/out with an imm8 port */
        r->eip += 2;
    else
        fail("#GP not from port I/O", r);
}

static void syscall(struct regs *r)
{
    switch (r->eax) {
    case SYS_WRITE:
        if (!user_range_ok(r->ebx, r->ecx)) {
            r->eax = (uint32_t)-1;
            return;
        }
        serial_write((const char *)r->ebx, r->ecx);
        r->eax = r->ecx;
        return;
    case SYS_EXIT:
        user_exit_to_kernel(r->ebx);
    default:
        r->eax = (uint32_t)-1;
        return;
    }
}

static void setup_gdt_tss(void)
{
    uint32_t base = (uint32_t)&tss, limit = sizeof(tss) - 1;
    tss.ss0 = KERNEL_DS;
    tss.esp0 = (uint32_t)(intr_stack + sizeof(intr_stack));
    tss.iomap_base = sizeof(tss); /* beyond the limit: no I/O bitmap */
    gdt[TSS_SEL / 8] = (limit & 0xFFFFull) | ((uint64_t)(base & 0xFFFFFF) << 16) |
                       (0x89ull << 40) /* present, DPL 0, 32-bit TSS available */ |
                       ((uint64_t)((limit >> 16) & 0xF) << 48) |
                       ((uint64_t)(base >> 24) << 56);
    struct gdt_ptr p = { sizeof(gdt) - 1, (uint32_t)gdt };
    gdt_load(&p, KERNEL_CS, KERNEL_DS);
    __asm__ volatile("ltr %w0" : : "r"(TSS_SEL));
}

static void setup_paging(void)
{
    /* Identity-map 4 KiB .. 4 MiB (kernel image, stacks, frames) supervisor
     * only; page 0 stays unmapped to catch null pointers.  The ring-3 code
     * pages are user-readable. */
    for (uint32_t i = 1; i < 1024; i++) {
        uint32_t a = i * PAGE_SIZE;
        uint32_t flags = PTE_P | PTE_W;
        if (a >= (uint32_t)__user_start && a < (uint32_t)__user_end)
            flags = PTE_P | PTE_U;
        pt_low[i] = a | flags;
    }
    map_user_page(USER_STACK_PAGE, alloc_frame());
    page_dir[0] = (uint32_t)pt_low | PTE_P | PTE_W | PTE_U;
    page_dir[1] = (uint32_t)pt_user | PTE_P | PTE_W | PTE_U;

    uint32_t cr0;
    __asm__ volatile("mov %0, %%cr3" : : "r"(page_dir) : "memory");
    __asm__ volatile("mov %%cr0, %0" : "=r"(cr0));
    cr0 |= 0x80010000u; /* PG | WP */
    __asm__ volatile("mov %0, %%cr0" : : "r"(cr0) : "memory");
}

int guest_main(uint32_t mbi)
{
    (void)mbi;
    setup_gdt_tss();
    idt_init();
    pic_remap(); /* all IRQ lines stay masked */
    isr_register(13, general_protection);
    isr_register(14, page_fault);
    isr_register(SYSCALL_VECTOR, syscall);
    idt_set_gate(SYSCALL_VECTOR, (uint32_t)isr_stub_0x80, KERNEL_CS,
                 GATE_TRAP | GATE_DPL3);
    setup_paging();

    printk("usermode: paging on, entering ring 3\n");
    uint32_t code = enter_user((uint32_t)user_main, USER_STACK_TOP);
    cli();
    printk("ring 3 exited with code %u\n", code);
    if (code != 0 || page_faults != 1 || gp_faults != 3) {
        printk("usermode: FAILED (page faults %u, #GP %u)\n", page_faults,
               gp_faults);
        return 4;
    }
    printk("usermode done\n");
    return 0;
}

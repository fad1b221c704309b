/* minikernel: a small multiboot kernel for rdebug's PC.
 *
 * Its own GDT (ring 0 and ring 3 segments, a TSS) and IDT (a DPL-3 trap gate
 * for int 0x80); paging with 4 MiB supervisor pages for the kernel's identity
 * map (CR4.PSE) and 4 KiB user pages, CR0.WP; the LAPIC and IOAPIC found
 * through the MP table, the 8259s masked; COM1 (IRQ4), the keyboard (IRQ1)
 * and the IDE slave (IRQ14) routed through the IOAPIC; the LAPIC timer
 * preempting two ring-3 processes, each with its own page directory.  The
 * shell (user.c, process 1) talks on COM1. */
#include "kernel.h"

#define TIMER_INITIAL_COUNT 625000 /* divide by 16: 10 ms at a 1 GHz APIC clock */
#define KSTACK_SIZE 4096
#define NPROC 3 /* slot 0: the idle loop (ring 0); slots 1 and 2: ring-3 processes */

#define PTE_P 0x001
#define PTE_W 0x002
#define PTE_U 0x004
#define PTE_PWT 0x008
#define PTE_PCD 0x010
#define PTE_PS 0x080
#define PF_PRESENT 0x1

struct tss {
    uint32_t link, esp0, ss0, esp1, ss1, esp2, ss2, cr3, eip, eflags;
    uint32_t eax, ecx, edx, ebx, esp, ebp, esi, edi;
    uint32_t es, cs, ss, ds, fs, gs, ldt;
    uint16_t trap, iomap_base;
} __attribute__((packed));

enum state { UNUSED, RUNNABLE, BLOCKED_READ, BLOCKED_KEY, BLOCKED_WAIT, ZOMBIE };
static const char *const state_names[] = { "unused", "runnable", "read", "key", "wait",
                                           "zombie" };

struct proc {
    enum state state;
    uint32_t pid;
    struct regs *frame;  /* saved frame while not running */
    uint32_t *pd;        /* page directory (physical = virtual) */
    uint32_t wait_pid;   /* BLOCKED_WAIT: the child waited for */
    uint32_t status;     /* ZOMBIE: exit status */
    uint32_t mode;
    uint8_t kstack[KSTACK_SIZE] __attribute__((aligned(16)));
};

static uint64_t gdt[6] __attribute__((aligned(8))) = {
    0x0000000000000000ull, /* 0x00 null */
    0x00CF9A000000FFFFull, /* 0x08 ring-0 code */
    0x00CF92000000FFFFull, /* 0x10 ring-0 data */
    0x00CFFA000000FFFFull, /* 0x18 ring-3 code */
    0x00CFF2000000FFFFull, /* 0x20 ring-3 data */
    0,                     /* 0x28 TSS */
};
static struct tss tss;

struct idt_gate {
    uint16_t off_lo, sel;
    uint8_t zero, type;
    uint16_t off_hi;
} __attribute__((packed));
static struct idt_gate idt[256] __attribute__((aligned(8)));
extern uint32_t vector_table[], vector_syscall[], vector_spurious[];

static uint32_t kernel_pd[1024] __attribute__((aligned(4096)));
static struct proc procs[NPROC];
static struct proc *current;
static uint32_t next_pid = 1;

/* Counters a debugger may watch. */
volatile uint32_t ticks;
volatile uint32_t preemptions;
volatile uint32_t syscalls;
volatile uint32_t context_switches;

extern char user_blob[], user_blob_end[];
void resume_frame(struct regs *r) __attribute__((noreturn));

void panic(const char *why)
{
    __asm__ volatile("cli");
    printk("panic: %s\n", why);
    guest_exit(7);
}

/* ---- physical frames: a free stack over 2 MiB .. 4 MiB ---------------- */
#define FRAMES_START 0x200000u
#define FRAMES_END 0x400000u
static uint32_t free_frames[(FRAMES_END - FRAMES_START) / PAGE_SIZE];
static uint32_t nfree;

static void frames_init(void)
{
    if ((uint32_t)__kernel_end > FRAMES_START)
        panic("kernel image overlaps the frame pool");
    for (uint32_t f = FRAMES_END; f > FRAMES_START; f -= PAGE_SIZE)
        free_frames[nfree++] = f - PAGE_SIZE;
}

static __attribute__((noinline)) uint32_t *frame_alloc(void)
{
    if (!nfree)
        return 0;
    uint32_t *f = (uint32_t *)free_frames[--nfree];
    for (uint32_t i = 0; i < PAGE_SIZE / 4; i++)
        f[i] = 0;
    return f;
}

static void frame_free(uint32_t f) { free_frames[nfree++] = f & ~(PAGE_SIZE - 1); }

/* ---- segments, gates, paging ------------------------------------------ */
static void setup_gdt(void)
{
    uint32_t base = (uint32_t)&tss, limit = sizeof(tss) - 1;
    tss.ss0 = KERNEL_DS;
    tss.iomap_base = sizeof(tss); /* no I/O bitmap: ring-3 IN/OUT is #GP */
    gdt[TSS_SEL / 8] = (limit & 0xFFFFull) | ((uint64_t)(base & 0xFFFFFF) << 16) |
                       (0x89ull << 40) | ((uint64_t)((limit >> 16) & 0xF) << 48) |
                       ((uint64_t)(base >> 24) << 56);
    struct gdt_ptr p = { sizeof(gdt) - 1, (uint32_t)gdt };
    gdt_load(&p, KERNEL_CS, KERNEL_DS);
    __asm__ volatile("ltr %w0" : : "r"(TSS_SEL));
}

static void set_gate(uint32_t vec, uint32_t handler, uint8_t type)
{
    idt[vec].off_lo = (uint16_t)handler;
    idt[vec].sel = KERNEL_CS;
    idt[vec].zero = 0;
    idt[vec].type = type;
    idt[vec].off_hi = (uint16_t)(handler >> 16);
}

static void setup_idt(void)
{
    for (uint32_t v = 0; v < 0x50; v++)
        set_gate(v, vector_table[v], 0x8E);             /* interrupt gates, DPL 0 */
    set_gate(SYSCALL_VECTOR, vector_syscall[0], 0xEF);  /* trap gate, DPL 3 */
    set_gate(SPURIOUS_VECTOR, vector_spurious[0], 0x8E);
    struct gdt_ptr p = { sizeof(idt) - 1, (uint32_t)idt };
    __asm__ volatile("lidt %0" : : "m"(p));
}

static void map_4m(uint32_t phys, uint32_t flags)
{
    kernel_pd[phys >> 22] = (phys & 0xFFC00000u) | PTE_P | PTE_W | PTE_PS | flags;
}

/* The kernel's part of every address space: RAM identity-mapped with 4 MiB
 * supervisor pages (below USER_BASE), the APIC pages uncached. */
static void setup_paging(uint32_t ram_bytes)
{
    uint32_t top = ram_bytes < USER_BASE ? ram_bytes : USER_BASE;
    for (uint32_t a = 0; a < top; a += 0x400000)
        map_4m(a, 0);
    map_4m(mp.lapic, PTE_PCD | PTE_PWT);
    map_4m(mp.ioapic, PTE_PCD | PTE_PWT);
    uint32_t cr4, cr0;
    __asm__ volatile("mov %%cr4, %0" : "=r"(cr4));
    __asm__ volatile("mov %0, %%cr4" : : "r"(cr4 | 0x10)); /* PSE */
    __asm__ volatile("mov %0, %%cr3" : : "r"(kernel_pd) : "memory");
    __asm__ volatile("mov %%cr0, %0" : "=r"(cr0));
    __asm__ volatile("mov %0, %%cr0" : : "r"(cr0 | 0x80010000u) : "memory"); /* PG|WP */
}

/* ---- processes -------------------------------------------------------- */
struct user_header {
    uint32_t magic, data, bss, end, entry;
};

static uint32_t *user_pt(struct proc *p) { return (uint32_t *)(p->pd[USER_BASE >> 22] & ~0xFFFu); }

static int map_user(struct proc *p, uint32_t va, uint32_t flags, const void *src, uint32_t len)
{
    uint32_t *frame = frame_alloc();
    if (!frame)
        return -1;
    for (uint32_t i = 0; i < len; i++)
        ((uint8_t *)frame)[i] = ((const uint8_t *)src)[i];
    user_pt(p)[(va - USER_BASE) / PAGE_SIZE] = (uint32_t)frame | PTE_P | PTE_U | flags;
    return 0;
}

static void free_address_space(struct proc *p)
{
    if (!p->pd)
        return;
    uint32_t *pt = user_pt(p);
    if (pt) {
        for (uint32_t i = 0; i < 1024; i++)
            if (pt[i] & PTE_P)
                frame_free(pt[i]);
        frame_free((uint32_t)pt);
    }
    frame_free((uint32_t)p->pd);
    p->pd = 0;
}

/* A fresh copy of the user program in a new address space, and the frame
 * that enters it in ring 3 with EAX = mode, EBX = arg. */
static int proc_create(struct proc *p, uint32_t mode, uint32_t arg)
{
    const struct user_header *h = (const struct user_header *)user_blob;
    uint32_t blob_len = (uint32_t)(user_blob_end - user_blob);
    p->pd = frame_alloc();
    if (!p->pd)
        return -1;
    uint32_t *pt = frame_alloc();
    if (!pt) {
        frame_free((uint32_t)p->pd);
        p->pd = 0;
        return -1;
    }
    for (uint32_t i = 0; i < 1024; i++)
        p->pd[i] = kernel_pd[i];
    p->pd[USER_BASE >> 22] = (uint32_t)pt | PTE_P | PTE_W | PTE_U;
    for (uint32_t va = USER_BASE; va < h->end; va += PAGE_SIZE) {
        uint32_t off = va - USER_BASE;
        uint32_t len = off < blob_len ? blob_len - off : 0;
        if (len > PAGE_SIZE)
            len = PAGE_SIZE;
        if (map_user(p, va, va < h->data ? 0 : PTE_W, user_blob + off, len) < 0)
            goto fail;
    }
    for (uint32_t i = 1; i <= USER_STACK_PAGES; i++)
        if (map_user(p, USER_STACK_TOP - i * PAGE_SIZE, PTE_W, 0, 0) < 0)
            goto fail;

    struct regs *r = (struct regs *)(p->kstack + KSTACK_SIZE) - 1;
    for (uint32_t i = 0; i < sizeof(*r) / 4; i++)
        ((uint32_t *)r)[i] = 0;
    r->gs = r->fs = r->es = r->ds = USER_DS;
    r->eax = mode;
    r->ebx = arg;
    r->eip = h->entry;
    r->cs = USER_CS;
    r->eflags = 0x202; /* IF, IOPL 0 */
    r->user_esp = USER_STACK_TOP;
    r->user_ss = USER_DS;
    p->frame = r;
    p->pid = next_pid++;
    p->mode = mode;
    p->state = RUNNABLE;
    return 0;
fail:
    free_address_space(p);
    return -1;
}

static void idle_loop(void)
{
    for (;;)
        __asm__ volatile("sti; hlt" ::: "memory");
}

/* The idle context: ring 0, interrupts on, on its own stack (no SS:ESP in
 * its frame, as for any same-ring interrupt). */
static void idle_create(struct proc *p)
{
    struct regs *r = (struct regs *)(p->kstack + KSTACK_SIZE - 8) - 1;
    for (uint32_t i = 0; i < sizeof(*r) / 4; i++)
        ((uint32_t *)r)[i] = 0;
    r->gs = r->fs = r->es = r->ds = KERNEL_DS;
    r->eip = (uint32_t)idle_loop;
    r->cs = KERNEL_CS;
    r->eflags = 0x202;
    p->frame = r;
    p->pd = kernel_pd;
    p->state = RUNNABLE;
}

static void switch_to(struct proc *next)
{
    if (next != current)
        context_switches++;
    current = next;
    if (next != &procs[0])
        tss.esp0 = (uint32_t)(next->kstack + KSTACK_SIZE);
    __asm__ volatile("mov %0, %%cr3" : : "r"(next->pd) : "memory");
}

/* Round robin over the ring-3 slots after the current one; idle if none. */
static struct proc *pick_next(void)
{
    uint32_t start = (uint32_t)(current - procs);
    for (uint32_t i = 1; i <= NPROC; i++) {
        struct proc *p = &procs[(start + i) % NPROC];
        if (p != &procs[0] && p->state == RUNNABLE)
            return p;
    }
    return &procs[0];
}

static struct regs *schedule(struct regs *r)
{
    current->frame = r;
    struct proc *next = pick_next();
    switch_to(next);
    return next->frame;
}

static struct proc *find_pid(uint32_t pid)
{
    for (uint32_t i = 1; i < NPROC; i++)
        if (procs[i].state != UNUSED && procs[i].pid == pid)
            return &procs[i];
    return 0;
}

static void proc_exit(struct proc *p, uint32_t status)
{
    free_address_space(p);
    if (p->mode == MODE_SHELL) {
        printk("minikernel: the shell exited with status 0x%x\n", status);
        guest_exit(6);
    }
    p->status = status;
    p->state = ZOMBIE;
    for (uint32_t i = 1; i < NPROC; i++)
        if (procs[i].state == BLOCKED_WAIT && procs[i].wait_pid == p->pid)
            procs[i].state = RUNNABLE;
}

void wake_readers(void)
{
    for (uint32_t i = 1; i < NPROC; i++)
        if (procs[i].state == BLOCKED_READ || procs[i].state == BLOCKED_KEY)
            procs[i].state = RUNNABLE;
}

/* ---- system calls ----------------------------------------------------- */
/* Is [p, p+len) mapped for ring 3 in the current address space (and
 * writable if asked)? */
static int user_ok(uint32_t p, uint32_t len, int write)
{
    if (p < USER_BASE || len > USER_LIMIT - p || p + len > USER_LIMIT)
        return 0;
    uint32_t *pt = user_pt(current);
    uint32_t need = PTE_P | PTE_U | (write ? PTE_W : 0);
    for (uint32_t va = p & ~(PAGE_SIZE - 1); va < p + len; va += PAGE_SIZE)
        if ((pt[(va - USER_BASE) / PAGE_SIZE] & need) != need)
            return 0;
    return 1;
}

/* Block the caller: it re-executes its `int 0x80` (2 bytes) when woken. */
static struct regs *block(struct regs *r, enum state why)
{
    current->state = why;
    r->eip -= 2;
    return schedule(r);
}

static void print_ps(void)
{
    printk("  pid  state  what\n");
    for (uint32_t i = 1; i < NPROC; i++) {
        struct proc *p = &procs[i];
        if (p->state == UNUSED)
            continue;
        const char *what = p->mode == MODE_SHELL ? "shell" : p->mode == MODE_SUM ? "sum"
                                                                                 : "fault";
        printk("  %u  %s  %s%s\n", p->pid, state_names[p->state], what,
               p == current ? " (current)" : "");
    }
}

/* Not inlined into trap(): a debugger can break on every system call here. */
__attribute__((noinline)) struct regs *do_syscall(struct regs *r);
struct regs *do_syscall(struct regs *r)
{
    syscalls++;
    uint32_t a = r->ebx, b = r->ecx;
    int n;
    switch (r->eax) {
    case SYS_WRITE:
        if (!user_ok(a, b, 0))
            break;
        serial_write((const char *)a, b);
        r->eax = b;
        return r;
    case SYS_READLINE:
    case SYS_KEYLINE:
        if (!user_ok(a, b, 1))
            break;
        if (r->eax == SYS_KEYLINE && !kbd_present())
            break;
        cli();
        n = r->eax == SYS_READLINE ? uart_take_line((char *)a, b)
                                   : kbd_take_line((char *)a, b);
        if (n < 0)
            return block(r, r->eax == SYS_READLINE ? BLOCKED_READ : BLOCKED_KEY);
        r->eax = (uint32_t)n;
        return r;
    case SYS_GETPID:
        r->eax = current->pid;
        return r;
    case SYS_YIELD:
        r->eax = 0;
        return schedule(r);
    case SYS_EXIT:
        cli();
        proc_exit(current, a);
        return schedule(r);
    case SYS_DISK_READ:
    case SYS_DISK_WRITE:
        if (!user_ok(b, 512, r->eax == SYS_DISK_READ))
            break;
        r->eax = (uint32_t)ide_slave_rw(a, (void *)b, r->eax == SYS_DISK_WRITE);
        return r;
    case SYS_UPTIME:
        r->eax = ticks;
        return r;
    case SYS_SPAWN: {
        cli();
        for (uint32_t i = 1; i < NPROC; i++) {
            struct proc *p = &procs[i];
            if (p->state == UNUSED && (a == MODE_SUM || a == MODE_FAULT) &&
                proc_create(p, a, b) == 0) {
                r->eax = p->pid;
                return r;
            }
        }
        break;
    }
    case SYS_WAIT: {
        cli();
        struct proc *child = find_pid(a);
        if (!child || child == current)
            break;
        if (child->state != ZOMBIE) {
            current->wait_pid = a;
            return block(r, BLOCKED_WAIT);
        }
        r->eax = child->status;
        child->state = UNUSED;
        return r;
    }
    case SYS_PS:
        print_ps();
        r->eax = 0;
        return r;
    case SYS_HALT:
        guest_exit((uint8_t)a);
    case SYS_INFO:
        r->eax = a == INFO_PREEMPTIONS ? preemptions : a == INFO_SYSCALLS ? syscalls : 0;
        return r;
    default:
        break;
    }
    r->eax = (uint32_t)-1;
    return r;
}

/* ---- traps and interrupts --------------------------------------------- */
static uint32_t read_cr2(void)
{
    uint32_t v;
    __asm__ volatile("mov %%cr2, %0" : "=r"(v));
    return v;
}

static struct regs *fault(struct regs *r)
{
    if ((r->cs & 3) != 3) {
        printk("kernel fault: vector %u err 0x%x at %p cr2 %p\n", r->vector, r->err, r->eip,
               read_cr2());
        panic("fault in ring 0");
    }
    if (r->vector == 14)
        printk("pid %u: page fault at 0x%08x err 0x%x (%s, %s, %s), eip %p: killed\n",
               current->pid, read_cr2(), r->err, r->err & PF_PRESENT ? "protection" : "not present",
               r->err & 2 ? "write" : "read", r->err & 4 ? "user" : "kernel", r->eip);
    else
        printk("pid %u: exception %u err 0x%x at %p: killed\n", current->pid, r->vector,
               r->err, r->eip);
    proc_exit(current, KILLED(r->vector));
    return schedule(r);
}

struct regs *trap(struct regs *r);
struct regs *trap(struct regs *r)
{
    uint32_t v = r->vector;
    int from_user = (r->cs & 3) == 3;
    if (v < 32)
        return fault(r);
    if (v == SYSCALL_VECTOR)
        return do_syscall(r);
    if (v == SPURIOUS_VECTOR || (v >= PIC_VECTOR && v < PIC_VECTOR + 16))
        return r; /* LAPIC spurious, or a spurious IRQ 7/15 of the masked 8259s */
    if (v == TIMER_VECTOR) {
        ticks++;
        lapic_eoi();
        /* Preempt ring 3 (not the kernel: a syscall may be waiting for the disk). */
        if (from_user || current == &procs[0]) {
            struct proc *before = current;
            r = schedule(r);
            if (before != current && before != &procs[0] && current != &procs[0])
                preemptions++;
        }
        return r;
    }
    if (v == LAPIC_ERROR_VECTOR) {
        lapic_eoi();
        return r;
    }
    if (v == IRQ_VECTOR + IRQ_COM1)
        uart_irq();
    else if (v == IRQ_VECTOR + IRQ_KBD)
        kbd_irq();
    else if (v == IRQ_VECTOR + IRQ_IDE)
        ide_irq();
    else {
        printk("unexpected interrupt %u\n", v);
        panic("unexpected interrupt");
    }
    lapic_eoi();
    /* A woken process runs at once when the CPU was idle. */
    if (current == &procs[0] || (from_user && current->state != RUNNABLE))
        return schedule(r);
    return r;
}

/* ---- boot --------------------------------------------------------------- */
struct multiboot_info {
    uint32_t flags, mem_lower, mem_upper;
};

int guest_main(uint32_t mbi);
int guest_main(uint32_t mbi)
{
    const struct multiboot_info *info = (const struct multiboot_info *)mbi;
    uint32_t ram = (info->flags & 1) ? 0x100000 + info->mem_upper * 1024 : 0x1000000;
    printk("minikernel: booting\n");
    setup_gdt();
    setup_idt();
    pic_remap(); /* 8259s at 0x20/0x28, every line masked */
    outb(0x21, 0xFF);
    outb(0xA1, 0xFF);
    if (mp_find() < 0)
        panic("no usable MP table");
    printk("mp: %u cpu, lapic %p, ioapic %p\n", mp.cpus, mp.lapic, mp.ioapic);
    setup_paging(ram);
    printk("paging: 4 MiB kernel pages, CR0.WP\n");
    frames_init();
    lapic_init(TIMER_INITIAL_COUNT);
    uint32_t id = lapic_id();
    printk("lapic: id %u, timer periodic\n", id);
    /* Like xv6: the IOAPIC's own ID register should say what the MP table says. */
    if (ioapic_id() == mp.ioapic_id)
        printk("ioapic: %u pins, id as in the MP table\n", ioapic_pins());
    else
        printk("ioapic: %u pins, id %u but the MP table says %u\n", ioapic_pins(), ioapic_id(),
               mp.ioapic_id);
    printk("ioapic: com1 irq4 -> pin %u, kbd irq1 -> pin %u, ide irq14 -> pin %u\n",
           mp.isa_pin[IRQ_COM1], mp.isa_pin[IRQ_KBD], mp.isa_pin[IRQ_IDE]);
    ioapic_route(IRQ_COM1, IRQ_VECTOR + IRQ_COM1, id);
    uart_rx_init();
    if (kbd_init() == 0) {
        ioapic_route(IRQ_KBD, IRQ_VECTOR + IRQ_KBD, id);
        printk("kbd: i8042 ready\n");
    } else {
        printk("kbd: absent\n");
    }
    if (ide_init() == 0) {
        ioapic_route(IRQ_IDE, IRQ_VECTOR + IRQ_IDE, id);
        printk("ide: slave present\n");
    } else {
        printk("ide: no slave\n");
    }
    idle_create(&procs[0]);
    if (proc_create(&procs[1], MODE_SHELL, 0) < 0)
        panic("cannot create the shell");
    current = &procs[0];
    switch_to(&procs[1]);
    resume_frame(procs[1].frame);
}

/* sysenter: SYSENTER/SYSEXIT round trips between ring 3 and ring 0, and the
 * #GP(0) SYSENTER raises while IA32_SYSENTER_CS is 0 (Intel SDM vol. 2B).
 *
 * GDT as SYSENTER/SYSEXIT want it: ring-0 code at SYSENTER_CS (0x08), ring-0
 * data at +8, ring-3 code at +16, ring-3 data at +24.  No paging, no TSS: the
 * ring-3 code never takes an interrupt (the PIC is masked), so it needs no
 * ring-0 stack other than SYSENTER_ESP. */
#include "guest.h"

#define KERNEL_CS 0x08
#define KERNEL_DS 0x10
#define USER_CS (0x18 | 3)
#define USER_DS (0x20 | 3)

#define MSR_SYSENTER_CS 0x174
#define MSR_SYSENTER_ESP 0x175
#define MSR_SYSENTER_EIP 0x176
#define CALL_EXIT 99u

static uint64_t gdt[5] __attribute__((aligned(8))) = {
    0x0000000000000000ull, /* 0x00 null */
    0x00CF9A000000FFFFull, /* 0x08 ring-0 code */
    0x00CF92000000FFFFull, /* 0x10 ring-0 data */
    0x00CFFA000000FFFFull, /* 0x18 ring-3 code (DPL 3) */
    0x00CFF2000000FFFFull, /* 0x20 ring-3 data (DPL 3) */
};

static uint8_t kernel_stack[4096] __attribute__((aligned(16)));
static uint8_t user_stack[4096] __attribute__((aligned(16)));
volatile uint32_t gp_faults;
volatile uint32_t calls;
extern char gp_sysenter[], sysenter_entry[], user_main[];

static void wrmsr(uint32_t msr, uint32_t value)
{
    __asm__ volatile("wrmsr" : : "c"(msr), "a"(value), "d"(0));
}

static void general_protection(struct regs *r)
{
    gp_faults++;
    printk("#GP: vector %u error %u, at the sysenter: %s, from ring %u\n",
           r->vector, r->err, r->eip == (uint32_t)gp_sysenter ? "yes" : "no",
           r->cs & 3);
    r->eip += 2; /* skip the SYSENTER */
}

/* Called by sysenter_entry on the SYSENTER_ESP stack, in ring 0. */
uint32_t sysenter_call(uint32_t arg, uint32_t user_esp, uint32_t user_eip);
uint32_t sysenter_call(uint32_t arg, uint32_t user_esp, uint32_t user_eip)
{
    uint32_t cs, ss, eflags, esp;
    __asm__ volatile("mov %%cs, %0; mov %%ss, %1; pushf; pop %2; mov %%esp, %3"
                     : "=r"(cs), "=r"(ss), "=r"(eflags), "=r"(esp));
    calls++;
    printk("sysenter %u: arg %u, cs %x ss %x, IF %u, on the kernel stack: %s, "
           "user esp in its stack: %s, returns to user_main+%u\n",
           calls, arg, cs, ss, (eflags >> 9) & 1,
           esp > (uint32_t)kernel_stack &&
                   esp <= (uint32_t)kernel_stack + sizeof(kernel_stack)
               ? "yes"
               : "no",
           user_esp > (uint32_t)user_stack &&
                   user_esp <= (uint32_t)user_stack + sizeof(user_stack)
               ? "yes"
               : "no",
           user_eip - (uint32_t)user_main);
    if (arg == CALL_EXIT) {
        printk("sysenter: %u calls, %u #GP\n", calls, gp_faults);
        guest_exit(calls == 4 && gp_faults == 1 ? 0 : 3);
    }
    return arg * 3 + 1;
}

/* SYSENTER lands here: ECX = the user ESP, EDX = the user EIP to return to
 * (the ring-3 code's convention, as in Linux's vDSO); SYSEXIT returns there. */
__asm__(".text\n"
        ".globl sysenter_entry\n"
        "sysenter_entry:\n"
        "    pushl %edx\n"
        "    pushl %ecx\n"
        "    pushl %eax\n"
        "    call sysenter_call\n"
        "    addl $4, %esp\n"
        "    popl %ecx\n"
        "    popl %edx\n"
        "    sysexit\n"
        /* Ring 3: three round trips that chain their results, then exit. */
        ".globl user_main\n"
        "user_main:\n"
        "    movl $1, %eax\n"
        "1:  pushl $0x5a5a5a5a\n" /* the user stack survives the trip */
        "    movl %esp, %ecx\n"
        "    movl $2f, %edx\n"
        "    sysenter\n"
        "2:  popl %ebx\n"
        "    cmpl $0x5a5a5a5a, %ebx\n"
        "    jne 3f\n"
        "    cmpl $40, %eax\n"
        "    jb 1b\n"
        "3:  movl $99, %eax\n"
        "    movl %esp, %ecx\n"
        "    movl $4f, %edx\n"
        "    sysenter\n"
        "4:  ud2\n");

int guest_main(uint32_t mbi)
{
    (void)mbi;
    struct gdt_ptr p = { sizeof(gdt) - 1, (uint32_t)gdt };
    gdt_load(&p, KERNEL_CS, KERNEL_DS);
    idt_init();
    pic_remap(); /* all IRQ lines stay masked */
    isr_register(13, general_protection);

    /* SYSENTER_CS is 0 (its reset value, written again): #GP(0). */
    wrmsr(MSR_SYSENTER_CS, 0);
    __asm__ volatile(".globl gp_sysenter\n"
                     "gp_sysenter: sysenter" ::: "memory");
    printk("after the #GP: %u fault(s)\n", gp_faults);

    wrmsr(MSR_SYSENTER_CS, KERNEL_CS);
    wrmsr(MSR_SYSENTER_ESP, (uint32_t)kernel_stack + sizeof(kernel_stack));
    wrmsr(MSR_SYSENTER_EIP, (uint32_t)sysenter_entry);
    printk("entering ring 3\n");
    __asm__ volatile("mov %0, %%ds; mov %0, %%es; mov %0, %%fs; mov %0, %%gs\n"
                     "pushl %0\n"         /* SS */
                     "pushl %1\n"         /* ESP */
                     "pushl $0x202\n"     /* EFLAGS: IF set, IOPL 0 */
                     "pushl %2\n"         /* CS */
                     "pushl %3\n"         /* EIP */
                     "iret"
                     :
                     : "r"((uint32_t)USER_DS),
                       "r"((uint32_t)user_stack + sizeof(user_stack)),
                       "r"((uint32_t)USER_CS), "r"((uint32_t)user_main)
                     : "memory");
    return 3; /* not reached: the exit call ends the guest */
}

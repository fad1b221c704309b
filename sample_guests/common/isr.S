/* Interrupt entry stubs.  Each stub pushes a dummy error code (for vectors
 * where the CPU does not push one) and its vector number, then jumps to
 * isr_common, which saves all registers, loads the kernel data segments and
 * calls isr_dispatch(struct regs *) (common/idt.c).  The frame layout matches
 * struct regs in guest.h. */
    .altmacro

    .macro ISR_STUB n
    .globl isr_stub_\n
    .type isr_stub_\n, @function
isr_stub_\n:
    .if (\n == 8) || ((\n >= 10) && (\n <= 14)) || (\n == 17)
    .else
    pushl $0
    .endif
    pushl $\n
    jmp isr_common
    .size isr_stub_\n, . - isr_stub_\n
    .endm

    .macro ISR_ENTRY n
    .long isr_stub_\n
    .endm

    .section .text
    .set vec, 0
    .rept 48
    ISR_STUB %vec
    .set vec, vec + 1
    .endr

    .globl isr_stub_0x80
    .type isr_stub_0x80, @function
isr_stub_0x80:
    pushl $0
    pushl $0x80
    jmp isr_common
    .size isr_stub_0x80, . - isr_stub_0x80

    .globl isr_common
    .type isr_common, @function
isr_common:
    pushal
    pushl %ds
    pushl %es
    pushl %fs
    pushl %gs
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %fs
    movw %ax, %gs
    cld
    pushl %esp
    call isr_dispatch
    addl $4, %esp
    .globl isr_return
isr_return:
    popl %gs
    popl %fs
    popl %es
    popl %ds
    popal
    addl $8, %esp                      /* vector + error code */
    iret
    .size isr_common, . - isr_common

    .section .rodata
    .balign 4
    .globl isr_stub_table
isr_stub_table:
    .set vec, 0
    .rept 48
    ISR_ENTRY %vec
    .set vec, vec + 1
    .endr

    .section .note.GNU-stack, "", @progbits

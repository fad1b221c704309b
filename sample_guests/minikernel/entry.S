/* Interrupt entry for the minikernel.  Each stub pushes a dummy error code
 * where the CPU pushes none, then its vector, and jumps to trap_entry, which
 * saves the registers (struct regs in guest.h) and calls
 * struct regs *trap(struct regs *).  trap() returns the frame to resume: the
 * same one, or another process's saved frame on that process's kernel stack
 * (a context switch is just this change of stack pointer). */
    .altmacro

    .macro STUB n
    .globl vec_\n
vec_\n:
    .if (\n == 8) || ((\n >= 10) && (\n <= 14)) || (\n == 17)
    .else
    pushl $0
    .endif
    pushl $\n
    jmp trap_entry
    .endm

    .macro ENTRY n
    .long vec_\n
    .endm

    .section .text
    .set v, 0
    .rept 0x50
    STUB %v
    .set v, v + 1
    .endr
    STUB 128
    STUB 255

trap_entry:
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
    call trap
    movl %eax, %esp                    /* the frame to resume */
    .globl trap_resume
trap_resume:
    popl %gs
    popl %fs
    popl %es
    popl %ds
    popal
    addl $8, %esp                      /* vector + error code */
    iret

/* void resume_frame(struct regs *r): leave the boot stack for good. */
    .globl resume_frame
resume_frame:
    movl 4(%esp), %esp
    jmp trap_resume

    .section .rodata
    .balign 4
    .globl vector_table
vector_table:                          /* vectors 0 .. 0x4F */
    .set v, 0
    .rept 0x50
    ENTRY %v
    .set v, v + 1
    .endr
    .globl vector_syscall, vector_spurious
vector_syscall:
    .long vec_128
vector_spurious:
    .long vec_255

    .section .note.GNU-stack, "", @progbits

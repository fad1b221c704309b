/* The ring-3 program of the usermode guest.  It lives in its own page-aligned
 * section (.user_text), which the kernel maps user-accessible (read-only). */
#include "usermode.h"

    .macro SYSCALL_WRITE msg, len
    movl $SYS_WRITE, %eax
    movl $\msg, %ebx
    movl $\len, %ecx
    int $SYSCALL_VECTOR
    .endm

    .section .user_text, "ax"
    .balign 4096
    .globl user_main
    .type user_main, @function
user_main:
    SYSCALL_WRITE msg_hello, msg_hello_len
    cmpl $msg_hello_len, %eax              /* syscall return value */
    jne user_fail

    /* Touch a page that is not mapped yet: the kernel's #PF handler maps it
     * and the store is retried. */
    .globl user_touch
user_touch:
    movl $0xCAFEBABE, USER_TOUCH_ADDR
    cmpl $0xCAFEBABE, USER_TOUCH_ADDR
    jne user_fail
    pushl $0x12345678                      /* the user stack works too */
    popl %eax
    cmpl $0x12345678, %eax
    jne user_fail
    SYSCALL_WRITE msg_page, msg_page_len

    /* Port I/O is privileged (IOPL 0, no I/O bitmap): #GP(0).  The kernel
     * skips the one-byte instruction and we continue after it. */
    movl $0x3FD, %edx
    movb $0x5A, %al
    .globl user_in
user_in:
    inb %dx, %al
    cmpb $0x5A, %al                        /* AL untouched by the skipped IN */
    jne user_fail
    SYSCALL_WRITE msg_gp, msg_gp_len

    /* The same for a port a debugger may serve without a round trip to its
     * device model (the CRTC's index register): the permission check comes
     * first, for OUT and IN alike. */
    movl $0x3D4, %edx
    movb $0x0E, %al
    outb %al, %dx
    movb $0x5A, %al
    inb %dx, %al
    cmpb $0x5A, %al                        /* AL untouched by the skipped IN */
    jne user_fail
    SYSCALL_WRITE msg_gp_crtc, msg_gp_crtc_len

    movl $SYS_EXIT, %eax
    xorl %ebx, %ebx
    int $SYSCALL_VECTOR
    ud2                                    /* not reached */

user_fail:
    SYSCALL_WRITE msg_fail, msg_fail_len
    movl $SYS_EXIT, %eax
    movl $1, %ebx
    int $SYSCALL_VECTOR
    ud2
    .size user_main, . - user_main

msg_hello:
    .ascii "hello from ring 3\n"
    .set msg_hello_len, . - msg_hello
msg_page:
    .ascii "ring 3: user page ok\n"
    .set msg_page_len, . - msg_page
msg_gp:
    .ascii "ring 3: back after #GP\n"
    .set msg_gp_len, . - msg_gp
msg_gp_crtc:
    .ascii "ring 3: CRTC index refused\n"
    .set msg_gp_crtc_len, . - msg_gp_crtc
msg_fail:
    .ascii "ring 3: check failed\n"
    .set msg_fail_len, . - msg_fail
    .balign 4096

/* Kernel side of the ring switch (normal .text). */
    .section .text
/* uint32_t enter_user(uint32_t eip, uint32_t esp): IRET to ring 3 at eip with
 * the given stack; "returns" when user_exit_to_kernel() is called. */
    .globl enter_user
    .type enter_user, @function
enter_user:
    pushl %ebp
    pushl %ebx
    pushl %esi
    pushl %edi
    movl %esp, kernel_saved_esp
    movl 20(%esp), %eax                    /* user EIP */
    movl 24(%esp), %ecx                    /* user ESP */
    movw $USER_DS, %dx
    movw %dx, %ds
    movw %dx, %es
    movw %dx, %fs
    movw %dx, %gs
    pushl $USER_DS                         /* SS */
    pushl %ecx                             /* ESP */
    pushl $0x202                           /* EFLAGS: IF=1, IOPL=0 */
    pushl $USER_CS                         /* CS */
    pushl %eax                             /* EIP */
    iret
    .size enter_user, . - enter_user

/* void user_exit_to_kernel(uint32_t code): called on the ring-0 interrupt
 * stack; abandons it and returns from enter_user() with code in EAX. */
    .globl user_exit_to_kernel
    .type user_exit_to_kernel, @function
user_exit_to_kernel:
    movl 4(%esp), %eax
    movl kernel_saved_esp, %esp
    movw $KERNEL_DS, %dx
    movw %dx, %ds
    movw %dx, %es
    movw %dx, %fs
    movw %dx, %gs
    popl %edi
    popl %esi
    popl %ebx
    popl %ebp
    ret
    .size user_exit_to_kernel, . - user_exit_to_kernel

    .section .bss
    .balign 4
    .globl kernel_saved_esp
kernel_saved_esp:
    .skip 4

    .section .note.GNU-stack, "", @progbits

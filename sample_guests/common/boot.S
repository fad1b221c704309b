/* Multiboot (v1) boot stub shared by all sample guests.
 *
 * The loader enters _start in 32-bit protected mode with paging off, IF=0,
 * EAX = 0x2BADB002 and EBX = multiboot info.  We set up our own stack, load
 * our own flat GDT (code 0x08, data 0x10), reload every segment register,
 * zero .bss and call guest_start(magic, mbi) (common/start.c), which never
 * returns.
 */
#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000003 /* page-align modules, want mem info */

    .section .multiboot, "a"
    .balign 4
    .globl multiboot_header
multiboot_header:
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)

    .section .text
    .globl _start
    .type _start, @function
_start:
    cli
    cld
    movl %eax, %esi                    /* multiboot magic */
                                       /* %ebx: multiboot info, kept */
    movl $boot_stack_top, %esp
    lgdt boot_gdt_ptr
    ljmp $0x08, $1f
1:  movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %fs
    movw %ax, %gs
    movw %ax, %ss

    /* zero .bss (the boot stack lives after __bss_end and is not cleared) */
    movl $__bss_start, %edi
    movl $__bss_end, %ecx
    subl %edi, %ecx
    shrl $2, %ecx
    xorl %eax, %eax
    rep stosl

    xorl %ebp, %ebp                    /* end of frame chain for debuggers */
    pushl %ebx
    pushl %esi
    call guest_start
2:  cli
    hlt
    jmp 2b
    .size _start, . - _start

    .section .rodata
    .balign 8
    .globl boot_gdt
boot_gdt:
    .quad 0x0000000000000000           /* 0x00 null */
    .quad 0x00CF9A000000FFFF           /* 0x08 ring-0 code, flat 4 GiB */
    .quad 0x00CF92000000FFFF           /* 0x10 ring-0 data, flat 4 GiB */
boot_gdt_end:
    .balign 4
boot_gdt_ptr:
    .word boot_gdt_end - boot_gdt - 1
    .long boot_gdt

    .section .kstack, "aw", @nobits
    .balign 16
    .globl boot_stack_bottom, boot_stack_top
boot_stack_bottom:
    .skip 16384
boot_stack_top:

    .section .note.GNU-stack, "", @progbits

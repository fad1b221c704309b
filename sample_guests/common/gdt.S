/* void gdt_load(const struct gdt_ptr *p, uint32_t code_sel, uint32_t data_sel)
 * Loads the GDT, reloads DS/ES/FS/GS/SS with data_sel and CS with code_sel
 * (via a far return). */
    .section .text
    .globl gdt_load
    .type gdt_load, @function
gdt_load:
    movl 4(%esp), %eax
    lgdt (%eax)
    movl 12(%esp), %eax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %fs
    movw %ax, %gs
    movw %ax, %ss
    pushl 8(%esp)                      /* code_sel */
    pushl $1f
    lret
1:  ret
    .size gdt_load, . - gdt_load

    .section .note.GNU-stack, "", @progbits

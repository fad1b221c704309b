/* Store-heavy workload of the memcopy guest.
 *
 * Everything from workload_begin to workload_end is self-contained: no stack,
 * no I/O, no interrupts needed; it reads memcopy_passes and writes only
 * memcopy_buf_a, memcopy_buf_b and memcopy_result (absolute addresses).  A
 * benchmark may start at workload_begin with any register values and stop
 * when EIP reaches workload_end.
 *
 *   fill:  buf_a (64 KiB) <- xorshift32 stream, seed 0x9E3779B9
 *   pass:  dst[i] = rol(src[i], 1) ^ (i - 16384) for the 16384 dwords,
 *          from A to B on even passes, from B to A on odd ones;
 *          7 instructions per dword (1 load, 1 store)
 *   result: memcopy_result = sum mod 2^32 of every dword stored by the passes
 */
#define WORDS 16384 /* 64 KiB */

    .section .text
    .globl memcopy_workload
    .type memcopy_workload, @function
memcopy_workload:
    pushl %ebp
    pushl %ebx
    pushl %esi
    pushl %edi

    .globl workload_begin
workload_begin:
    movl $0x9E3779B9, %eax
    movl $memcopy_buf_a, %edi
fill_loop:
    movl %eax, %edx
    shll $13, %edx
    xorl %edx, %eax
    movl %eax, %edx
    shrl $17, %edx
    xorl %edx, %eax
    movl %eax, %edx
    shll $5, %edx
    xorl %edx, %eax
    movl %eax, (%edi)
    addl $4, %edi
    cmpl $memcopy_buf_a + 4 * WORDS, %edi
    jne fill_loop

    movl memcopy_passes, %ebp
    xorl %edx, %edx                        /* checksum */
    movl $memcopy_buf_a + 4 * WORDS, %esi  /* source end */
    movl $memcopy_buf_b + 4 * WORDS, %edi  /* destination end */
    testl %ebp, %ebp
    jz copy_done
pass_loop:
    movl $-WORDS, %ecx
copy_loop:
    movl (%esi,%ecx,4), %eax               /* load */
    roll $1, %eax
    xorl %ecx, %eax
    movl %eax, (%edi,%ecx,4)               /* store */
    addl %eax, %edx
    incl %ecx
    jnz copy_loop
    xchgl %esi, %edi                       /* copy back the other way */
    decl %ebp
    jnz pass_loop
copy_done:
    movl %edx, memcopy_result

    .globl workload_end
workload_end:
    popl %edi
    popl %esi
    popl %ebx
    popl %ebp
    ret
    .size memcopy_workload, . - memcopy_workload

    .section .bss
    .balign 4096
    .globl memcopy_buf_a, memcopy_buf_b, memcopy_result
    .type memcopy_buf_a, @object
    .type memcopy_buf_b, @object
    .type memcopy_result, @object
memcopy_buf_a:
    .skip 4 * WORDS
    .size memcopy_buf_a, 4 * WORDS
memcopy_buf_b:
    .skip 4 * WORDS
    .size memcopy_buf_b, 4 * WORDS
memcopy_result:
    .skip 4
    .size memcopy_result, 4

    .section .note.GNU-stack, "", @progbits

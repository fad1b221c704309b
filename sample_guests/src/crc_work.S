/* CRC-32 workload of the crc guest.
 *
 * Everything from workload_begin to workload_end is self-contained: no stack,
 * no I/O, no interrupts needed; it reads only crc_passes and writes only
 * crc_buffer and crc_result (absolute addresses).  A benchmark may start
 * executing at workload_begin with any register values and stop when EIP
 * reaches workload_end.
 *
 *   fill:   crc_buffer (4 KiB) <- xorshift32 stream, seed 0x2545F491, as
 *           little-endian dwords
 *   crc:    standard reflected CRC-32 (poly 0xEDB88320, init and final xor
 *           0xFFFFFFFF) of crc_buffer repeated crc_passes times, i.e.
 *           zlib.crc32(buffer * passes); bitwise, no table
 *   result: crc_result
 */
#define BUF_SIZE 4096
#define CRC_POLY 0xEDB88320

    .section .text
    .globl crc_workload
    .type crc_workload, @function
crc_workload:
    pushl %ebp
    pushl %ebx
    pushl %esi
    pushl %edi

    .globl workload_begin
workload_begin:
    /* Fill the buffer deterministically (xorshift32). */
    movl $0x2545F491, %eax
    movl $crc_buffer, %edi
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
    cmpl $crc_buffer + BUF_SIZE, %edi
    jne fill_loop

    movl crc_passes, %ebp
    movl $0xFFFFFFFF, %eax                 /* running CRC */
    testl %ebp, %ebp
    jz crc_done
pass_loop:
    movl $crc_buffer, %esi
dword_loop:
    xorl (%esi), %eax                      /* 4 message bytes, LSB first */
    movl $4, %ecx
bit_loop:                                  /* register-only: 8 bits a turn */
    .rept 8
    shrl $1, %eax                          /* CF = bit shifted out */
    sbbl %edx, %edx                        /* EDX = CF ? ~0 : 0 */
    andl $CRC_POLY, %edx
    xorl %edx, %eax
    .endr
    decl %ecx
    jnz bit_loop
    addl $4, %esi
    cmpl $crc_buffer + BUF_SIZE, %esi
    jne dword_loop
    decl %ebp
    jnz pass_loop
crc_done:
    notl %eax
    movl %eax, crc_result

    .globl workload_end
workload_end:
    popl %edi
    popl %esi
    popl %ebx
    popl %ebp
    ret
    .size crc_workload, . - crc_workload

    .section .bss
    .balign 4096
    .globl crc_buffer
    .type crc_buffer, @object
crc_buffer:
    .skip BUF_SIZE
    .size crc_buffer, BUF_SIZE
    .globl crc_result
    .type crc_result, @object
crc_result:
    .skip 4
    .size crc_result, 4

    .section .note.GNU-stack, "", @progbits

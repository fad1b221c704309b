/* The ring-3 program (user.c, linked at USER_BASE and flattened) inside the
 * kernel image; the kernel copies it into each new process. */
    .section .rodata
    .balign 4096
    .globl user_blob, user_blob_end
user_blob:
    .incbin USER_BIN
user_blob_end:

    .section .note.GNU-stack, "", @progbits

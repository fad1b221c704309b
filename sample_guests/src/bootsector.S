/*
 * bootsector: a 512-byte real-mode boot sector (loaded at 0x7C00, CS:IP = 0000:7C00).
 * It installs its own IVT entry for INT 0x30 (there is no BIOS), prints a line on COM1
 * one character per INT 0x30, and exits through the isa-debug-exit port with 0.
 * Exercises real-mode interrupt delivery (FLAGS/CS/IP frame, IRET) and 16-bit code.
 */
        .code16
        .text
        .global _start
_start:
        cli
        xorw    %ax, %ax
        movw    %ax, %ds
        movw    %ax, %ss
        movw    $0x7c00, %sp
        movw    $putc_handler, 0x30*4   /* IVT[0x30] = 0000:putc_handler */
        movw    $0, 0x30*4+2
        movw    $message, %si
next:   lodsb
        testb   %al, %al
        jz      done
        int     $0x30
        jmp     next
done:   movb    $0, %al
        outb    %al, $0xf4              /* exit status (0 << 1) | 1 */
        hlt

/* INT 0x30: write AL to COM1 once the transmitter is empty. */
putc_handler:
        pushw   %dx
        pushw   %ax
        movw    $0x3fd, %dx
wait:   inb     %dx, %al
        testb   $0x20, %al
        jz      wait
        popw    %ax
        movw    $0x3f8, %dx
        outb    %al, %dx
        popw    %dx
        iret

message:
        .asciz  "Hello from real mode\n"

        .org    510
        .word   0xaa55

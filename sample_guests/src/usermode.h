/* Constants shared by usermode.c and usermode_user.S. */
#ifndef USERMODE_H
#define USERMODE_H

#define KERNEL_CS 0x08
#define KERNEL_DS 0x10
#define USER_CS (0x18 | 3)
#define USER_DS (0x20 | 3)
#define TSS_SEL 0x28

#define SYSCALL_VECTOR 0x80
#define SYS_WRITE 1 /* EBX = buffer, ECX = length; returns length in EAX */
#define SYS_EXIT 2  /* EBX = exit code; returns to the kernel */

/* User region (second page table): 4 MiB .. 8 MiB. */
#define USER_REGION_START 0x00400000
#define USER_REGION_END 0x00800000
#define USER_STACK_PAGE 0x007FF000 /* mapped before entering ring 3 */
#define USER_STACK_TOP 0x00800000
#define USER_TOUCH_ADDR 0x00500000 /* left unmapped: first touch faults */

#endif

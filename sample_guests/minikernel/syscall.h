/* System call numbers and process constants shared by the minikernel and its
 * ring-3 program (included from C and from assembly). */
#ifndef MINIKERNEL_SYSCALL_H
#define MINIKERNEL_SYSCALL_H

#define SYSCALL_VECTOR 0x80

/* EAX = number, arguments in EBX, ECX; the result comes back in EAX
 * (-1 for a bad argument). */
#define SYS_WRITE 1      /* (buf, len) -> len: COM1 */
#define SYS_READLINE 2   /* (buf, max) -> len: a line from COM1, blocks */
#define SYS_GETPID 3     /* () -> pid */
#define SYS_YIELD 4      /* () -> 0 */
#define SYS_EXIT 5       /* (status): does not return */
#define SYS_DISK_READ 6  /* (lba, buf) -> 0: one 512-byte sector of the IDE slave */
#define SYS_DISK_WRITE 7 /* (lba, buf) -> 0 */
#define SYS_UPTIME 8     /* () -> LAPIC timer ticks since boot */
#define SYS_SPAWN 9      /* (mode, arg) -> pid of a new process, or -1 */
#define SYS_WAIT 10      /* (pid) -> its exit status, blocks */
#define SYS_KEYLINE 11   /* (buf, max) -> len: a line typed on the keyboard, blocks */
#define SYS_PS 12        /* () -> 0: the kernel prints its process table */
#define SYS_HALT 13      /* (code): writes code to the exit port 0xF4 */
#define SYS_INFO 14      /* (what) -> a kernel counter (INFO_*) */

#define INFO_PREEMPTIONS 0 /* timer switches from one ring-3 process to another */
#define INFO_SYSCALLS 1

/* What a spawned process does (its entry gets the mode in EAX, arg in EBX). */
#define MODE_SHELL 0
#define MODE_SUM 1   /* a CPU-bound loop of arg turns; exit status = its result */
#define MODE_FAULT 2 /* a store to an unmapped user address */

/* Status of a process the kernel killed for a fault: 0x100 | vector. */
#define KILLED(vector) (0x100 | (vector))

/* The user address space: the program at USER_BASE (text read-only, then data
 * and bss), its stack below USER_STACK_TOP; everything else in the 4 MiB
 * region is unmapped. */
#define USER_BASE 0x40000000
#define USER_LIMIT 0x40400000
#define USER_STACK_PAGES 2
#define USER_STACK_TOP USER_LIMIT
#define USER_UNMAPPED 0x40200000 /* what MODE_FAULT stores to */

#endif

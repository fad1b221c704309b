/* The paging guest's probes (a load and a store whose faults the #PF handler
 * skips to a fix-up label), its ring-3 program and the ring switch. */
#define KERNEL_DS 0x10
#define USER_CS (0x18 | 3)
#define USER_DS (0x20 | 3)

#define V_READ 0x00800000
#define V_RO 0x00802000
#define V_USER 0x00804000
#define V_USER_RO 0x00805000
#define V_ABSENT 0x00807000

    .section .text
/* uint32_t probe_load(uint32_t addr): the word at addr, 0xDEADDEAD if it faulted */
    .globl probe_load, probe_load_insn, probe_load_fix
probe_load:
    movl 4(%esp), %ecx
probe_load_insn:
    movl (%ecx), %eax
    ret
probe_load_fix:
    movl $0xDEADDEAD, %eax
    ret

/* uint32_t probe_store(uint32_t addr, uint32_t value): 0, 0xDEADDEAD if it faulted */
    .globl probe_store, probe_store_insn, probe_store_fix
probe_store:
    movl 4(%esp), %ecx
    movl 8(%esp), %edx
    xorl %eax, %eax
probe_store_insn:
    movl %edx, (%ecx)
    ret
probe_store_fix:
    movl $0xDEADDEAD, %eax
    ret

    .macro REPORT label
    movl %eax, %ebx
    movl $1, %eax
    movl $\label, %ecx
    int $0x80
    .endm

    .macro LOAD addr, label
    movl $\addr, %ecx
    call user_load
    REPORT \label
    .endm

    .macro STORE addr, value, label
    movl $\addr, %ecx
    movl $\value, %edx
    call user_store
    REPORT \label
    .endm

    .section .user_text, "ax"
    .balign 4096
    .globl user_main, user_load_insn, user_load_fix, user_store_insn, user_store_fix
    .globl user_call_insn
user_main:
    LOAD V_USER, m_user_read
    STORE V_USER+8, 0x0CAFE008, m_user_write
    LOAD V_USER+8, m_user_read
    LOAD V_USER_RO+4, m_user_ro_read
    STORE V_USER_RO+4, 0x0BAD0004, m_user_ro_write
    LOAD V_READ+0x10, m_super_read
    STORE V_READ+0x14, 0x0BAD0014, m_super_write
    LOAD V_ABSENT+0x18, m_absent_read
    STORE V_ABSENT+0x1C, 1, m_absent_write
    /* ring-3 segment loads: the CPU reads the GDT as a supervisor */
    movw $USER_DS, %ax
    movw %ax, %ds
    movw %ax, %es
    lsl %eax, %eax
    REPORT m_segments
    /* ... but the kernel variable beside the GDT stays out of reach */
    LOAD gdt_page+48, m_gdt_neighbour
    /* a call into a supervisor page: the fetch faults */
    movl $probe_load, %eax
user_call_insn:
    call *%eax
    REPORT m_after_call
    movl $2, %eax
    xorl %ebx, %ebx
    int $0x80
    ud2

/* EAX = the word at ECX, 0xDEADDEAD if the load faulted */
user_load:
user_load_insn:
    movl (%ecx), %eax
    ret
user_load_fix:
    movl $0xDEADDEAD, %eax
    ret

/* store EDX at ECX; EAX = 0, 0xDEADDEAD if the store faulted */
user_store:
    xorl %eax, %eax
user_store_insn:
    movl %edx, (%ecx)
    ret
user_store_fix:
    movl $0xDEADDEAD, %eax
    ret

m_user_read: .asciz "user page read"
m_user_write: .asciz "user page write"
m_user_ro_read: .asciz "user read-only page read"
m_user_ro_write: .asciz "user read-only page write"
m_super_read: .asciz "supervisor page read"
m_super_write: .asciz "supervisor page write"
m_absent_read: .asciz "absent page read"
m_absent_write: .asciz "absent page write"
m_segments: .asciz "segment loads, lsl"
m_gdt_neighbour: .asciz "kernel data beside the GDT"
m_after_call: .asciz "back from the call"
    .balign 4096

    .section .text
/* uint32_t enter_user(uint32_t eip, uint32_t esp) */
    .globl enter_user
enter_user:
    pushl %ebp
    pushl %ebx
    pushl %esi
    pushl %edi
    movl %esp, kernel_saved_esp
    movl 20(%esp), %eax
    movl 24(%esp), %ecx
    movw $USER_DS, %dx
    movw %dx, %ds
    movw %dx, %es
    movw %dx, %fs
    movw %dx, %gs
    pushl $USER_DS
    pushl %ecx
    pushl $0x002
    pushl $USER_CS
    pushl %eax
    iret

/* void user_exit_to_kernel(uint32_t code) */
    .globl user_exit_to_kernel
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

    .section .bss
    .balign 4
kernel_saved_esp:
    .skip 4

    .section .note.GNU-stack, "", @progbits

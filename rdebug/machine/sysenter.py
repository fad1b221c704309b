"""SYSENTER, which unicorn 2.1.4 does not emulate (Intel SDM vol. 2B, "SYSENTER").

Unicorn's SYSENTER only calls the instruction hooks and then adds the instruction's
length (2) to EIP: it never enters ring 0.  (SYSEXIT is emulated correctly.)  The
machine's SYSENTER hook calls `sysenter`, which does what the CPU does:

- #GP(0) if the CPU is in real mode or IA32_SYSENTER_CS (MSR 0x174) is a null selector;
- otherwise CS = SYSENTER_CS (ring 0, flat), SS = SYSENTER_CS + 8, ESP = IA32_SYSENTER_ESP
  (0x175), EIP = IA32_SYSENTER_EIP (0x176), and EFLAGS.VM, IF and RF cleared.

SYSCALL is not offered (CPUID leaf 0x80000001 does not advertise it; on an Intel CPU in
32-bit mode it is invalid anyway).  Knows nothing of devices, time or logs.
"""

from __future__ import annotations

from rdebug.machine.cpu import CR0_PE, EFLAGS_IF, EFLAGS_VM, Cpu

MSR_SYSENTER_CS = 0x174
MSR_SYSENTER_ESP = 0x175
MSR_SYSENTER_EIP = 0x176
SYSENTER_LENGTH = 2  # 0F 34
_EFLAGS_RF = 1 << 16


def sysenter(cpu: Cpu) -> bool:
    """Enter ring 0 as SYSENTER does; False (nothing changed) when it raises #GP(0)."""
    uc = cpu.uc
    selector = int(uc.msr_read(MSR_SYSENTER_CS)) & 0xFFFF
    cr0 = cpu.read("cr0")
    if not cr0 & CR0_PE or selector & 0xFFFC == 0:
        return False
    esp = int(uc.msr_read(MSR_SYSENTER_ESP)) & 0xFFFFFFFF
    eip = int(uc.msr_read(MSR_SYSENTER_EIP)) & 0xFFFFFFFF
    cs = selector & 0xFFFC
    ss = cs + 8
    cpu.write("eflags", cpu.read("eflags") & ~(EFLAGS_VM | EFLAGS_IF | _EFLAGS_RF))
    if cpu.read("cs") & 3:
        # Unicorn refuses ring-0 selectors at CPL 3; with CR0.PE clear a segment load
        # makes CPL 0, and with PE set again SS and CS load from the GDT as usual.
        cpu.write("cr0", cr0 & ~CR0_PE)
        cpu.write("ss", 0)
        cpu.write("cr0", cr0)
    cpu.write("ss", ss)
    cpu.write("cs", cs)
    cpu.write("esp", esp)
    cpu.eip = eip
    return True

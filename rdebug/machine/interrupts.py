"""Interrupt and exception delivery through the IVT (real mode) or the IDT (protected mode).

Unicorn never delivers an interrupt itself: it reports it to a hook and carries on at
whatever EIP the hook leaves.  This module does what the CPU would (Intel SDM vol. 3,
"Interrupt and Exception Handling"): pick the gate, check it, switch to the ring-0 stack
from the TSS when the privilege level changes, push the frame (and the error code), and
load CS:EIP.  Knows nothing of devices, time or logs.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from rdebug.errors import GuestFault
from rdebug.machine.cpu import CR0_PE, EFLAGS_IF, EFLAGS_TF, EFLAGS_VM, Cpu

#: Exceptions that push an error code (#DF, #TS, #NP, #SS, #GP, #PF, #AC).
ERROR_CODE_VECTORS = frozenset({8, 10, 11, 12, 13, 14, 17})
_CONTRIBUTORY = frozenset({0, 10, 11, 12, 13})

EFLAGS_NT = 1 << 14
EFLAGS_RF = 1 << 16
EFLAGS_AC = 1 << 18

_GATE_TASK = 0x5
_GATE_INT16 = 0x6
_GATE_TRAP16 = 0x7
_GATE_INT32 = 0xE
_GATE_TRAP32 = 0xF


class Source(enum.Enum):
    """Where an interrupt comes from (it decides the DPL check and the EXT bit)."""

    EXTERNAL = "external"  # an IRQ from the interrupt controller
    SOFTWARE = "software"  # INT n, INT3, INTO: checked against the gate's DPL
    EXCEPTION = "exception"  # raised by the CPU


@dataclass(frozen=True, slots=True)
class Interrupt:
    """An interrupt or exception to deliver: its vector, source and error code."""

    vector: int
    source: Source
    error_code: int | None = None


class DeliveryFault(Exception):
    """Delivering an interrupt raised an exception of its own (internal to this module)."""

    def __init__(self, vector: int, error_code: int | None, reason: str) -> None:
        super().__init__(reason)
        self.vector = vector
        self.error_code = error_code
        self.reason = reason


def deliver(cpu: Cpu, interrupt: Interrupt) -> None:
    """Deliver `interrupt` with the CPU at the instruction boundary it belongs to.

    A fault raised while delivering becomes the next exception to deliver; a fault while
    delivering a double fault is a triple fault (`GuestFault`: the machine shuts down).
    """
    current = interrupt
    for _attempt in range(3):
        try:
            _deliver_once(cpu, current)
            return
        except DeliveryFault as fault:
            if current.vector == 8:
                break
            first_bad = current.vector in _CONTRIBUTORY or current.vector == 14
            if (
                current.source is Source.EXCEPTION
                and first_bad
                and (fault.vector in _CONTRIBUTORY or fault.vector == 14)
            ):
                current = Interrupt(8, Source.EXCEPTION, 0)
            else:
                current = Interrupt(fault.vector, Source.EXCEPTION, fault.error_code)
            last_reason = fault.reason
    raise GuestFault(f"triple fault (delivering vector {interrupt.vector}: {last_reason})")


def _deliver_once(cpu: Cpu, interrupt: Interrupt) -> None:
    if cpu.vtlb.deliver(
        interrupt.vector, interrupt.source is Source.SOFTWARE, interrupt.error_code
    ):
        return  # the common case, done natively exactly as _deliver_protected does it
    if not cpu.read("cr0") & CR0_PE:
        _deliver_real(cpu, interrupt)
    elif cpu.read("eflags") & EFLAGS_VM:
        raise GuestFault("interrupts in virtual-8086 mode are not supported")
    else:
        _deliver_protected(cpu, interrupt)


def _deliver_real(cpu: Cpu, interrupt: Interrupt) -> None:
    """Real mode: FLAGS, CS, IP pushed as words; CS:IP from the IVT at 0."""
    vector = interrupt.vector
    idtr = cpu.table_register("idtr")
    if vector * 4 + 3 > idtr.limit:
        raise DeliveryFault(13, 0, f"vector {vector} is beyond the IVT limit")
    ip, cs = struct.unpack("<HH", cpu.read_physical(idtr.base + vector * 4, 4))
    eflags = cpu.read("eflags")
    frame = struct.pack("<HHH", cpu.eip & 0xFFFF, cpu.read("cs"), eflags & 0xFFFF)
    esp = cpu.read("esp")
    sp = (esp - 6) & 0xFFFF
    ss_base = cpu.read("ss") << 4
    for i in range(6):  # the stack wraps within its 64 KiB segment
        cpu.write_physical(ss_base + ((sp + i) & 0xFFFF), frame[i : i + 1])
    cpu.write("esp", (esp & 0xFFFF0000) | sp)
    cpu.write("eflags", eflags & ~(EFLAGS_IF | EFLAGS_TF | EFLAGS_AC))
    cpu.write("cs", cs)
    cpu.eip = ip


def _deliver_protected(cpu: Cpu, interrupt: Interrupt) -> None:
    vector = interrupt.vector
    ext = 0 if interrupt.source is Source.SOFTWARE else 1
    gate_error = vector * 8 + 2 + ext
    idtr = cpu.table_register("idtr")
    if vector * 8 + 7 > idtr.limit:
        raise DeliveryFault(13, gate_error, f"vector {vector} is beyond the IDT limit")
    raw = cpu.read_linear(idtr.base + vector * 8, 8)
    if raw is None:
        raise DeliveryFault(14, 0, f"the IDT entry of vector {vector} is not mapped")
    lo, hi = struct.unpack("<II", raw)
    gate_type = (hi >> 8) & 0x1F
    gate_dpl = (hi >> 13) & 3
    cpl = cpu.cpl()
    if gate_type == _GATE_TASK:
        raise GuestFault(f"task gates are not supported (vector {vector})")
    if gate_type not in (_GATE_INT16, _GATE_TRAP16, _GATE_INT32, _GATE_TRAP32):
        raise DeliveryFault(13, gate_error, f"vector {vector} has gate type {gate_type:#x}")
    if interrupt.source is Source.SOFTWARE and gate_dpl < cpl:
        raise DeliveryFault(
            13, gate_error, f"INT {vector:#x} from ring {cpl} hits a DPL-{gate_dpl} gate"
        )
    if not hi & (1 << 15):
        raise DeliveryFault(11, gate_error, f"the gate of vector {vector} is not present")
    selector = lo >> 16
    offset = (lo & 0xFFFF) | (hi & 0xFFFF0000)
    wide = gate_type in (_GATE_INT32, _GATE_TRAP32)
    if not wide:
        offset &= 0xFFFF
    desc = cpu.segment_descriptor(selector)
    if desc is None or selector & 0xFFFC == 0:
        raise DeliveryFault(13, (selector & 0xFFFC) + ext, f"bad handler selector {selector:#x}")
    access = desc[2] & 0xFF
    if access & 0x18 != 0x18:  # must be a code segment
        raise DeliveryFault(13, (selector & 0xFFFC) + ext, f"selector {selector:#x} is not code")
    if not access & 0x80:
        raise DeliveryFault(11, (selector & 0xFFFC) + ext, f"code segment {selector:#x} absent")
    conforming = bool(access & 0x04)
    new_cpl = cpl if conforming else (access >> 5) & 3
    if new_cpl > cpl:
        raise DeliveryFault(13, (selector & 0xFFFC) + ext, "handler is less privileged")

    eflags = cpu.read("eflags")
    old_cs = cpu.read("cs")
    old_ss = cpu.read("ss")
    old_esp = cpu.read("esp")
    words: list[int] = []
    if new_cpl < cpl:
        new_ss, new_esp = _tss_stack(cpu, new_cpl)
        words += [old_ss, old_esp]
        stack_base = _segment_base(cpu, new_ss)
    else:
        new_ss, new_esp = old_ss, old_esp
        stack_base = _segment_base(cpu, old_ss)
    words += [eflags, old_cs, cpu.eip]
    if interrupt.error_code is not None:
        words.append(interrupt.error_code)
    unit = 4 if wide else 2
    frame = b"".join(
        (w & (0xFFFFFFFF if wide else 0xFFFF)).to_bytes(unit, "little") for w in reversed(words)
    )
    new_esp = (new_esp - len(frame)) & 0xFFFFFFFF
    if not cpu.write_linear(stack_base + new_esp, frame):
        raise DeliveryFault(
            14, 0, f"the interrupt stack at {stack_base + new_esp:#x} is not mapped"
        )

    if new_cpl < cpl:
        _load_ring0_stack(cpu, new_ss)
    cpu.write("cs", (selector & 0xFFFC) | new_cpl)
    cpu.write("esp", new_esp)
    cleared = EFLAGS_TF | EFLAGS_NT | EFLAGS_RF | EFLAGS_VM
    if gate_type in (_GATE_INT16, _GATE_INT32):
        cleared |= EFLAGS_IF
    cpu.write("eflags", eflags & ~cleared)
    cpu.eip = offset


def _tss_stack(cpu: Cpu, ring: int) -> tuple[int, int]:
    tr = cpu.table_register("tr")
    if tr.limit < 8 * ring + 9:
        raise DeliveryFault(10, tr.selector & 0xFFFC, "the TSS has no ring-0 stack")
    raw = cpu.read_linear(tr.base + 4 + 8 * ring, 8)
    if raw is None:
        raise DeliveryFault(14, 0, "the TSS is not mapped")
    esp, ss = struct.unpack("<II", raw)
    return ss & 0xFFFF, esp


def _segment_base(cpu: Cpu, selector: int) -> int:
    desc = cpu.segment_descriptor(selector)
    return 0 if desc is None else desc[0]


def _load_ring0_stack(cpu: Cpu, ss: int) -> None:
    """Load a ring-0 SS while the CPU still runs at ring 3.

    Unicorn refuses a ring-0 SS at CPL 3.  With CR0.PE clear, a segment load sets CPL to
    0 (real-mode rules); with PE set again, SS and CS load from the GDT as usual.
    """
    cr0 = cpu.read("cr0")
    cpu.write("cr0", cr0 & ~CR0_PE)
    cpu.write("ss", 0)
    cpu.write("cr0", cr0)
    cpu.write("ss", ss)


_INT_OPCODES = {0xCC: 3, 0xCE: 4, 0xF1: 1}


def is_int_instruction(cpu: Cpu, addr: int, vector: int) -> bool:
    """Is the instruction at linear `addr` an INT n / INT3 / INTO / INT1 raising `vector`?"""
    raw = cpu.read_linear(addr, 2)
    if raw is None:
        return False
    if raw[0] == 0xCD:
        return raw[1] == vector
    return _INT_OPCODES.get(raw[0]) == vector

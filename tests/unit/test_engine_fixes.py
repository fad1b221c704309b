"""Engine behaviours a stock Linux kernel hit (issue 14), each on a tiny flat guest.

- CR2 after an engine stop: unicorn's `emu_start` translates its `until` address when it
  returns, and an unmapped one set CR2 like a page fault; a page-fault handler that
  ran after the engine restarted read 0xffffffff.
- Open bus: reads of physical memory with nothing behind it give all-ones, writes vanish
  (Linux's early microcode loader reads beyond RAM before paging is on).
"""

from __future__ import annotations

import struct

from rdebug.host.sources import LiveInputs
from rdebug.machine.cpu import CR0_PG, CR4_PSE, TableRegister
from rdebug.machine.loader import ImageFormat, parse_image
from rdebug.machine.machine import Machine, MachineConfig, StopReason
from tests.conftest import COUNTERS

BASE = 0x100000
HANDLER = BASE + 0x20
PAGE_DIR = 0x200000
IDT = 0x201000
FAULT_ADDR = 0x800000  # beyond the one 4 MiB page mapped


def _paging_guest(counter: str) -> Machine:
    code = bytearray(0x40)
    code[0:5] = bytes.fromhex("a1") + struct.pack("<I", FAULT_ADDR)  # mov eax, [FAULT_ADDR]
    # handler: 4 nops; mov ebx, cr2; cli; hlt
    code[0x20:0x29] = bytes.fromhex("90909090 0f20d3 fa f4")
    machine = Machine(MachineConfig(memory_mb=16), LiveInputs(), [], counter=COUNTERS[counter])
    machine.load(parse_image(bytes(code), "pf", ImageFormat.FLAT, load_address=BASE))
    cpu = machine.cpu
    cpu.write_physical(PAGE_DIR, struct.pack("<I", 0x83))  # 0-4 MiB, 4 MiB page, RW
    gate = struct.pack("<HHBBH", HANDLER & 0xFFFF, 0x08, 0, 0x8E, HANDLER >> 16)
    cpu.write_physical(IDT + 14 * 8, gate)
    cpu.set_table_register("idtr", TableRegister(0, IDT, 256 * 8 - 1, 0))
    cpu.write("cr3", PAGE_DIR)
    cpu.write("cr4", cpu.read("cr4") | CR4_PSE)
    cpu.write("cr0", cpu.read("cr0") | CR0_PG)
    machine.counter.invalidate()
    return machine


def test_cr2_survives_an_engine_stop_between_the_fault_and_its_handler() -> None:
    for counter in ("native", "reference"):
        machine = _paging_guest(counter)
        try:
            stop = machine.run(2)  # the fault, then two of the handler's nops
            assert stop.reason is StopReason.TARGET
            assert machine.cpu.eip == HANDLER + 2
            assert machine.cpu.read("cr2") == FAULT_ADDR
            stop = machine.run()  # the engine restarts; the handler reads CR2
            assert stop.reason is StopReason.HALTED, stop
            assert machine.cpu.read("ebx") == FAULT_ADDR
        finally:
            machine.close()


def test_reads_of_nothing_are_all_ones_and_writes_vanish() -> None:
    # mov eax, [0xc1e6a6e0] (where Linux's microcode loader reads, beyond RAM);
    # mov dword [0xfe000000], 5 (below the APICs: nothing); mov ebx, [0xfe000000];
    # mov cx, [0xfffffffe] (the last word of the address space); cli; hlt
    code = bytes.fromhex("a1 e0a6e6c1 c705 000000fe 05000000 8b1d 000000fe 668b0d feffffff fa f4")
    machine = Machine(MachineConfig(memory_mb=16), LiveInputs(), [])
    try:
        machine.load(parse_image(code, "open-bus", ImageFormat.FLAT, load_address=BASE))
        stop = machine.run()
        assert stop.reason is StopReason.HALTED, stop
        regs = machine.cpu.registers()
        assert (regs["eax"], regs["ebx"], regs["ecx"] & 0xFFFF) == (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFF)
    finally:
        machine.close()


def test_cmpxchg8b_after_an_add_leaves_the_control_flags_alone() -> None:
    # Unicorn 2.1.4 calls CMPXCHG8B's helper without storing the block's current flags
    # operation; after a CMPXCHG8B that ran before (the stored operation: "the flags are
    # CC_SRC") and an ADD (CC_SRC: its operand), the flags became the operand: here IF,
    # DF and bits 16-31 from ESI.  Linux's SLUB retry loop is this code (issue 14).
    data = BASE + 0x800
    cx8 = bytes.fromhex("0fc70d") + struct.pack("<I", data)  # cmpxchg8b [data]
    code = (
        bytes.fromhex("fa bc 00009000 be 40be99c1 31c0 31d2 31db 31c9")  # cli; esp; esi
        + cx8
        + bytes.fromhex("eb00")  # jmp $+2: the block ends, "flags are CC_SRC" is stored
        + bytes.fromhex("01f3")  # add ebx, esi: CC_SRC = esi
        + cx8  # compares 0:0 with 0:0 (equal: ZF) and stores ecx:ebx
        + bytes.fromhex("9c 5f f4")  # pushfd; pop edi; hlt
    )
    for counter in ("native", "reference"):
        machine = Machine(MachineConfig(memory_mb=16), LiveInputs(), [], counter=COUNTERS[counter])
        try:
            machine.load(parse_image(code, "cx8", ImageFormat.FLAT, load_address=BASE))
            stop = machine.run()
            assert stop.reason is StopReason.HALTED, stop
            pushed, eflags = machine.cpu.read("edi"), machine.cpu.read("eflags")
            arithmetic = 0x8D5  # OF SF ZF AF PF CF
            assert (pushed & ~arithmetic, eflags & ~arithmetic) == (0x2, 0x2), (
                counter,
                hex(pushed),
                hex(eflags),
            )
            assert pushed & 0x40 and eflags & 0x40  # ZF: the compare matched
            assert machine.cpu.read_physical(data, 8) == struct.pack("<II", 0xC199BE40, 0)
        finally:
            machine.close()

"""The native counter's C shortcuts against the Python code they stand in for.

- `read_block` (`rd_block_code`): a new block's code, CS base and size, and code pages
  in one call, against `Cpu.read_linear`, `cs_base`, `code_is_32bit` and
  `linear_to_physical`, in real mode, flat and based 32-bit and 16-bit code segments,
  and through page tables (a block across two pages mapped apart, an unmapped page, PAE).
- RDTSC and RDTSCP answered in C (`rd_rdtsc_hook`), against the reference counter's
  Python hooks and the value virtual time gives at the reading instruction, after I/O
  instructions in the same block, and in a block with more I/O instructions than the C
  table keeps (left to the Python hook).
"""

from __future__ import annotations

import struct

import pytest

from rdebug.errors import MachineError
from rdebug.host.sources import LiveInputs
from rdebug.machine.cpu import CR0_PE, CR0_PG, CR4_PAE, TableRegister
from rdebug.machine.loader import ImageFormat, parse_image
from rdebug.machine.machine import Machine, MachineConfig, StopReason
from rdebug.machine.native_counter import NativeCounter
from tests.conftest import COUNTERS

BASE = 0x100000
GDT = 0x3000
PAGE_DIR = 0x200000
PAGE_TABLE = 0x201000


def _machine(code: bytes, counter: str = "native") -> Machine:
    machine = Machine(MachineConfig(memory_mb=16), LiveInputs(), [], counter=COUNTERS[counter])
    machine.load(parse_image(code, "snippet", ImageFormat.FLAT, load_address=BASE))
    return machine


def _reference(machine: Machine, addr: int, size: int) -> tuple[object, ...]:
    cpu = machine.cpu
    code = cpu.read_linear(addr, size)
    pages = tuple(
        p >> 12
        for p in (cpu.linear_to_physical(addr), cpu.linear_to_physical(addr + size - 1))
        if p is not None
    )
    return code, cpu.cs_base(), cpu.code_is_32bit(), pages


def _native(machine: Machine, addr: int, size: int) -> tuple[object, ...]:
    counter = machine.counter
    assert isinstance(counter, NativeCounter)
    return counter.read_block(addr, size)


def _descriptor(base: int, limit: int, access: int, flags: int) -> bytes:
    lo = (limit & 0xFFFF) | ((base & 0xFFFF) << 16)
    hi = ((base >> 16) & 0xFF) | (access << 8) | (limit & 0xF0000) | (flags << 20)
    hi |= base & 0xFF000000
    return struct.pack("<II", lo, hi)


def test_block_code_matches_the_python_reads_in_every_code_segment() -> None:
    code = bytes(range(1, 200))
    machine = _machine(code)
    cpu = machine.cpu
    try:
        assert _native(machine, BASE + 3, 40) == _reference(machine, BASE + 3, 40)
        # a GDT of our own: 0x08 flat 32-bit code, 0x10 data, 0x18 32-bit code based at
        # 0x1000, 0x20 16-bit code based at 0x2000
        gdt = b"".join(
            (
                bytes(8),
                _descriptor(0, 0xFFFFF, 0x9A, 0xC),
                _descriptor(0, 0xFFFFF, 0x92, 0xC),
                _descriptor(0x1000, 0xFFFFF, 0x9A, 0xC),
                _descriptor(0x2000, 0xFFFF, 0x9A, 0x0),
            )
        )
        cpu.write_physical(GDT, gdt)
        cpu.set_table_register("gdtr", TableRegister(0, GDT, len(gdt) - 1, 0))
        for selector, base, code32 in ((0x18, 0x1000, True), (0x20, 0x2000, False)):
            cpu.write("cs", selector)
            native = _native(machine, BASE + 8, 30)
            assert native == _reference(machine, BASE + 8, 30)
            assert native[1:3] == (base, code32)
        # a selector past the GDT's limit: base 0, 32-bit (as the Python reads say)
        cpu.set_table_register("gdtr", TableRegister(0, GDT, 0x1F, 0))
        assert _native(machine, BASE, 8) == _reference(machine, BASE, 8)
        # real mode: selector << 4, 16-bit
        cpu.write("cr0", cpu.read("cr0") & ~CR0_PE)
        native = _native(machine, BASE + 1, 5)
        assert native == _reference(machine, BASE + 1, 5)
        assert native[2] is False
    finally:
        machine.close()


def test_block_code_walks_the_page_tables_as_the_python_walk_does() -> None:
    machine = _machine(bytes(range(256)) * 32)
    cpu = machine.cpu
    try:
        # linear 0x400000-0x401fff -> physical BASE+0x1000 and BASE (swapped pages)
        cpu.write_physical(PAGE_DIR, struct.pack("<I", 0x83))  # 0-4 MiB identity, 4 MiB
        cpu.write_physical(PAGE_DIR + 4, struct.pack("<I", PAGE_TABLE | 3))
        cpu.write_physical(PAGE_TABLE, struct.pack("<II", (BASE + 0x1000) | 3, BASE | 3))
        cpu.write("cr3", PAGE_DIR)
        cpu.write("cr4", cpu.read("cr4") | 0x10)  # PSE
        cpu.write("cr0", cpu.read("cr0") | CR0_PG)
        native = _native(machine, 0x400FF0, 0x20)
        assert native == _reference(machine, 0x400FF0, 0x20)
        assert native[3] == ((BASE + 0x1000) >> 12, BASE >> 12)
        with pytest.raises(MachineError, match="cannot read the code"):
            _native(machine, 0x401FF8, 0x10)  # runs into the unmapped 0x402000
        cpu.write("cr4", cpu.read("cr4") | CR4_PAE)
        with pytest.raises(MachineError, match="PAE"):
            _native(machine, 0x400FF0, 0x20)
    finally:
        machine.close()


# mov al, 1; out 0x80, al; rdtsc; mov ebx, eax; mov esi, edx; rdtscp; mov edi, eax;
# cli; hlt  -- RDTSC is instruction 2 and RDTSCP instruction 5 of the one block
_TSC_CODE = bytes.fromhex("b001 e680 0f31 89c3 89d6 0f01f9 89c7 fa f4")


@pytest.mark.parametrize("counter", ["native", "reference"])
def test_rdtsc_reads_virtual_time_at_its_instruction(counter: str) -> None:
    machine = _machine(_TSC_CODE, counter)
    try:
        machine.cpu.write("ecx", 0x1234)
        stop = machine.run()
        assert stop.reason is StopReason.HALTED, stop
        regs = machine.cpu.registers()
        shift = MachineConfig().icount_shift
        assert (regs["ebx"], regs["esi"]) == (2 << shift, 0)
        assert (regs["edi"], regs["edx"], regs["ecx"]) == (5 << shift, 0, 0)
        if counter == "native":
            assert machine._cpuid_tsc.native_reads == 2  # neither went to Python
    finally:
        machine.close()


def test_a_block_with_more_io_than_the_c_table_keeps_reads_the_tsc_in_python() -> None:
    # twelve `out 0x80, al`, then rdtsc; mov ebx, eax; cli; hlt
    code = bytes.fromhex("b001") + bytes.fromhex("e680") * 12 + bytes.fromhex("0f31 89c3 fa f4")
    values = []
    for counter in ("native", "reference"):
        machine = _machine(code, counter)
        try:
            stop = machine.run()
            assert stop.reason is StopReason.HALTED, stop
            values.append(machine.cpu.read("ebx"))
            if counter == "native":
                assert machine._cpuid_tsc.native_reads == 0
        finally:
            machine.close()
    assert values == [13 << MachineConfig().icount_shift] * 2


def test_general_registers_read_in_one_call_are_the_bindings_values() -> None:
    """Cpu.general_registers (one uc_reg_read_batch through ctypes) against the binding's
    reg_read of each register (the segment selectors as reset, zero: a narrow register
    fills only the low bytes of its value)."""
    import random  # noqa: PLC0415

    from rdebug.machine.cpu import GENERAL_REGISTERS, Cpu  # noqa: PLC0415

    rng = random.Random(16)
    cpu = Cpu(8)
    try:
        for _ in range(20):
            for name, regid in GENERAL_REGISTERS:
                if name in ("cs", "ss", "ds", "es", "fs", "gs"):
                    continue  # (a selector load checks the descriptor table: left as is)
                if name == "eflags":
                    value = rng.choice([0x2, 0x202, 0x246])
                else:
                    value = rng.choice([0, 0xFFFFFFFF, rng.getrandbits(32)])
                cpu.uc.reg_write(regid, value)
            expected = {name: int(cpu.uc.reg_read(regid)) for name, regid in GENERAL_REGISTERS}
            assert cpu.general_registers() == expected
            assert list(cpu.general_registers()) == [name for name, _ in GENERAL_REGISTERS]
    finally:
        cpu.close()

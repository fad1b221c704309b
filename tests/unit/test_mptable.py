"""The MP tables, found and parsed the way a kernel does (xv6's mp.c order: the EBDA,
the top of base memory, the BIOS ROM), from a machine's RAM after loading a guest."""

from __future__ import annotations

import struct

from rdebug.host.sources import LiveInputs
from rdebug.machine.devices.ioapic import IOAPIC_BASE, IOAPIC_ID
from rdebug.machine.devices.lapic import LAPIC_BASE
from rdebug.machine.loader import load_image
from rdebug.machine.machine import Machine, MachineConfig
from rdebug.machine.mptable import floating_pointer, mp_tables
from tests.conftest import GUESTS


def _ram_after_load() -> bytes:
    machine = Machine(MachineConfig(memory_mb=8), LiveInputs())
    try:
        machine.load(load_image(GUESTS / "hello.elf"))
        return bytes(machine.cpu.ram[:0x100000])
    finally:
        machine.close()


def _search(ram: bytes, start: int, length: int) -> int | None:
    for addr in range(start, start + length, 16):
        if ram[addr : addr + 4] == b"_MP_" and sum(ram[addr : addr + 16]) % 256 == 0:
            return addr
    return None


def _find(ram: bytes) -> int | None:
    ebda = struct.unpack_from("<H", ram, 0x40E)[0] << 4
    if ebda:
        return _search(ram, ebda, 1024)
    base_kib = struct.unpack_from("<H", ram, 0x413)[0]
    return _search(ram, base_kib * 1024 - 1024, 1024) or _search(ram, 0xF0000, 0x10000)


def test_bda_points_at_the_ebda_that_holds_the_floating_pointer() -> None:
    ram = _ram_after_load()
    assert struct.unpack_from("<H", ram, 0x413)[0] == 639
    assert struct.unpack_from("<H", ram, 0x40E)[0] == 0x9FC0
    assert _find(ram) == 0x9FC00
    assert _search(ram, 0xF0000, 0x10000) is not None  # the ROM copy


def test_config_table_describes_this_machine() -> None:
    ram = _ram_after_load()
    mp = _find(ram)
    assert mp is not None
    config, length, spec_rev, _cks, features1 = struct.unpack_from("<IBBBB", ram, mp + 4)
    assert (length, spec_rev, features1) == (1, 4, 0)
    assert ram[config : config + 4] == b"PCMP"
    size, version = struct.unpack_from("<HB", ram, config + 4)
    assert version in (1, 4)
    assert sum(ram[config : config + size]) % 256 == 0
    count, lapic = struct.unpack_from("<HI", ram, config + 34)
    assert lapic == LAPIC_BASE
    cpus, buses, ioapics, irqs, lints = [], [], [], {}, {}
    p = config + 44
    for _ in range(count):
        kind = ram[p]
        if kind == 0:
            cpus.append((ram[p + 1], ram[p + 3]))
            p += 20
            continue
        if kind == 1:
            buses.append(ram[p + 2 : p + 8])
        elif kind == 2:
            ioapics.append((ram[p + 1], ram[p + 3], struct.unpack_from("<I", ram, p + 4)[0]))
        elif kind == 3:
            irqs[(ram[p + 1], ram[p + 5])] = (ram[p + 6], ram[p + 7])
        elif kind == 4:
            lints[ram[p + 1]] = ram[p + 7]
        else:
            raise AssertionError(f"unknown entry type {kind}")
        p += 8
    assert p == config + size
    assert cpus == [(0, 0x03)]  # APIC id 0, enabled bootstrap processor
    assert buses == [b"ISA   "]
    assert ioapics == [(IOAPIC_ID, 1, IOAPIC_BASE)]
    assert irqs[(0, 0)] == (IOAPIC_ID, 2)  # IRQ0 (the PIT) on pin 2
    assert irqs[(3, 0)] == (IOAPIC_ID, 0)  # the 8259 as ExtINT on pin 0
    for irq in (1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15):
        assert irqs[(0, irq)] == (IOAPIC_ID, irq)
    assert lints == {3: 0, 1: 1}  # ExtINT -> LINT0, NMI -> LINT1


def test_tables_fit_where_the_memory_map_reserves() -> None:
    for addr, data in mp_tables():
        in_ebda = 0x9FC00 <= addr < addr + len(data) <= 0xA0000
        assert in_ebda or 0xF0000 <= addr < addr + len(data) <= 0x100000
    assert len(floating_pointer()) == 16

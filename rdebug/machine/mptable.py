"""The Intel MultiProcessor tables a BIOS leaves for the kernel (MP spec 1.4).

Owns their layout: an MP floating pointer structure ("_MP_") in the first KiB of the
EBDA and a copy in the BIOS ROM area (0xF0000-0xFFFFF), both pointing at one MP
configuration table ("PCMP") that describes this machine: one processor (APIC id 0, the
BSP), one ISA bus, the IOAPIC, the ISA interrupt routing (IRQ0 -> pin 2 as the IOAPIC
wires it, the 8259 as ExtINT on pin 0) and the local interrupts (ExtINT on LINT0, NMI on
LINT1).  Pure data: `Machine.load` writes it into RAM, the loader's memory map marks the
areas reserved.  Knows nothing of unicorn.

Reference: Intel MultiProcessor Specification 1.4, chapter 4.
"""

from __future__ import annotations

import struct

from rdebug.machine.devices.ioapic import IOAPIC_BASE, IOAPIC_ID, IOAPIC_VERSION, isa_pin
from rdebug.machine.devices.lapic import LAPIC_BASE, LAPIC_VERSION

#: The EBDA (segment 0x9FC0, the last KiB below 640 KiB) starts with the floating pointer.
EBDA_ADDR = 0x9FC00
MP_FLOATING_ADDR = EBDA_ADDR
MP_CONFIG_ADDR = EBDA_ADDR + 0x10
#: The copy for kernels that only search the BIOS ROM.
MP_FLOATING_ROM_ADDR = 0xF5A00

SPEC_REV = 4  # MP spec 1.4
CPU_SIGNATURE = 0x00000633  # family 6 model 3 stepping 3 (what CPUID leaf 1 reports)
CPU_FEATURES = 0x07808B3F  # CPUID leaf 1 EDX (machine.cpuid)

ENTRY_PROCESSOR = 0
ENTRY_BUS = 1
ENTRY_IOAPIC = 2
ENTRY_IO_INTERRUPT = 3
ENTRY_LOCAL_INTERRUPT = 4
INT_TYPE_INT = 0
INT_TYPE_NMI = 1
INT_TYPE_EXTINT = 3


def _checksummed(data: bytes, at: int) -> bytes:
    """`data` with the byte at `at` set so that all bytes sum to 0 (mod 256)."""
    out = bytearray(data)
    out[at] = (-sum(out)) & 0xFF
    return bytes(out)


def config_table() -> bytes:
    """The MP configuration table (header + entries), checksummed."""
    entries = [
        struct.pack(
            "<BBBBIIQ",
            ENTRY_PROCESSOR,
            0,  # local APIC id
            LAPIC_VERSION & 0xFF,
            0x03,  # enabled, bootstrap processor
            CPU_SIGNATURE,
            CPU_FEATURES,
            0,
        ),
        struct.pack("<BB6s", ENTRY_BUS, 0, b"ISA   "),
        struct.pack("<BBBBI", ENTRY_IOAPIC, IOAPIC_ID, IOAPIC_VERSION & 0xFF, 0x01, IOAPIC_BASE),
        # The 8259's INTR on pin 0 (virtual wire through the IOAPIC).
        struct.pack("<BBHBBBB", ENTRY_IO_INTERRUPT, INT_TYPE_EXTINT, 0, 0, 0, IOAPIC_ID, 0),
    ]
    for irq in range(16):
        if irq == 2:
            continue  # the 8259 cascade: no ISA interrupt of its own
        entries.append(
            struct.pack(
                "<BBHBBBB", ENTRY_IO_INTERRUPT, INT_TYPE_INT, 0, 0, irq, IOAPIC_ID, isa_pin(irq)
            )
        )
    for int_type, lint in ((INT_TYPE_EXTINT, 0), (INT_TYPE_NMI, 1)):
        entries.append(
            struct.pack("<BBHBBBB", ENTRY_LOCAL_INTERRUPT, int_type, 0, 0, 0, 0xFF, lint)
        )
    body = b"".join(entries)
    header = struct.pack(
        "<4sHBB8s12sIHHIHBB",
        b"PCMP",
        44 + len(body),
        SPEC_REV,
        0,  # checksum
        b"RDEBUG  ",
        b"RDEBUG PC   ",
        0,  # no OEM table
        0,
        len(entries),
        LAPIC_BASE,
        0,  # no extended entries
        0,
        0,
    )
    return _checksummed(header + body, 7)


def floating_pointer(config_addr: int = MP_CONFIG_ADDR) -> bytes:
    """The 16-byte MP floating pointer structure (feature byte 1 = 0: a table exists)."""
    data = struct.pack("<4sIBBBBBBBB", b"_MP_", config_addr, 1, SPEC_REV, 0, 0, 0, 0, 0, 0)
    return _checksummed(data, 10)


def mp_tables() -> list[tuple[int, bytes]]:
    """(physical address, bytes) of the floating pointers and the configuration table."""
    table = config_table()
    if MP_CONFIG_ADDR + len(table) > EBDA_ADDR + 1024:
        raise AssertionError("the MP configuration table does not fit in the EBDA")
    return [
        (MP_FLOATING_ADDR, floating_pointer()),
        (MP_CONFIG_ADDR, table),
        (MP_FLOATING_ROM_ADDR, floating_pointer()),
    ]

"""Minimal ACPI tables: RSDP, RSDT, FADT, FACS, MADT and a small DSDT.

Enough for an ACPI operating system (Linux) to power the machine off (`poweroff`: the
sleep type of `_S5` written to PM1a_CNT with SLP_EN) and to reset it (`reboot`: the
FADT's reset register, port 0xCF9 <- 0x06), and to use the ACPI PM timer.  The fixed
hardware they describe is `devices/acpi_pm.py`.  The MADT describes the interrupt
controllers as the MP table does (an OS that finds ACPI ignores the MP table): the LAPIC,
the IOAPIC and the ISA interrupt overrides (IRQ0 on pin 2).  The DSDT names `_S5` and
the PCI root bridge (PNP0A03, bus 0: devices/pci.py), through which an ACPI OS finds the
PCI bus.

The tables live in the BIOS area (the RSDP on a 16-byte boundary in 0xE0000-0xFFFFF, where
an OS searches for it); the boot loader reserves that area in the e820 map.

Reference: ACPI specification 6.x, chapters 5.2 (tables) and 4.8 (fixed hardware), 20
(AML encoding of `Name` and `Package`).
"""

from __future__ import annotations

import struct

from rdebug.machine.devices.acpi_pm import (
    PM1A_CNT,
    PM1A_EVT,
    PM_TMR,
    RESET_PORT,
    RESET_VALUE,
    SCI_IRQ,
    SLP_TYP_S5,
)
from rdebug.machine.devices.ioapic import IOAPIC_BASE, IOAPIC_ID, ISA_OVERRIDES
from rdebug.machine.devices.lapic import LAPIC_BASE

RSDP_ADDR = 0xE0000
RSDT_ADDR = 0xE0040
FADT_ADDR = 0xE0080
FACS_ADDR = 0xE0200  # 64-byte aligned
DSDT_ADDR = 0xE0280
MADT_ADDR = 0xE0400

OEM_ID = b"RDEBUG"
OEM_TABLE_ID = b"RDEBUGPC"
FADT_REVISION = 3
FADT_LENGTH = 244

#: FADT flags: WBINVD works, C1 supported (HLT), the power button is a control method
#: (there is none), the RTC wake status is not in PM1, the reset register is supported.
_FADT_FLAGS = (1 << 0) | (1 << 2) | (1 << 4) | (1 << 5) | (1 << 10)


def _checksum(data: bytearray, at: int) -> None:
    data[at] = 0
    data[at] = (-sum(data)) & 0xFF


def _header(signature: bytes, length: int, revision: int) -> bytearray:
    table = bytearray(length)
    struct.pack_into(
        "<4sIBB6s8sI4sI",
        table,
        0,
        signature,
        length,
        revision,
        0,
        OEM_ID,
        OEM_TABLE_ID,
        1,
        b"RDBG",
        1,
    )
    return table


def _gas_io(port: int, bits: int) -> bytes:
    """A Generic Address Structure for an I/O port."""
    return struct.pack("<BBBBQ", 1, bits, 0, {8: 1, 16: 2, 32: 3}[bits], port)


def rsdp() -> bytes:
    """ACPI 1.0 RSDP (revision 0): 20 bytes, pointing at the RSDT."""
    data = bytearray(struct.pack("<8sB6sBI", b"RSD PTR ", 0, OEM_ID, 0, RSDT_ADDR))
    _checksum(data, 8)
    return bytes(data)


def rsdt() -> bytes:
    table = _header(b"RSDT", 36 + 8, 1)
    struct.pack_into("<II", table, 36, FADT_ADDR, MADT_ADDR)
    _checksum(table, 9)
    return bytes(table)


def facs() -> bytes:
    table = bytearray(64)
    struct.pack_into("<4sIIIII", table, 0, b"FACS", 64, 0, 0, 0, 0)
    table[32] = 1  # version
    return bytes(table)


def _pkg(body: bytes) -> bytes:
    """An AML PkgLength (one byte: bodies under 63 bytes) followed by the body."""
    assert len(body) + 1 < 64
    return bytes([len(body) + 1]) + body


def dsdt() -> bytes:
    """A DSDT of two objects:

    Name (_S5, Package () { 5, 5, 0, 0 })
    Scope (\\_SB) { Device (PCI0) { Name (_HID, EisaId ("PNP0A03")) Name (_UID, 0) } }
    """
    package = bytes([0x04, 0x0A, SLP_TYP_S5, 0x0A, SLP_TYP_S5, 0x00, 0x00])  # 4 elements
    s5 = b"\x08_S5_\x12" + _pkg(package)  # NameOp, PackageOp
    pnp0a03 = struct.pack("<I", 0x030AD041)  # EisaId ("PNP0A03")
    device = b"PCI0" + b"\x08_HID\x0c" + pnp0a03 + b"\x08_UID\x00"
    scope = b"\x10" + _pkg(b"\\_SB_" + b"\x5b\x82" + _pkg(device))  # ScopeOp, DeviceOp
    aml = s5 + scope
    table = _header(b"DSDT", 36 + len(aml), 1)
    table[36:] = aml
    _checksum(table, 9)
    return bytes(table)


def fadt() -> bytes:
    table = _header(b"FACP", FADT_LENGTH, FADT_REVISION)
    # FIRMWARE_CTRL stays 0: X_FIRMWARE_CTRL gives the FACS (ACPI 2.0+ wants one of them)
    struct.pack_into("<II", table, 36, 0, DSDT_ADDR)
    table[45] = 0  # preferred PM profile: unspecified
    struct.pack_into("<H", table, 46, SCI_IRQ)
    struct.pack_into("<I", table, 48, 0)  # SMI_CMD 0: ACPI mode is always on
    struct.pack_into("<III", table, 56, PM1A_EVT, 0, PM1A_CNT)  # PM1a_EVT, PM1b_EVT, PM1a_CNT
    struct.pack_into("<I", table, 76, PM_TMR)
    table[88] = 4  # PM1_EVT_LEN
    table[89] = 2  # PM1_CNT_LEN
    table[91] = 4  # PM_TMR_LEN
    struct.pack_into("<HH", table, 96, 0xFFFF, 0xFFFF)  # P_LVL2/3_LAT: no C2/C3
    table[108] = 0x32  # CENTURY: the CMOS century register
    struct.pack_into("<H", table, 109, 0x0003)  # IAPC_BOOT_ARCH: legacy devices, an 8042
    struct.pack_into("<I", table, 112, _FADT_FLAGS)
    table[116:128] = _gas_io(RESET_PORT, 8)
    table[128] = RESET_VALUE
    struct.pack_into("<QQ", table, 132, FACS_ADDR, DSDT_ADDR)  # X_FIRMWARE_CTRL, X_DSDT
    table[148:160] = _gas_io(PM1A_EVT, 32)
    table[172:184] = _gas_io(PM1A_CNT, 16)
    table[208:220] = _gas_io(PM_TMR, 32)
    _checksum(table, 9)
    return bytes(table)


def madt() -> bytes:
    """The LAPIC (processor 0, APIC id 0), the IOAPIC (GSIs from 0) and the ISA IRQs
    that are not on their own IOAPIC pin (edge, active high, as on the ISA bus)."""
    entries = struct.pack("<BBBBI", 0, 8, 0, 0, 1)  # processor local APIC: enabled
    entries += struct.pack("<BBBBII", 1, 12, IOAPIC_ID, 0, IOAPIC_BASE, 0)
    for irq, pin in sorted(ISA_OVERRIDES.items()):
        entries += struct.pack("<BBBBIH", 2, 10, 0, irq, pin, 0)
    entries += struct.pack("<BBBHB", 4, 6, 0xFF, 0x0005, 1)  # NMI on LINT1 of every CPU
    table = _header(b"APIC", 44 + len(entries), 1)
    struct.pack_into("<II", table, 36, LAPIC_BASE, 1)  # PCAT_COMPAT: there are 8259s
    table[44:] = entries
    _checksum(table, 9)
    return bytes(table)


def acpi_tables() -> list[tuple[int, bytes]]:
    """The tables as (physical address, bytes)."""
    return [
        (RSDP_ADDR, rsdp()),
        (RSDT_ADDR, rsdt()),
        (FADT_ADDR, fadt()),
        (FACS_ADDR, facs()),
        (DSDT_ADDR, dsdt()),
        (MADT_ADDR, madt()),
    ]

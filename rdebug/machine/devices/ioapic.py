"""The I/O APIC (82093AA-style, memory-mapped at 0xFEC00000) wired to the ISA IRQ lines.

Owns the ID, version and arbitration registers, 24 redirection entries, and the routing
of ISA IRQ lines to its pins: ISA IRQ n to pin n, but IRQ0 (the PIT) to pin 2, as on
real boards and in QEMU (the MP table says so with an interrupt-source override).  Sends
each edge on an unmasked pin to the local APIC as a fixed interrupt message; knows
nothing of the CPU or the 8259 that sees the same lines.

Guest access goes through a select register (IOREGSEL at +0x00) and a data window
(IOWIN at +0x10).  Both live in a host register page like the LAPIC's (see
`Device.register_pages`): the window's content is republished after every store, so
reads cost nothing.

Edges that arrive while a pin is masked stay pending (the pin's IRR) and are delivered
when it is unmasked, as QEMU's IOAPIC does.  Level-triggered entries deliver on the
rising edge only (no remote-IRR/EOI handshake): ISA interrupts are edge-triggered.

Reference: Intel 82093AA I/O APIC datasheet (290566), section 3.
"""

from __future__ import annotations

import mmap
from collections.abc import Mapping

from rdebug.machine.debuglog import debug
from rdebug.machine.devices.base import (
    INT,
    Codec,
    Device,
    DeviceContext,
    Field,
    StateValue,
    fields,
    state_int,
)
from rdebug.machine.devices.lapic import LocalApic

IOAPIC_BASE = 0xFEC00000
#: The IOAPIC's APIC id (the MP table lists the same one); the CPU's LAPIC has id 0.
IOAPIC_ID = 1
PINS = 24
#: Version 0x11, maximum redirection entry 23.
IOAPIC_VERSION = 0x11 | ((PINS - 1) << 16)
IOREGSEL = 0x00
IOWIN = 0x10
REG_ID = 0x00
REG_VERSION = 0x01
REG_ARBITRATION = 0x02
REG_REDTBL = 0x10
#: ISA IRQ -> pin where they differ (IRQ0, the PIT, is wired to pin 2).
ISA_OVERRIDES = {0: 2}

_MASKED = 1 << 16
_LEVEL = 1 << 15
_DEST_LOGICAL = 1 << 11
#: Writable bits of a redirection entry (delivery status and remote IRR are read-only).
_ENTRY_WRITABLE = 0xFF000000_0001AFFF


def isa_pin(irq: int) -> int:
    """The IOAPIC pin ISA IRQ `irq` is wired to."""
    return ISA_OVERRIDES.get(irq, irq)


def _load_redirection(entries: StateValue) -> list[int]:
    if not isinstance(entries, list) or len(entries) != PINS:
        raise TypeError(f"an IOAPIC state needs {PINS} redirection entries")
    return [state_int(e) for e in entries]


class IoApic(Device):
    """One IOAPIC with 24 pins, one device named "ioapic"."""

    name = "ioapic"

    def __init__(self, ctx: DeviceContext, lapic: LocalApic, base: int = IOAPIC_BASE) -> None:
        super().__init__(ctx)
        self.base = base
        self.lapic = lapic
        self.page = mmap.mmap(-1, 4096)
        self.ioregsel = 0
        self.id = IOAPIC_ID
        self.redirection = [_MASKED] * PINS
        self.lines = 0  # pin levels
        self.irr = 0  # edges not yet delivered

    def reset(self) -> None:
        self.ioregsel = 0
        self.id = IOAPIC_ID
        self.redirection = [_MASKED] * PINS
        self.irr = 0  # the lines keep their levels: wires driven by the devices
        self._publish()

    # -- the ISA side ------------------------------------------------------------------

    def set_irq(self, line: int, level: bool) -> None:
        """ISA line `line` (0-15) driven to `level`: latch a rising edge, deliver it."""
        pin = isa_pin(line)
        mask = 1 << pin
        if level and not self.lines & mask:
            self.irr |= mask
        self.lines = self.lines | mask if level else self.lines & ~mask
        self._service()

    def pulse_changes_nothing(self, line: int) -> bool:
        """Would a pulse on ISA line `line` (up, then down) leave the IOAPIC as it is?
        True when its pin is low, masked and already holds an edge, and no unmasked pin
        has one waiting (which the pulse's service pass would deliver)."""
        pin = isa_pin(line)
        mask = 1 << pin
        if self.lines & mask or not self.irr & mask:
            return False
        waiting = self.irr
        while waiting:
            low = waiting & -waiting
            waiting &= waiting - 1
            if not self.redirection[low.bit_length() - 1] & _MASKED:
                return False
        return True

    def _service(self) -> None:
        waiting = self.irr
        while waiting:  # the pins with an edge waiting, lowest first
            pin = (waiting & -waiting).bit_length() - 1
            waiting &= waiting - 1
            entry = self.redirection[pin]
            if entry & _MASKED:
                continue
            self.irr &= ~(1 << pin)
            if self._targets_lapic(entry):
                self.lapic.accept(entry & 0xFF, level=bool(entry & _LEVEL))

    def _targets_lapic(self, entry: int) -> bool:
        dest = entry >> 56
        if entry & _DEST_LOGICAL:  # flat model: a bit per APIC in the logical id
            return dest == 0xFF or bool(dest & (self.lapic.read_register(0x0D0) >> 24))
        return dest in (0xFF, self.lapic.apic_id)

    # -- registers -----------------------------------------------------------------------

    def read_register(self, index: int) -> int:
        """The 32-bit register `index` as IOWIN reads it."""
        if index == REG_ID:
            return self.id << 24
        if index == REG_VERSION:
            return IOAPIC_VERSION
        if index == REG_ARBITRATION:
            return self.id << 24
        if REG_REDTBL <= index < REG_REDTBL + 2 * PINS:
            entry = self.redirection[(index - REG_REDTBL) >> 1]
            return (entry >> 32) if index & 1 else entry & 0xFFFFFFFF
        return 0

    def write_register(self, index: int, value: int) -> None:
        if index == REG_ID:
            self.id = (value >> 24) & 0x0F
        elif REG_REDTBL <= index < REG_REDTBL + 2 * PINS:
            pin = (index - REG_REDTBL) >> 1
            old = self.redirection[pin]
            half = 32 if index & 1 else 0
            new = (old & ~(0xFFFFFFFF << half)) | (value << half)
            self.redirection[pin] = (new & _ENTRY_WRITABLE) | (old & ~_ENTRY_WRITABLE)
            self._service()
        else:
            debug(__name__, "IOAPIC: write to read-only register %#x ignored", index)

    # -- guest accesses (see Device.register_pages) ---------------------------------------

    def register_pages(self) -> tuple[tuple[int, mmap.mmap], ...]:
        return ((self.base, self.page),)

    def mmio_write(self, addr: int, size: int, value: int) -> None:
        offset = addr - self.base
        if offset == IOREGSEL:
            self.ioregsel = value & 0xFF
        elif offset == IOWIN and size == 4:
            self.write_register(self.ioregsel, value & 0xFFFFFFFF)
        else:
            debug(__name__, "IOAPIC: %d-byte write at +%#x ignored", size, offset)

    def mmio_settle(self) -> None:
        self._publish()

    def settles_before_store(self, addr: int, size: int, value: int) -> bool:
        # A kernel programs the redirection table at boot, an index store then a data
        # store per half entry (131 stores in the minikernel's boot): each lands on what
        # the page, settled now, holds there whenever it reads back as written.
        offset = addr - self.base
        if offset == IOREGSEL:
            mask = (1 << (8 * size)) - 1
            return value & mask == self.ioregsel & mask
        if offset == IOWIN and size == 4:
            return value == self.read_register(self.ioregsel)
        return False

    def _publish(self) -> None:
        self.page[:] = bytes(len(self.page))
        self.page[IOREGSEL : IOREGSEL + 4] = self.ioregsel.to_bytes(4, "little")
        self.page[IOWIN : IOWIN + 4] = self.read_register(self.ioregsel).to_bytes(4, "little")

    # -- snapshots -----------------------------------------------------------------------

    state_fields = (
        *fields(INT, "ioregsel", "id"),
        Field("redirection", Codec(_load_redirection, list)),
        *fields(INT, "lines", "irr"),
    )

    def load_state(self, state: Mapping[str, StateValue]) -> None:
        super().load_state(state)
        self._publish()

"""A PCI bus with configuration mechanism #1 and two functions on bus 0: an Intel 440FX
host bridge (00:00.0) and a PIIX3 PCI-to-ISA bridge (00:01.0), as on QEMU's `pc`
machine, and PIIX's reset control register.

- 0xCF8 (32-bit accesses only): CONFIG_ADDRESS, reads back what was written (bit 31
  enable, bus, device, function, register);
- 0xCFC-0xCFF: CONFIG_DATA, the addressed function's configuration space at the
  register plus the port's low two bits; absent functions read all-ones;
- 0xCF9 (8-bit): reset control; a write with RST_CPU (bit 2) resets the machine, which
  rdebug (no firmware to reboot into) turns into the end of the run, like QEMU's
  `-no-reboot`: `ctx.guest_exit(0)`.  The FADT names it as the ACPI reset register.

The identification registers, the class code and the header type are read-only; the
rest of each 256-byte space reads back what was written (no BARs, nothing is decoded).

Reference: PCI Local Bus Specification 3.0, 3.2.2.3.2 (configuration mechanism #1) and
6.1 (configuration header); Intel 82371SB (PIIX3) datasheet, 4.1.14 (RC register);
QEMU hw/pci-host/i440fx.c, hw/isa/piix.c.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

from rdebug.machine.devices.base import (
    Device,
    DeviceContext,
    State,
    StateValue,
    state_bytes,
    state_int,
)

CONFIG_ADDRESS = 0xCF8
CONFIG_DATA = 0xCFC
RESET_CONTROL = 0xCF9
RST_CPU = 0x04

#: (device, function) -> (vendor, device id, class code << 8 | revision, header type)
FUNCTIONS: dict[tuple[int, int], tuple[int, int, int, int]] = {
    (0, 0): (0x8086, 0x1237, 0x06000002, 0x00),  # 440FX host bridge
    (1, 0): (0x8086, 0x7000, 0x06010000, 0x80),  # PIIX3 ISA bridge (multi-function)
}
#: Bytes of the header a guest cannot change: IDs, class/revision, header type.
#: The base address registers and the expansion ROM BAR: none implemented (read as 0).
_READ_ONLY = frozenset({0, 1, 2, 3, 8, 9, 10, 11, 14, *range(0x10, 0x28), *range(0x30, 0x34)})


def _initial_space(vendor: int, device: int, class_rev: int, header_type: int) -> bytes:
    space = bytearray(256)
    struct.pack_into("<HHHHI", space, 0, vendor, device, 0x0007, 0x0280, class_rev)
    space[14] = header_type
    return bytes(space)


class PciBus(Device):
    """Configuration mechanism #1 over the functions in `FUNCTIONS`.

    >>> class Ctx:
    ...     def guest_exit(self, code: int) -> None:
    ...         print("reset ->", code)
    >>> bus = PciBus(Ctx())
    >>> bus.io_write(CONFIG_ADDRESS, 4, 0x80000000)
    >>> hex(bus.io_read(CONFIG_ADDRESS, 4)), hex(bus.io_read(CONFIG_DATA, 4))
    ('0x80000000', '0x12378086')
    >>> bus.io_write(CONFIG_ADDRESS, 4, 0x80001800)  # device 3: absent
    >>> hex(bus.io_read(CONFIG_DATA + 2, 2))
    '0xffff'
    >>> bus.io_write(RESET_CONTROL, 1, 0x06)
    reset -> 0
    """

    name = "pci"
    ports = (range(CONFIG_ADDRESS, CONFIG_DATA + 4),)

    def __init__(self, ctx: DeviceContext) -> None:
        super().__init__(ctx)
        self.address = 0
        self.reset_control = 0
        self.spaces: dict[tuple[int, int], bytearray] = {}
        self.reset()

    def reset(self) -> None:
        self.address = 0
        self.reset_control = 0
        self.spaces = {key: bytearray(_initial_space(*ids)) for key, ids in FUNCTIONS.items()}

    def _selected(self) -> tuple[bytearray | None, int]:
        """The addressed function's space (None: absent or disabled) and the register."""
        if not self.address & 0x80000000 or (self.address >> 16) & 0xFF:
            return None, 0
        key = ((self.address >> 11) & 0x1F, (self.address >> 8) & 7)
        return self.spaces.get(key), self.address & 0xFC

    def io_read(self, port: int, size: int) -> int:
        if port == CONFIG_ADDRESS and size == 4:
            return self.address
        if port == RESET_CONTROL and size == 1:
            return self.reset_control
        if port >= CONFIG_DATA:
            space, register = self._selected()
            if space is not None:
                offset = register + (port & 3)
                return int.from_bytes(space[offset : offset + size], "little")
        return (1 << (8 * size)) - 1

    def io_write(self, port: int, size: int, value: int) -> None:
        if port == CONFIG_ADDRESS and size == 4:
            self.address = value & 0x80FFFFFC
            return
        if port == RESET_CONTROL and size == 1:
            self.reset_control = value & 0x0E
            if value & RST_CPU:
                self.ctx.guest_exit(0)
            return
        if port >= CONFIG_DATA:
            space, register = self._selected()
            if space is None:
                return
            offset = register + (port & 3)
            for i in range(min(size, 256 - offset)):
                if offset + i not in _READ_ONLY and offset + i not in (6, 7):
                    space[offset + i] = (value >> (8 * i)) & 0xFF

    def save_state(self) -> State:
        return {
            "address": self.address,
            "reset_control": self.reset_control,
            "spaces": {f"{d}.{f}": bytes(s) for (d, f), s in sorted(self.spaces.items())},
        }

    def load_state(self, state: Mapping[str, StateValue]) -> None:
        self.address = state_int(state["address"])
        self.reset_control = state_int(state["reset_control"])
        spaces = state["spaces"]
        if not isinstance(spaces, dict):
            raise TypeError("expected a dict of PCI configuration spaces")
        self.spaces = {}
        for key in FUNCTIONS:
            self.spaces[key] = bytearray(state_bytes(spaces[f"{key[0]}.{key[1]}"]))

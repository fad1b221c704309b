"""The ACPI fixed hardware the FADT describes (machine/acpi.py): PM1a event and control
blocks and the PM timer, at the I/O ports of QEMU's PIIX4 PM function (0x600).

- PM1a_STS/PM1a_EN (0x600, 0x602): no event is ever raised; status bits are write-1-to-
  clear, enable bits read back.
- PM1a_CNT (0x604): SCI_EN reads as set (ACPI mode, no SMI command port); a write with
  SLP_EN and the `_S5` sleep type powers the machine off (`ctx.guest_exit(0)`: the run
  ends with exit status 0); other sleep states are ignored (there is no wake-up).
- PM_TMR (0x608): the 24-bit, 3.579545 MHz ACPI timer, in virtual time.

Reference: ACPI specification 6.x, 4.8.3 (PM1 registers) and 4.8.3.3 (power management
timer); QEMU hw/acpi/core.c.
"""

from __future__ import annotations

from collections.abc import Mapping

from rdebug.machine.devices.base import Device, DeviceContext, State, StateValue, state_int

PM_BASE = 0x600
PM1A_EVT = PM_BASE
PM1A_CNT = PM_BASE + 4
PM_TMR = PM_BASE + 8
PM_TMR_HZ = 3_579_545
#: The sleep type the DSDT's `_S5` names (what QEMU's PIIX4 uses).
SLP_TYP_S5 = 5
SCI_IRQ = 9
#: The FADT's reset register: PIIX's reset control register (owned by devices/pci.py).
RESET_PORT = 0xCF9
RESET_VALUE = 0x06

SCI_EN = 1 << 0
SLP_EN = 1 << 13


class AcpiPm(Device):
    """PM1a_EVT, PM1a_CNT and PM_TMR.

    >>> class Ctx:
    ...     def now_ns(self) -> int:
    ...         return 1_000_000_000
    ...     def guest_exit(self, code: int) -> None:
    ...         print("power off", code)
    >>> pm = AcpiPm(Ctx())
    >>> pm.io_read(PM_TMR, 4) == PM_TMR_HZ & 0xFFFFFF
    True
    >>> pm.io_write(PM1A_CNT, 2, SLP_EN | (SLP_TYP_S5 << 10))
    power off 0
    """

    name = "acpi-pm"
    ports = (range(PM_BASE, PM_BASE + 12),)

    def __init__(self, ctx: DeviceContext) -> None:
        super().__init__(ctx)
        self.status = 0
        self.enable = 0
        self.control = SCI_EN

    def reset(self) -> None:
        self.status = 0
        self.enable = 0
        self.control = SCI_EN

    def _register(self) -> bytes:
        return (
            self.status.to_bytes(2, "little")
            + self.enable.to_bytes(2, "little")
            + self.control.to_bytes(2, "little")
            + b"\0\0"
            + self.timer().to_bytes(4, "little")
        )

    def timer(self) -> int:
        return (self.ctx.now_ns() * PM_TMR_HZ // 1_000_000_000) & 0xFFFFFF

    def io_read(self, port: int, size: int) -> int:
        offset = port - PM_BASE
        raw = self._register() + b"\xff" * 4
        return int.from_bytes(raw[offset : offset + size], "little")

    def io_write(self, port: int, size: int, value: int) -> None:
        offset = port - PM_BASE
        for i in range(size):
            self._write_byte(offset + i, (value >> (8 * i)) & 0xFF)
        if offset <= 5 < offset + size and self.control & SLP_EN:
            self.control &= ~SLP_EN
            if (self.control >> 10) & 7 == SLP_TYP_S5:
                self.ctx.guest_exit(0)

    def _write_byte(self, offset: int, byte: int) -> None:
        if offset < 2:
            self.status &= ~(byte << (8 * offset))
        elif offset < 4:
            shift = 8 * (offset - 2)
            self.enable = (self.enable & ~(0xFF << shift)) | (byte << shift)
        elif offset < 6:
            shift = 8 * (offset - 4)
            self.control = (self.control & ~(0xFF << shift)) | (byte << shift) | SCI_EN

    def save_state(self) -> State:
        return {"status": self.status, "enable": self.enable, "control": self.control}

    def load_state(self, state: Mapping[str, StateValue]) -> None:
        self.status = state_int(state["status"])
        self.enable = state_int(state["enable"])
        self.control = state_int(state["control"])

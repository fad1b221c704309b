"""CGA (colour text mode) I/O registers: the 6845 CRTC, mode control, status.

Owns the CRT controller's index (0x3D4) and its 18 registers behind the data port
(0x3D5), the mode control (0x3D8) and colour select (0x3D9) registers, and the status
register (0x3DA).  The text memory at 0xB8000 is not here: it is plain guest RAM (the
machine maps it with the rest), so a kernel's console writes cost nothing.

Registers read back what was written (kernels read the cursor location, registers 14
and 15, to find where the BIOS left the cursor; a read of 0xFF there has crashed some),
the light-pen registers 16 and 17 read 0.  The status register follows virtual time: a
60 Hz frame of `FRAME_NS` whose last `VRETRACE_NS` are the vertical retrace (bit 3), and
display enable (bit 0, set when the beam is in a retrace) toggling every
`HSYNC_NS / 2`; a guest waiting for the retrace sees it at the same instruction on every
run.

Reference: Motorola MC6845 CRTC datasheet, "Register file"; IBM Color/Graphics
Monitor Adapter technical reference.
"""

from __future__ import annotations

from collections.abc import Mapping

from rdebug.machine.devices.base import (
    BUFFER,
    INT,
    Device,
    DeviceContext,
    StateValue,
    fields,
    state_bytes,
)
from rdebug.machine.portregs import Access, ByteAttribute, PortRegister, RegisterBytes

CRTC_INDEX = 0x3D4
CRTC_DATA = 0x3D5
MODE_CONTROL = 0x3D8
COLOR_SELECT = 0x3D9
STATUS = 0x3DA
CRTC_REGISTERS = 18
#: Registers of an 80x25 text mode as a BIOS programs them (R0-R15; the cursor at 0).
TEXT_80X25 = bytes(
    (0x71, 0x50, 0x5A, 0x0A, 0x1F, 0x06, 0x19, 0x1C, 0x02, 0x07, 0x06, 0x07, 0, 0, 0, 0, 0, 0)
)
#: Mode control after a BIOS set 80x25 colour text with the video enabled.
TEXT_MODE_CONTROL = 0x29
FRAME_NS = 16_683_333  # 59.94 Hz
VRETRACE_NS = 1_271_000  # about 20 lines
HSYNC_NS = 63_556  # 15.734 kHz

STATUS_DISPLAY_INACTIVE = 0x01
STATUS_VRETRACE = 0x08


class Cga(Device):
    """The CGA's I/O ports at 0x3D4-0x3DA (text memory is RAM)."""

    name = "cga"
    ports = (range(CRTC_INDEX, STATUS + 1),)
    #: the CRTC's index; its registers follow it in `registers` (see `port_registers`)
    index = ByteAttribute(0)

    def __init__(self, ctx: DeviceContext) -> None:
        super().__init__(ctx)
        self.registers = RegisterBytes(1 + CRTC_REGISTERS)
        rw = Access.READ | Access.WRITE
        self._port_registers = (
            PortRegister(CRTC_INDEX, self.registers, 0, rw, wmask=0x1F),
            # R0-R15 behind the data port (the light pen's R16-R17 read 0: Python's)
            PortRegister(CRTC_DATA, self.registers, 1, rw, index=0, valid=0xFFFF),
        )
        self.reset()

    @property
    def crtc(self) -> memoryview:
        """The CRTC's 18 registers, writable in place."""
        return self.registers.view[1:]

    @crtc.setter
    def crtc(self, value: bytes | bytearray) -> None:
        if len(value) != CRTC_REGISTERS:
            raise TypeError("malformed cga state: 18 CRTC registers expected")
        self.registers.load(bytes(value), 1)

    def port_registers(self) -> tuple[PortRegister, ...]:
        """The CRTC's index and the registers R0-R15 behind its data port."""
        return self._port_registers

    def reset(self) -> None:
        self.index = 0
        self.crtc = bytearray(TEXT_80X25)
        self.mode_control = TEXT_MODE_CONTROL
        self.color_select = 0

    def cursor(self) -> int:
        """The cursor location (registers 14-15), in characters from the start of RAM."""
        return self.crtc[14] << 8 | self.crtc[15]

    def io_read(self, port: int, size: int) -> int:
        value = 0
        for i in range(size):
            value |= self._read(port + i) << (8 * i)
        return value

    def io_write(self, port: int, size: int, value: int) -> None:
        for i in range(size):  # `outw 0x3D4` writes the index, then the data
            self._write(port + i, (value >> (8 * i)) & 0xFF)

    def _read(self, port: int) -> int:
        if port == CRTC_INDEX:
            return self.index
        if port == CRTC_DATA:
            if self.index >= CRTC_REGISTERS or self.index in (16, 17):
                return 0
            return self.crtc[self.index]
        if port == MODE_CONTROL:
            return self.mode_control
        if port == COLOR_SELECT:
            return self.color_select
        if port == STATUS:
            return self._status()
        return 0xFF  # 0x3D6, 0x3D7 and beyond: not decoded

    def _write(self, port: int, value: int) -> None:
        if port == CRTC_INDEX:
            self.index = value & 0x1F
        elif port == CRTC_DATA:
            if self.index < CRTC_REGISTERS and self.index not in (16, 17):
                self.crtc[self.index] = value
        elif port == MODE_CONTROL:
            self.mode_control = value & 0x3F
        elif port == COLOR_SELECT:
            self.color_select = value & 0x3F

    def _status(self) -> int:
        now = self.ctx.now_ns()
        value = 0
        if now % FRAME_NS >= FRAME_NS - VRETRACE_NS:
            value |= STATUS_VRETRACE | STATUS_DISPLAY_INACTIVE
        elif now % HSYNC_NS >= HSYNC_NS // 2:
            value |= STATUS_DISPLAY_INACTIVE
        return value

    state_fields = (
        *fields(INT, "index"),
        *fields(BUFFER, "crtc"),
        *fields(INT, "mode_control", "color_select"),
    )

    def load_state(self, state: Mapping[str, StateValue]) -> None:
        if len(state_bytes(state["crtc"])) != CRTC_REGISTERS:
            raise TypeError("malformed cga state: 18 CRTC registers expected")
        super().load_state(state)

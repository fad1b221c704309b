"""16550A UART (COM1 at 0x3F8/IRQ4, COM2 at 0x2F8/IRQ3, ...).

Owns the UART's registers (RBR/THR, IER, IIR/FCR, LCR, MCR, LSR, MSR, SCR, DLL/DLM), the
16-byte receiver FIFO, the interrupt logic and the host-side input queue with its
line-paced delivery into the receiver.  It does not know where the output goes (a
`SerialBackend`) nor where the input comes from (the machine calls `receive_host` at an
exact icount); nor the PIC: the interrupt is a level on `ctx.set_irq(irq, ...)`.

Timing model: transmission is instantaneous (each THR write reaches the backend at once
and THR is empty again).  Reception is paced: one host byte enters the receiver per
character time (10 bits at 115200 / divisor baud, virtual ns), only once the guest has
enabled reception (IER ERBFI set, or LSR read at least once) and only when the receiver
has room, so host input never overruns.  Loopback (MCR LOOP) is modelled, for the
"send 0xAE in loopback mode and read it back" probe many kernels run.

Reference: TI/National PC16550D datasheet, "Register Description"; QEMU hw/char/serial.c.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from types import MappingProxyType
from typing import Protocol

from rdebug.machine.devices.base import (
    BOOL,
    BUFFER,
    INT,
    OPT_INT,
    Device,
    DeviceContext,
    StateValue,
    fields,
)

NS_PER_S = 1_000_000_000
#: Baud rate for divisor 1 (1.8432 MHz crystal / 16).
BASE_BAUD = 115_200
#: Bits per character on the line (start + 8 data + stop), as the pacing counts them.
BITS_PER_CHAR = 10
FIFO_SIZE = 16
#: 16550 character timeout: 4 character times without FIFO activity.
TIMEOUT_CHARS = 4

#: Device names of the standard COM port bases.
COM_PORTS: Mapping[int, str] = MappingProxyType(
    {0x3F8: "com1", 0x2F8: "com2", 0x3E8: "com3", 0x2E8: "com4"}
)

# Register offsets (DLAB = LCR bit 7 selects DLL/DLM at offsets 0/1).
_RBR_THR_DLL = 0
_IER_DLM = 1
_IIR_FCR = 2
_LCR = 3
_MCR = 4
_LSR = 5
_MSR = 6
_SCR = 7

# IER bits.
_IER_ERBFI = 0x01  # received data available
_IER_ETBEI = 0x02  # transmitter holding register empty
_IER_ELSI = 0x04  # receiver line status
_IER_EDSSI = 0x08  # modem status
# FCR bits.
_FCR_ENABLE = 0x01
_FCR_RCVR_RESET = 0x02
_FCR_KEPT = 0xC9  # FIFO enable, DMA mode select, RCVR trigger (MSB, LSB)
_RX_TRIGGER = (1, 4, 8, 14)
# LCR / MCR bits.
_LCR_DLAB = 0x80
_MCR_LOOP = 0x10
# LSR bits.
_LSR_DR = 0x01
_LSR_OE = 0x02
_LSR_ERRORS = 0x1E  # OE, PE, FE, BI
_LSR_THRE = 0x20
_LSR_TEMT = 0x40
# MSR bits.
_MSR_DELTAS = 0x0F  # DCTS, DDSR, TERI, DDCD
_MSR_RI = 0x40
#: Modem inputs with no modem attached: CTS, DSR, DCD asserted (as QEMU presents them).
_MSR_IDLE = 0xB0


class InterruptId(Enum):
    """IIR bits 3-1 (with bit 0 = 0, "interrupt pending"), highest priority first."""

    LINE_STATUS = 0x06
    RECEIVED_DATA = 0x04
    CHARACTER_TIMEOUT = 0x0C
    THR_EMPTY = 0x02
    MODEM_STATUS = 0x00


class SerialBackend(Protocol):
    """Where the UART's output goes (a terminal, a file, nothing in replay)."""

    def write(self, data: bytes) -> None: ...


class NullBackend:
    """Discards the output."""

    def write(self, data: bytes) -> None:
        pass


class Uart(Device):
    """One 16550A.

    `receive_host(data)` queues bytes from the host; `rx_idle()` says the queue is empty.
    The device is named after its COM port ("com1" for 0x3F8), else "uart@0x...".
    """

    def __init__(
        self,
        ctx: DeviceContext,
        base: int = 0x3F8,
        irq: int = 4,
        backend: SerialBackend | None = None,
    ) -> None:
        super().__init__(ctx)
        self.base = base
        self.irq = irq
        self.backend: SerialBackend = backend if backend is not None else NullBackend()
        self.name = COM_PORTS.get(base, f"uart@{base:#x}")
        self.ports = (range(base, base + 8),)
        self._host_rx = bytearray()  # host bytes not yet on the line (kept across reset)
        self._init_registers()

    def _init_registers(self) -> None:
        self.ier = 0
        self.lcr = 0
        self.mcr = 0
        self.scr = 0
        self.divisor = 1
        self.fcr = 0  # the FCR bits that stick (0xC9 mask); FIFOs on when bit 0 is set
        self.lsr_errors = 0  # LSR OE/PE/FE/BI
        self.msr = _MSR_IDLE
        self._rx = bytearray()  # RBR (FIFO off, at most 1 byte) or the receiver FIFO
        self._rbr = 0  # the last byte read, returned again when the receiver is empty
        self._thr_ipending = False
        self._timeout_ipending = False
        self._rx_started = False  # the guest has enabled reception
        self._rx_deadline: int | None = None  # a host byte is on the line until then
        self._timeout_deadline: int | None = None
        self._irq_level = False

    def reset(self) -> None:
        if self._irq_level:
            self.ctx.set_irq(self.irq, False)
        self._init_registers()
        self._arm()
        self._kick_rx()

    # -- the machine's side -----------------------------------------------------------------

    def receive_host(self, data: bytes) -> None:
        """Bytes typed or piped on the host side; they enter the receiver at line pace."""
        self._host_rx += data
        self._kick_rx()

    def rx_idle(self) -> bool:
        """True when no host byte waits to be received."""
        return not self._host_rx

    def on_timer(self) -> None:
        now = self.ctx.now_ns()
        if self._rx_deadline is not None and now >= self._rx_deadline:
            deadline, self._rx_deadline = self._rx_deadline, None
            if self._host_rx and self._has_room():
                self._push_rx(self._host_rx.pop(0))
                self._kick_rx(start=deadline)
        if self._timeout_deadline is not None and now >= self._timeout_deadline:
            self._timeout_deadline = None
            if self._fifo_enabled and self._rx:
                self._timeout_ipending = True
        self._kick_rx()
        self._arm()
        self._update_irq()

    # -- derived values ---------------------------------------------------------------------

    @property
    def _fifo_enabled(self) -> bool:
        return bool(self.fcr & _FCR_ENABLE)

    @property
    def _loopback(self) -> bool:
        return bool(self.mcr & _MCR_LOOP)

    def _capacity(self) -> int:
        return FIFO_SIZE if self._fifo_enabled else 1

    def _has_room(self) -> bool:
        return len(self._rx) < self._capacity()

    def _char_ns(self) -> int:
        """One character time on the line, in virtual ns (rounded up)."""
        divisor = self.divisor or 1
        return -(-BITS_PER_CHAR * divisor * NS_PER_S // BASE_BAUD)

    @property
    def lsr(self) -> int:
        """Line Status Register: THRE and TEMT always set (instant transmission)."""
        return (_LSR_DR if self._rx else 0) | self.lsr_errors | _LSR_THRE | _LSR_TEMT

    def interrupt(self) -> InterruptId | None:
        """The highest-priority enabled interrupt condition (what IIR reports), or None."""
        if self.ier & _IER_ELSI and self.lsr_errors:
            return InterruptId.LINE_STATUS
        if self.ier & _IER_ERBFI:
            trigger = _RX_TRIGGER[self.fcr >> 6] if self._fifo_enabled else 1
            if len(self._rx) >= trigger:
                return InterruptId.RECEIVED_DATA
            if self._timeout_ipending:
                return InterruptId.CHARACTER_TIMEOUT
        if self.ier & _IER_ETBEI and self._thr_ipending:
            return InterruptId.THR_EMPTY
        if self.ier & _IER_EDSSI and self.msr & _MSR_DELTAS:
            return InterruptId.MODEM_STATUS
        return None

    @property
    def iir(self) -> int:
        """Interrupt Identification Register (bits 7-6 set when the FIFOs are enabled)."""
        source = self.interrupt()
        value = 0x01 if source is None else source.value
        return value | (0xC0 if self._fifo_enabled else 0)

    # -- the guest's side -------------------------------------------------------------------

    def io_read(self, port: int, size: int) -> int:
        value = 0
        for i in range(size):
            value |= self._read_byte(port - self.base + i) << (8 * i)
        return value

    def io_write(self, port: int, size: int, value: int) -> None:
        for i in range(size):
            self._write_byte(port - self.base + i, (value >> (8 * i)) & 0xFF)

    def _read_byte(self, offset: int) -> int:
        dlab = bool(self.lcr & _LCR_DLAB)
        match offset:
            case 0 if dlab:
                return self.divisor & 0xFF  # DLL
            case 0:
                return self._read_rbr()
            case 1 if dlab:
                return self.divisor >> 8  # DLM
            case 1:
                return self.ier
            case 2:
                value = self.iir
                if self.interrupt() is InterruptId.THR_EMPTY:
                    self._thr_ipending = False  # reading IIR clears THRE as the source
                    self._update_irq()
                return value
            case 3:
                return self.lcr
            case 4:
                return self.mcr
            case 5:
                value = self.lsr
                self.lsr_errors = 0  # reading LSR clears OE, PE, FE, BI
                self._rx_started = True
                self._kick_rx()
                self._update_irq()
                return value
            case 6:
                value = self.msr
                self.msr &= ~_MSR_DELTAS
                self._update_irq()
                return value
            case 7:
                return self.scr
            case _:
                return 0xFF

    def _read_rbr(self) -> int:
        """RBR: the oldest received byte (the FIFO's head)."""
        if self._rx:
            self._rbr = self._rx.pop(0)
            self._timeout_ipending = False
            if self._fifo_enabled and self._rx:
                self._timeout_deadline = self.ctx.now_ns() + TIMEOUT_CHARS * self._char_ns()
            else:
                self._timeout_deadline = None
            self._kick_rx()
            self._arm()
            self._update_irq()
        return self._rbr

    def _write_byte(self, offset: int, value: int) -> None:
        dlab = bool(self.lcr & _LCR_DLAB)
        match offset:
            case 0 if dlab:
                self.divisor = (self.divisor & 0xFF00) | value  # DLL
            case 0:
                self._write_thr(value)
            case 1 if dlab:
                self.divisor = (self.divisor & 0x00FF) | value << 8  # DLM
            case 1:
                self._write_ier(value)
            case 2:
                self._write_fcr(value)
            case 3:
                self.lcr = value
            case 4:
                self._write_mcr(value)
            case 7:
                self.scr = value
            case _:
                pass  # LSR, MSR: writes ignored (factory test only)

    def _write_thr(self, value: int) -> None:
        """THR: the byte is sent at once; THRE drops and rises again (a fresh edge)."""
        if self._loopback:
            self._push_rx(value, overrun=True)
        else:
            self.backend.write(bytes([value]))
        self._thr_ipending = False
        self._update_irq()
        self._thr_ipending = bool(self.ier & _IER_ETBEI)
        self._update_irq()

    def _write_ier(self, value: int) -> None:
        """IER: bits 3-0.  Enabling ETBEI while THR is empty raises THRE (QEMU, Bochs)."""
        changed = (self.ier ^ value) & _IER_ETBEI
        self.ier = value & 0x0F
        if changed:
            self._thr_ipending = bool(self.ier & _IER_ETBEI)
        if self.ier & _IER_ERBFI:
            self._rx_started = True
            self._kick_rx()
        self._update_irq()

    def _write_fcr(self, value: int) -> None:
        """FCR: FIFO enable (a change clears both FIFOs), receiver reset, trigger level."""
        if (value ^ self.fcr) & _FCR_ENABLE:
            value |= _FCR_RCVR_RESET
        if value & _FCR_RCVR_RESET:
            self._rx.clear()
            self._timeout_ipending = False
            self._timeout_deadline = None
        # "FCR0 must be 1 when other FCR bits are written to or they will not be programmed"
        self.fcr = value & _FCR_KEPT if value & _FCR_ENABLE else 0
        self._kick_rx()
        self._arm()
        self._update_irq()

    def _write_mcr(self, value: int) -> None:
        """MCR: DTR, RTS, OUT1, OUT2, LOOP.  In loopback MSR shows them as CTS/DSR/RI/DCD."""
        self.mcr = value & 0x1F
        if self._loopback:
            status = (
                (0x10 if value & 0x02 else 0)  # CTS <- RTS
                | (0x20 if value & 0x01 else 0)  # DSR <- DTR
                | (0x40 if value & 0x04 else 0)  # RI <- OUT1
                | (0x80 if value & 0x08 else 0)  # DCD <- OUT2
            )
        else:
            status = _MSR_IDLE
        self._set_modem_status(status)
        self._update_irq()

    def _set_modem_status(self, status: int) -> None:
        """New MSR bits 7-4; set the delta bits (TERI on RI's trailing edge)."""
        old = self.msr & 0xF0
        changed = old ^ status
        deltas = changed >> 4 & 0x0B
        if old & _MSR_RI and not status & _MSR_RI:
            deltas |= 0x04
        self.msr = status | (self.msr & _MSR_DELTAS) | deltas

    # -- receiver ---------------------------------------------------------------------------

    def _push_rx(self, value: int, *, overrun: bool = False) -> None:
        """A character completed in the receiver shift register."""
        if self._has_room():
            self._rx.append(value)
        elif overrun:  # only loopback can overrun: the guest outran itself
            self.lsr_errors |= _LSR_OE
            if not self._fifo_enabled:
                self._rx[0] = value  # "destroying the previous character"
        if self._fifo_enabled:
            self._timeout_deadline = self.ctx.now_ns() + TIMEOUT_CHARS * self._char_ns()
            self._arm()
        self._update_irq()

    def _kick_rx(self, start: int | None = None) -> None:
        """Put the next host byte on the line if reception is on and there is room.

        The byte starts now, or at `start` when it follows the previous one back to back.
        """
        if self._rx_deadline is None and self._rx_started and self._host_rx and self._has_room():
            begin = self.ctx.now_ns() if start is None else start
            self._rx_deadline = begin + self._char_ns()
            self._arm()

    def _arm(self) -> None:
        deadlines = [d for d in (self._rx_deadline, self._timeout_deadline) if d is not None]
        self.ctx.set_timer(self, min(deadlines) if deadlines else None)

    def _update_irq(self) -> None:
        """The IRQ line follows "an enabled interrupt condition exists" (MCR OUT2 ignored)."""
        self._irq_level = self.drive_irq(self.irq, self.interrupt() is not None, self._irq_level)

    # -- snapshots --------------------------------------------------------------------------

    state_fields = (
        *fields(INT, "ier", "lcr", "mcr", "scr", "divisor", "fcr", "lsr_errors", "msr"),
        *fields(BUFFER, "_rx"),
        *fields(INT, "_rbr"),
        *fields(BOOL, "_thr_ipending", "_timeout_ipending", "_rx_started"),
        *fields(OPT_INT, "_rx_deadline", "_timeout_deadline"),
        *fields(BOOL, "_irq_level"),
        *fields(BUFFER, "_host_rx"),
    )

    def load_state(self, state: Mapping[str, StateValue]) -> None:
        super().load_state(state)
        self._arm()

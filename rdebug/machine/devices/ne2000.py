"""NE2000 ISA network card: a DP8390 core behind the NE2000's I/O window.

Owns the DP8390 registers (pages 0, 1 and 2 chosen by CR.PS), the card's buffer memory
(the station-address PROM at 0x0000 and 16 KiB of RAM at 0x4000-0x7FFF), remote DMA,
transmit, the receive ring with its 4-byte headers, the address filter and the interrupt
logic.  It does not know where transmitted frames go (a `FrameSink`) nor where received
ones come from (the machine calls `receive` at an exact icount with a frame that came
through the inputs seam); nor the PIC: the interrupt is a level on `ctx.set_irq`.

I/O window (32 ports from `iobase`, 0x300 by default)::

    +0x00..0x0F  DP8390 registers (page by CR bits 7-6)
    +0x10        data port: remote DMA, 8 or 16 bits (DCR.WTS)
    +0x1F        reset port: any access resets the card (ISR.RST)

Receive ring (pages of 256 bytes between PSTART and PSTOP; CURR is where the next frame
goes, BNRY is the driver's read pointer; CURR == BNRY means empty)::

    +0 receive status (RSR)  +1 next page  +2,+3 byte count (header included, LE)
    +4 .. the frame (wrapping from PSTOP back to PSTART)

Frames on the emulated wire carry no FCS.  A frame shorter than the Ethernet minimum
(60 bytes without FCS) is padded with zeros, as the sending MAC would have done (QEMU
does the same); one shorter than an Ethernet header (14 bytes) or longer than
`MAX_FRAME` is dropped and counted (RSR/CNTR0).  A frame that does not fit between
CURR and BNRY is dropped with ISR.OVW and counted in CNTR2 (missed packets).

Reference: National DP8390D datasheet ("Register Descriptions", "Packet Reception",
"Remote DMA"), Novell NE2000 adapter notes; QEMU hw/net/ne2000.c.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from rdebug.machine.devices.base import (
    BOOL,
    BUFFER,
    BYTES,
    INT,
    Codec,
    Device,
    DeviceContext,
    Field,
    StateValue,
    fields,
    state_bytes,
    state_int,
)

DEFAULT_IOBASE = 0x300
DEFAULT_IRQ = 9
DEFAULT_MAC = bytes.fromhex("525400123456")
IO_SIZE = 0x20

#: Card memory: PROM image at 0x0000 (32 bytes), RAM at 0x4000-0x7FFF.
RAM_START = 0x4000
RAM_SIZE = 0x4000
PROM_SIZE = 32
#: Smallest frame on the wire without FCS; shorter ones are padded to it.
MIN_FRAME = 60
#: Longest frame accepted: 1514 bytes + an 802.1Q tag (no FCS on the emulated wire).
MAX_FRAME = 1518
ETH_HEADER = 14

# DP8390 register offsets.
_CR = 0x00
_DATA = 0x10
_RESET = 0x1F

# CR bits.
CR_STP = 0x01
CR_STA = 0x02
CR_TXP = 0x04
CR_RD_READ = 0x08
CR_RD_WRITE = 0x10
CR_RD_ABORT = 0x20
_CR_RD = 0x38
_CR_PS = 0xC0

# ISR / IMR bits.
ISR_PRX = 0x01
ISR_PTX = 0x02
ISR_RXE = 0x04
ISR_TXE = 0x08
ISR_OVW = 0x10
ISR_CNT = 0x20
ISR_RDC = 0x40
ISR_RST = 0x80

# RCR bits.
RCR_SEP = 0x01
RCR_AR = 0x02
RCR_AB = 0x04
RCR_AM = 0x08
RCR_PRO = 0x10
RCR_MON = 0x20

# RSR bits.
RSR_PRX = 0x01
RSR_MPA = 0x10
RSR_PHY = 0x20  # multicast or broadcast destination

TSR_PTX = 0x01
DCR_WTS = 0x01
TCR_LB = 0x06  # loopback mode bits

#: The NE2000 signature in PROM bytes 14/15 (0x57 'W': a 16-bit card).
_PROM_SIGNATURE = 0x57


class FrameSink(Protocol):
    """Where transmitted frames go (a host network backend, a capture file, nothing)."""

    def transmit(self, frame: bytes, now_ns: int) -> None: ...


class DropSink:
    """Discards transmitted frames."""

    def transmit(self, frame: bytes, now_ns: int) -> None:
        del frame, now_ns


@dataclass(frozen=True, slots=True)
class NicConfig:
    """An NE2000 on the ISA bus (QEMU's `-nic ne2k_isa,iobase=..,irq=..,mac=..`)."""

    iobase: int = DEFAULT_IOBASE
    irq: int = DEFAULT_IRQ
    mac: bytes = DEFAULT_MAC

    def __post_init__(self) -> None:
        if not 0 <= self.iobase <= 0xFFFF - IO_SIZE + 1 or self.iobase % IO_SIZE:
            raise ValueError(f"iobase {self.iobase:#x}: must be a multiple of 0x20 below 0x10000")
        if not 0 <= self.irq <= 15 or self.irq == 2:
            raise ValueError(f"irq {self.irq}: must be an ISA line 0..15 other than 2")
        if len(self.mac) != 6:
            raise ValueError("mac: must be 6 bytes")
        if self.mac[0] & 1:
            raise ValueError(f"mac {format_mac(self.mac)}: a station address must be unicast")


def format_mac(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def ether_crc(data: bytes) -> int:
    """The Ethernet CRC-32 computed MSB-first, as the DP8390's multicast hash uses it."""
    crc = 0xFFFFFFFF
    for octet in data:
        for bit in range(8):  # each octet LSB first, as it goes on the wire
            feedback = (crc >> 31) ^ ((octet >> bit) & 1)
            crc = (crc << 1) & 0xFFFFFFFF
            if feedback:
                crc ^= 0x04C11DB7
    return crc


def _load_tally(cntr: StateValue) -> list[int]:
    if not isinstance(cntr, list) or len(cntr) != 3:
        raise TypeError("expected 3 tally counters in the ne2000 state")
    return [state_int(v) for v in cntr]


class Ne2000(Device):
    """One NE2000 (DP8390) card.

    `receive(frame)` is a frame arriving from the wire (at the current icount);
    transmitted frames go to `sink`.  Frames are dropped while the card is stopped.
    """

    name = "ne2000"

    def __init__(
        self, ctx: DeviceContext, config: NicConfig | None = None, sink: FrameSink | None = None
    ) -> None:
        super().__init__(ctx)
        self.config = config if config is not None else NicConfig()
        self.sink: FrameSink = sink if sink is not None else DropSink()
        self.iobase = self.config.iobase
        self.irq = self.config.irq
        self.ports = (range(self.iobase, self.iobase + IO_SIZE),)
        prom = bytearray(PROM_SIZE)
        for i, octet in enumerate(self.config.mac):
            prom[2 * i] = prom[2 * i + 1] = octet
        prom[14] = prom[15] = _PROM_SIGNATURE
        self._prom = bytes(prom)
        self.ram = bytearray(RAM_SIZE)
        self._irq_level = False
        self._init_registers()

    def _init_registers(self) -> None:
        self.cr = CR_STP | CR_RD_ABORT
        self.isr = ISR_RST
        self.imr = 0
        self.dcr = 0
        self.rcr = 0
        self.tcr = 0
        self.tsr = 0
        self.rsr = 0
        self.pstart = RAM_START >> 8
        self.pstop = (RAM_START + RAM_SIZE) >> 8
        self.bnry = self.pstart
        self.curr = self.pstart
        self.tpsr = 0
        self.tbcr = 0
        self.rsar = 0
        self.rbcr = 0
        self.par = bytes(self.config.mac)
        self.mar = bytes(8)
        self.cntr = [0, 0, 0]  # frame alignment errors, CRC errors, missed packets

    def reset(self) -> None:
        """Power-on or reset-port reset: the card stops with ISR.RST set (RAM kept)."""
        self._init_registers()
        self._update_irq()

    # -- the machine's side -------------------------------------------------------------

    def receive(self, frame: bytes) -> bool:
        """A frame from the wire; True if it went into the receive ring."""
        if self.cr & CR_STP or not self.cr & CR_STA:
            return False
        if len(frame) < ETH_HEADER or len(frame) > MAX_FRAME:
            self._count(0)  # frame alignment error counter: a malformed frame
            return False
        if not self._accepts(frame[:6]):
            return False
        if self.rcr & RCR_MON:
            return False  # monitor mode: filtered and counted, never stored
        if len(frame) < MIN_FRAME:
            frame = frame + bytes(MIN_FRAME - len(frame))
        return self._store(frame)

    def _accepts(self, dest: bytes) -> bool:
        """The DP8390 address filter (RCR.PRO, AB, AM and the PAR/MAR registers)."""
        if self.rcr & RCR_PRO:
            return True
        if dest == b"\xff" * 6:
            return bool(self.rcr & RCR_AB)
        if dest[0] & 1:
            if not self.rcr & RCR_AM:
                return False
            index = ether_crc(dest) >> 26
            return bool(self.mar[index >> 3] & (1 << (index & 7)))
        return dest == self.par

    def _ring_pages(self) -> int:
        return self.pstop - self.pstart

    def _store(self, frame: bytes) -> bool:
        ring = self._ring_pages()
        if (
            ring <= 0
            or self.pstart < RAM_START >> 8
            or self.pstop > (RAM_START + RAM_SIZE) >> 8
            or not self.pstart <= self.curr < self.pstop
        ):
            return False  # a ring the driver has not set up sensibly: nowhere to put it
        total = len(frame) + 4
        pages = -(-total // 256)
        free = (self.bnry - self.curr) % ring if self.pstart <= self.bnry < self.pstop else 0
        if free == 0 and self.bnry == self.curr:
            free = ring
        if pages >= free:
            self.isr |= ISR_OVW
            self.rsr = RSR_MPA
            self._count(2)
            self._update_irq()
            return False
        next_page = self.curr + pages
        if next_page >= self.pstop:
            next_page -= ring
        status = RSR_PRX | (RSR_PHY if frame[0] & 1 else 0)
        header = bytes([status, next_page, total & 0xFF, total >> 8])
        addr = self.curr << 8
        for octet in header + frame:
            self.ram[addr - RAM_START] = octet
            addr += 1
            if addr == self.pstop << 8:
                addr = self.pstart << 8
        self.curr = next_page
        self.rsr = status
        self.isr |= ISR_PRX
        self._update_irq()
        return True

    def _count(self, index: int) -> None:
        if self.cntr[index] < 0xFF:
            self.cntr[index] += 1
        if self.cntr[index] >= 0xC0:
            self.isr |= ISR_CNT  # a tally counter's MSB is set
            self._update_irq()

    # -- card memory ----------------------------------------------------------------------

    def _mem_read(self, addr: int) -> int:
        addr &= 0xFFFF
        if addr < PROM_SIZE:
            return self._prom[addr]
        if RAM_START <= addr < RAM_START + RAM_SIZE:
            return self.ram[addr - RAM_START]
        return 0xFF

    def _mem_write(self, addr: int, value: int) -> None:
        addr &= 0xFFFF
        if RAM_START <= addr < RAM_START + RAM_SIZE:
            self.ram[addr - RAM_START] = value

    # -- interrupts ------------------------------------------------------------------------

    def _update_irq(self) -> None:
        level = bool(self.isr & self.imr & 0x7F)
        self._irq_level = self.drive_irq(self.irq, level, self._irq_level)

    # -- the guest's side ------------------------------------------------------------------

    def io_read(self, port: int, size: int) -> int:
        offset = port - self.iobase
        if offset == _DATA:
            return self._dma_read(size)
        if offset == _RESET:
            self.reset()
            return 0
        value = 0
        for i in range(size):
            value |= self._read_register((offset + i) & 0x1F) << (8 * i)
        return value

    def io_write(self, port: int, size: int, value: int) -> None:
        offset = port - self.iobase
        if offset == _DATA:
            self._dma_write(size, value)
            return
        if offset == _RESET:
            self.reset()
            return
        for i in range(size):
            if offset + i < _DATA:
                self._write_register(offset + i, (value >> (8 * i)) & 0xFF)

    def _read_register(self, offset: int) -> int:
        if offset >= _DATA:
            return 0xFF
        if offset == _CR:
            return self.cr
        page = self.cr >> 6
        if page == 0:
            return self._read_page0(offset)
        if page == 1:
            if offset <= 6:
                return self.par[offset - 1]
            if offset == 7:
                return self.curr
            return self.mar[offset - 8]
        if page == 2:
            return self._read_page2(offset)
        return 0xFF

    def _read_page0(self, offset: int) -> int:
        match offset:
            case 0x01:
                return (self.curr << 8) & 0xFF  # CLDA0: local DMA address (ring writes)
            case 0x02:
                return self.curr  # CLDA1
            case 0x03:
                return self.bnry
            case 0x04:
                return self.tsr
            case 0x05:
                return 0  # NCR: no collisions on the emulated wire
            case 0x06:
                return 0  # FIFO
            case 0x07:
                return self.isr
            case 0x08:
                return self.rsar & 0xFF  # CRDA0
            case 0x09:
                return self.rsar >> 8  # CRDA1
            case 0x0C:
                return self.rsr
            case 0x0D | 0x0E | 0x0F:
                value = self.cntr[offset - 0x0D]
                self.cntr[offset - 0x0D] = 0  # tally counters clear when read
                return value
        return 0xFF  # 0x0A/0x0B: reserved

    def _read_page2(self, offset: int) -> int:
        match offset:
            case 0x01:
                return self.pstart
            case 0x02:
                return self.pstop
            case 0x04:
                return self.tpsr
            case 0x0C:
                return self.rcr | 0xC0
            case 0x0D:
                return self.tcr | 0xE0
            case 0x0E:
                return self.dcr | 0x80
            case 0x0F:
                return self.imr | 0x80
        return 0xFF

    def _write_register(self, offset: int, value: int) -> None:
        if offset == _CR:
            self._write_cr(value)
            return
        page = self.cr >> 6
        if page == 0:
            self._write_page0(offset, value)
        elif page == 1:
            if offset <= 6:
                par = bytearray(self.par)
                par[offset - 1] = value
                self.par = bytes(par)
            elif offset == 7:
                self.curr = value
            else:
                mar = bytearray(self.mar)
                mar[offset - 8] = value
                self.mar = bytes(mar)
        # Page 2 is for diagnostics: its writable pointers (RNPP, LNPP, the address
        # counter) are not modelled, and writes there are ignored.

    def _write_page0(self, offset: int, value: int) -> None:
        match offset:
            case 0x01:
                self.pstart = value
            case 0x02:
                self.pstop = value
            case 0x03:
                self.bnry = value
            case 0x04:
                self.tpsr = value
            case 0x05:
                self.tbcr = (self.tbcr & 0xFF00) | value
            case 0x06:
                self.tbcr = (self.tbcr & 0x00FF) | (value << 8)
            case 0x07:
                self.isr &= ~(value & 0x7F)  # writing 1s acknowledges (RST is read-only)
                self._update_irq()
            case 0x08:
                self.rsar = (self.rsar & 0xFF00) | value
            case 0x09:
                self.rsar = (self.rsar & 0x00FF) | (value << 8)
            case 0x0A:
                self.rbcr = (self.rbcr & 0xFF00) | value
            case 0x0B:
                self.rbcr = (self.rbcr & 0x00FF) | (value << 8)
            case 0x0C:
                self.rcr = value & 0x3F
            case 0x0D:
                self.tcr = value & 0x1F
            case 0x0E:
                self.dcr = value & 0x7F
            case 0x0F:
                self.imr = value & 0x7F
                self._update_irq()

    def _write_cr(self, value: int) -> None:
        if value & CR_STP:
            self.cr = (value & ~CR_STA & ~CR_TXP) | CR_STP
            self.isr |= ISR_RST
        elif value & CR_STA:
            self.cr = value & ~CR_STP
            self.isr &= ~ISR_RST
        else:
            self.cr = (self.cr & (CR_STP | CR_STA)) | (value & ~(CR_STP | CR_STA))
        if value & (CR_RD_READ | CR_RD_WRITE) and self.rbcr == 0:
            self.isr |= ISR_RDC  # a remote DMA of 0 bytes is complete at once
        if value & CR_TXP and not self.cr & CR_STP:
            self._transmit()
        self.cr &= ~CR_TXP
        self._update_irq()

    def _transmit(self) -> None:
        start = self.tpsr << 8
        frame = bytes(self._mem_read(start + i) for i in range(min(self.tbcr, MAX_FRAME)))
        self.tsr = TSR_PTX
        self.isr |= ISR_PTX
        if self.tcr & TCR_LB:
            self.receive(frame)  # loopback: the frame comes straight back, never leaves
        else:
            self.sink.transmit(frame, self.ctx.now_ns())

    # -- remote DMA -------------------------------------------------------------------------

    def _dma_step(self) -> None:
        self.rsar = (self.rsar + 1) & 0xFFFF
        if self.rsar == self.pstop << 8 and self.pstop > self.pstart:
            self.rsar = self.pstart << 8  # reads of a frame wrap around the ring
        if self.rbcr > 0:
            self.rbcr -= 1
            if self.rbcr == 0:
                self.isr |= ISR_RDC
                self.cr &= ~_CR_RD
                self.cr |= CR_RD_ABORT
                self._update_irq()

    def _dma_read(self, size: int) -> int:
        value = 0
        for i in range(size):
            value |= self._mem_read(self.rsar) << (8 * i)
            self._dma_step()
        return value

    def _dma_write(self, size: int, value: int) -> None:
        for i in range(size):
            self._mem_write(self.rsar, (value >> (8 * i)) & 0xFF)
            self._dma_step()

    # -- state -----------------------------------------------------------------------------

    state_fields = (
        *fields(INT, "cr", "isr", "imr", "dcr", "rcr", "tcr", "tsr", "rsr", "pstart", "pstop"),
        *fields(INT, "bnry", "curr", "tpsr", "tbcr", "rsar", "rbcr"),
        *fields(BYTES, "par", "mar"),
        Field("cntr", Codec(_load_tally, list)),
        *fields(BUFFER, "ram"),
        *fields(BOOL, "_irq_level"),
    )

    def load_state(self, state: Mapping[str, StateValue]) -> None:
        par, mar = state_bytes(state["par"]), state_bytes(state["mar"])
        if len(state_bytes(state["ram"])) != RAM_SIZE or len(par) != 6 or len(mar) != 8:
            raise TypeError("malformed ne2000 state (RAM, PAR or MAR size)")
        if not isinstance(state["irq_level"], bool):
            raise TypeError("expected a bool irq_level in the ne2000 state")
        super().load_state(state)

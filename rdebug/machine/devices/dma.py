"""The PC's ISA DMA: two cascaded 8237A controllers and their page registers.

Owns the registers of both controllers (per channel: base and current address and count,
mode; per controller: the byte-pointer flip-flop, command, status, request and mask
registers, the temporary register) and the 74LS612 page registers, and moves bytes between
guest RAM and a device when that device asks.  It does not decide *when* bytes move: the
device that drives DREQ does (the sound card at its sample rate, in virtual time), by
calling `write_memory` / `read_memory` at an exact icount; the controller applies the
channel's programming (direction, increment or decrement, terminal count, auto-init).

Ports::

    0x00-0x0F  controller 1, channels 0-3, 8-bit transfers (one port per register)
    0xC0-0xDF  controller 2, channels 4-7, 16-bit transfers (register n at 0xC0 + 2n)
    0x81-0x8F  page registers (0x87 ch0, 0x83 ch1, 0x81 ch2, 0x82 ch3, 0x8B ch5,
               0x89 ch6, 0x8A ch7; the others are plain storage; 0x80 is the POST port)

    register  read                      write
    0,2,4,6   current address (lo, hi)  base and current address (lo, hi)
    1,3,5,7   current count (lo, hi)    base and current count (lo, hi)
    8         status (TC 3-0, DREQ 7-4) command
    9         -                         request (bit 2 set/clear, bits 1-0 channel)
    10        -                         single mask (bit 2 set/clear, bits 1-0 channel)
    11        -                         mode (7-6 demand/single/block/cascade, 5 decrement,
                                        4 auto-init, 3-2 verify/write/read, 1-0 channel)
    12        -                         clear the byte-pointer flip-flop
    13        temporary register        master clear
    14        -                         clear all mask bits
    15        mask bits                 write all mask bits

A channel moves bytes only while it is unmasked and programmed for the direction asked
(a "write" transfer goes device -> memory, a "read" transfer memory -> device; verify
counts without touching memory).  Single, block and demand modes move the same bytes at
the same moments here (the device paces every transfer); cascade channels move none.
After the transfer whose count went from 0 to 0xFFFF (terminal count) the channel sets
its TC status bit and either reloads its base address and count (auto-init) or masks
itself.  Channels 4-7 count 16-bit words: the word address is shifted left by one and
the page's bit 0 is ignored, so a transfer never crosses a 128 KiB boundary (nor an
8-bit one a 64 KiB boundary: the address wraps inside its page, as on the real chips).

Reference: Intel 8237A datasheet ("Register Description", "Programming"); IBM PC/AT
Technical Reference (DMA page registers); QEMU hw/dma/i8257.c.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from rdebug.machine.devices.base import (
    BOOL,
    BUFFER,
    INT,
    ByteDevice,
    DeviceContext,
    State,
    Stateful,
    StateValue,
    fields,
)

#: Page register port of each channel (channel 4 is the cascade: no page register).
PAGE_PORTS = {0: 0x87, 1: 0x83, 2: 0x81, 3: 0x82, 5: 0x8B, 6: 0x89, 7: 0x8A}
_PAGE_RANGE = range(0x81, 0x90)
_CHANNEL_OF_PAGE_PORT = {port: channel for channel, port in PAGE_PORTS.items()}

# Mode register fields.
MODE_VERIFY = 0x00
MODE_WRITE = 0x04  # device -> memory
MODE_READ = 0x08  # memory -> device
_MODE_TRANSFER = 0x0C
MODE_AUTOINIT = 0x10
MODE_DECREMENT = 0x20
MODE_DEMAND = 0x00
MODE_SINGLE = 0x40
MODE_BLOCK = 0x80
MODE_CASCADE = 0xC0
_MODE_KIND = 0xC0

#: Command register bit 2: controller disabled.
_COMMAND_DISABLE = 0x04


class PhysicalMemory(Protocol):
    """Guest RAM as the DMA controller reaches it (physical addresses)."""

    ram_size: int

    def read_physical(self, paddr: int, length: int) -> bytes: ...

    def write_physical(self, paddr: int, data: bytes) -> None: ...


class _Channel(Stateful):
    """One channel's registers."""

    state_fields = fields(INT, "base_address", "base_count", "address", "count", "mode", "page")

    def __init__(self) -> None:
        self.base_address = 0
        self.base_count = 0
        self.address = 0
        self.count = 0
        self.mode = 0
        self.page = 0


class _Controller(Stateful):
    """One 8237A: four channels and the controller-wide registers."""

    state_fields = (
        *fields(INT, "command", "status", "request", "mask", "temporary"),
        *fields(BOOL, "flip_flop"),
    )

    def __init__(self, word: bool) -> None:
        self.word = word  # 16-bit transfers (controller 2)
        self.channels = [_Channel() for _ in range(4)]
        self.master_clear()

    def master_clear(self) -> None:
        self.command = 0
        self.status = 0  # TC bits 3-0 (request bits 7-4 come from DREQ)
        self.request = 0  # software requests, bits 3-0
        self.mask = 0x0F
        self.flip_flop = False
        self.temporary = 0

    def read(self, register: int, dreq: int) -> int:
        if register < 8:
            channel = self.channels[register >> 1]
            value = channel.count if register & 1 else channel.address
            byte = (value >> 8) & 0xFF if self.flip_flop else value & 0xFF
            self.flip_flop = not self.flip_flop
            return byte
        match register:
            case 8:
                value = self.status | ((dreq | self.request) & 0x0F) << 4
                self.status = 0  # reading status clears the TC bits
                return value
            case 13:
                return self.temporary
            case 15:
                return self.mask | 0xF0
            case _:
                return 0xFF

    def write(self, register: int, value: int) -> None:
        if register < 8:
            channel = self.channels[register >> 1]
            field_shift = 8 if self.flip_flop else 0
            keep = 0x00FF if self.flip_flop else 0xFF00
            if register & 1:
                channel.base_count = (channel.base_count & keep) | value << field_shift
                channel.count = channel.base_count
            else:
                channel.base_address = (channel.base_address & keep) | value << field_shift
                channel.address = channel.base_address
            self.flip_flop = not self.flip_flop
            return
        match register:
            case 8:
                self.command = value
            case 9:
                bit = 1 << (value & 3)
                self.request = self.request | bit if value & 4 else self.request & ~bit
            case 10:
                bit = 1 << (value & 3)
                self.mask = self.mask | bit if value & 4 else self.mask & ~bit
            case 11:
                self.channels[value & 3].mode = value & 0xFC
            case 12:
                self.flip_flop = False
            case 13:
                self.master_clear()
            case 14:
                self.mask = 0
            case 15:
                self.mask = value & 0x0F
            case _:
                pass

    def save_state(self) -> State:
        state = super().save_state()
        state["channels"] = [channel.save_state() for channel in self.channels]
        return state

    def load_state(self, state: Mapping[str, StateValue]) -> None:
        super().load_state(state)
        channels = state["channels"]
        if not isinstance(channels, list) or len(channels) != 4:
            raise TypeError("expected four DMA channels in a device state")
        for channel, saved in zip(self.channels, channels, strict=True):
            if not isinstance(saved, dict):
                raise TypeError("expected a DMA channel's registers in a device state")
            channel.load_state(saved)


class IsaDma(ByteDevice):
    """The two 8237A controllers of a PC/AT (channels 0-3 8-bit, 4-7 16-bit).

    Devices use `ready`, `write_memory` and `read_memory`; `set_dreq` shows their
    request line in the status register.
    """

    name = "dma"
    ports = (range(0x00, 0x10), _PAGE_RANGE, range(0xC0, 0xE0))
    state_fields = (*fields(BUFFER, "extra_pages"), *fields(INT, "_dreq"))

    def __init__(self, ctx: DeviceContext, memory: PhysicalMemory) -> None:
        super().__init__(ctx)
        self.memory = memory
        self.controllers = (_Controller(word=False), _Controller(word=True))
        self.extra_pages = bytearray(len(_PAGE_RANGE))  # page ports of no channel
        self._dreq = 0  # DREQ lines 7-0 as devices drive them

    def reset(self) -> None:
        for controller in self.controllers:
            controller.master_clear()  # (a master clear keeps addresses, counts, pages)
            controller.channels = [_Channel() for _ in range(4)]
        self.extra_pages = bytearray(len(_PAGE_RANGE))

    # -- the guest's side -------------------------------------------------------------------

    def _read_byte(self, port: int) -> int:
        if port < 0x10:
            return self.controllers[0].read(port, self._dreq & 0x0F)
        if 0xC0 <= port < 0xE0:
            if port & 1:
                return 0xFF  # controller 2 decodes even ports only
            return self.controllers[1].read((port - 0xC0) >> 1, self._dreq >> 4)
        if port in _CHANNEL_OF_PAGE_PORT:
            return self._channel(_CHANNEL_OF_PAGE_PORT[port]).page
        if port in _PAGE_RANGE:
            return self.extra_pages[port - _PAGE_RANGE.start]
        return 0xFF

    def _write_byte(self, port: int, value: int) -> None:
        if port < 0x10:
            self.controllers[0].write(port, value)
        elif 0xC0 <= port < 0xE0:
            if not port & 1:
                self.controllers[1].write((port - 0xC0) >> 1, value)
        elif port in _CHANNEL_OF_PAGE_PORT:
            self._channel(_CHANNEL_OF_PAGE_PORT[port]).page = value
        elif port in _PAGE_RANGE:
            self.extra_pages[port - _PAGE_RANGE.start] = value

    # -- the devices' side ------------------------------------------------------------------

    def _channel(self, number: int) -> _Channel:
        return self.controllers[number >> 2].channels[number & 3]

    def set_dreq(self, number: int, level: bool) -> None:
        """A device raises or drops DREQ `number` (shown in the status register)."""
        bit = 1 << number
        self._dreq = self._dreq | bit if level else self._dreq & ~bit

    def ready(self, number: int, direction: int) -> bool:
        """Whether channel `number` would move bytes in `direction` (MODE_WRITE or
        MODE_READ; a verify channel counts either way) now."""
        controller = self.controllers[number >> 2]
        channel = controller.channels[number & 3]
        if controller.command & _COMMAND_DISABLE or controller.mask & (1 << (number & 3)):
            return False
        if channel.mode & _MODE_KIND == MODE_CASCADE:
            return False
        transfer = channel.mode & _MODE_TRANSFER
        return transfer in (direction, MODE_VERIFY)

    def unit(self, number: int) -> int:
        """Bytes per transfer on channel `number`: 1 (channels 0-3) or 2 (4-7)."""
        return 2 if number >= 4 else 1

    def bytes_before_stop(self, number: int) -> int:
        """Bytes channel `number` moves before its terminal count masks it (auto-init
        channels never stop: a large number)."""
        channel = self._channel(number)
        if channel.mode & MODE_AUTOINIT:
            return 1 << 32
        return (channel.count + 1) * self.unit(number)

    def write_memory(self, number: int, data: bytes) -> int:
        """Device -> memory on channel `number`: how many bytes of `data` it took.

        Stops early at a terminal count without auto-init (the channel masks itself) or
        when the channel is not ready; `data` must hold whole transfers.
        """
        return self._transfer(number, MODE_WRITE, len(data), data)[0]

    def read_memory(self, number: int, length: int) -> bytes:
        """Memory -> device on channel `number`: up to `length` bytes (whole transfers)."""
        return self._transfer(number, MODE_READ, length, b"")[1]

    def _transfer(self, number: int, direction: int, length: int, data: bytes) -> tuple[int, bytes]:
        """Move whole transfers one contiguous run at a time (runs end at a terminal
        count or where the address wraps inside its page)."""
        controller = self.controllers[number >> 2]
        channel = controller.channels[number & 3]
        unit = self.unit(number)
        moved = 0
        out = bytearray()
        while moved + unit <= length and self.ready(number, direction):
            transfers = (length - moved) // unit
            decrement = bool(channel.mode & MODE_DECREMENT)
            # Transfers left before the terminal count, and before the address wraps.
            run = min(transfers, channel.count + 1)
            run = min(run, (channel.address + 1) if decrement else (0x10000 - channel.address))
            verify = channel.mode & _MODE_TRANSFER == MODE_VERIFY
            if not verify:
                first = channel.address - run + 1 if decrement else channel.address
                paddr = self._physical(number, first)
                if direction == MODE_WRITE:
                    chunk = data[moved : moved + run * unit]
                    if decrement:
                        chunk = _reverse_units(chunk, unit)
                    self._write_ram(paddr, chunk)
                else:
                    chunk = self._read_ram(paddr, run * unit)
                    if decrement:
                        chunk = _reverse_units(chunk, unit)
                    out += chunk
            elif direction == MODE_READ:
                out += bytes(run * unit)
            moved += run * unit
            step = -run if decrement else run
            channel.address = (channel.address + step) & 0xFFFF
            channel.count -= run
            if channel.count < 0:  # terminal count
                channel.count = 0xFFFF
                controller.status |= 1 << (number & 3)
                controller.request &= ~(1 << (number & 3))
                if channel.mode & MODE_AUTOINIT:
                    channel.address = channel.base_address
                    channel.count = channel.base_count
                else:
                    controller.mask |= 1 << (number & 3)
        return moved, bytes(out)

    def _physical(self, number: int, address: int) -> int:
        channel = self._channel(number)
        if number >= 4:
            return (channel.page & 0xFE) << 16 | address << 1
        return channel.page << 16 | address

    def _write_ram(self, paddr: int, data: bytes) -> None:
        end = min(paddr + len(data), self.memory.ram_size)
        if paddr < end:
            self.memory.write_physical(paddr, data[: end - paddr])

    def _read_ram(self, paddr: int, length: int) -> bytes:
        end = min(paddr + length, self.memory.ram_size)
        inside = self.memory.read_physical(paddr, end - paddr) if paddr < end else b""
        return inside + b"\xff" * (length - len(inside))  # no RAM there: a floating bus

    def terminal_count(self, number: int) -> bool:
        """The channel's TC status bit (cleared when the guest reads the status)."""
        return bool(self.controllers[number >> 2].status & (1 << (number & 3)))

    def position(self, number: int) -> tuple[int, int]:
        """(current address, current count) of channel `number`."""
        channel = self._channel(number)
        return channel.address, channel.count

    # -- snapshots --------------------------------------------------------------------------

    def save_state(self) -> State:
        state = super().save_state()
        state["controllers"] = [controller.save_state() for controller in self.controllers]
        return state

    def load_state(self, state: Mapping[str, StateValue]) -> None:
        super().load_state(state)
        controllers = state["controllers"]
        if not isinstance(controllers, list) or len(controllers) != 2:
            raise TypeError("expected two DMA controllers in a device state")
        for controller, saved in zip(self.controllers, controllers, strict=True):
            if not isinstance(saved, dict):
                raise TypeError("expected a DMA controller's registers in a device state")
            controller.load_state(saved)
        if len(self.extra_pages) != len(_PAGE_RANGE):
            raise TypeError("expected the DMA page registers in a device state")


def _reverse_units(data: bytes, unit: int) -> bytes:
    """`data` with its `unit`-byte transfers in reverse order (address decrement)."""
    if unit == 1:
        return data[::-1]
    return b"".join(data[i : i + unit] for i in range(len(data) - unit, -1, -unit))

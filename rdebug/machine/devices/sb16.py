"""Creative Sound Blaster 16: the DSP (version 4.05) and the mixer, over ISA DMA.

Owns the DSP's command interpreter (reset, version, sample rate and time constant, block
size, the 8-bit and 16-bit single-cycle and auto-init DMA output and input commands,
pause/continue, exit auto-init, speaker on/off and status, test register,
identification, the forced interrupts), the interrupt status and acknowledge reads, and
the mixer registers (including the IRQ and DMA setting registers 0x80/0x81 and the
interrupt status 0x82).  It does not know where played samples go (an `AudioSink`) nor
where recorded ones come from (a `Microphone`: the machine passes the inputs seam's, so a
recording logs them and a replay serves them); the bytes move through `IsaDma`.

Ports (base 0x220 by default)::

    +0x4  mixer register index (write)      +0x5  mixer data (read/write)
    +0x6  DSP reset (write 1 then 0)        +0xA  DSP read data
    +0xC  DSP write command/data; read: write-buffer status (bit 7 clear: ready)
    +0xE  read-buffer status (bit 7: data to read); reading acknowledges the 8-bit IRQ
    +0xF  reading acknowledges the 16-bit IRQ

Timing: a transfer at R frames per second moves R frames per second of *virtual* time.
From the moment a DMA command completes, the card is due ``elapsed_ns * byte_rate / 1e9``
bytes; it moves them at its timer, at most `CHUNK_S` seconds' worth at a time and never
across the end of a block, where it raises its IRQ (and reloads the block in auto-init
mode, or stops).  A replay therefore moves the same bytes at the same icounts.  When
the DMA channel is masked or programmed the other way, the card waits (nothing moves,
no microphone sample is taken) and starts counting again from the moment it can.

Transfer lengths: the 8-bit commands 0x14/0x24 and the block size (0x48, for the
auto-init commands 0x1C/0x2C/0x90/0x98 and their high-speed single-cycle forms) count
bytes less one; the SB16 commands 0xBx/0xCx count samples less one, 16-bit samples for
0xBx, both channels of a stereo frame counting (a 16-bit stereo block of N frames is
2N - 1).  Speaker on/off (0xD1/0xD3) is kept and reported by 0xD8; as on a real SB16
(DSP 4.xx) it does not mute the DMA output.

Reference: Creative "Sound Blaster Series Hardware Programming Guide" (DSP commands,
mixer registers 0x80-0x82); QEMU hw/audio/sb16.c.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from rdebug.machine.audio import AudioFormat
from rdebug.machine.devices.base import (
    BOOL,
    BUFFER,
    INT,
    OPT_INT,
    ByteDevice,
    DeviceContext,
    StateValue,
    fields,
)
from rdebug.machine.devices.dma import MODE_READ, MODE_WRITE, IsaDma

NS_PER_S = 1_000_000_000
DSP_VERSION = (4, 5)
#: The most virtual time one step of a transfer covers (the DMA position, and a
#: recording's audio-input events, move in steps of this much or less).
CHUNK_S_DIVISOR = 100  # 10 ms
RATE_MIN = 5000
RATE_MAX = 45000
#: Rate after a DSP reset (QEMU's too).
DEFAULT_RATE = 11025
COPYRIGHT = b"COPYRIGHT (C) CREATIVE TECHNOLOGY LTD, 1992."

_IRQ_BITS = {1: 9, 2: 5, 4: 7, 8: 10}  # mixer 0x80 bit -> IRQ line (bit 0: IRQ 2/9)
_IRQ_MAGIC = {line: bit for bit, line in _IRQ_BITS.items()}
_MIXER_IRQ = 0x80
_MIXER_DMA = 0x81
_MIXER_STATUS = 0x82
_STATUS_8BIT = 0x01
_STATUS_16BIT = 0x02

#: Parameter bytes each command takes (commands absent here take none).
_PARAMS = {0x04: 1, 0x05: 2, 0x0E: 2, 0x0F: 1, 0x10: 1, 0x14: 2, 0x24: 2, 0x40: 1,
           0x41: 2, 0x42: 2, 0x48: 2, 0x80: 2, 0xE0: 1, 0xE2: 1, 0xE4: 1, 0xF9: 1}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Sb16Config:
    """A Sound Blaster 16 on the ISA bus (QEMU's `-device sb16,iobase=..,irq=..,...`)."""

    iobase: int = 0x220
    irq: int = 5
    dma: int = 1
    dma16: int = 5

    def __post_init__(self) -> None:
        if self.iobase not in (0x220, 0x240, 0x260, 0x280):
            raise ValueError(f"iobase {self.iobase:#x}: must be 0x220, 0x240, 0x260 or 0x280")
        if self.irq not in _IRQ_MAGIC:
            raise ValueError(f"irq {self.irq}: must be 5, 7, 9 or 10")
        if self.dma not in (0, 1, 3):
            raise ValueError(f"dma {self.dma}: must be 0, 1 or 3")
        if self.dma16 not in (5, 6, 7):
            raise ValueError(f"dma16 {self.dma16}: must be 5, 6 or 7")


class AudioSink(Protocol):
    """Where played samples go (a WAV file, nothing)."""

    def play(self, fmt: AudioFormat, data: bytes) -> None: ...


class Microphone(Protocol):
    def __call__(self, fmt: AudioFormat, frames: int) -> bytes:
        """The next `frames` frames of the microphone in `fmt` (exactly that many bytes)."""
        ...


class NullSink:
    """Discards played samples."""

    def play(self, fmt: AudioFormat, data: bytes) -> None:
        del fmt, data


def silent_microphone(fmt: AudioFormat, frames: int) -> bytes:
    """A microphone that hears nothing."""
    return fmt.silence(frames)


class Sb16(ByteDevice):
    """One Sound Blaster 16 (DSP 4.05) using `dma` for its transfers."""

    name = "sb16"
    state_fields = (
        *fields(INT, "mixer_index", "command", "last_read", "test_register", "rate"),
        *fields(INT, "block_size", "fmt_rate", "fmt_channels", "fmt_bits", "block_bytes"),
        *fields(INT, "left", "epoch_ns", "epoch_bytes", "moved", "_irq_line"),
        *fields(BOOL, "reset_latch", "speaker", "active", "paused", "input", "wide"),
        *fields(BOOL, "auto_init", "fmt_signed", "_irq_level"),
        *fields(OPT_INT, "time_constant", "silence_deadline"),
        *fields(BUFFER, "mixer", "params", "out"),
    )

    def __init__(
        self,
        ctx: DeviceContext,
        dma: IsaDma,
        config: Sb16Config | None = None,
        sink: AudioSink | None = None,
        microphone: Microphone = silent_microphone,
    ) -> None:
        super().__init__(ctx)
        self.config = config if config is not None else Sb16Config()
        self.dma = dma
        self.sink: AudioSink = sink if sink is not None else NullSink()
        self.microphone = microphone
        self.base = self.config.iobase
        self.ports = (range(self.base + 4, self.base + 0x10),)
        self._irq_level = False
        self._irq_line = self.config.irq
        self._init_mixer()
        self._init_dsp()

    # -- power-on and DSP reset ---------------------------------------------------------------

    def _init_mixer(self) -> None:
        regs = bytearray(256)
        for index in range(0x30, 0x48):
            regs[index] = 0x20  # SB16 volume and gain registers: mid-scale
        regs[0x04] = regs[0x22] = regs[0x26] = 0x88  # SB Pro voice, master, MIDI volumes
        regs[_MIXER_IRQ] = _IRQ_MAGIC[self.config.irq]
        regs[_MIXER_DMA] = 1 << self.config.dma | 1 << self.config.dma16
        self.mixer = regs
        self.mixer_index = 0

    def _init_dsp(self) -> None:
        self.reset_latch = False  # 1 was written to the reset port
        self.command = -1  # the command collecting parameters, or -1
        self.params = bytearray()
        self.out = bytearray(b"\xaa")  # bytes for the guest to read (0xAA: reset done)
        self.last_read = 0xAA
        self.test_register = 0
        self.speaker = False
        self.time_constant: int | None = None
        self.rate = DEFAULT_RATE
        self.block_size = 0x7FF  # 0x48's value: bytes less one
        self._stop_transfer()
        self.silence_deadline: int | None = None

    def _stop_transfer(self) -> None:
        self.active = False  # a DMA transfer is programmed (running or paused)
        self.paused = False
        self.input = False  # recording (ADC) rather than playing
        self.wide = False  # 16-bit transfer (on the 16-bit DMA channel)
        self.auto_init = False
        self.fmt_rate = 0
        self.fmt_channels = 1
        self.fmt_bits = 8
        self.fmt_signed = False
        self.block_bytes = 0
        self.left = 0  # bytes left in the current block
        self.epoch_ns = 0  # virtual time at which `epoch_bytes` had moved
        self.epoch_bytes = 0
        self.moved = 0  # bytes moved since the transfer started
        self.deadline: int | None = None

    def reset(self) -> None:
        self._irq_level = self.drive_irq(self._irq_line, False, self._irq_level)
        self._init_mixer()
        self._init_dsp()
        self._arm()

    def _dsp_reset(self) -> None:
        """What writing 1 then 0 to the reset port does: the DSP stops and says 0xAA."""
        self.mixer[_MIXER_STATUS] = 0
        self._init_dsp()
        self._arm()
        self._update_irq()

    # -- derived values ---------------------------------------------------------------------

    @property
    def fmt(self) -> AudioFormat:
        return AudioFormat(self.fmt_rate, self.fmt_channels, self.fmt_bits, self.fmt_signed)

    def _channel(self) -> int:
        """The DMA channel of the current transfer (16-bit ones on dma16 if the mixer
        leaves one set, else on the 8-bit channel, as the SB16 allows)."""
        setting = self.mixer[_MIXER_DMA]
        if self.wide:
            for number in (5, 6, 7):
                if setting & (1 << number):
                    return number
        for number in (0, 1, 3):
            if setting & (1 << number):
                return number
        return self.config.dma

    # -- the guest's side -------------------------------------------------------------------

    def _read_byte(self, port: int) -> int:
        match port - self.base:
            case 0x5:
                return self.mixer[self.mixer_index]
            case 0xA:
                if self.out:
                    self.last_read = self.out.pop(0)
                return self.last_read
            case 0xC:
                return 0x00  # write buffer ready (the DSP takes bytes at once)
            case 0xE:
                value = 0x80 if self.out else 0x00
                self._acknowledge(_STATUS_8BIT)
                return value | 0x7F
            case 0xF:
                self._acknowledge(_STATUS_16BIT)
                return 0xFF
            case _:
                return 0xFF

    def _write_byte(self, port: int, value: int) -> None:
        match port - self.base:
            case 0x4:
                self.mixer_index = value
            case 0x5:
                self._write_mixer(value)
            case 0x6:
                if value & 1:
                    self.reset_latch = True
                elif self.reset_latch:
                    self.reset_latch = False
                    self._dsp_reset()
            case 0xC:
                self._write_dsp(value)
            case _:
                pass

    def _acknowledge(self, bit: int) -> None:
        if self.mixer[_MIXER_STATUS] & bit:
            self.mixer[_MIXER_STATUS] &= ~bit
            self._update_irq()

    def _write_mixer(self, value: int) -> None:
        index = self.mixer_index
        if index == 0x00:  # mixer reset: volumes to their defaults, settings kept
            irq, dma, status = self.mixer[0x80:0x83]
            self._init_mixer()
            self.mixer[0x80:0x83] = bytes((irq, dma, status))
            return
        if index == _MIXER_STATUS:
            return  # read-only
        if index == _MIXER_IRQ:
            line = next((line for bit, line in _IRQ_BITS.items() if value & bit), None)
            if line is None:
                return
            self._irq_level = self.drive_irq(self._irq_line, False, self._irq_level)
            self._irq_line = line
            self.mixer[index] = _IRQ_MAGIC[line]
            self._update_irq()
            return
        self.mixer[index] = value

    def _write_dsp(self, value: int) -> None:
        if self.command < 0:
            self.command = value
            self.params.clear()
        else:
            self.params.append(value)
        if len(self.params) >= self._params_needed(self.command):
            command, self.command = self.command, -1
            self._run(command, bytes(self.params))

    @staticmethod
    def _params_needed(command: int) -> int:
        if 0xB0 <= command <= 0xCF:
            return 3
        return _PARAMS.get(command, 0)

    def _run(self, command: int, params: bytes) -> None:
        """A complete DSP command with its parameter bytes."""
        if 0xB0 <= command <= 0xCF:
            mode, length = params[0], params[1] | params[2] << 8
            self._start(
                wide=command < 0xC0,
                input_=bool(command & 0x08),
                auto_init=bool(command & 0x04),
                channels=2 if mode & 0x20 else 1,
                signed=bool(mode & 0x10),
                length_bytes=(length + 1) * (2 if command < 0xC0 else 1),
            )
            return
        match command:
            case 0x14 | 0x24:  # 8-bit single-cycle output / input
                self._start_8bit(input_=command == 0x24, auto_init=False,
                                 length_bytes=(params[0] | params[1] << 8) + 1)  # fmt: skip
            case 0x1C | 0x2C | 0x90 | 0x98:  # 8-bit auto-init (normal, high-speed)
                self._start_8bit(input_=command in (0x2C, 0x98), auto_init=True,
                                 length_bytes=self.block_size + 1)  # fmt: skip
            case 0x91 | 0x99:  # high-speed 8-bit single-cycle output / input
                self._start_8bit(input_=command == 0x99, auto_init=False,
                                 length_bytes=self.block_size + 1)  # fmt: skip
            case 0x40:
                self.time_constant = params[0]
            case 0x41 | 0x42:  # output / input rate: one clock on a real SB16
                self.time_constant = None
                self._set_rate(max(RATE_MIN, min(RATE_MAX, params[0] << 8 | params[1])))
            case 0x48:
                self.block_size = params[0] | params[1] << 8
            case 0x80:  # silence: an 8-bit IRQ after that many samples
                samples = (params[0] | params[1] << 8) + 1
                rate = self._legacy_rate(1)
                self.silence_deadline = self.ctx.now_ns() + -(-samples * NS_PER_S // rate)
                self._arm()
            case 0xD0 | 0xD5:
                self._pause()
            case 0xD4 | 0xD6 | 0x45 | 0x47:
                self._continue()
            case 0xD1:
                self.speaker = True
            case 0xD3:
                self.speaker = False
            case 0xD8:
                self.out.append(0xFF if self.speaker else 0x00)
            case 0xD9 | 0xDA:  # exit auto-init after this block
                self.auto_init = False
            case 0xE0:
                self.out.append(~params[0] & 0xFF)
            case 0xE1:
                self.out += bytes(DSP_VERSION)
            case 0xE3:
                self.out += COPYRIGHT + b"\x00"
            case 0xE4:
                self.test_register = params[0]
            case 0xE8:
                self.out.append(self.test_register)
            case 0xF2:
                self._raise(_STATUS_8BIT)
            case 0xF3:
                self._raise(_STATUS_16BIT)
            case _:
                pass  # direct DAC/ADC, ADPCM, CSP, MIDI: not modelled (parameters eaten)

    # -- transfers --------------------------------------------------------------------------

    def _legacy_rate(self, channels: int) -> int:
        """Frame rate of an 8-bit legacy command: the time constant's, halved for
        stereo (SB Pro), else the rate set by 0x41/0x42."""
        if self.time_constant is None:
            return self.rate
        return max(1, NS_PER_S // 1000 // (256 - self.time_constant) // channels)

    def _set_rate(self, rate: int) -> None:
        self.catch_up()
        self.rate = rate
        if self.active and not self.paused:
            self.fmt_rate = rate
            self._rebase()
            self._arm()

    def _start_8bit(self, input_: bool, auto_init: bool, length_bytes: int) -> None:
        channels = 2 if self.mixer[0x0E] & 0x02 else 1  # SB Pro stereo switch
        self._start(False, input_, auto_init, channels, False, length_bytes,
                    rate=self._legacy_rate(channels))  # fmt: skip

    def _start(
        self,
        wide: bool,
        input_: bool,
        auto_init: bool,
        channels: int,
        signed: bool,
        length_bytes: int,
        rate: int | None = None,
    ) -> None:
        self.catch_up()
        self._stop_transfer()
        self.active = True
        self.input = input_
        self.wide = wide
        self.auto_init = auto_init
        self.fmt_channels = channels
        self.fmt_bits = 16 if wide else 8
        self.fmt_signed = signed
        if rate is None:
            rate = self.rate if self.time_constant is None else self._legacy_rate(1)
        self.fmt_rate = rate
        self.block_bytes = self.left = length_bytes
        self._rebase()
        self.dma.set_dreq(self._channel(), True)
        self._arm()

    def _pause(self) -> None:
        if self.active and not self.paused:
            self.catch_up()
            self.paused = True
            self.dma.set_dreq(self._channel(), False)
            self._arm()

    def _continue(self) -> None:
        if self.active and self.paused:
            self.paused = False
            self._rebase()
            self.dma.set_dreq(self._channel(), True)
            self._arm()

    def _rebase(self) -> None:
        """Count due bytes from now on."""
        self.epoch_ns = self.ctx.now_ns()
        self.epoch_bytes = self.moved

    def _due(self, now: int) -> int:
        """Bytes due by `now` in the current block (whole frames, or the block's end)."""
        fmt = self.fmt
        due = self.epoch_bytes + (now - self.epoch_ns) * fmt.byte_rate // NS_PER_S
        due -= (due - self.epoch_bytes) % fmt.frame_bytes
        return min(due - self.moved, self.left)

    def catch_up(self) -> None:
        """Move every byte due by now (at a timer, or before the guest changes things)."""
        if not self.active or self.paused or self.fmt_rate <= 0:
            return
        now = self.ctx.now_ns()
        while self.active:
            length = self._due(now)
            if length <= 0:
                return
            moved = self._move(length)
            self.moved += moved
            self.left -= moved
            if moved < length:  # the channel stalled: count again once it can move
                self._rebase()
                return
            if self.left == 0:
                self._end_block()

    def _move(self, length: int) -> int:
        """Move `length` bytes over DMA, now; fewer if the channel cannot take them."""
        channel = self._channel()
        direction = MODE_WRITE if self.input else MODE_READ
        if not self.dma.ready(channel, direction):
            return 0
        length = min(length, self.dma.bytes_before_stop(channel))
        fmt = self.fmt
        length -= length % self.dma.unit(channel)
        if length <= 0:
            return 0
        if self.input:
            frames = -(-length // fmt.frame_bytes)
            data = self.microphone(fmt, frames)[:length]
            return self.dma.write_memory(channel, data)
        data = self.dma.read_memory(channel, length)
        if data:
            self.sink.play(fmt, data)
        return len(data)

    def _end_block(self) -> None:
        self._raise(_STATUS_16BIT if self.wide else _STATUS_8BIT)
        if self.auto_init:
            self.left = self.block_bytes
        else:
            self.dma.set_dreq(self._channel(), False)
            self._stop_transfer()

    def _raise(self, bit: int) -> None:
        self.mixer[_MIXER_STATUS] |= bit
        self._update_irq()

    def _update_irq(self) -> None:
        level = bool(self.mixer[_MIXER_STATUS] & (_STATUS_8BIT | _STATUS_16BIT))
        self._irq_level = self.drive_irq(self._irq_line, level, self._irq_level)

    # -- time -------------------------------------------------------------------------------

    def _next_step_ns(self) -> int | None:
        """When the next step of the transfer is due (a chunk, or the block's end)."""
        if not self.active or self.paused or self.fmt_rate <= 0:
            return None
        fmt = self.fmt
        chunk = max(fmt.frame_bytes, fmt.byte_rate // CHUNK_S_DIVISOR)
        chunk -= chunk % fmt.frame_bytes
        target = self.moved + min(self.left, chunk)
        return self.epoch_ns + -(-(target - self.epoch_bytes) * NS_PER_S // fmt.byte_rate)

    def _arm(self) -> None:
        self.deadline = self._next_step_ns()
        deadlines = [d for d in (self.deadline, self.silence_deadline) if d is not None]
        self.ctx.set_timer(self, min(deadlines) if deadlines else None)

    def on_timer(self) -> None:
        now = self.ctx.now_ns()
        if self.silence_deadline is not None and now >= self.silence_deadline:
            self.silence_deadline = None
            self._raise(_STATUS_8BIT)
        self.catch_up()
        self._arm()

    # -- snapshots --------------------------------------------------------------------------

    def load_state(self, state: Mapping[str, StateValue]) -> None:
        super().load_state(state)
        self._arm()

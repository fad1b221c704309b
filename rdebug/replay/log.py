"""The replay log format (the seed's "Replay log format"), encoded and decoded.

The seed is QEMU's record/replay design notes, docs/replay.txt of March 2018
(docs/replay-log.md says what rdebug follows of it).

Owns every byte of a replay log; knows nothing of the machine.  Layout, big-endian:

    header   +--------------------+------------------------------+
             | version id (u32)   | reserved (u64, zero)         |
             +--------------------+------------------------------+
    events   +----------+---------------------------+
             | id (u8)  | arguments of that event   |  ... until EVENT_END
             +----------+---------------------------+
    array    +-------------------+------------------+
             | length (u32)      | bytes            |
             +-------------------+------------------+

Event ids, as in QEMU's replay-internal.h of the seed's era (one id per shutdown cause,
clock kind and checkpoint kind, so those carry no extra byte):

    0  EVENT_INSTRUCTION        u32 instructions executed since the previous event
    1  EVENT_INTERRUPT          (an interrupt was taken here)
    2  EVENT_EXCEPTION          (an exception or software interrupt was taken here)
    3  EVENT_ASYNC              u8 checkpoint id, u8 async kind, then by kind:
                                  0 BH          u64 operation id
                                  1 INPUT       u32 input kind, then 8 bytes of data:
                                    0 KEY  u32 key (set-1 make code, 0xE0xx), u8 down, 3x0
                                    1 BTN  u32 button (0 left 1 middle 2 right), u8 down,
                                           3x0
                                    2 REL  u32 axis (0 X, 1 Y), i32 value (Y up)
                                  2 INPUT_SYNC  -
                                  3 CHAR_READ   u8 char device id, array of bytes
                                  4 BLOCK       u64 operation id
                                  5 NET         u8 adapter id, u32 flags, array packet
    4..11 EVENT_SHUTDOWN + cause (0 none, 1 host error, 2 host command, 3 host signal,
                                  4 host UI, 5 guest shutdown, 6 guest reset,
                                  7 guest panic)
    12 EVENT_CHAR_WRITE         u32 result, u32 offset
    13 EVENT_CHAR_READ_ALL      array of bytes
    14 EVENT_CHAR_READ_ALL_ERROR u32 error code
    15..16 EVENT_CLOCK + clock  u64 value (0 host clock, 1 virtual real-time clock)
    17..25 EVENT_CHECKPOINT + id (0 clock warp start, 1 clock warp account, 2 reset
                                  requested, 3 suspend requested, 4 clock virtual,
                                  5 clock host, 6 clock virtual RT, 7 init, 8 reset)
    26 EVENT_END
    27 EVENT_AUDIO_IN           u8 card, u32 rate (Hz), u8 channels, u8 bits, u8 signed,
                                array of the sample bytes the card took (whole frames)

EVENT_AUDIO_IN is rdebug's (QEMU's later logs have an AUDIO_IN of their own, in their
mixing engine's format, with other ids): the microphone's samples as the sound card
received them, one event per step of a transfer (at most 10 ms of sound).

Bump LOG_VERSION whenever anything above changes, or what an icount in it means.
Revision 2: a host clock read is logged at the icount of the instruction that made it
(revision 1 used the end of its translation block, which a replay cut elsewhere could
not reproduce), and instruction counts are checked per address space.
Revision 3: EVENT_AUDIO_IN; the machine has an ISA DMA controller (and may have a sound
card) whose state is in every snapshot.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from rdebug.errors import FormatError

#: rdebug's own log version id ("rd" + format revision).  Bump when the format changes.
LOG_VERSION = 0x72640003
HEADER = struct.Struct(">IQ")
HEADER_SIZE = HEADER.size


class ShutdownCause(enum.IntEnum):
    NONE = 0
    HOST_ERROR = 1
    HOST_COMMAND = 2
    HOST_SIGNAL = 3
    HOST_UI = 4
    GUEST_SHUTDOWN = 5
    GUEST_RESET = 6
    GUEST_PANIC = 7


class ClockKind(enum.IntEnum):
    HOST = 0
    VIRTUAL_RT = 1


class CheckpointKind(enum.IntEnum):
    CLOCK_WARP_START = 0
    CLOCK_WARP_ACCOUNT = 1
    RESET_REQUESTED = 2
    SUSPEND_REQUESTED = 3
    CLOCK_VIRTUAL = 4
    CLOCK_HOST = 5
    CLOCK_VIRTUAL_RT = 6
    INIT = 7
    RESET = 8


class AsyncKind(enum.IntEnum):
    BH = 0
    INPUT = 1
    INPUT_SYNC = 2
    CHAR_READ = 3
    BLOCK = 4
    NET = 5


class InputKind(enum.IntEnum):
    """QEMU's InputEvent kinds, as EVENT_ASYNC INPUT carries them."""

    KEY = 0
    BTN = 1
    REL = 2


class Axis(enum.IntEnum):
    X = 0
    Y = 1


#: The 8 data bytes of KEY and BTN input events: key or button, down flag.
INPUT_PRESS = struct.Struct(">IB3x")
#: The 8 data bytes of REL input events: axis, signed value.
INPUT_REL = struct.Struct(">Ii")

EVENT_INSTRUCTION = 0
EVENT_INTERRUPT = 1
EVENT_EXCEPTION = 2
EVENT_ASYNC = 3
EVENT_SHUTDOWN = 4
EVENT_CHAR_WRITE = EVENT_SHUTDOWN + len(ShutdownCause)  # 12
EVENT_CHAR_READ_ALL = EVENT_CHAR_WRITE + 1  # 13
EVENT_CHAR_READ_ALL_ERROR = EVENT_CHAR_READ_ALL + 1  # 14
EVENT_CLOCK = EVENT_CHAR_READ_ALL_ERROR + 1  # 15
EVENT_CHECKPOINT = EVENT_CLOCK + len(ClockKind)  # 17
EVENT_END = EVENT_CHECKPOINT + len(CheckpointKind)  # 26
EVENT_AUDIO_IN = EVENT_END + 1  # 27

#: EVENT_INSTRUCTION with its count, then the id of an event of one byte (EVENT_INTERRUPT,
#: EVENT_EXCEPTION): most of a long run's log, written and checked a run's worth at a
#: time (codec.encode_taken).
COUNTED_EVENT = struct.Struct(">BIB")

#: How much of the log `Reader.skip_counts` reads at a time.
SKIM_CHUNK = 1 << 20

#: Largest array rdebug accepts when reading (a corrupt length must not exhaust memory).
MAX_ARRAY = 64 << 20


# -- the events ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Instruction:
    """EVENT_INSTRUCTION: `count` instructions ran since the previous event."""

    count: int


@dataclass(frozen=True, slots=True)
class InterruptTaken:
    """EVENT_INTERRUPT."""


@dataclass(frozen=True, slots=True)
class ExceptionTaken:
    """EVENT_EXCEPTION."""


@dataclass(frozen=True, slots=True)
class AsyncBottomHalf:
    """EVENT_ASYNC BH: bottom half `operation` ran (QEMU's; rdebug logs none)."""

    checkpoint: CheckpointKind
    operation: int


@dataclass(frozen=True, slots=True)
class AsyncInput:
    """A keyboard or mouse event: `kind` and 8 bytes of kind-specific data."""

    checkpoint: CheckpointKind
    kind: int
    data: bytes


@dataclass(frozen=True, slots=True)
class AsyncInputSync:
    """EVENT_ASYNC INPUT_SYNC: the input events before it make one report."""

    checkpoint: CheckpointKind


@dataclass(frozen=True, slots=True)
class AsyncCharRead:
    """Bytes that arrived on character device `device` (0 = COM1)."""

    checkpoint: CheckpointKind
    device: int
    data: bytes


@dataclass(frozen=True, slots=True)
class AsyncBlock:
    """EVENT_ASYNC BLOCK: block operation `operation` completed (QEMU's; rdebug logs none)."""

    checkpoint: CheckpointKind
    operation: int


@dataclass(frozen=True, slots=True)
class AsyncNet:
    """EVENT_ASYNC NET: `packet`, a frame that arrived for network adapter `adapter`."""

    checkpoint: CheckpointKind
    adapter: int
    flags: int
    packet: bytes


@dataclass(frozen=True, slots=True)
class Shutdown:
    """EVENT_SHUTDOWN + `cause`: the guest or the host ended the run here."""

    cause: ShutdownCause


@dataclass(frozen=True, slots=True)
class CharWrite:
    """EVENT_CHAR_WRITE: a character write's `result` and `offset` (QEMU's; rdebug logs none)."""

    result: int
    offset: int


@dataclass(frozen=True, slots=True)
class CharReadAll:
    """EVENT_CHAR_READ_ALL: `data` read at once (QEMU's; rdebug logs none)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class CharReadAllError:
    """EVENT_CHAR_READ_ALL_ERROR: that read failed with `error` (QEMU's; rdebug logs none)."""

    error: int


@dataclass(frozen=True, slots=True)
class Clock:
    """EVENT_CLOCK + `kind`: a read of that clock returned `value`."""

    kind: ClockKind
    value: int


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """EVENT_CHECKPOINT + `kind`: the run passed that checkpoint."""

    kind: CheckpointKind


@dataclass(frozen=True, slots=True)
class End:
    """EVENT_END: the recording ended here."""


@dataclass(frozen=True, slots=True)
class AudioIn:
    """EVENT_AUDIO_IN: sample bytes sound card `card` took from the microphone."""

    card: int
    rate: int
    channels: int
    bits: int
    signed: bool
    data: bytes


AsyncEvent = AsyncBottomHalf | AsyncInput | AsyncInputSync | AsyncCharRead | AsyncBlock | AsyncNet
Event = (
    Instruction
    | InterruptTaken
    | ExceptionTaken
    | AsyncEvent
    | Shutdown
    | CharWrite
    | CharReadAll
    | CharReadAllError
    | Clock
    | Checkpoint
    | End
    | AudioIn
)


# -- encoding --------------------------------------------------------------------------------


def encode_header(version: int = LOG_VERSION) -> bytes:
    return HEADER.pack(version, 0)


def _array(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def encode(event: Event) -> bytes:
    """The bytes of one event."""
    match event:
        case Instruction(count):
            if not 0 <= count <= 0xFFFFFFFF:
                raise ValueError(f"instruction count {count} does not fit in 32 bits")
            return struct.pack(">BI", EVENT_INSTRUCTION, count)
        case InterruptTaken():
            return bytes([EVENT_INTERRUPT])
        case ExceptionTaken():
            return bytes([EVENT_EXCEPTION])
        case AsyncBottomHalf(checkpoint, operation):
            return struct.pack(">BBBQ", EVENT_ASYNC, checkpoint, AsyncKind.BH, operation)
        case AsyncInput(checkpoint, kind, data):
            if len(data) != 8:
                raise ValueError("input event data is 8 bytes")
            return struct.pack(">BBBI", EVENT_ASYNC, checkpoint, AsyncKind.INPUT, kind) + data
        case AsyncInputSync(checkpoint):
            return struct.pack(">BBB", EVENT_ASYNC, checkpoint, AsyncKind.INPUT_SYNC)
        case AsyncCharRead(checkpoint, device, data):
            head = struct.pack(">BBBB", EVENT_ASYNC, checkpoint, AsyncKind.CHAR_READ, device)
            return head + _array(data)
        case AsyncBlock(checkpoint, operation):
            return struct.pack(">BBBQ", EVENT_ASYNC, checkpoint, AsyncKind.BLOCK, operation)
        case AsyncNet(checkpoint, adapter, flags, packet):
            head = struct.pack(">BBBBI", EVENT_ASYNC, checkpoint, AsyncKind.NET, adapter, flags)
            return head + _array(packet)
        case Shutdown(cause):
            return bytes([EVENT_SHUTDOWN + cause])
        case CharWrite(result, offset):
            return struct.pack(">BII", EVENT_CHAR_WRITE, result, offset)
        case CharReadAll(data):
            return bytes([EVENT_CHAR_READ_ALL]) + _array(data)
        case CharReadAllError(error):
            return struct.pack(">BI", EVENT_CHAR_READ_ALL_ERROR, error)
        case Clock(kind, value):
            return struct.pack(">BQ", EVENT_CLOCK + kind, value & 0xFFFFFFFFFFFFFFFF)
        case Checkpoint(kind):
            return bytes([EVENT_CHECKPOINT + kind])
        case End():
            return bytes([EVENT_END])
        case AudioIn(card, rate, channels, bits, signed, data):
            head = struct.pack(">BBIBBB", EVENT_AUDIO_IN, card, rate, channels, bits, signed)
            return head + _array(data)
    raise TypeError(f"not a log event: {event!r}")


# -- decoding --------------------------------------------------------------------------------


class Truncated(FormatError):
    """The log stops in the middle of an event (the recorder was stopped abruptly)."""

    def __init__(self, offset: int) -> None:
        super().__init__(f"the log ends in the middle of the event at byte {offset}")
        self.offset = offset


def check_header(raw: bytes, name: str) -> None:
    """Refuse anything that is not an rdebug log of this version, by name."""
    if len(raw) < HEADER_SIZE:
        raise FormatError(f"{name}: too short for a replay log header ({len(raw)} bytes)")
    version, _reserved = HEADER.unpack_from(raw)
    if version == LOG_VERSION:
        return
    if version >> 16 == 0xE0:  # QEMU's REPLAY_VERSION values are 0xe02xxx
        raise FormatError(
            f"{name}: a QEMU replay log (version {version:#x}), not an rdebug log "
            f"(version {LOG_VERSION:#x})"
        )
    if version >> 16 == LOG_VERSION >> 16:
        raise FormatError(
            f"{name}: rdebug log version {version & 0xFFFF}, this rdebug reads version "
            f"{LOG_VERSION & 0xFFFF}"
        )
    raise FormatError(f"{name}: not a replay log (version id {version:#x})")


_COUNT = struct.Struct(">I")


class Reader:
    """Decodes events from a byte stream, one at a time, knowing where each begins and
    when it happened.

    The log's one walker: `offset` is the byte where the next event begins and `icount`
    the sum of the EVENT_INSTRUCTION counts read so far, that is the icount at which the
    event just read happened (for EVENT_INSTRUCTION itself, the icount after its count).
    `stream` is at its start, and nothing else moves it while the reader walks it (the
    reader keeps its position itself).
    """

    def __init__(self, stream: BinaryIO, name: str) -> None:
        self._stream = stream
        self._name = name
        self._pos = 0  # the stream's position, kept here: tell() costs a system call
        self._seekable = stream.seekable()  # `skip` reads ahead and may have to go back
        check_header(self._read_exact(HEADER_SIZE, 0, header=True), name)
        self.offset = HEADER_SIZE  # where the next event begins
        self.icount = 0  # instructions counted by the events read so far

    def _read_exact(self, length: int, start: int, header: bool = False) -> bytes:
        data = self._stream.read(length)
        self._pos += len(data)
        if len(data) != length:
            if header:
                return data
            raise Truncated(start)
        return data

    def seek(self, offset: int, icount: int) -> None:
        """Continue reading at `offset` and `icount` (a position this reader reported)."""
        self._stream.seek(offset)
        self._pos = self.offset = offset
        self.icount = icount

    def skip(self, data: bytes, counted: int) -> bool:
        """Step over the next `len(data)` bytes if they are `data`, events whose
        EVENT_INSTRUCTION counts add up to `counted`, and say so; otherwise (other bytes,
        or fewer: the end of the log) move nothing and say no.  For a caller that knows
        what the log must hold next (a player checking a run's interrupts in one go): the
        bytes are compared, not decoded.  (A stream it cannot seek back in: always no.)"""
        if not self._seekable:
            return False
        got = self._stream.read(len(data))
        if got == data:
            self._pos += len(data)
            self.offset = self._pos
            self.icount += counted
            return True
        self._stream.seek(self._pos)  # back to where the next event begins
        return False

    def skip_counts(self, chunk: int = SKIM_CHUNK) -> None:
        """Step over the EVENT_INSTRUCTION, EVENT_INTERRUPT and EVENT_EXCEPTION events
        that come next, as `read` one at a time would (`offset` and `icount` after the
        last of them), without decoding each: stops before any other event, or an
        incomplete one, which `read` then decodes or reports.  For a walk to the end of
        a long log (most of its bytes are those three).  (A stream it cannot seek in:
        steps over nothing.)"""
        if not self._seekable:
            return
        unpack = _COUNT.unpack_from
        chunk = max(chunk, 5)  # an EVENT_INSTRUCTION fits: each pass makes progress
        while True:
            data = self._stream.read(chunk)
            size = len(data)
            pos = 0
            icount = self.icount
            while pos < size:
                event_id = data[pos]
                if event_id == EVENT_INSTRUCTION:
                    if pos + 5 > size:
                        break
                    icount += unpack(data, pos + 1)[0]
                    pos += 5
                elif event_id in (EVENT_INTERRUPT, EVENT_EXCEPTION):
                    pos += 1
                else:
                    break
            self.icount = icount
            self._pos = self.offset = self.offset + pos
            self._stream.seek(self._pos)
            if size < chunk or (pos < size and data[pos] != EVENT_INSTRUCTION):
                return  # the data's end, or another event: `read` takes it from here
            # else the chunk ended within these events (maybe within a count): read on

    def read(self) -> Event | None:
        """The next event, or None at the end of the data (a log without EVENT_END)."""
        start = self.offset
        first = self._stream.read(1)
        if not first:
            return None
        self._pos += 1
        event = self._decode(first[0], start)
        self.offset = self._pos
        if isinstance(event, Instruction):
            self.icount += event.count
        return event

    def __iter__(self) -> Iterator[Event]:
        while (event := self.read()) is not None:
            yield event

    def _u8(self, start: int) -> int:
        return self._read_exact(1, start)[0]

    def _u32(self, start: int) -> int:
        return int(struct.unpack(">I", self._read_exact(4, start))[0])

    def _u64(self, start: int) -> int:
        return int(struct.unpack(">Q", self._read_exact(8, start))[0])

    def _array(self, start: int) -> bytes:
        length = self._u32(start)
        if length > MAX_ARRAY:
            raise FormatError(
                f"{self._name}: event at byte {start} claims an array of {length} bytes"
            )
        return self._read_exact(length, start)

    def _checkpoint(self, start: int) -> CheckpointKind:
        value = self._u8(start)
        try:
            return CheckpointKind(value)
        except ValueError:
            raise FormatError(
                f"{self._name}: unknown checkpoint id {value} in the event at byte {start}"
            ) from None

    def _decode(self, event_id: int, start: int) -> Event:
        if event_id == EVENT_INSTRUCTION:
            return Instruction(self._u32(start))
        if event_id == EVENT_INTERRUPT:
            return InterruptTaken()
        if event_id == EVENT_EXCEPTION:
            return ExceptionTaken()
        if event_id == EVENT_ASYNC:
            return self._decode_async(start)
        if EVENT_SHUTDOWN <= event_id < EVENT_CHAR_WRITE:
            return Shutdown(ShutdownCause(event_id - EVENT_SHUTDOWN))
        if event_id == EVENT_CHAR_WRITE:
            return CharWrite(self._u32(start), self._u32(start))
        if event_id == EVENT_CHAR_READ_ALL:
            return CharReadAll(self._array(start))
        if event_id == EVENT_CHAR_READ_ALL_ERROR:
            return CharReadAllError(self._u32(start))
        if EVENT_CLOCK <= event_id < EVENT_CHECKPOINT:
            return Clock(ClockKind(event_id - EVENT_CLOCK), self._u64(start))
        if EVENT_CHECKPOINT <= event_id < EVENT_END:
            return Checkpoint(CheckpointKind(event_id - EVENT_CHECKPOINT))
        if event_id == EVENT_END:
            return End()
        if event_id == EVENT_AUDIO_IN:
            card = self._u8(start)
            rate = self._u32(start)
            channels, bits, signed = self._read_exact(3, start)
            return AudioIn(card, rate, channels, bits, bool(signed), self._array(start))
        raise FormatError(f"{self._name}: unknown event id {event_id} at byte {start}")

    def _decode_async(self, start: int) -> AsyncEvent:
        checkpoint = self._checkpoint(start)
        kind = self._u8(start)
        if kind == AsyncKind.BH:
            return AsyncBottomHalf(checkpoint, self._u64(start))
        if kind == AsyncKind.INPUT:
            input_kind = self._u32(start)
            return AsyncInput(checkpoint, input_kind, self._read_exact(8, start))
        if kind == AsyncKind.INPUT_SYNC:
            return AsyncInputSync(checkpoint)
        if kind == AsyncKind.CHAR_READ:
            device = self._u8(start)
            return AsyncCharRead(checkpoint, device, self._array(start))
        if kind == AsyncKind.BLOCK:
            return AsyncBlock(checkpoint, self._u64(start))
        if kind == AsyncKind.NET:
            adapter = self._u8(start)
            flags = self._u32(start)
            return AsyncNet(checkpoint, adapter, flags, self._array(start))
        raise FormatError(f"{self._name}: unknown async event kind {kind} at byte {start}")


def describe(event: Event) -> str:
    """One line for humans (used by `rdebug dump` and error messages)."""
    match event:
        case Instruction(count):
            return f"INSTRUCTION +{count}"
        case InterruptTaken():
            return "INTERRUPT"
        case ExceptionTaken():
            return "EXCEPTION"
        case AsyncCharRead(checkpoint, device, data):
            return (
                f"ASYNC CHAR_READ checkpoint={checkpoint.name} device={device} "
                f"bytes={data.hex(' ')} {data!r}"
            )
        case AsyncBottomHalf(checkpoint, operation):
            return f"ASYNC BH checkpoint={checkpoint.name} operation={operation}"
        case AsyncInput(checkpoint, kind, data):
            return f"ASYNC INPUT checkpoint={checkpoint.name} {describe_input(kind, data)}"
        case AsyncInputSync(checkpoint):
            return f"ASYNC INPUT_SYNC checkpoint={checkpoint.name}"
        case AsyncBlock(checkpoint, operation):
            return f"ASYNC BLOCK checkpoint={checkpoint.name} operation={operation}"
        case AsyncNet(checkpoint, adapter, flags, packet):
            return (
                f"ASYNC NET checkpoint={checkpoint.name} adapter={adapter} flags={flags:#x} "
                f"packet={packet.hex(' ')}"
            )
        case Shutdown(cause):
            return f"SHUTDOWN {cause.name}"
        case CharWrite(result, offset):
            return f"CHAR_WRITE result={result} offset={offset}"
        case CharReadAll(data):
            return f"CHAR_READ_ALL bytes={data.hex(' ')}"
        case CharReadAllError(error):
            return f"CHAR_READ_ALL_ERROR error={error}"
        case Clock(kind, value):
            return f"CLOCK {kind.name} value={value}"
        case Checkpoint(kind):
            return f"CHECKPOINT {kind.name}"
        case End():
            return "END"
        case AudioIn(card, rate, channels, bits, signed, data):
            layout = "stereo" if channels == 2 else "mono" if channels == 1 else f"{channels}ch"
            sign = "signed" if signed else "unsigned"
            frames = len(data) // max(1, channels * bits // 8)
            head = data[:16].hex(" ") + (" ..." if len(data) > 16 else "")
            return (
                f"AUDIO_IN card={card} {rate} Hz {bits}-bit {sign} {layout} "
                f"frames={frames} bytes={head}"
            )
    raise TypeError(f"not a log event: {event!r}")


def describe_input(kind: int, data: bytes) -> str:
    """The kind and data of an INPUT event, for humans."""
    if kind in (InputKind.KEY, InputKind.BTN) and data[5:] == bytes(3) and data[4] < 2:
        number, down = INPUT_PRESS.unpack(data)
        state = "down" if down else "up"
        if kind == InputKind.KEY:
            return f"KEY key={number:#04x} {state}"
        name = {0: "left", 1: "middle", 2: "right"}.get(number, str(number))
        return f"BTN button={name} {state}"
    if kind == InputKind.REL:
        axis, value = INPUT_REL.unpack(data)
        return f"REL axis={Axis(axis).name if axis in (0, 1) else axis} value={value}"
    return f"kind={kind} data={data.hex(' ')}"


def kind_name(event: Event) -> str:
    """The event's kind for summaries (ASYNC events by their async kind)."""
    text = describe(event)
    parts = text.split()
    if parts[0] == "ASYNC":
        return f"ASYNC {parts[1]}"
    if parts[0] in ("SHUTDOWN", "CLOCK", "CHECKPOINT"):
        return f"{parts[0]} {parts[1]}"
    return parts[0]

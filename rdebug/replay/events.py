"""The recorded events of a trace, typed, each with the icount at which it happened.

The replay log (replay/log.py) is a stream of low-level records: instruction counts
between events, async markers, clock values.  A person debugging wants "the interrupts",
"the bytes that came in", "the clock reads", numbered so that `goto event N` can jump to
one.  This module reads the log once and gives that view; it knows nothing of the machine.

Every event that is not an instruction count gets a number (its `index`, stable whatever
filter is applied), an `icount` (the instruction count when it happened: for an interrupt
or exception, the machine at that icount has not taken it yet; the next instruction runs
in the handler) and a `kind`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rdebug.errors import FormatError, UsageError
from rdebug.machine.audio import AudioFormat
from rdebug.replay import log
from rdebug.replay.codec import INPUT_CHECKPOINT


class EventKind(enum.Enum):
    """What a recorded event is, for filtering (`events interrupt`)."""

    INTERRUPT = "interrupt"  # a hardware interrupt was taken
    EXCEPTION = "exception"  # an exception or software interrupt was taken
    INPUT = "input"  # bytes on a serial line, a key, a network frame
    AUDIO = "audio"  # microphone samples the sound card took (one step of a transfer)
    CLOCK = "clock"  # the guest read the host clock (the value it got)
    CHECKPOINT = "checkpoint"  # a synchronisation point (e.g. a halt skipping ahead)
    SHUTDOWN = "shutdown"  # the guest powered off or reset, or the recording was stopped
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """One event of the recording."""

    index: int  # its number among all the recording's events (`goto event N`)
    icount: int
    kind: EventKind
    detail: str  # one line for humans
    raw: log.Event  # the log's own record

    def __str__(self) -> str:
        return f"#{self.index} icount {self.icount} {self.kind.value}: {self.detail}"


def parse_kind(text: str) -> EventKind:
    """An event kind from its name (a plural or a unique prefix is fine: `interrupts`)."""
    name = text.lower()
    for kind in EventKind:
        if name in (kind.value, kind.value + "s"):
            return kind
    matches = [kind for kind in EventKind if name and kind.value.startswith(name)]
    if len(matches) == 1:
        return matches[0]
    names = ", ".join(k.value for k in EventKind)
    raise UsageError(f"{text!r} is not an event kind ({names})")


def _classify(event: log.Event) -> tuple[EventKind, str] | None:
    match event:
        case log.Instruction() | log.End():
            return None
        case log.InterruptTaken():
            return EventKind.INTERRUPT, "interrupt taken"
        case log.ExceptionTaken():
            return EventKind.EXCEPTION, "exception or software interrupt taken"
        case log.AsyncCharRead(_, device, data):
            port = f"COM{device + 1}" if device < 4 else f"serial {device}"
            return EventKind.INPUT, f"{port} received {data!r}"
        case log.AsyncInput(_, kind, data):
            return EventKind.INPUT, f"key/mouse input kind {kind} data {data.hex(' ')}"
        case log.AsyncNet(_, adapter, _flags, packet):
            return EventKind.INPUT, f"network frame on adapter {adapter}: {len(packet)} bytes"
        case log.AudioIn(card, rate, channels, bits, signed, data):
            fmt = AudioFormat(rate, channels, bits, signed)
            frames = len(data) // max(1, fmt.frame_bytes)
            return EventKind.AUDIO, f"sound card {card} took {frames} microphone frames ({fmt})"
        case log.CharReadAll(data):
            return EventKind.INPUT, f"serial read {data!r}"
        case log.Clock(kind, value):
            return EventKind.CLOCK, f"{kind.name.lower().replace('_', ' ')} clock read: {value}"
        case log.Checkpoint(kind):
            if kind is INPUT_CHECKPOINT:
                return None  # the recorder's marker before the inputs that follow
            if kind is log.CheckpointKind.CLOCK_WARP_START:
                return EventKind.CHECKPOINT, "halted: virtual time skipped to the next timer"
            return EventKind.CHECKPOINT, kind.name.lower().replace("_", " ")
        case log.Shutdown(cause):
            return EventKind.SHUTDOWN, cause.name.lower().replace("_", " ")
    return EventKind.OTHER, log.describe(event)


def read_events(path: Path) -> list[RecordedEvent]:
    """Every event of the log at `path`, in order (up to any damaged or missing tail)."""
    try:
        stream = path.open("rb")
    except OSError as exc:
        raise FormatError(f"{path}: cannot read: {exc.strerror}") from None
    events: list[RecordedEvent] = []
    with stream:
        reader = log.Reader(stream, str(path))
        try:
            for event in reader:
                if isinstance(event, log.End):
                    break
                kind = _classify(event)
                if kind is not None:
                    index = len(events)
                    events.append(RecordedEvent(index, reader.icount, kind[0], kind[1], event))
        except FormatError:
            pass  # a truncated or damaged tail: the recording (and its events) end before it
    return events


def select(
    events: list[RecordedEvent],
    kind: EventKind | str | None = None,
    start: int | None = None,
    stop: int | None = None,
) -> Iterator[RecordedEvent]:
    """The events of `kind` (any if None) with start <= icount < stop."""
    wanted = parse_kind(kind) if isinstance(kind, str) else kind
    for event in events:
        if wanted is not None and event.kind is not wanted:
            continue
        if start is not None and event.icount < start:
            continue
        if stop is not None and event.icount >= stop:
            break
        yield event

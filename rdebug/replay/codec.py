"""What crosses the machine's input seam <-> the log events that record it.

The recorder writes and the player reads back the same events; this module holds both
directions for each kind, side by side, so a kind is changed in one place:

- asynchronous inputs (`SerialInput`, `NetInput`, `KeyInput`, `MouseInput`): logged at
  INPUT_CHECKPOINT as one or more EVENT_ASYNC events (`encode_inputs`, `InputDecoder`);
- synchronisation events (interrupt, exception, shutdown, reset, clock warp): one event
  each (`encode_sync`, `matches_sync`); the interrupts and exceptions taken during one
  engine run, with the instruction counts between them, also as the bytes of them all
  (`encode_taken`: a recorder writes them, a player compares them, in one go);
- host clock reads: EVENT_CLOCK + HOST with the value (`encode_clock`, `decode_clock`);
- microphone samples: EVENT_AUDIO_IN with the format and the bytes the sound card took
  (`encode_audio`, `decode_audio`).

The byte layout of every event is log.py's (documented there and in docs/replay-log.md).
A `KeyInput` is one INPUT event of kind KEY.  A `MouseInput` is a group, as QEMU logs a
mouse report: REL X, REL Y, then BTN for the left, middle and right buttons (each with its
state), closed by INPUT_SYNC.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeGuard

from rdebug.errors import FormatError
from rdebug.machine.audio import AudioFormat
from rdebug.machine.inputs import (
    AsyncInput,
    KeyInput,
    MouseInput,
    NetInput,
    SerialInput,
    SyncEvent,
)
from rdebug.replay import log

#: The checkpoint at which rdebug's machine takes asynchronous input (its run loop,
#: where virtual-clock timers are serviced too).
INPUT_CHECKPOINT = log.CheckpointKind.CLOCK_VIRTUAL



def is_recorded_event(event: log.Event) -> bool:
    """Whether `event` is one of the recording's events as a person counts them (as
    `record` reports them and the REPL's `events` lists them): not an instruction count,
    the END marker, or the recorder's marker before a batch of inputs."""
    if isinstance(event, log.Instruction | log.End):
        return False
    return not (isinstance(event, log.Checkpoint) and event.kind is INPUT_CHECKPOINT)


#: The NET event's flags word (QEMU's packet flags; rdebug's frames carry none).
NET_FLAGS = 0

#: QEMU's InputButton numbers -> the PS/2 button bits of `MouseInput.buttons`.
BUTTON_BITS = {0: 0x01, 1: 0x04, 2: 0x02}

#: The log events that carry (part of) an asynchronous input.
LoggedInput = log.AsyncCharRead | log.AsyncNet | log.AsyncInput | log.AsyncInputSync


# -- asynchronous inputs -----------------------------------------------------------------


def encode_inputs(item: AsyncInput) -> list[log.Event]:
    """The log events of one asynchronous input (after the INPUT_CHECKPOINT marker)."""
    match item:
        case SerialInput(port, data):
            return [log.AsyncCharRead(INPUT_CHECKPOINT, port, data)]
        case NetInput(adapter, data):
            return [log.AsyncNet(INPUT_CHECKPOINT, adapter, NET_FLAGS, data)]
        case KeyInput(key, down):
            data = log.INPUT_PRESS.pack(key, down)
            return [log.AsyncInput(INPUT_CHECKPOINT, log.InputKind.KEY, data)]
        case MouseInput(dx, dy, buttons):
            rel = log.InputKind.REL
            events: list[log.Event] = [
                log.AsyncInput(INPUT_CHECKPOINT, rel, log.INPUT_REL.pack(log.Axis.X, dx)),
                log.AsyncInput(INPUT_CHECKPOINT, rel, log.INPUT_REL.pack(log.Axis.Y, dy)),
            ]
            for button, bit in BUTTON_BITS.items():
                data = log.INPUT_PRESS.pack(button, bool(buttons & bit))
                events.append(log.AsyncInput(INPUT_CHECKPOINT, log.InputKind.BTN, data))
            events.append(log.AsyncInputSync(INPUT_CHECKPOINT))
            return events
    raise TypeError(f"cannot log input {item!r}")


def is_input(event: log.Event | None) -> TypeGuard[LoggedInput]:
    """Whether `event` carries (part of) an asynchronous input."""
    return isinstance(event, LoggedInput)


class InputDecoder:
    """Turns the input events read from a log back into the machine's inputs.

    One decoder per checkpoint: a mouse report is a group of events, completed by its
    INPUT_SYNC.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._dx = 0
        self._dy = 0
        self._buttons = 0

    def feed(self, event: LoggedInput) -> AsyncInput | None:
        """The input `event` completes, if any."""
        match event:
            case log.AsyncCharRead(_, device, data):
                return SerialInput(device, data)
            case log.AsyncNet(_, adapter, _, packet):
                return NetInput(adapter, packet)
            case log.AsyncInputSync():
                report = MouseInput(self._dx, self._dy, self._buttons)
                self._dx = self._dy = self._buttons = 0
                return report
        return self._feed_input(event)

    def _feed_input(self, event: log.AsyncInput) -> KeyInput | None:
        if event.kind == log.InputKind.KEY:
            key, down = log.INPUT_PRESS.unpack(event.data)
            return KeyInput(key, bool(down))
        if event.kind == log.InputKind.BTN:
            button, down = log.INPUT_PRESS.unpack(event.data)
            if button not in BUTTON_BITS:
                raise FormatError(f"{self._name}: mouse button {button} in an INPUT event")
            if down:
                self._buttons |= BUTTON_BITS[button]
            return None
        if event.kind == log.InputKind.REL:
            axis, value = log.INPUT_REL.unpack(event.data)
            if axis == log.Axis.X:
                self._dx = value
            elif axis == log.Axis.Y:
                self._dy = value
            else:
                raise FormatError(f"{self._name}: axis {axis} in a REL INPUT event")
            return None
        raise FormatError(f"{self._name}: input event kind {event.kind} is not replayable")


# -- synchronisation events --------------------------------------------------------------

_SYNC_EVENTS: dict[SyncEvent, log.Event] = {
    SyncEvent.INTERRUPT: log.InterruptTaken(),
    SyncEvent.EXCEPTION: log.ExceptionTaken(),
    SyncEvent.SHUTDOWN: log.Shutdown(log.ShutdownCause.GUEST_SHUTDOWN),
    SyncEvent.RESET: log.Shutdown(log.ShutdownCause.GUEST_RESET),
    SyncEvent.CLOCK_WARP: log.Checkpoint(log.CheckpointKind.CLOCK_WARP_START),
}


def encode_sync(event: SyncEvent) -> log.Event:
    """The log event of a synchronisation event."""
    return _SYNC_EVENTS[event]


def matches_sync(event: SyncEvent, logged: log.Event | None) -> bool:
    """Whether `logged` is the record of `event`."""
    return logged == _SYNC_EVENTS[event]


_COUNTED = log.COUNTED_EVENT.pack
_INTERRUPT = bytes([log.EVENT_INTERRUPT])
_EXCEPTION = bytes([log.EVENT_EXCEPTION])


def encode_taken(events: Sequence[tuple[SyncEvent, int]], icount: int) -> bytes | None:
    """The log bytes of `events` (event, icount), interrupts and exceptions taken in that
    order after a logged event at `icount`: before each, the EVENT_INSTRUCTION that brings
    the count to it (none where the count stays), then its own event; the bytes the
    events would have one by one (`encode_sync`, the recorder's instruction counts).
    None when one is of another kind, or the count goes back or moves by 2**32 or more:
    those go one by one.  (Tens of thousands of timer interrupts a second of a kernel's
    run: the one-by-one path cost microseconds each.)"""
    parts: list[bytes] = []
    add = parts.append
    interrupt, exception = SyncEvent.INTERRUPT, SyncEvent.EXCEPTION
    for event, at in events:
        if event is interrupt:
            code, alone = log.EVENT_INTERRUPT, _INTERRUPT
        elif event is exception:
            code, alone = log.EVENT_EXCEPTION, _EXCEPTION
        else:
            return None
        delta = at - icount
        if 0 < delta <= 0xFFFFFFFF:
            add(_COUNTED(log.EVENT_INSTRUCTION, delta, code))
        elif delta == 0:
            add(alone)
        else:
            return None
        icount = at
    return b"".join(parts)


# -- host clock reads --------------------------------------------------------------------


def encode_clock(value: int) -> log.Event:
    """The log event of a host clock read that returned `value` (ns)."""
    return log.Clock(log.ClockKind.HOST, value)


def decode_clock(logged: log.Event | None) -> int | None:
    """The value of a logged host clock read, or None if `logged` is not one."""
    if isinstance(logged, log.Clock) and logged.kind is log.ClockKind.HOST:
        return logged.value
    return None


# -- microphone samples --------------------------------------------------------------------

#: The sound card an EVENT_AUDIO_IN names (the machine has at most one).
SOUND_CARD = 0


def encode_audio(fmt: AudioFormat, data: bytes) -> log.Event:
    """The log event of microphone samples `data` that the sound card took in `fmt`."""
    return log.AudioIn(SOUND_CARD, fmt.rate, fmt.channels, fmt.bits, fmt.signed, data)


def decode_audio(logged: log.Event | None) -> tuple[AudioFormat, bytes] | None:
    """The format and bytes of logged microphone samples, or None if `logged` is not."""
    if not isinstance(logged, log.AudioIn):
        return None
    return AudioFormat(logged.rate, logged.channels, logged.bits, logged.signed), logged.data

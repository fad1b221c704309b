"""The recorder: live inputs, each of them logged at the icount where it entered.

Wraps another `ExternalInputs` (the live one) and appends to the log everything the
machine takes from it (serial bytes, host clock reads) and every synchronisation event
(interrupts, exceptions, shutdown, clock warps), each preceded by EVENT_INSTRUCTION
with the instructions run since the previous event.

Flush policy: every event goes to the file as soon as it is logged, except exceptions
(a syscall-heavy guest takes hundreds of thousands a second), which wait for the next
event or checkpoint.  So a recorder killed with SIGKILL leaves a log that replays up to
its last complete event, and anything the guest showed after an input or an interrupt
is covered by the log.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from rdebug.machine.inputs import (
    AsyncInput,
    ExternalInputs,
    KeyInput,
    MouseInput,
    NetInput,
    SerialInput,
    SyncEvent,
)
from rdebug.replay.input_events import encode_input
from rdebug.replay.log import (
    AsyncCharRead,
    AsyncNet,
    Checkpoint,
    CheckpointKind,
    Clock,
    ClockKind,
    End,
    Event,
    ExceptionTaken,
    Instruction,
    InterruptTaken,
    Shutdown,
    ShutdownCause,
    encode,
    encode_header,
)

#: The checkpoint at which rdebug's machine takes asynchronous input (its run loop,
#: where virtual-clock timers are serviced too).
INPUT_CHECKPOINT = CheckpointKind.CLOCK_VIRTUAL


def is_recorded_event(event: Event) -> bool:
    """Whether `event` is one of the recording's events as a person counts them (and
    `rdebug.events`, the REPL's `events`, lists them): not an instruction count, the
    END marker, or the recorder's marker before a batch of inputs."""
    if isinstance(event, Instruction | End):
        return False
    return not (isinstance(event, Checkpoint) and event.kind is INPUT_CHECKPOINT)


#: The NET event's flags word (QEMU's packet flags; rdebug's frames carry none).
NET_FLAGS = 0

_SYNC_EVENTS: dict[SyncEvent, Event] = {
    SyncEvent.INTERRUPT: InterruptTaken(),
    SyncEvent.EXCEPTION: ExceptionTaken(),
    SyncEvent.SHUTDOWN: Shutdown(ShutdownCause.GUEST_SHUTDOWN),
    SyncEvent.RESET: Shutdown(ShutdownCause.GUEST_RESET),
    SyncEvent.CLOCK_WARP: Checkpoint(CheckpointKind.CLOCK_WARP_START),
}


class Recorder:
    """`ExternalInputs` that logs what `inner` answers, into the file at `fd`."""

    def __init__(self, inner: ExternalInputs, fd: int) -> None:
        self._inner = inner
        self._fd = fd
        self._pending = bytearray(encode_header())
        self._icount = 0  # icount of the last logged event
        self._ended = False
        self.events = 0  # the recorded events so far (`is_recorded_event`)
        self._flush()

    # -- the log ----------------------------------------------------------------------

    def _put(self, icount: int, event: Event) -> None:
        if icount < self._icount:
            raise AssertionError(f"event at icount {icount} after one at {self._icount}")
        delta = icount - self._icount
        while delta > 0:  # EVENT_INSTRUCTION carries 32 bits
            step = min(delta, 0xFFFFFFFF)
            self._pending += encode(Instruction(step))
            delta -= step
        self._icount = icount
        self._pending += encode(event)
        if is_recorded_event(event):
            self.events += 1
        if not isinstance(event, ExceptionTaken):
            self._flush()

    def _flush(self) -> None:
        data = bytes(self._pending)
        self._pending.clear()
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def finish(self, icount: int, cause: ShutdownCause | None = None) -> None:
        """Log the end of the recording (after a host-side shutdown `cause`, if any)."""
        if self._ended:
            return
        if cause is not None:
            self._put(icount, Shutdown(cause))
        self._put(icount, End())
        self._ended = True
        self._flush()

    # -- ExternalInputs ---------------------------------------------------------------

    def host_clock_ns(self, icount: int) -> int:
        value = self._inner.host_clock_ns(icount)
        self._put(icount, Clock(ClockKind.HOST, value))
        return value

    def take_async(self, icount: int) -> Sequence[AsyncInput]:
        items = self._inner.take_async(icount)
        if items:
            self._put(icount, Checkpoint(INPUT_CHECKPOINT))
            for item in items:
                for event in _encode_async(item):
                    self._put(icount, event)
        if self._pending:
            self._flush()
        return items

    def more_expected(self) -> bool:
        return self._inner.more_expected()

    def wait(self, timeout: float) -> None:
        self._inner.wait(timeout)

    def horizon(self) -> int | None:
        return self._inner.horizon()

    def synchronize(self, event: SyncEvent, icount: int) -> None:
        self._put(icount, _SYNC_EVENTS[event])
        self._inner.synchronize(event, icount)

    def finished(self) -> bool:
        return self._inner.finished()

    def close(self) -> None:
        if self._pending:
            self._flush()
        self._inner.close()


def _encode_async(item: AsyncInput) -> list[Event]:
    match item:
        case SerialInput(port, data):
            return [AsyncCharRead(INPUT_CHECKPOINT, port, data)]
        case NetInput(adapter, data):
            return [AsyncNet(INPUT_CHECKPOINT, adapter, NET_FLAGS, data)]
        case KeyInput() | MouseInput():
            return encode_input(INPUT_CHECKPOINT, item)
    raise TypeError(f"cannot log input {item!r}")

"""The recorder: live inputs, each of them logged at the icount where it entered.

Wraps another `ExternalInputs` (the live one) and appends to the log everything the
machine takes from it (serial bytes, host clock reads, microphone samples) and every
synchronisation event (interrupts, exceptions, shutdown, clock warps), each preceded by
EVENT_INSTRUCTION with the instructions run since the previous event.  The events
themselves are codec.py's; this module decides when they are written.

Flush policy: every event goes to the file as soon as it is logged, except exceptions
(a syscall-heavy guest takes hundreds of thousands a second), which wait for the next
event or checkpoint.  So a recorder killed with SIGKILL leaves a log that replays up to
its last complete event, and anything the guest showed after an input or an interrupt
is covered by the log.  (Interrupts the machine takes in C reach the recorder after the
engine run that took them, or before an OUT a device answers inside it: before
anything the guest sends out after them.)
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from rdebug.machine.audio import AudioFormat
from rdebug.machine.inputs import AsyncInput, ExternalInputs, SyncEvent
from rdebug.replay.codec import (
    INPUT_CHECKPOINT,
    encode_audio,
    encode_clock,
    encode_inputs,
    encode_sync,
    encode_taken,
    is_recorded_event,
)
from rdebug.replay.log import (
    Checkpoint,
    End,
    Event,
    ExceptionTaken,
    Instruction,
    Shutdown,
    ShutdownCause,
    encode,
    encode_header,
)


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

    def _put(self, icount: int, event: Event, hold: bool = False) -> None:
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
        if not hold and not isinstance(event, ExceptionTaken):
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
        self._put(icount, encode_clock(value))
        return value

    def audio_input(self, icount: int, fmt: AudioFormat, frames: int) -> bytes:
        data = self._inner.audio_input(icount, fmt, frames)
        self._put(icount, encode_audio(fmt, data))
        return data

    def take_async(self, icount: int) -> Sequence[AsyncInput]:
        items = self._inner.take_async(icount)
        if items:
            self._put(icount, Checkpoint(INPUT_CHECKPOINT))
            for item in items:
                for event in encode_inputs(item):
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
        self._put(icount, encode_sync(event))
        self._inner.synchronize(event, icount)

    def synchronize_all(self, events: Sequence[tuple[SyncEvent, int]]) -> None:
        data = encode_taken(events, self._icount) if events else None
        if data is not None:  # interrupts and exceptions only: the bytes of them all
            self._pending += data
            self._icount = events[-1][1]
            self.events += len(events)
        else:
            for event, icount in events:
                self._put(icount, encode_sync(event), hold=True)
        if any(event is not SyncEvent.EXCEPTION for event, _ in events):
            self._flush()  # one write for the lot (exceptions alone wait, as ever)
        self._inner.synchronize_all(events)

    def finished(self) -> bool:
        return self._inner.finished()

    def close(self) -> None:
        if self._pending:
            self._flush()
        self._inner.close()

"""The player: the machine's inputs, served from a replay log, with divergence checks.

Implements `ExternalInputs` from the log alone: serial bytes are handed over at the
exact icount they were recorded at (the player's `horizon`), host clock reads and the
microphone's samples return the recorded values, and every interrupt, exception and
shutdown the machine reports must be the log's next event at the same icount, or replay
stops with `LogDivergence`.

A log may end without EVENT_END (a recorder killed mid-run) or with a damaged event:
the player then serves everything up to the last complete event, and the horizon stops
the machine there; `ending` says how the log ended.
"""

from __future__ import annotations

import enum
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

from rdebug.errors import FormatError, LogDivergence
from rdebug.machine.audio import AudioFormat
from rdebug.machine.inputs import AsyncInput, SyncEvent
from rdebug.replay.codec import (
    INPUT_CHECKPOINT,
    InputDecoder,
    decode_audio,
    decode_clock,
    encode_taken,
    is_input,
    matches_sync,
)
from rdebug.replay.log import (
    Checkpoint,
    End,
    Event,
    Instruction,
    Reader,
    Shutdown,
    ShutdownCause,
    Truncated,
    describe,
    encode,
    encode_header,
)

_INPUT = Checkpoint(INPUT_CHECKPOINT)
_EXPECTED: dict[SyncEvent, str] = {
    SyncEvent.CLOCK_WARP: "halted and skipped ahead to its next timer",
    SyncEvent.INTERRUPT: "took an interrupt",
    SyncEvent.EXCEPTION: "took an exception",
    SyncEvent.SHUTDOWN: "powered off",
    SyncEvent.RESET: "triple-faulted",
}


_GUEST_CAUSES = frozenset(
    {ShutdownCause.GUEST_SHUTDOWN, ShutdownCause.GUEST_RESET, ShutdownCause.GUEST_PANIC}
)


class Ending(enum.Enum):
    """How the log ends (known once the player has reached it)."""

    NOT_YET = "not-yet"
    END = "end"  # EVENT_END: the recording stopped normally
    SHUTDOWN = "shutdown"  # the guest powered off (then EVENT_END)
    TRUNCATED = "truncated"  # no EVENT_END, or half an event: the recorder was killed
    DAMAGED = "damaged"  # an event that cannot be decoded


@dataclass(frozen=True, slots=True)
class PlayerPosition:
    """Where a player is in its log (kept with checkpoints and snapshots)."""

    offset: int  # where the reader continues
    icount: int  # icount of the pending event
    next: Event | None
    ending: Ending
    shutdown: ShutdownCause | None
    host_stop: ShutdownCause | None


class Player:
    """`ExternalInputs` that replays the log read from `stream`."""

    def __init__(self, stream: BinaryIO, name: str, end: int | None = None) -> None:
        """`end`: where the recording ends (`recording_end`), when the caller knows it."""
        self._name = name
        self._end = end
        self._reader = Reader(stream, name)
        self._next: Event | None = None
        self.ending = Ending.NOT_YET
        self.damage: FormatError | None = None
        self.shutdown: ShutdownCause | None = None
        self.host_stop: ShutdownCause | None = None
        self._advance()

    @property
    def _icount(self) -> int:
        """The icount of the pending event (or of the log's end)."""
        return self._reader.icount

    @property
    def next_icount(self) -> int:
        """The icount of the log's next event (or of its end)."""
        return self._icount

    def pending(self) -> str:
        """The log's next event, for messages."""
        if self._next is None:
            return f"the end of the recording at icount {self._icount}"
        return f"{describe(self._next)} at icount {self._icount}"

    def _advance(self) -> None:
        """Move to the next event that is not EVENT_INSTRUCTION."""
        self._next = None
        while self.ending is Ending.NOT_YET:
            try:
                event = self._reader.read()
            except Truncated:
                self.ending = Ending.TRUNCATED
                return
            except FormatError as exc:
                self.ending = Ending.DAMAGED
                self.damage = exc
                return
            if event is None:
                self.ending = Ending.TRUNCATED
                return
            if isinstance(event, Instruction):
                continue
            if isinstance(event, End):
                self.ending = Ending.SHUTDOWN if self.shutdown is not None else Ending.END
                return
            if isinstance(event, Shutdown) and event.cause not in _GUEST_CAUSES:
                self.host_stop = event.cause  # the user stopped the recording here
                continue
            self._next = event
            return

    def _diverged(self, icount: int, actual: str) -> LogDivergence:
        return LogDivergence(icount, self.pending(), actual)

    def _check_not_passed(self, icount: int) -> None:
        if icount > self._icount and self._next is not None:
            raise self._diverged(icount, f"ran past it to icount {icount}")

    def position(self) -> PlayerPosition:
        return PlayerPosition(
            self._reader.offset,
            self._icount,
            self._next,
            self.ending,
            self.shutdown,
            self.host_stop,
        )

    def seek(self, position: PlayerPosition) -> None:
        """Return to `position` (with the machine state saved alongside it)."""
        self._reader.seek(position.offset, position.icount)
        self._next = position.next
        self.ending = position.ending
        self.shutdown = position.shutdown
        self.host_stop = position.host_stop
        if self.ending is not Ending.DAMAGED:
            self.damage = None

    def verify_end(self, icount: int, what: str) -> None:
        """The replay stopped at `icount` (`what` says why): the log must have no more."""
        if self._next is not None:
            raise self._diverged(icount, what)

    # -- ExternalInputs ---------------------------------------------------------------

    def host_clock_ns(self, icount: int) -> int:
        value = decode_clock(self._next)
        if value is None or self._icount != icount:
            raise self._diverged(icount, f"read the host clock at icount {icount}")
        self._advance()
        return value

    def audio_input(self, icount: int, fmt: AudioFormat, frames: int) -> bytes:
        logged = decode_audio(self._next)
        if (
            logged is None
            or self._icount != icount
            or logged[0] != fmt
            or len(logged[1]) != frames * fmt.frame_bytes
        ):
            raise self._diverged(
                icount, f"took {frames} microphone frames of {fmt} at icount {icount}"
            )
        self._advance()
        return logged[1]

    def take_async(self, icount: int) -> Sequence[AsyncInput]:
        self._check_not_passed(icount)
        if self._next != _INPUT or self._icount != icount:
            return []
        self._advance()
        items: list[AsyncInput] = []
        decoder = InputDecoder(self._name)  # a mouse report is a group of events
        while self._icount == icount and is_input(self._next):
            item = decoder.feed(self._next)
            if item is not None:
                items.append(item)
            self._advance()
        return items

    def more_expected(self) -> bool:
        return self._next is not None

    def finished(self) -> bool:
        return self._next is None

    def wait(self, timeout: float) -> None:
        del timeout

    def horizon(self) -> int | None:
        if self._next is None or isinstance(self._next, Checkpoint):
            return self._icount
        # The next event is one the machine reports (an interrupt, an exception...), not
        # one it must stop for.  But interrupts taken in C during an engine run reach the
        # log only after it: without a bound, the run that takes the recording's last
        # ones would go on past its end.
        return self._end

    def synchronize(self, event: SyncEvent, icount: int) -> None:
        expected = self._next
        if not matches_sync(event, expected) or self._icount != icount:
            raise self._diverged(icount, f"{_EXPECTED[event]} at icount {icount}")
        if isinstance(expected, Shutdown):
            self.shutdown = expected.cause
        self._advance()

    def synchronize_all(self, events: Sequence[tuple[SyncEvent, int]]) -> None:
        if len(events) > 1 and self._take_all(events):
            return
        for event, icount in events:
            self.synchronize(event, icount)

    def _take_all(self, events: Sequence[tuple[SyncEvent, int]]) -> bool:
        """Check `events` against the log in one go, if the first is the pending event
        and the rest are interrupts and exceptions whose bytes (`encode_taken`) come
        next: then consume them all, as `synchronize` one by one would, and say so.
        Anything else (another event between them, a divergence, the log's end) is left
        to `synchronize`, which finds and reports it."""
        first, at = events[0]
        if first is not SyncEvent.INTERRUPT and first is not SyncEvent.EXCEPTION:
            return False
        if self._icount != at or not matches_sync(first, self._next):
            return False
        data = encode_taken(events[1:], at)
        if data is None or not self._reader.skip(data, events[-1][1] - at):
            return False
        self._advance()
        return True

    def close(self) -> None:
        pass


def recording_end(stream: BinaryIO, name: str) -> int:
    """The icount at which the recording in `stream` ends (its last complete event)."""
    reader = Reader(stream, name)
    try:
        while True:
            reader.skip_counts()  # the bulk of the log, without decoding each event
            event = reader.read()
            if event is None or isinstance(event, End):
                break
    except FormatError:
        pass  # a damaged or truncated tail: the recording ends before it
    return reader.icount


def position_to_data(position: PlayerPosition) -> dict[str, object]:
    """A player position as plain data (for a snapshot's machine state)."""
    return {
        "offset": position.offset,
        "icount": position.icount,
        "next": None if position.next is None else encode(position.next),
        "ending": position.ending.value,
        "shutdown": None if position.shutdown is None else int(position.shutdown),
        "host_stop": None if position.host_stop is None else int(position.host_stop),
    }


def position_from_data(data: object, name: str) -> PlayerPosition:
    """The inverse of `position_to_data`; malformed data is a `FormatError`."""
    try:
        assert_dict = data if isinstance(data, dict) else {}
        raw_next = assert_dict["next"]
        next_event = None
        if raw_next is not None:
            reader = Reader(io.BytesIO(encode_header() + bytes(raw_next)), name)
            next_event = reader.read()
        shutdown = assert_dict["shutdown"]
        host_stop = assert_dict["host_stop"]
        return PlayerPosition(
            offset=int(assert_dict["offset"]),
            icount=int(assert_dict["icount"]),
            next=next_event,
            ending=Ending(assert_dict["ending"]),
            shutdown=None if shutdown is None else ShutdownCause(int(shutdown)),
            host_stop=None if host_stop is None else ShutdownCause(int(host_stop)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise FormatError(f"{name}: malformed replay position ({exc})") from None

"""The interrupts and exceptions of an engine run, written and checked in one go
(codec.encode_taken, Recorder.synchronize_all, Player.synchronize_all, Reader.skip):
the log's bytes and everything a player does with them are those of the one-by-one path,
for any run, including the ones the batch path hands back to it (other events, counts
that go back or move by 2**32 or more, a log that says otherwise or ends early).  And a
long log skimmed to its end (Reader.skip_counts, recording_end) is read as one by one."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdebug.errors import FormatError, LogDivergence
from rdebug.host.sources import ScriptedInputs
from rdebug.machine.inputs import SyncEvent
from rdebug.replay.codec import encode_sync, encode_taken
from rdebug.replay.log import (
    EVENT_EXCEPTION,
    EVENT_INSTRUCTION,
    EVENT_INTERRUPT,
    HEADER_SIZE,
    AsyncCharRead,
    Checkpoint,
    CheckpointKind,
    Clock,
    ClockKind,
    End,
    Event,
    ExceptionTaken,
    Instruction,
    InterruptTaken,
    Reader,
    Shutdown,
    ShutdownCause,
    encode,
    encode_header,
)
from rdebug.replay.player import Player, recording_end
from rdebug.replay.recorder import Recorder

Run = list[tuple[SyncEvent, int]]

TAKEN = st.sampled_from([SyncEvent.INTERRUPT, SyncEvent.EXCEPTION])
#: Counts between events: none, small, the 32-bit edge, beyond it.
DELTAS = st.one_of(
    st.just(0),
    st.integers(1, 100_000),
    st.sampled_from([0xFFFFFFFF, 0x100000000, 0x1_2345_6789]),
)


@st.composite
def runs(draw: st.DrawFn, kinds: st.SearchStrategy[SyncEvent] = TAKEN) -> tuple[int, Run]:
    """A start icount and a run of (event, icount) after it, the counts not going back."""
    icount = start = draw(st.integers(0, 1 << 40))
    run: Run = []
    for _ in range(draw(st.integers(0, 12))):
        icount += draw(DELTAS)
        run.append((draw(kinds), icount))
    return start, run


def one_by_one(run: Run, icount: int) -> bytes:
    """The bytes of `run` as the recorder writes events one at a time."""
    out = b""
    for event, at in run:
        delta = at - icount
        while delta > 0:
            step = min(delta, 0xFFFFFFFF)
            out += encode(Instruction(step))
            delta -= step
        out += encode(encode_sync(event))
        icount = at
    return out


@given(runs())
def test_the_bytes_of_a_run_are_those_of_its_events_one_by_one(drawn: tuple[int, Run]) -> None:
    start, run = drawn
    data = encode_taken(run, start)
    counts = [start, *(at for _, at in run)]
    if any(b - a > 0xFFFFFFFF for a, b in pairwise(counts)):
        assert data is None  # a count beyond 32 bits: left to the one-by-one path
    else:
        assert data == one_by_one(run, start)


def test_the_bytes_are_the_documented_ones() -> None:
    run = [(SyncEvent.INTERRUPT, 10), (SyncEvent.EXCEPTION, 10), (SyncEvent.EXCEPTION, 0x1000A)]
    assert encode_taken(run, 3) == bytes(
        [EVENT_INSTRUCTION, 0, 0, 0, 7, EVENT_INTERRUPT, EVENT_EXCEPTION,
         EVENT_INSTRUCTION, 0, 1, 0, 0, EVENT_EXCEPTION]
    )  # fmt: skip


@pytest.mark.parametrize(
    "run",
    [
        [(SyncEvent.INTERRUPT, 5), (SyncEvent.SHUTDOWN, 6)],
        [(SyncEvent.CLOCK_WARP, 5)],
        [(SyncEvent.INTERRUPT, 5), (SyncEvent.EXCEPTION, 4)],  # back in time
        [(SyncEvent.INTERRUPT, 2)],  # before the last logged event
    ],
)
def test_runs_of_anything_else_are_left_to_the_one_by_one_path(run: Run) -> None:
    assert encode_taken(run, 3) is None


#: Interrupts, exceptions, and an event of another kind among them now and then.
ANY_EVENT = st.sampled_from(
    [SyncEvent.INTERRUPT, SyncEvent.EXCEPTION, SyncEvent.INTERRUPT, SyncEvent.CLOCK_WARP]
)


def _record(tmp: Path, name: str, runs_: Sequence[Run], batched: bool) -> tuple[bytes, int]:
    """The log a recorder writes of `runs_` (each an engine run's events, handed over
    together or one by one), and the number of events it says it recorded."""
    path = tmp / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        recorder = Recorder(ScriptedInputs([]), fd)
        for run in runs_:
            if batched:
                recorder.synchronize_all(run)
            else:
                for event, icount in run:
                    recorder.synchronize(event, icount)
        last = max([at for run in runs_ for _, at in run], default=0)
        recorder.finish(last)
        events = recorder.events
    finally:
        os.close(fd)
    data = path.read_bytes()
    path.unlink()
    return data, events


@settings(max_examples=60, deadline=None)
@given(runs(ANY_EVENT), st.lists(st.integers(0, 12), max_size=3))
def test_a_recorder_writes_a_run_as_it_writes_its_events_one_by_one(
    tmp_path_factory: pytest.TempPathFactory, drawn: tuple[int, Run], cuts: list[int]
) -> None:
    tmp = tmp_path_factory.mktemp("log")
    _, run = drawn  # from icount 0 on: the recorder's first event may be at any count
    bounds = sorted({0, len(run), *(min(c, len(run)) for c in cuts)})
    runs_ = [run[a:b] for a, b in pairwise(bounds)]  # the engine runs
    assert _record(tmp, "a", runs_, batched=True) == _record(tmp, "b", runs_, batched=False)


def test_a_recorder_refuses_a_run_that_goes_back_as_before(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "log", os.O_WRONLY | os.O_CREAT)
    try:
        recorder = Recorder(ScriptedInputs([]), fd)
        recorder.synchronize_all([(SyncEvent.INTERRUPT, 100)])
        with pytest.raises(AssertionError, match="at icount 90 after one at 120"):
            recorder.synchronize_all([(SyncEvent.EXCEPTION, 120), (SyncEvent.INTERRUPT, 90)])
    finally:
        os.close(fd)


# -- the player -----------------------------------------------------------------------


def _log(run: Run, extra: bytes = b"", cut: int = 0) -> bytes:
    """A log holding `run` (then `extra`), less its last `cut` bytes."""
    data = encode_header() + one_by_one(run, 0) + extra
    return data[: len(data) - cut] if cut else data


def _play(data: bytes, runs_: Sequence[Run], batched: bool) -> tuple[object, ...]:
    """What a player does with `runs_` against the log `data`: each run's outcome (None,
    or the divergence's message), then where it is in the log."""
    player = Player(io.BytesIO(data), "log")
    outcomes: list[str | None] = []
    for run in runs_:
        try:
            if batched:
                player.synchronize_all(run)
            else:
                for event, icount in run:
                    player.synchronize(event, icount)
            outcomes.append(None)
        except LogDivergence as exc:
            outcomes.append(str(exc))
            break
    return (*outcomes, player.position(), player.ending, player.host_stop, player.pending())


def _split(run: Run, at: int) -> list[Run]:
    return [run[:at], run[at:]] if 0 < at < len(run) else [run]


@settings(max_examples=80, deadline=None)
@given(runs(), st.integers(0, 12))
def test_a_player_takes_a_logged_run_as_it_takes_its_events_one_by_one(
    drawn: tuple[int, Run], split: int
) -> None:
    _, run = drawn
    run = [(event, at - drawn[0]) for event, at in run]
    data = _log(run, encode(Shutdown(ShutdownCause.GUEST_SHUTDOWN)))
    runs_ = _split(run, split)
    assert _play(data, runs_, batched=True) == _play(data, runs_, batched=False)


@settings(max_examples=80, deadline=None)
@given(
    runs(),
    st.integers(0, 12),
    st.sampled_from(["other-kind", "other-count", "host-stop", "cut", "missing", "extra"]),
    st.data(),
)
def test_a_player_finds_and_reports_what_differs_as_one_by_one(
    drawn: tuple[int, Run], split: int, change: str, data: st.DataObject
) -> None:
    _, run = drawn
    run = [(event, at - drawn[0]) for event, at in run]
    if not run:
        return
    i = data.draw(st.integers(0, len(run) - 1))
    logged = list(run)
    extra = b""
    cut = 0
    if change == "other-kind":
        event, at = logged[i]
        other = SyncEvent.EXCEPTION if event is SyncEvent.INTERRUPT else SyncEvent.INTERRUPT
        logged[i] = (other, at)
    elif change == "other-count":
        logged = [(e, at + (1 if j >= i else 0)) for j, (e, at) in enumerate(logged)]
    elif change == "host-stop":  # the user stopped the recording here: the player steps over it
        head = one_by_one(logged[:i], 0)
        last = logged[i - 1][1] if i else 0
        tail = one_by_one(logged[i:], last)
        log = encode_header() + head + encode(Shutdown(ShutdownCause.HOST_SIGNAL)) + tail
        runs_ = _split(run, split)
        assert _play(log, runs_, batched=True) == _play(log, runs_, batched=False)
        return
    elif change == "cut":
        cut = data.draw(st.integers(1, len(one_by_one(run, 0))))
    elif change == "missing":
        del logged[i]
    else:
        extra = encode(encode_sync(SyncEvent.INTERRUPT))
        logged.insert(i, (SyncEvent.INTERRUPT, logged[i][1]))
    log = _log(logged, extra, cut)
    runs_ = _split(run, split)
    assert _play(log, runs_, batched=True) == _play(log, runs_, batched=False)


def test_a_player_over_a_stream_it_cannot_seek_in_takes_events_one_by_one() -> None:
    run = [(SyncEvent.INTERRUPT, 5), (SyncEvent.EXCEPTION, 9), (SyncEvent.INTERRUPT, 30)]

    class Pipe(io.BytesIO):
        def seekable(self) -> bool:
            return False

        def seek(self, offset: int, whence: int = 0) -> int:
            raise io.UnsupportedOperation("seek")

    player = Player(Pipe(_log(run)), "log")
    player.synchronize_all(run)
    assert player.position().icount == 30  # the log's end, after the run


def test_the_reader_steps_over_matching_bytes_only() -> None:
    run = [(SyncEvent.INTERRUPT, 5), (SyncEvent.EXCEPTION, 9)]
    body = one_by_one(run, 0)
    reader = Reader(io.BytesIO(encode_header() + body + bytes([EVENT_EXCEPTION])), "log")
    assert not reader.skip(body[:-1] + bytes([EVENT_INTERRUPT]), 9)
    assert (reader.offset, reader.icount) == (len(encode_header()), 0)
    assert not reader.skip(body + bytes(10), 9)  # more than the log holds
    assert reader.skip(body, 9)
    assert (reader.offset, reader.icount) == (len(encode_header()) + len(body), 9)
    assert reader.read() == encode_sync(SyncEvent.EXCEPTION)


# -- walking a long log to its end ----------------------------------------------------------

LOG_EVENTS = st.one_of(
    st.builds(Instruction, st.integers(0, 0xFFFFFFFF)),
    st.just(encode_sync(SyncEvent.INTERRUPT)),
    st.just(encode_sync(SyncEvent.EXCEPTION)),
    st.builds(Checkpoint, st.sampled_from(list(CheckpointKind))),
    st.builds(Clock, st.sampled_from(list(ClockKind)), st.integers(0, (1 << 64) - 1)),
    st.builds(AsyncCharRead, st.just(CheckpointKind.CLOCK_VIRTUAL), st.integers(0, 3),
              st.binary(min_size=1, max_size=6)),
    st.builds(Shutdown, st.sampled_from(list(ShutdownCause))),
    st.just(End()),
)  # fmt: skip


def _walk(data: bytes, chunk: int | None) -> list[tuple[object, ...]]:
    """Each event other than the three `skip_counts` steps over, with where the reader
    is after it, and how the walk ended: read one by one (`chunk` None) or skimmed."""
    reader = Reader(io.BytesIO(data), "log")
    seen: list[tuple[object, ...]] = []
    try:
        while True:
            if chunk is not None:
                reader.skip_counts(chunk)
            event = reader.read()
            if event is None:
                seen.append(("end of data", reader.offset, reader.icount))
                return seen
            if chunk is None and isinstance(event, Instruction | InterruptTaken | ExceptionTaken):
                continue
            seen.append((event, reader.offset, reader.icount))
    except FormatError as exc:
        seen.append((str(exc), reader.offset, reader.icount))
        return seen


def _one_by_one_end(data: bytes) -> int:
    reader = Reader(io.BytesIO(data), "log")
    try:
        for event in reader:
            if isinstance(event, End):
                break
    except FormatError:
        pass
    return reader.icount


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(LOG_EVENTS, st.just(Instruction(7)), st.just(InterruptTaken())), max_size=40
    ),
    st.integers(0, 12),
    st.sampled_from(["whole", "cut", "damaged"]),
    st.integers(1, 16),
)
def test_skimming_a_log_reads_what_one_by_one_reads(
    events: list[Event], cut: int, tail: str, chunk: int
) -> None:
    data = encode_header() + b"".join(encode(event) for event in events)
    if tail == "cut" and len(data) - cut > HEADER_SIZE:
        data = data[: len(data) - cut]
    elif tail == "damaged":
        data += bytes([0xFF])  # no such event
    assert _walk(data, chunk) == _walk(data, None)
    assert recording_end(io.BytesIO(data), "log") == _one_by_one_end(data)

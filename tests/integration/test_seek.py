"""seek(k) from any checkpoint reaches exactly the state of a straight replay to k."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rdebug.host.sources import LiveInputs, ScriptedInputs
from rdebug.machine.inputs import ExternalInputs
from rdebug.machine.machine import MachineConfig, StopEvent
from rdebug.machine.pages import FaultKind, write_fault_seconds
from rdebug.replay.log import Clock, Reader
from rdebug.replay.recording import record
from rdebug.replay.timeline import SeekError, Timeline
from rdebug.replay.trace import GuestSpec, Trace, sha256
from tests.conftest import GUESTS, Replay, straight_hash

CONFIG = MachineConfig(memory_mb=8)
INPUTS: dict[str, ExternalInputs] = {}


def _record(folder: Path, guest: str, inputs: ExternalInputs) -> Trace:
    data = (GUESTS / f"{guest}.elf").read_bytes()
    spec = GuestSpec(f"{guest}.elf", str(GUESTS / f"{guest}.elf"), sha256(data))
    return record(folder, data, spec, CONFIG, inputs).trace


def _inputs(guest: str) -> ExternalInputs:
    if guest == "echo":
        return ScriptedInputs([(500, 0, b"ab"), (3000, 0, b"cd\r"), (9000, 0, b"q")])
    return LiveInputs(clock=lambda: 1_764_000_000_000_000_000)


@pytest.fixture(scope="module", params=["timer", "usermode", "echo", "clock"])
def trace(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Trace:
    guest = request.param
    return _record(tmp_path_factory.mktemp(guest) / "trace", guest, _inputs(guest))


@pytest.fixture(
    params=[FaultKind.KERNEL, FaultKind.SIGNAL, False],
    ids=["kernel-faults", "signal-faults", "page-compare"],
)
def timeline(trace: Trace, request: pytest.FixtureRequest) -> Iterator[Timeline]:
    if request.param and write_fault_seconds(request.param) == 0.0:
        pytest.skip(f"this host does not let rdebug track writes by {request.param.value} faults")
    replay = Replay(trace)
    line = Timeline(
        replay.machine,
        replay.player,
        replay.end,
        min_interval=max(31, replay.end // 16),
        adaptive=False,
        write_faults=request.param,
    )
    yield line
    line.close()
    replay.close()


def test_seeks_in_any_order_match_straight_replays(trace: Trace, timeline: Timeline) -> None:
    end = timeline.end_icount
    targets = [end, end // 2, 7, end // 3, end - 1, 0, end // 2 + 1, end // 5]
    timeline.seek(end)  # the first pass leaves checkpoints behind
    assert len(timeline.store) > 3
    for target in targets:
        timeline.seek(target)
        assert timeline.icount == target
        assert timeline.machine.state_hash() == straight_hash(trace, target), target


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_random_seeks_match_straight_replays(
    trace: Trace, timeline: Timeline, data: st.DataObject
) -> None:
    end = timeline.end_icount
    targets = data.draw(st.lists(st.integers(0, end), min_size=1, max_size=4))
    for target in targets:
        timeline.seek(target)
        assert timeline.machine.state_hash() == straight_hash(trace, target), target


def test_seek_outside_the_recording_is_refused(timeline: Timeline) -> None:
    with pytest.raises(SeekError, match="outside the recording"):
        timeline.seek(timeline.end_icount + 1)
    with pytest.raises(SeekError):
        timeline.seek(-1)


def test_a_checkpoint_counts_the_write_faults_it_costs(timeline: Timeline) -> None:
    """What spaces checkpoints: taking one, and the faults of the pages written after it
    (with write-fault tracking: a measured cost per page; comparing with a shadow copy
    costs nothing in the replay)."""
    timeline.seek(timeline.end_icount)
    store = timeline.store
    assert store.last_changed > 0  # the guest wrote pages between the last two
    if store.tracking:
        assert 0 < store.fault_seconds < 0.01
    else:
        assert store.fault_seconds == 0


def test_checkpoints_track_writes_by_fault_and_keep_only_dirty_pages(trace: Trace) -> None:
    replay = Replay(trace)
    line = Timeline(replay.machine, replay.player, replay.end, min_interval=997, adaptive=False)
    try:
        assert line.store.tracking
        line.seek(replay.end)
        checkpoints = list(line.store)
        assert len(checkpoints) >= 2
        table = line.store.table_size
        # after the first, a checkpoint holds its table and the few pages the guest wrote
        assert all(cp.cost - table < 64 * 4096 for cp in checkpoints[1:])
    finally:
        line.close()
        replay.close()


def test_reverse_steps_after_a_far_restore_replay_little(trace: Trace) -> None:
    """With no automatic checkpoint but icount 0's, the first reverse step from the end
    replays from 0 and takes a checkpoint `near_cursor` before its target; the steps
    after it replay from there, at most ~near_cursor each, until they pass it (then one
    replays from 0 again and takes the next); the last lands on a straight replay's
    state."""
    replay = Replay(trace)
    near = 64
    line = Timeline(
        replay.machine, replay.player, replay.end, min_interval=replay.end + 1,
        adaptive=False, near_cursor=near,
    )  # fmt: skip
    replayed: list[int] = []
    run = replay.machine.run

    def counting_run(target: int | None = None) -> StopEvent:
        before = replay.machine.icount
        stop = run(target)
        replayed[-1] += replay.machine.icount - before
        return stop

    replay.machine.run = counting_run  # type: ignore[method-assign]
    try:
        end = replay.end
        assert end > 8 * near
        replayed.append(0)
        line.seek(end)
        for _ in range(3 * near):
            replayed.append(0)
            line.reverse_stepi()
        assert line.icount == end - 3 * near
        assert replayed[1] == end - 1  # from icount 0
        far = [i for i, n in enumerate(replayed) if n > near + 1]
        assert far == [0, 1, near + 2, 2 * near + 3], replayed  # then one per near steps
        assert line.store.at_or_before(end - 1 - near) is not None
        assert line.machine.state_hash() == straight_hash(trace, end - 3 * near)
        line.seek(end - 3 * near + 5)  # forward again, from where it stands
        assert line.machine.state_hash() == straight_hash(trace, end - 3 * near + 5)
    finally:
        line.close()
        replay.close()


def test_replays_cut_just_before_a_clock_read_read_it_at_the_recorded_icount(
    tmp_path: Path,
) -> None:
    """The host clock is logged at the icount of the instruction that reads it, not at
    the end of its translation block: a replay that stops a few instructions before the
    read (and so cuts that block) must not see the read elsewhere."""
    trace = _record(tmp_path / "trace", "clock", _inputs("clock"))
    clock_reads = []
    with trace.log_path.open("rb") as stream:
        reader = Reader(stream, "log")
        for event in reader:
            if isinstance(event, Clock):
                clock_reads.append(reader.icount)
    assert clock_reads
    first = clock_reads[0]
    for cut in range(max(0, first - 6), first + 2):
        straight_hash(trace, cut)  # raised LogDivergence inside the reading block

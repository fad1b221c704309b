"""The front door (rdebug.api): a live session and its recording, a straight play, and the
ways of moving in time that go through the timeline (loadvm, a late interrupt), each
compared with a straight run of the same recording."""

from __future__ import annotations

from pathlib import Path

import pytest

import rdebug
from rdebug.api import Guest, LiveSession, MachineConfig, Session, Where, record
from rdebug.errors import UsageError
from rdebug.host.sources import LiveInputs
from rdebug.replay.trace import Trace
from tests.conftest import GUESTS, straight_hash


@pytest.fixture(scope="module")
def timer_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A recording of the timer guest (interrupts), made through the API's `record`."""
    folder = tmp_path_factory.mktemp("sessions") / "timer"
    recorded = record(
        folder, Guest.read(GUESTS / "timer.elf"), MachineConfig(memory_mb=8), LiveInputs()
    )
    assert recorded.stop.where is Where.EXITED and recorded.stop.exit_code == 1
    assert recorded.path == folder and recorded.events > 10
    return folder


def test_play_ends_where_the_recording_ended_in_the_state_of_a_straight_run(
    timer_trace: Path,
) -> None:
    hashes = []
    for _ in range(2):
        with Session(timer_trace) as session:
            played = session.play()
            assert played.complete and played.host_stop is None
            assert played.stop.where is Where.EXITED and played.stop.exit_code == 1
            assert played.stop.icount == session.icount == session.end_icount
            hashes.append(session.state_hash())
    assert hashes[0] == hashes[1]
    with rdebug.open(timer_trace) as session:
        session.seek(session.end_icount)
        assert session.state_hash() == hashes[0] == straight_hash(
            Trace.open(timer_trace), session.end_icount
        )


def test_a_session_plays_once_and_then_stays(timer_trace: Path) -> None:
    with Session(timer_trace) as session:
        session.play()
        with pytest.raises(UsageError, match="straight through"):
            session.seek(10)
        with pytest.raises(UsageError, match="only once"):
            session.play()
    with Session(timer_trace) as session:
        session.stepi(5)
        with pytest.raises(UsageError, match="only once"):
            session.play()


def test_loadvm_restores_through_the_timeline(timer_trace: Path) -> None:
    trace = Trace.open(timer_trace)
    with rdebug.open(timer_trace) as session:
        middle = session.end_icount // 2
        session.seek(middle)
        session.savevm("middle")
    with rdebug.open(timer_trace) as session:
        session.loadvm("middle")  # the first move of this session
        assert session.icount == middle
        assert session.state_hash() == straight_hash(trace, middle)
        assert session.reverse_stepi(10).where is Where.TARGET
        assert session.state_hash() == straight_hash(trace, middle - 10)
        session.seek(session.end_icount)
        session.loadvm("middle")
        assert session.stepi(20).icount == middle + 20
        assert session.state_hash() == straight_hash(trace, middle + 20)


def test_a_late_interrupt_is_forgotten_without_moving(timer_trace: Path) -> None:
    trace = Trace.open(timer_trace)
    with rdebug.open(timer_trace) as session:
        session.seek(100)
        session.interrupt()
        session.clear_interrupt()
        assert session.icount == 100
        stop = session.stepi(50)
        assert (stop.where, stop.icount) == (Where.TARGET, 150)
        assert session.state_hash() == straight_hash(trace, 150)


def test_a_live_session_stops_at_a_target_a_breakpoint_and_the_exit(timer_trace: Path) -> None:
    guest = Guest.read(GUESTS / "timer.elf")
    with rdebug.open(timer_trace) as replay:
        end = replay.end_icount
        entry = replay.address("guest_main")
    live = LiveSession.start(guest, MachineConfig(memory_mb=8), LiveInputs())
    try:
        stop = live.run(50)
        assert (stop.where, stop.icount) == (Where.TARGET, 50)
        live.add_breakpoint(entry)
        stop = live.run()
        assert stop.where is Where.BREAKPOINT and live.register("eip") == entry == stop.addr
        live.remove_breakpoint(entry)
        stop = live.run()
        assert stop.where is Where.EXITED and stop.exit_code == 1
        # the same guest, live and recorded, runs the same instructions (its only input,
        # the timer, runs in virtual time)
        assert stop.icount == live.icount == end
    finally:
        live.close()

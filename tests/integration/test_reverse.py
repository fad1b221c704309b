"""Reverse execution on the Session: reverse-stepi, reverse-continue to breakpoints.

Like QEMU's reverse-debugging test: step forward recording every pc, then step back
comparing; and every breakpoint hit found going backwards is a hit found going forwards,
in reverse order, in exactly the same machine state.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import rdebug
from rdebug.api import Where
from tests.conftest import record_cli


@pytest.fixture(scope="module")
def timer_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("reverse") / "trace"
    return record_cli("timer", folder, "-m", "8", "--serial", "null")


def test_reverse_stepi_retraces_every_pc(timer_trace: Path) -> None:
    with rdebug.open(timer_trace) as session:
        session.seek(2000)
        seen = []
        for _ in range(60):
            seen.append((session.icount, session.registers["eip"], session.state_hash()))
            session.stepi()
        for icount, eip, state in reversed(seen):
            stop = session.reverse_stepi()
            assert stop.where is Where.TARGET
            assert (session.icount, session.registers["eip"]) == (icount, eip)
            assert session.state_hash() == state


def test_reverse_stepi_stops_at_the_beginning(timer_trace: Path) -> None:
    with rdebug.open(timer_trace) as session:
        session.seek(3)
        assert session.reverse_stepi(10).where is Where.BEGIN
        assert session.icount == 0
        assert session.reverse_stepi().where is Where.BEGIN


def test_reverse_continue_finds_the_forward_hits_backwards(timer_trace: Path) -> None:
    with rdebug.open(timer_trace) as session:
        session.add_breakpoint("isr_dispatch")
        forward = []
        while (stop := session.cont()).where is Where.BREAKPOINT:
            forward.append((stop.icount, session.state_hash()))
            assert session.registers["eip"] == session.symbols["isr_dispatch"]
        assert stop.where in (Where.END, Where.EXITED)
        assert len(forward) >= 50  # one per timer tick, at least
        backward = []
        while (stop := session.reverse_cont()).where is Where.BREAKPOINT:
            backward.append((stop.icount, session.state_hash()))
        assert stop.where is Where.BEGIN and session.icount == 0
        assert backward == list(reversed(forward))


def test_reverse_continue_from_a_breakpoint_leaves_it(timer_trace: Path) -> None:
    with rdebug.open(timer_trace) as session:
        session.add_breakpoint("isr_dispatch")
        first = session.cont()
        second = session.cont()
        assert first.icount < second.icount
        back = session.reverse_cont()  # from a hit: the previous hit, not this one
        assert (back.where, back.icount) == (Where.BREAKPOINT, first.icount)
        session.remove_breakpoint("isr_dispatch")
        assert session.cont().where in (Where.END, Where.EXITED)


def test_watchpoint_forward_lands_after_and_backward_before_the_write(timer_trace: Path) -> None:
    with rdebug.open(timer_trace) as session:
        ticks = session.symbols["ticks"]
        session.add_watchpoint("ticks", 4, "write")
        values = []
        while (stop := session.cont()).where is Where.WATCHPOINT:
            assert stop.data_addr == ticks
            values.append((stop.icount, int.from_bytes(session.read_memory(ticks, 4), "little")))
        # the boot code clearing .bss writes it first, then each tick increments it
        assert [v for _, v in values[:6]] == [0, 1, 2, 3, 4, 5]  # just after each write
        assert len(values) >= 51
        # backwards: just before each write, newest first; the writing instruction is next
        for icount, value in reversed(values):
            stop = session.reverse_cont()
            assert (stop.where, stop.icount, stop.data_addr) == (
                Where.WATCHPOINT,
                icount - 1,
                ticks,
            )
            if value:
                assert int.from_bytes(session.read_memory(ticks, 4), "little") == value - 1
            session.stepi()
            assert int.from_bytes(session.read_memory(ticks, 4), "little") == value
            session.reverse_stepi()
        assert session.reverse_cont().where is Where.BEGIN
        session.remove_watchpoint("ticks", 4, "write")

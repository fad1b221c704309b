"""The command language (commands.py, monitor.py) and the API below, on a real recording.

Everything that moves through time is checked against the straight run: the state hash
after a jump (events, goto, next/prev-event, watchpoints backward) equals the hash of a
fresh session stepped forward to the same icount.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import rdebug
from rdebug import commands, monitor
from rdebug.api import Session, Where
from rdebug.errors import UsageError
from rdebug.replay.events import EventKind, parse_kind
from rdebug.replay.log import InterruptTaken, Reader
from rdebug.replay.timeline import MIN_INTERVAL
from tests.conftest import record_cli


@pytest.fixture(scope="module")
def bug_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("repl") / "bug"
    return record_cli("bug", folder, "-m", "8", "--serial", "null")


@pytest.fixture
def session(bug_trace: Path) -> Iterator[Session]:
    with rdebug.open(bug_trace) as opened:
        yield opened


def straight_hash(trace: Path, icount: int) -> str:
    """The state at `icount`, reached by stepping a fresh session forward only."""
    with rdebug.open(trace) as fresh:
        while fresh.icount < icount:
            fresh.stepi(min(5000, icount - fresh.icount))
        return fresh.state_hash()


@pytest.mark.parametrize(
    ("line", "command"),
    [
        ("stepi", commands.StepI(1)),
        ("si 10", commands.StepI(10)),
        ("rstepi 3", commands.StepI(3, reverse=True)),
        ("reverse-stepi", commands.StepI(1, reverse=True)),
        ("c", commands.Continue()),
        ("reverse-continue", commands.Continue(reverse=True)),
        ("seek 0x100", commands.ReplaySeek(256)),
        ("seek end", commands.ReplaySeek(None)),
        ("break deposit", commands.Break("deposit")),
        ("watch acct+16", commands.Watch("acct+16", 4, "write")),
        ("watch 0x1000 2 read", commands.Watch("0x1000", 2, "read")),
        ("watch ticks access 1", commands.Watch("ticks", 1, "access")),
        ("delete 2", commands.Delete(2)),
        ("delete", commands.Delete(None)),
        ("info breakpoints", commands.InfoBreakpoints()),
        ("info registers", commands.Registers()),
        ("regs", commands.Registers()),
        ("x/4xw acct", commands.Examine("acct", 4, "x", 4)),
        ("x/16xb 0x100000", commands.Examine("0x100000", 16, "x", 1)),
        ("x/s msg", commands.Examine("msg", 1, "s", 4)),
        ("x/3i $eip", commands.Examine("$eip", 3, "i", 4)),
        ("x ticks", commands.Examine("ticks", 1, "x", 4)),
        ("x/2dg ticks", commands.Examine("ticks", 2, "d", 8)),
        ("disas", commands.Disassemble(None, 10)),
        ("disas guest_main 3", commands.Disassemble("guest_main", 3)),
        ("events", commands.Events()),
        ("events interrupts --from 5 --to 9", commands.Events(EventKind.INTERRUPT, 5, 9)),
        ("goto event 3", commands.GotoEvent(3)),
        ("next-event interrupt", commands.NextEvent(EventKind.INTERRUPT)),
        ("prev-event", commands.NextEvent(None, reverse=True)),
        ("snapshots", commands.InfoSnapshots()),
        ("gdb", commands.ServeGdb(1234)),
        ("gdb 0", commands.ServeGdb(0)),
        ("source cmds.txt", commands.Source("cmds.txt")),
        ("quit", commands.Quit()),
        ("help x/4xw", commands.Help("x/4xw")),
    ],
)
def test_parse(line: str, command: commands.Command) -> None:
    assert commands.parse(line) == command


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("stepi x", "not a number"),
        ("watch", "usage: watch"),
        ("watch a 0", "at least 1"),
        ("x/4q foo", "unknown format letter 'q'"),
        ("x/0x foo", "at least 1"),
        ("events bogus", "not an event kind"),
        ("events --from", "needs an icount"),
        ("goto 3", "usage: goto"),
        ("gdb 70000", "0..65535"),
        ("info frobs", "usage: info"),
    ],
)
def test_parse_errors(line: str, needle: str) -> None:
    with pytest.raises(UsageError, match=needle):
        commands.parse(line)


def test_event_kinds_by_name_plural_or_prefix() -> None:
    assert parse_kind("interrupts") is EventKind.INTERRUPT
    assert parse_kind("int") is EventKind.INTERRUPT
    assert parse_kind("Clock") is EventKind.CLOCK
    with pytest.raises(UsageError):
        parse_kind("c")  # clock or checkpoint


def test_events_are_the_logs_with_their_icounts(bug_trace: Path, session: Session) -> None:
    expected = []
    with (bug_trace / "replay.log").open("rb") as stream:
        icount = 0
        for event in Reader(stream, "log"):
            icount += getattr(event, "count", 0)
            if isinstance(event, InterruptTaken):
                expected.append(icount)
    interrupts = list(session.events("interrupt"))
    assert [e.icount for e in interrupts] == expected and len(expected) >= 3
    assert [e.index for e in session.events()] == list(range(len(list(session.events()))))
    inside = list(session.events(EventKind.INTERRUPT, expected[1], expected[2] + 1))
    assert [e.icount for e in inside] == expected[1:3]
    text = monitor.Debugger(session).run(commands.parse("events interrupt"))
    assert all(str(icount) in text for icount in expected)


def test_goto_event_lands_on_the_straight_run_state(bug_trace: Path, session: Session) -> None:
    debugger = monitor.Debugger(session)
    last = list(session.events("interrupt"))[-1]
    debugger.execute("seek end")
    answer = debugger.execute(f"goto event {last.index}")
    assert session.icount == last.icount and f"icount {last.icount}" in answer
    assert session.state_hash() == straight_hash(bug_trace, last.icount)
    # the interrupt is taken by the next instruction: it runs in the handler
    debugger.execute("stepi")
    handler = session.symbol(session.registers["eip"])
    assert handler is not None and handler.startswith("isr_stub_32")
    debugger.execute("rstepi")
    assert session.icount == last.icount


def test_next_and_prev_event(bug_trace: Path, session: Session) -> None:
    debugger = monitor.Debugger(session)
    interrupts = [e.icount for e in session.events("interrupt")]
    debugger.execute("next-event interrupt")
    assert session.icount == interrupts[0]
    debugger.execute("next-event interrupt")
    assert session.icount == interrupts[1]
    debugger.execute("prev-event interrupt")
    assert session.icount == interrupts[0]
    assert session.state_hash() == straight_hash(bug_trace, interrupts[0])
    assert "no recorded interrupt event before" in debugger.execute("prev-event interrupt")


def test_break_by_symbol_and_watch_backward(bug_trace: Path, session: Session) -> None:
    debugger = monitor.Debugger(session)
    assert "breakpoint 1 at" in debugger.execute("break deposit")
    assert debugger.execute("continue").startswith("breakpoint 1\n")
    assert session.registers["eip"] == session.address("deposit")
    assert "watchpoint 2: write 4 bytes at" in debugger.execute("watch acct+16")
    assert "1    breakpoint" in debugger.execute("info breakpoints")
    debugger.execute("delete 1")
    debugger.execute("seek end")
    answer = debugger.execute("rcontinue")
    assert answer.startswith("watchpoint 2: write at 0x")
    # backward: just before the writing instruction, which stores to the watched bytes
    writer = session.disassemble(None, 1)[0]
    assert writer.mnemonic == "mov" and "<acct+0x10>" in writer.operands
    assert session.state_hash() == straight_hash(bug_trace, session.icount)
    debugger.execute("delete")
    assert debugger.execute("info breakpoints") == "no breakpoints or watchpoints\n"


def test_examine_and_registers(session: Session) -> None:
    debugger = monitor.Debugger(session)
    debugger.execute("seek 20000")
    words = debugger.execute("x/4xw acct").split("\t")[1:]
    data = session.read_memory(session.address("acct"), 16)
    assert [int(w, 16) for w in words] == [
        int.from_bytes(data[i : i + 4], "little") for i in range(0, 16, 4)
    ]
    lines = debugger.execute("x/16xb 0x100000").splitlines()
    assert len(lines) == 2 and lines[0].startswith("0x100000 <multiboot_header>:\t0x02\t0xb0")
    assert debugger.execute("x/3i $eip").count("\n") == 3
    regs = debugger.execute("regs")
    assert f"eip {session.registers['eip']:08x}" in regs and "eflags" in regs
    assert "=>" in debugger.execute("disas $eip 2".replace("$eip", hex(session.registers["eip"])))
    assert debugger.execute("x/4xw 0xfffff000").startswith("error: memory at")


def test_symbols_both_ways(session: Session) -> None:
    deposit = session.address("deposit")
    assert session.symbol(deposit) == "deposit"
    assert session.symbol(deposit + 5) == "deposit+0x5"
    assert session.address("deposit+5") == deposit + 5
    assert session.address("0x100000") == 0x100000
    assert session.symbol(0xFFFF0000) is None
    with pytest.raises(UsageError, match="no such symbol"):
        session.address("no_such_function")


def test_repl_only_commands_are_refused_by_the_monitor(session: Session) -> None:
    assert monitor.execute(session, "gdb 0") == "error: gdb: only in the REPL (rdebug repl TRACE)\n"


@pytest.fixture(scope="module")
def crc_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("repl") / "crc"
    return record_cli("crc", folder, "-m", "8", "--serial", "null")


@pytest.mark.parametrize("boundary", [MIN_INTERVAL, 2 * MIN_INTERVAL])
def test_stepping_on_from_a_checkpoint_boundary(crc_trace: Path, boundary: int) -> None:
    """A seek that ends on a checkpoint boundary (no checkpoint taken there), or an
    interrupt that lands there, must not stop the next step (it once did: "the replay
    stopped at icount 1048576 before reaching 1048586")."""
    with rdebug.open(crc_trace) as session:
        session.seek(boundary)
        assert session.stepi(10).icount == boundary + 10
        session.seek(boundary)
        session.interrupt()  # stops the next run at once, on the boundary
        assert session.stepi(10).where is Where.INTERRUPTED
        assert session.stepi(10).icount == boundary + 10
        here = session.state_hash()
    with rdebug.open(crc_trace) as fresh:
        fresh.seek(boundary + 10)
        assert fresh.state_hash() == here


def test_serial_input_is_a_recorded_input_event(tmp_path: Path) -> None:
    typed = tmp_path / "typed"
    typed.write_bytes(b"abcq")
    trace = record_cli("echo", tmp_path / "echo", "-m", "8", "--serial", "null",
                       "--serial-input", str(typed))  # fmt: skip
    with rdebug.open(trace) as session:
        inputs = list(session.events("input"))
        assert [e.detail for e in inputs] == ["COM1 received b'abcq'"]
        kinds = {e.kind for e in session.events()}
        assert kinds == {EventKind.INPUT, EventKind.CHECKPOINT, EventKind.INTERRUPT,
                         EventKind.SHUTDOWN}  # fmt: skip
        text = monitor.Debugger(session).execute("events input")
        assert "COM1 received b'abcq'" in text and "checkpoint" not in text

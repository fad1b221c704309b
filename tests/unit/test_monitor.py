"""The monitor command language against a real session."""

from __future__ import annotations

from pathlib import Path

import pytest

import rdebug
from rdebug import commands, monitor
from rdebug.api import Where
from rdebug.errors import UsageError
from tests.conftest import record_cli


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("monitor") / "trace"
    return record_cli("timer", folder, "-m", "8", "--serial", "null")


@pytest.mark.parametrize(
    ("line", "command"),
    [
        ("info replay", commands.InfoReplay()),
        ("replay_seek 0x10", commands.ReplaySeek(16)),
        ("replay_break 1_000", commands.ReplayBreak(1000)),
        ("replay_delete_break", commands.ReplayDeleteBreak()),
        ("savevm here", commands.SaveVm("here")),
        ("loadvm 'my snap'", commands.LoadVm("my snap")),
        ("info snapshots", commands.InfoSnapshots()),
        ("help", commands.Help()),
        ("help savevm", commands.Help("savevm")),
    ],
)
def test_parse(line: str, command: commands.Command) -> None:
    assert commands.parse(line) == command


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("", "no command"),
        ("frobnicate", "unknown command"),
        ("replay_seek", "usage"),
        ("replay_seek x", "not a number"),
        ("replay_seek -5", "negative"),
        ("info", "usage"),
    ],
)
def test_parse_errors(line: str, needle: str) -> None:
    with pytest.raises(UsageError, match=needle):
        commands.parse(line)


def test_commands_drive_the_session(trace: Path) -> None:
    with rdebug.open(trace) as session:
        assert monitor.execute(session, "replay_seek 2000").startswith("icount 2000: 0x")
        assert session.icount == 2000
        assert "saved mark at icount 2000" in monitor.execute(session, "savevm mark")
        info = monitor.execute(session, "info replay")
        assert "icount 2000 of" in info and "mark (icount 2000)" in info
        assert "mark" in monitor.execute(session, "info snapshots")
        monitor.execute(session, "replay_break 3000")
        assert session.cont().where is Where.REPLAY_BREAK and session.icount == 3000
        session.seek(5000)
        stop = session.reverse_cont()
        assert (stop.where, stop.icount) == (Where.REPLAY_BREAK, 3000)
        monitor.execute(session, "replay_delete_break")
        monitor.execute(session, "loadvm mark")
        assert session.icount == 2000
        assert monitor.execute(session, "replay_seek 999999999").startswith("error: ")
        assert "savevm NAME" in monitor.execute(session, "help")


def test_examine_and_disas_are_bounded_with_a_last_line_saying_so(trace: Path) -> None:
    """Issue 17, case 2: x/99999999xb built its whole output (2.5 GB and growing)."""
    with rdebug.open(trace) as session:
        text = monitor.execute(session, "x/99999999xb 0")
        lines = text.splitlines()
        assert len(lines) == monitor.MAX_UNITS // 8 + 1
        assert lines[0].startswith("0x0") and lines[-1] == (
            "... truncated: 4096 of the 99999999 units asked (x shows at most 4096)"
        )
        assert monitor.execute(session, "x/4096xb 0").splitlines() == lines[:-1]
        assert "truncated" not in monitor.execute(session, "x/16xw 0x100000")
        disas = monitor.execute(session, "disas _start 99999999").splitlines()
        assert disas[-1].startswith("... truncated: 4096 of the 99999999 instructions")
        strings = monitor.execute(session, "x/9999s 0x100000").splitlines()
        assert strings[-1].startswith("... truncated: 256 of the 9999 units asked")


@pytest.mark.parametrize(
    "line",
    ["x/4xb 0x100000000", "break 0x100001000", "watch 0x1_0000_0000 4", "disas 0x100100000 2"],
)
def test_addresses_beyond_32_bits_are_refused_not_masked(trace: Path, line: str) -> None:
    with rdebug.open(trace) as session:
        empty = monitor.execute(session, "info breakpoints")
        assert "beyond the 32-bit address space" in monitor.execute(session, line)
        assert monitor.execute(session, "info breakpoints") == empty


def test_a_watch_range_beyond_32_bits_or_empty_is_refused(trace: Path) -> None:
    with rdebug.open(trace) as session:
        assert "32-bit" in monitor.execute(session, "watch 0x100000 0xffffffffffffff")
        assert "at least 1" in monitor.execute(session, "watch 0x100000 0")
        listing = monitor.execute(session, "info breakpoints")
        assert "0x00100000" not in listing and "0x100000" not in listing


def test_info_breakpoints_lists_those_gdb_or_a_script_set_too(trace: Path) -> None:
    """Issue 17: breakpoints set through gdb's Z packets were not listed."""
    with rdebug.open(trace) as session:
        debugger = monitor.Debugger(session)
        debugger.execute("break guest_main")
        debugger.execute("watch 0x100000 4")
        session.add_breakpoint("guest_exit")  # as gdb's Z0 does
        session.add_watchpoint(0x100010, 2, "read")  # as gdb's Z3 does
        rows = debugger.execute("info breakpoints").splitlines()
        assert rows[1].startswith("1    breakpoint  0x") and "guest_main" in rows[1]
        assert rows[2].startswith("2    write watch 0x00100000")
        assert rows[3].startswith("-    breakpoint  0x") and "guest_exit" in rows[3]
        assert rows[4].startswith("-    read watch  0x00100010") and "(2 bytes)" in rows[4]
        assert len(rows) == 5
        session.remove_breakpoint("guest_exit")
        session.remove_watchpoint(0x100010, 2, "read")
        assert len(debugger.execute("info breakpoints").splitlines()) == 3

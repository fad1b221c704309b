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

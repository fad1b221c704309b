"""`rdebug.gdb` (a real gdb on a Session, through pygdbmi) and the REPL's `gdb` command."""

from __future__ import annotations

import io
import re
import shutil
import threading
import time
from pathlib import Path

import pytest

import rdebug
import rdebug.gdb
from rdebug.repl import Repl
from rdebug.replay.log import Instruction, InterruptTaken, Reader, encode, encode_header
from rdebug.replay.trace import Trace
from tests.conftest import EVENT_TIMEOUT, record_cli
from tests.e2e.gdb.conftest import attached_gdb


@pytest.fixture(scope="module")
def bug_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("rdebug-gdb") / "bug"
    return record_cli("bug", folder, "-m", "8", "--serial", "null")


def test_script_gdb_on_a_session(bug_trace: Path) -> None:
    with rdebug.open(bug_trace) as session:
        deposit = session.address("deposit")
        with rdebug.gdb.attach(session) as gdb:
            assert "Breakpoint 1 at" in gdb.command("break deposit").console
            stop = gdb.command("continue").stopped
            assert stop is not None and stop["reason"] == "breakpoint-hit"
            assert stop["frame"]["func"] == "deposit"
            pc = gdb.value("$pc")
            assert deposit <= pc < deposit + 16  # after deposit's prologue (DWARF)
            gdb.command("delete")
            gdb.command("watch acct.balance")
            gdb.command("continue")
            balance = gdb.value("acct.balance")
            back = gdb.command("reverse-continue")
            assert back.stopped is not None and "watchpoint" in back.stopped["reason"]
            assert gdb.value("acct.balance") != balance or "Old value" in back.console
            left_at = gdb.value("$pc")
            with pytest.raises(rdebug.gdb.GdbError, match="frobnicate"):
                gdb.command("frobnicate")
            assert gdb.command("frobnicate", check=False).error is not None
        # gdb is gone: the session is the script's again, where gdb left it
        assert session.registers["eip"] == left_at
        session.stepi()


def test_the_repl_serves_gdb_on_its_session(bug_trace: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    with rdebug.open(bug_trace) as session:
        repl = Repl(session, out, err)
        assert repl.execute("break guest_exit")
        assert repl.execute("seek 20000")
        seen: list[str] = []
        failures: list[BaseException] = []

        def use_gdb() -> None:
            try:
                deadline = time.monotonic() + EVENT_TIMEOUT
                while not (match := re.search(r"target remote ([\d.]+:\d+)", out.getvalue())):
                    assert time.monotonic() < deadline, out.getvalue()
                    time.sleep(0.01)
                with attached_gdb(match[1], bug_trace / "guest") as gdb:
                    seen.append(gdb.run("monitor info replay")[0])  # where the REPL was
                    seen.append(gdb.run("monitor info breakpoints")[0])  # the REPL's
                    gdb.run("break *deposit")
                    gdb.run("continue")
                    seen.append(hex(gdb.pc()))
                    gdb.run("detach")
            except BaseException as exc:
                failures.append(exc)

        thread = threading.Thread(target=use_gdb)
        thread.start()
        assert repl.execute("gdb 0"), err.getvalue()
        thread.join()
        if failures:
            raise failures[0]
        assert seen[0].startswith("icount 20000 of")
        assert "1    breakpoint  " in seen[1] and "guest_exit" in seen[1]
        assert int(seen[2], 16) == session.address("deposit") == session.registers["eip"]
        assert f"gdb is gone; icount {session.icount}: " in out.getvalue()
        # gdb's breakpoint went with gdb; the REPL's is back
        assert repl.execute("continue")
        assert session.registers["eip"] == session.address("guest_exit")


def test_gdb_monitor_speaks_the_repl_language(bug_trace: Path) -> None:
    with rdebug.open(bug_trace) as session:
        interrupts = list(session.events("interrupt"))
        with rdebug.gdb.attach(session) as gdb:
            listing = gdb.command("monitor events interrupt").console
            assert all(f" {e.icount}  interrupt" in listing for e in interrupts)
            assert f"icount {interrupts[2].icount}:" in gdb.command("monitor goto event 2").console
            gdb.command("flushregs")
            pc = gdb.value("$pc")
            assert "<" in gdb.command("monitor x/2i $eip").console
            assert gdb.command("monitor frobnicate").console.startswith("error: unknown command")
        assert session.icount == interrupts[2].icount and session.registers["eip"] == pc


def test_a_replay_that_cannot_go_on_tells_gdb_why(bug_trace: Path, tmp_path: Path) -> None:
    """A log whose first interrupt is moved one instruction later: gdb's continue stops
    with SIGABRT where the machine found the divergence, after the reason on its console
    (not as a SIGINT nobody asked for); reverse execution still works from there."""
    trace = tmp_path / "bug"
    shutil.copytree(bug_trace, trace)
    log = Trace.open(trace).log_path
    with log.open("rb") as stream:
        events = list(Reader(stream, str(log)))
    first = next(i for i, e in enumerate(events) if isinstance(e, InterruptTaken))
    before = max(i for i in range(first) if isinstance(events[i], Instruction))
    count = events[before]
    assert isinstance(count, Instruction)
    events[before] = Instruction(count.count + 1)
    log.write_bytes(encode_header() + b"".join(encode(e) for e in events))
    with rdebug.open(trace) as session, rdebug.gdb.attach(session) as gdb:
        stopped = gdb.command("continue")
        assert stopped.stopped is not None
        assert stopped.stopped.get("signal-name") == "SIGABRT", stopped.stopped
        assert "rdebug: the replay cannot go on: replay diverged" in stopped.console
        assert "took an interrupt" in stopped.console
        diverged_at = session.icount
        back = gdb.command("reverse-stepi")
        assert back.stopped is not None and session.icount == diverged_at - 1

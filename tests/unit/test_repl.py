"""The REPL driven through prompt_toolkit's pipe input: commands, completion, history,
the toolbar, Ctrl-C at the prompt and during a long operation, source files, batch runs."""

from __future__ import annotations

import inspect
import io
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

import rdebug
from rdebug.api import Session
from rdebug.repl import Completions, Repl
from tests.conftest import EVENT_TIMEOUT, ROOT, HeldOperation, long_crc_trace, record_cli


@pytest.fixture(scope="module")
def bug_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("repl") / "bug"
    return record_cli("bug", folder, "-m", "8", "--serial", "null")


@pytest.fixture
def session(bug_trace: Path, tmp_path: Path) -> Iterator[Session]:
    copy = tmp_path / "bug"
    shutil.copytree(bug_trace, copy)  # savevm writes into the trace
    with rdebug.open(copy) as opened:
        yield opened


def wait_until(condition: Callable[[], bool]) -> None:
    """Until the REPL has done what `condition` checks (it polls the REPL's buffers;
    EVENT_TIMEOUT only turns a hang into a failure)."""
    deadline = time.monotonic() + EVENT_TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the REPL never did it: " + inspect.getsource(condition).strip())
        time.sleep(0.01)


def drive(repl: Repl, script: Callable[[Callable[[str], None], object], None]) -> None:
    """Run the REPL's prompt loop in this thread, typing into it from another."""
    with create_pipe_input() as pipe:
        prompt = repl.prompt_session(input=pipe, output=DummyOutput())
        failures: list[BaseException] = []

        def typist() -> None:
            try:
                script(pipe.send_text, prompt)
            except BaseException as exc:
                failures.append(exc)
            finally:
                pipe.send_text("\x03quit\n")

        thread = threading.Thread(target=typist)
        thread.start()
        repl.interact(prompt)
        thread.join()
        if failures:
            raise failures[0]


def test_commands_and_completion_through_the_prompt(session: Session) -> None:
    out, err = io.StringIO(), io.StringIO()
    # no progress bar: on a slow enough machine it would show in `err` (checked below)
    repl = Repl(session, out, err, show_progress=False)

    def script(type_: Callable[[str], None], prompt: object) -> None:
        buffer = prompt.default_buffer  # type: ignore[attr-defined]
        type_("brea")
        type_("\t")
        wait_until(lambda: buffer.text == "break")
        type_(" depo\t")
        wait_until(lambda: buffer.text == "break deposit")
        type_("\n")
        wait_until(lambda: "breakpoint 1 at" in out.getvalue())
        type_("continue\n")
        wait_until(lambda: "<deposit>: push ebp" in out.getvalue())
        type_("savevm at_deposit\nseek 100\n")
        wait_until(lambda: "icount 100:" in out.getvalue())
        type_("loadvm at_\t")
        wait_until(lambda: buffer.text == "loadvm at_deposit")
        type_("\n")
        wait_until(lambda: "loaded at_deposit" in out.getvalue())
        type_("frobnicate\n")
        wait_until(lambda: "unknown command" in err.getvalue())

    drive(repl, script)
    assert session.registers["eip"] == session.address("deposit")
    assert err.getvalue() == "error: unknown command 'frobnicate' (try 'help')\n"


def test_ctrl_c_at_the_prompt_clears_the_line(session: Session) -> None:
    out, err = io.StringIO(), io.StringIO()
    repl = Repl(session, out, err)

    def script(type_: Callable[[str], None], prompt: object) -> None:
        buffer = prompt.default_buffer  # type: ignore[attr-defined]
        type_("seek 5000")
        wait_until(lambda: buffer.text == "seek 5000")
        type_("\x03")
        wait_until(lambda: buffer.text == "")
        type_("seek 7\n")
        wait_until(lambda: "icount 7:" in out.getvalue())

    drive(repl, script)
    assert session.icount == 7 and "5000" not in out.getvalue()


def test_completion_candidates(session: Session) -> None:
    repl = Repl(session, io.StringIO(), io.StringIO())
    completer = Completions(repl)

    def complete(text: str) -> list[str]:
        found = completer.get_completions(Document(text, len(text)), CompleteEvent(True))
        return [c.text for c in found]

    assert complete("rs") == ["rstepi"]
    assert "reverse-continue" in complete("rev")
    assert complete("info b") == ["breakpoints"]
    assert complete("watch acc") == ["acct"]
    assert complete("watch acct 4 r") == ["read"]
    assert complete("x/4xw $e") == ["$eip", "$esp", "$ebp"]
    assert complete("events int") == ["interrupt"]
    assert complete("loadvm i") == ["init"]
    assert complete("goto ") == ["event"]


def test_history_is_kept_in_its_file(session: Session, tmp_path: Path) -> None:
    history = tmp_path / "history"
    repl = Repl(session, io.StringIO(), io.StringIO())
    with create_pipe_input() as pipe:
        prompt = repl.prompt_session(FileHistory(str(history)), pipe, DummyOutput())
        pipe.send_text("seek 42\ninfo replay\nquit\n")
        repl.interact(prompt)
    assert [line for line in history.read_text().splitlines() if line.startswith("+")] == [
        "+seek 42",
        "+info replay",
        "+quit",
    ]
    # a new REPL on the same file recalls them: Up, Up is "info replay"
    out = io.StringIO()
    again = Repl(session, out, io.StringIO())
    with create_pipe_input() as pipe:
        prompt = again.prompt_session(FileHistory(str(history)), pipe, DummyOutput())
        pipe.send_text("\x1b[A\x1b[A\n\x03quit\n")
        again.interact(prompt)
    assert "icount 42 of" in out.getvalue()


def test_toolbar_shows_icount_eip_symbol_snapshot_and_length(session: Session) -> None:
    repl = Repl(session, io.StringIO(), io.StringIO())
    repl.execute("seek 20000")
    repl.execute("savevm mark")
    repl.execute("stepi 3")
    bar = repl.toolbar()
    eip = session.registers["eip"]
    assert f"icount 20003 of {session.end_icount}" in bar
    assert f"eip {eip:#x} <{session.symbol(eip)}>" in bar
    assert "snapshot mark@20000" in bar


def test_source_runs_a_file_and_stops_at_the_first_failure(
    session: Session, tmp_path: Path
) -> None:
    out, err = io.StringIO(), io.StringIO()
    repl = Repl(session, out, err, show_progress=False)  # `err` is checked whole
    good = tmp_path / "good.cmds"
    good.write_text("# a comment\nbreak deposit\n\ncontinue\n")
    assert repl.execute(f"source {good}")
    assert session.registers["eip"] == session.address("deposit")
    bad = tmp_path / "bad.cmds"
    bad.write_text("seek 10\nseek 99999999\nseek 20\n")
    assert not repl.execute(f"source {bad}")
    assert session.icount == 10
    assert err.getvalue() == (
        f"error: {bad}:2: icount 99999999 is outside the recording (0 to {session.end_icount})\n"
    )
    assert not repl.execute(f"source {tmp_path / 'missing'}")
    loop = tmp_path / "loop.cmds"
    loop.write_text(f"seek 30\nsource {loop}\n")
    assert not repl.execute(f"source {loop}")
    assert session.icount == 30
    assert err.getvalue().endswith("already running (a file that sources itself)\n")


@pytest.fixture(scope="module")
def long_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return long_crc_trace(tmp_path_factory)


class Screen(io.StringIO):
    """The REPL's error stream; `shows(text)` is set once `text` has been written."""

    def __init__(self, awaited: str) -> None:
        super().__init__()
        self._awaited = awaited
        self.shown = threading.Event()

    def write(self, text: str) -> int:
        written = super().write(text)
        if self._awaited in text:
            self.shown.set()
        return written


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT")
def test_ctrl_c_interrupts_a_long_operation_and_shows_progress(
    long_trace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, err = io.StringIO(), Screen("replaying at icount")
    with rdebug.open(long_trace) as session:
        repl = Repl(session, out, err)
        # the seek is held at its first progress report until Ctrl-C has interrupted
        # the session: it cannot end first, whatever the machine's speed
        held = HeldOperation(session, monkeypatch)

        def press_ctrl_c() -> None:
            held.wait_reached()
            assert err.shown.wait(EVENT_TIMEOUT), "the progress bar never showed"
            os.kill(os.getpid(), signal.SIGINT)

        presser = threading.Thread(target=press_ctrl_c)
        presser.start()
        try:
            assert repl.execute("seek end") is True  # Ctrl-C is not an error
        finally:
            presser.join()
        assert "[#" in err.getvalue() or "[." in err.getvalue()
        assert "error" not in err.getvalue()
        assert out.getvalue().startswith(f"stopped at icount {session.icount} (Ctrl-C)\n")
        assert session.icount == held.icount
        assert 0 < session.icount < session.end_icount
        # the session still works, and going on from there is the straight run
        stopped_at = session.icount
        assert repl.execute(f"seek {stopped_at + 1000}"), err.getvalue()
        here = session.state_hash()
    with rdebug.open(long_trace) as fresh:
        fresh.seek(stopped_at + 1000)
        assert fresh.state_hash() == here


def rdebug_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rdebug", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )


def test_batch_file_and_stdin(bug_trace: Path, tmp_path: Path) -> None:
    script = tmp_path / "cmds"
    script.write_text("events interrupt\ngoto event 1\nrstepi\nbreak deposit\ncontinue\n")
    result = rdebug_cli("repl", str(bug_trace), "-x", str(script), "--batch")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "interrupt taken" in result.stdout and "<deposit>: push ebp" in result.stdout
    piped = rdebug_cli("repl", str(bug_trace), stdin="seek 100\nregs\n")
    assert piped.returncode == 0 and "icount 100:" in piped.stdout and "eflags" in piped.stdout


@pytest.mark.parametrize(
    ("commands", "needle"),
    [
        ("seek 10\nseek 99999999\nregs\n", "cmds:2: icount 99999999 is outside the recording"),
        ("frob\n", "cmds:1: unknown command 'frob'"),
        ("break no_such_symbol\n", "cmds:1: 'no_such_symbol': no such symbol in the guest"),
        ("loadvm nothing\n", "cmds:1: no snapshot named 'nothing'"),
    ],
)
def test_batch_failure_is_one_clear_line(
    bug_trace: Path, tmp_path: Path, commands: str, needle: str
) -> None:
    script = tmp_path / "cmds"
    script.write_text(commands)
    result = rdebug_cli("repl", str(bug_trace), "-x", str(script), "--batch")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and needle in result.stderr, result.stderr
    assert "regs" not in result.stdout and "eflags" not in result.stdout


def test_repl_on_a_missing_trace_is_one_clear_line(tmp_path: Path) -> None:
    result = rdebug_cli("repl", str(tmp_path / "nope"), "--batch")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("rdebug: error: ")

"""`rdebug repl` in a real terminal (tmux): what a person types and what the screen shows.

Each step types into the pane (send-keys) and waits until the screen (capture-pane)
shows the answer: no sleeps to guess how long a step takes.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import EVENT_TIMEOUT, ROOT, endless_trace, record_cli

TMUX = shutil.which("tmux")
pytestmark = pytest.mark.skipif(TMUX is None, reason="tmux is not installed")


class Terminal:
    def __init__(self, socket: str) -> None:
        self.socket = socket

    def tmux(self, *args: str) -> str:
        assert TMUX is not None
        result = subprocess.run(
            [TMUX, "-L", self.socket, *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "repl")

    def type(self, text: str, enter: bool = True) -> None:
        self.tmux("send-keys", "-t", "repl", "-l", text)
        if enter:
            self.tmux("send-keys", "-t", "repl", "Enter")

    def key(self, name: str) -> None:
        self.tmux("send-keys", "-t", "repl", name)

    def wait_prompt(self, after: str) -> None:
        """Until the REPL, done with the command line `after`, waits at an empty prompt
        below it.  Keys typed before that (while the command still runs) are typed
        ahead, and a Tab typed ahead is not always a completion."""
        deadline = time.monotonic() + EVENT_TIMEOUT
        while True:
            row = int(self.tmux("display-message", "-p", "-t", "repl", "#{cursor_y}"))
            lines = [line.rstrip() for line in self.screen().split("\n")]
            done = f"(rdebug) {after}" in lines[:row]
            if done and row < len(lines) and lines[row] == "(rdebug)":
                return
            if time.monotonic() > deadline:
                raise AssertionError("the prompt never came back; the screen:\n" + "\n".join(lines))
            time.sleep(0.05)

    def wait_for(self, text: str) -> str:
        """Until the screen shows `text` (EVENT_TIMEOUT only turns a hang into a failure)."""
        deadline = time.monotonic() + EVENT_TIMEOUT
        while True:
            screen = self.screen()
            if text in screen:
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never showed; the screen:\n{screen}")
            time.sleep(0.05)


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    term = Terminal(f"rdebug-test-{os.getpid()}-{tmp_path.name}")
    yield term
    subprocess.run(
        [TMUX or "tmux", "-L", term.socket, "kill-server"], capture_output=True, check=False
    )


def start(term: Terminal, *args: str) -> None:
    command = shlex.join([sys.executable, "-m", "rdebug", "repl", *args])
    term.tmux(
        "new-session", "-d", "-s", "repl", "-x", "150", "-y", "45", "-c", str(ROOT),
        f"{command}; echo REPL-EXITED-$?; sleep 600",
    )  # fmt: skip


@pytest.fixture(scope="module")
def bug_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tmux") / "bug"
    return record_cli("bug", folder, "-m", "8", "--serial", "null")


def test_a_session_in_a_real_terminal(terminal: Terminal, bug_trace: Path, tmp_path: Path) -> None:
    trace = tmp_path / "bug"
    shutil.copytree(bug_trace, trace)
    history = tmp_path / "history"
    start(terminal, str(trace), "--history", str(history))
    terminal.wait_for("(rdebug)")
    terminal.wait_for(" icount 0 of 42239 | eip 0x10000c <_start>")  # the toolbar
    terminal.type("events interrupt")
    terminal.wait_for("interrupt taken")
    terminal.type("goto event 1")
    terminal.wait_for("#1 icount")
    terminal.type("rstepi")
    terminal.type("stepi 2")
    terminal.wait_for("<isr_stub_32+0x2>")
    terminal.wait_prompt(after="stepi 2")
    terminal.type("watch acc", enter=False)
    terminal.key("Tab")
    terminal.wait_for("watch acct")
    terminal.type("+16")
    terminal.wait_for("watchpoint 1: write 4 bytes at")
    terminal.type("rcontinue")
    terminal.wait_for("watchpoint 1: write at")
    terminal.type("savevm before_write")
    terminal.wait_for("saved before_write at icount")
    terminal.type("seek 3")
    terminal.wait_prompt(after="seek 3")
    terminal.type("loadvm bef", enter=False)
    terminal.key("Tab")
    terminal.wait_for("loadvm before_write")
    terminal.key("Enter")
    terminal.wait_for("loaded before_write")
    terminal.wait_for("snapshot before_write@")  # the toolbar names the nearest snapshot
    terminal.type("quit")
    terminal.wait_for("REPL-EXITED-0")
    assert "+goto event 1" in history.read_text()

    # reopen: the snapshot is in the trace, the history recalls the last command
    # a second session keeps the tmux server alive: killing its only session makes the
    # server exit in the background, and a new-session racing that exit fails
    terminal.tmux("new-session", "-d", "-s", "keepalive")
    terminal.tmux("kill-session", "-t", "repl")
    start(terminal, str(trace), "--history", str(history))
    terminal.wait_for("(rdebug)")
    terminal.type("snapshots")
    terminal.wait_for("before_write")
    for _ in range(3):  # back over "snapshots" and "quit"
        terminal.key("Up")
    terminal.wait_for("(rdebug) loadvm before_write")
    terminal.key("Enter")
    terminal.wait_for("loaded before_write")
    terminal.key("C-d")
    terminal.wait_for("REPL-EXITED-0")


def test_progress_and_ctrl_c_in_a_real_terminal(terminal: Terminal, tmp_path: Path) -> None:
    # a guest that never ends: the seek is still running whenever Ctrl-C comes
    start(terminal, str(endless_trace(tmp_path / "endless")), "--history", os.devnull)
    terminal.wait_for("(rdebug)")
    terminal.type("seek end")
    terminal.wait_for("replaying at icount")  # the progress bar
    terminal.key("C-c")
    screen = terminal.wait_for("stopped at icount")  # Ctrl-C: not an error
    assert "(Ctrl-C)" in screen and "error:" not in screen
    stopped_at = int(screen.split("stopped at icount ")[1].split()[0])
    terminal.type("info replay")
    screen = terminal.wait_for("% of the recording")
    assert f"icount {stopped_at} of {4096 * 0xFFFF_FFFF} (" in screen
    assert stopped_at > 0
    terminal.type("quit")
    terminal.wait_for("REPL-EXITED-0")

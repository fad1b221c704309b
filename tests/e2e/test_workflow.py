"""The rr-style workflow from a fresh shell: `rdebug record GUEST` into the trace store,
`rdebug gdb` with gdb already attached, `rdebug ls`; Ctrl-C on the gdb server in a real
terminal (tmux); `run --gdb` ending with the guest; the guest's output while gdb drives a
replay; and the command line's messages for the mistakes a new user makes.

Every test has its own trace store ($XDG_DATA_HOME in a temporary folder).
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import rdebug as rdebug_api
from tests.conftest import GUESTS, ROOT
from tests.e2e.gdb.conftest import GDB, attached_gdb
from tests.e2e.test_repl_tmux import TMUX, Terminal

BUG = GUESTS / "bug.elf"
needs_gdb = pytest.mark.skipif(GDB is None, reason="gdb is not installed")
needs_tmux = pytest.mark.skipif(TMUX is None, reason="tmux is not installed")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A shell's environment with its own, empty trace store."""
    return dict(os.environ, XDG_DATA_HOME=str(tmp_path / "data"), HOME=str(tmp_path))


def rdebug(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rdebug", *args],
        cwd=ROOT, env=env, text=True, capture_output=True, timeout=300, check=False,
    )  # fmt: skip


def store(env: dict[str, str]) -> Path:
    return Path(env["XDG_DATA_HOME"]) / "rdebug"


@needs_gdb
def test_record_then_gdb_with_no_trace_and_no_port(env: dict[str, str]) -> None:
    recorded = rdebug(env, "record", str(BUG))
    assert recorded.returncode == 1, recorded.stderr  # the guest's own "success"
    assert f"in {store(env) / 'bug-1'}" in recorded.stderr
    assert (store(env) / "latest-trace").resolve() == (store(env) / "bug-1").resolve()

    gdb = rdebug(
        env, "gdb", "--serial", "null", "--",
        "-batch", "-ex", "break guest_main", "-ex", "continue", "-ex", "reverse-stepi",
        "-ex", "print $pc == guest_main", "-ex", "monitor info replay",
    )  # fmt: skip
    assert gdb.returncode == 0, gdb.stdout + gdb.stderr
    assert "Breakpoint 1, guest_main" in gdb.stdout
    assert "$1 = 0" in gdb.stdout  # reverse-stepi left guest_main's first instruction
    end = re.search(r"recorded (\d+) instructions", recorded.stderr)
    assert end and re.search(rf"icount \d+ of {end[1]} ", gdb.stdout + gdb.stderr), gdb
    assert "Traceback" not in gdb.stderr

    # a second recording: latest-trace moves, ls lists both and marks the latest
    assert rdebug(env, "record", str(BUG), "--serial", "null").returncode == 1
    listing = rdebug(env, "ls")
    assert listing.returncode == 0, listing.stderr
    rows = [line for line in listing.stdout.splitlines() if "bug.elf" in line]
    assert len(rows) == 2 and rows[0].split()[0] == "bug-1", listing.stdout
    assert rows[1].split()[:2] == ["*", "bug-2"], listing.stdout
    assert rows[0].split()[2:4] == [end[1], "6"] and rows[0].endswith("clean")


def test_gdb_passes_its_exit_status_and_names_a_missing_gdb(env: dict[str, str]) -> None:
    assert rdebug(env, "record", str(BUG), "--serial", "null").returncode == 1
    if GDB is not None:  # --at before TRACE, and --at event N
        at = rdebug(
            env, "gdb", "--at", "event", "3", "bug-1", "--serial", "null", "--",
            "-batch", "-ex", "monitor info replay",
        )  # fmt: skip
        with rdebug_api.open(store(env) / "bug-1") as session:
            icount = session.event(3).icount  # the REPL's `events` numbering
        assert at.returncode == 0 and f"icount {icount} of" in at.stdout + at.stderr, at
    missing = rdebug(env, "gdb", "--gdb-command", "no-such-gdb-here")
    assert missing.returncode == 2
    assert missing.stderr.startswith("rdebug: error: no-such-gdb-here: no such program")
    if GDB is not None:
        quit_3 = rdebug(env, "gdb", "--serial", "null", "--", "-batch", "-ex", "quit 3")
        assert quit_3.returncode == 3, quit_3.stderr


def test_no_recording_yet_is_one_clear_message(env: dict[str, str]) -> None:
    for command in ("replay", "repl", "gdb", "dump", "snapshots"):
        result = rdebug(env, command)
        assert result.returncode == 2, (command, result.stderr)
        assert "no recording yet" in result.stderr and "Traceback" not in result.stderr


def start_server(term: Terminal, env: dict[str, str], *args: str) -> str:
    """`rdebug ARGS` in the tmux pane; the address its banner gives."""
    names = ("XDG_DATA_HOME", "PYTHONPATH")
    exports = " ".join(f"{k}={shlex.quote(env[k])}" for k in names if k in env)
    command = shlex.join([sys.executable, "-m", "rdebug", *args])
    term.tmux(
        "new-session", "-d", "-s", "repl", "-x", "200", "-y", "50", "-c", str(ROOT),
        f"env {exports} {command}; echo SERVER-EXITED-$?; sleep 600",
    )  # fmt: skip
    screen = term.wait_for("target remote ")
    found = re.search(r"target remote ([\d.]+:\d+)", screen)
    assert found, screen
    return found[1]


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    term = Terminal(f"rdebug-wf-{os.getpid()}-{tmp_path.name}")
    yield term
    command = [TMUX or "tmux", "-L", term.socket, "kill-server"]
    subprocess.run(command, capture_output=True, check=False)


@needs_tmux
@pytest.mark.parametrize("gdb_attached", [False, True], ids=["idle", "gdb-attached"])
def test_ctrl_c_stops_serving_gdb(
    terminal: Terminal, env: dict[str, str], tmp_path: Path, gdb_attached: bool
) -> None:
    if gdb_attached and GDB is None:
        pytest.skip("gdb is not installed")
    trace = tmp_path / "bug-trace"
    assert rdebug(env, "record", str(BUG), "-o", str(trace), "--serial", "null").returncode == 1
    address = start_server(terminal, env, "replay", str(trace), "--gdb", "127.0.0.1:0")
    if gdb_attached:
        with attached_gdb(address, trace / "guest") as gdb:
            gdb.run("break guest_main")
            text, _ = gdb.run("continue")
            assert "Breakpoint 1" in text
            terminal.key("C-c")
            screen = terminal.wait_for("SERVER-EXITED-")
    else:
        terminal.key("C-c")
        screen = terminal.wait_for("SERVER-EXITED-")
    assert "rdebug: stopped serving gdb" in screen
    assert "SERVER-EXITED-130" in screen and "Traceback" not in screen, screen


@needs_gdb
def test_run_gdb_ends_with_the_guest_and_its_status(env: dict[str, str]) -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "rdebug", "run", str(BUG), "--serial", "null",
         "--gdb", "127.0.0.1:0"],
        cwd=ROOT, env=env, text=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    ) as server:  # fmt: skip
        try:
            assert server.stderr is not None
            banner = server.stderr.readline() + server.stderr.readline()
            found = re.search(r"target remote ([\d.]+:\d+)", banner)
            assert found, banner
            with attached_gdb(found[1], BUG) as gdb:
                text, _ = gdb.run("continue")
                assert "exited with code 01" in text
            assert server.wait(timeout=60) == 1  # the guest's status, as `run` gives it
            assert "Traceback" not in server.stderr.read()
        finally:
            server.kill()


@needs_gdb
def test_replay_gdb_writes_the_serial_output_once(env: dict[str, str], tmp_path: Path) -> None:
    trace = tmp_path / "bug-trace"
    recorded = rdebug(env, "record", str(BUG), "-o", str(trace))
    output = tmp_path / "com1.txt"
    with subprocess.Popen(
        [sys.executable, "-m", "rdebug", "replay", str(trace), "--gdb", "127.0.0.1:0",
         "--serial", f"file:{output}"],
        cwd=ROOT, env=env, text=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    ) as server:  # fmt: skip
        try:
            assert server.stderr is not None
            banner = server.stderr.readline() + server.stderr.readline()
            found = re.search(r"target remote ([\d.]+:\d+)", banner)
            assert found, banner
            with attached_gdb(found[1], trace / "guest") as gdb:
                assert output.exists() and output.read_text() == ""
                gdb.run("continue")  # to the end: the guest printed its line
                gdb.run("reverse-stepi 200")
                gdb.run("continue")  # over the same output again
                gdb.run("monitor info replay")  # a round trip: the server flushed
            assert output.read_text() == recorded.stdout  # once, as the recording printed it
        finally:
            server.kill()


def test_event_counts_agree(env: dict[str, str], tmp_path: Path) -> None:
    trace = tmp_path / "timer-trace"
    recorded = rdebug(env, "record", str(GUESTS / "timer.elf"), "-o", str(trace), "-m", "8")
    said = re.search(r"recorded \d+ instructions, (\d+) events", recorded.stderr)
    assert said, recorded.stderr
    summary = rdebug(env, "dump", str(trace), "--summary").stdout
    counted = re.search(r"^recorded events\s+(\d+)$", summary, re.MULTILINE)
    assert counted and counted[1] == said[1], summary
    repl = subprocess.run(
        [sys.executable, "-m", "rdebug", "repl", str(trace), "--batch"],
        cwd=ROOT, env=env, text=True, input="events\n", capture_output=True, timeout=300,
        check=False,
    )  # fmt: skip
    rows = [line for line in repl.stdout.splitlines() if re.match(r"\s+\d+\s+\d+\s+\w", line)]
    assert len(rows) == int(said[1]) > 0, repl.stdout


def test_command_line_mistakes_get_a_pointed_message(env: dict[str, str], tmp_path: Path) -> None:
    trace = tmp_path / "bug-trace"
    assert rdebug(env, "record", str(BUG), "-o", str(trace), "--serial", "null").returncode == 1
    version = rdebug(env, "--version")
    assert version.returncode == 0 and re.fullmatch(r"rdebug \d+\.\d+\.\d+\n", version.stdout)
    helped = rdebug(env, "help", "replay")
    assert helped.returncode == 0 and helped.stdout.startswith("usage: rdebug replay")
    cases = {
        ("replay", str(trace), "1234"): "(to serve gdb on a port: --gdb 1234)",
        ("replay", "1234"): "(a port? --gdb 1234)",
        ("repl", str(BUG)): "a guest image? record it first",
        ("replay", str(trace / "replay.log")): f"a file inside the trace folder {trace}",
        ("replay", str(trace), "--at", "5"): "--at: with --gdb",
        ("help", "nosuch"): "invalid choice: 'nosuch'",
    }
    for args, message in cases.items():
        result = rdebug(env, *args)
        assert result.returncode == 2 and message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = rdebug(env, "replay", str(trace), "--gdb", str(port))
    assert result.returncode == 2 and "port 0 picks a free one" in result.stderr, result.stderr


def test_dump_into_a_closed_pipe_is_a_normal_end(env: dict[str, str], tmp_path: Path) -> None:
    typed = tmp_path / "typed.txt"
    typed.write_text("a" * 3000 + "\nq\n")  # 3000 input events: far more than a pipe holds
    trace = tmp_path / "echo-trace"
    recorded = rdebug(
        env, "record", str(GUESTS / "echo.elf"), "-o", str(trace), "-m", "8",
        "--serial", "null", "--serial-input", str(typed),
    )  # fmt: skip
    assert "3010 events" in recorded.stderr
    result = subprocess.run(
        f"{shlex.quote(sys.executable)} -m rdebug dump {shlex.quote(str(trace))} | head -1;"
        " echo status=${PIPESTATUS[0]}",
        shell=True, executable="/bin/bash", cwd=ROOT, env=env, text=True,
        capture_output=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.stdout.splitlines()[0].split() == ["event", "byte", "icount", "what"]
    assert result.stdout.splitlines()[-1] == "status=0" and result.stderr == "", result


def test_a_cut_recording_is_said_so_by_repl_and_ls(env: dict[str, str], tmp_path: Path) -> None:
    trace = tmp_path / "bug-trace"
    assert rdebug(env, "record", str(BUG), "-o", str(trace), "--serial", "null").returncode == 1
    log = trace / "replay.log"
    log.write_bytes(log.read_bytes()[:-1])  # the END event gone, as when the recorder is killed
    repl = subprocess.run(
        [sys.executable, "-m", "rdebug", "repl", str(trace), "--batch"],
        cwd=ROOT, env=env, text=True, input="info replay\n", capture_output=True,
        timeout=300, check=False,
    )  # fmt: skip
    assert repl.returncode == 0, repl.stderr
    assert f"rdebug: warning: {trace} was cut short" in repl.stderr
    listing = rdebug(env, "ls", str(trace))
    assert listing.stdout.splitlines()[-1].endswith(" cut"), listing.stdout


def test_start_up_loads_only_what_the_command_needs(env: dict[str, str]) -> None:
    """`--help` loads no Session API; a plain `run` neither numpy, the gdb stub nor the
    recorder (issue 18: they made every start slow)."""

    def loaded(*args: str) -> set[str]:
        result = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "rdebug", *args],
            cwd=ROOT, env=env, text=True, capture_output=True, timeout=300, check=False,
        )  # fmt: skip
        return {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}

    help_modules = loaded("--help")
    assert "rdebug.cli.parser" in help_modules
    assert not {"rdebug.api", "rdebug.machine.machine", "numpy", "unicorn"} & help_modules
    run_modules = loaded("run", str(GUESTS / "hello.elf"))
    assert "rdebug.machine.machine" in run_modules
    unwanted = {"numpy", "rdebug.gdbstub.server", "rdebug.snapshots.vmstate", "rdebug.host.netdev"}
    assert not unwanted & run_modules


def test_bash_completion_and_the_man_page_come_from_the_command_line(
    env: dict[str, str], tmp_path: Path
) -> None:
    script = tmp_path / "rdebug.bash"
    script.write_text(rdebug(env, "completion", "bash").stdout)
    (tmp_path / "bug-trace").mkdir()

    def complete(line: str) -> list[str]:
        words = line.split(" ")
        probe = (
            f"source {shlex.quote(str(script))}; COMP_WORDS=({' '.join(map(shlex.quote, words))}); "
            f"COMP_CWORD={len(words) - 1}; COMP_LINE={shlex.quote(line)}; "
            f"COMP_POINT={len(line)}; _shtab_rdebug; printf '%s\\n' \"${{COMPREPLY[@]}}\""
        )
        result = subprocess.run(
            ["bash", "-c", probe], cwd=tmp_path, text=True, capture_output=True, check=False
        )
        assert result.returncode == 0, result.stderr
        return sorted(result.stdout.split())

    assert complete("rdebug re") == ["record", "repl", "replay"]
    assert "--checkpoint-budget" in complete("rdebug gdb --")
    assert complete("rdebug replay bug-") == ["bug-trace"]

    page = tmp_path / "rdebug.1"
    page.write_text(rdebug(env, "man").stdout)
    shown = subprocess.run(
        ["man", "-l", str(page)], env=dict(env, MANPAGER="cat", MANWIDTH="100"),
        text=True, capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert shown.returncode == 0 and "warning" not in shown.stderr, shown.stderr
    assert "rdebug gdb" in shown.stdout and "--at ICOUNT|event N" in shown.stdout
    assert "latest-trace" in shown.stdout


@needs_tmux
@needs_gdb
def test_ctrl_c_in_rdebug_gdb_stops_the_guest_not_rdebug(
    terminal: Terminal, env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """In `rdebug gdb`, Ctrl-C is gdb's: it stops the replay where it is (the stub gets
    gdb's interrupt), rdebug stays, and quitting gdb ends rdebug with gdb's status."""
    from tests.unit.test_repl import long_crc_trace  # noqa: PLC0415 - a long recording

    trace = long_crc_trace(tmp_path_factory)
    names = ("XDG_DATA_HOME", "PYTHONPATH")
    exports = " ".join(f"{k}={shlex.quote(env[k])}" for k in names if k in env)
    command = shlex.join([sys.executable, "-m", "rdebug", "gdb", str(trace), "--serial", "null"])
    terminal.tmux(
        "new-session", "-d", "-s", "repl", "-x", "200", "-y", "50", "-c", str(ROOT),
        f"env {exports} {command} -- -q -nx -ex 'set confirm off'; echo GDB-EXITED-$?; sleep 600",
    )  # fmt: skip
    terminal.wait_for("(gdb)")
    terminal.type("continue")
    terminal.wait_for("Continuing.")
    terminal.key("C-c")
    screen = terminal.wait_for("SIGINT")
    assert "Traceback" not in screen
    terminal.type("monitor info replay")
    screen = terminal.wait_for("% of the recording")
    assert "100.0% of the recording" not in screen  # stopped on the way
    terminal.type("quit")
    screen = terminal.wait_for("GDB-EXITED-")
    assert "GDB-EXITED-0" in screen and "Traceback" not in screen, screen

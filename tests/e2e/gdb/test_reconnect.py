"""gdb can detach and attach again; a second gdb meanwhile is told the target is taken."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from tests.conftest import EVENT_TIMEOUT
from tests.e2e.gdb.conftest import GDB, Gdb


def _batch(address: str, trace: Path, *commands: str) -> str:
    assert GDB is not None
    args = [
        GDB,
        "-batch",
        "-nx",
        "-ex",
        "set architecture i386",
        "-ex",
        f"file {trace}/guest",
        "-ex",
        f"target remote {address}",
    ]
    for command in commands:
        args += ["-ex", command]
    result = subprocess.run(
        args, capture_output=True, text=True, timeout=EVENT_TIMEOUT, check=False
    )
    return result.stdout + result.stderr


def test_second_client_is_refused_and_reconnect_works(gdb: Gdb, timer_trace: Path) -> None:
    address = gdb.address
    gdb.run("monitor replay_seek 1234")
    other = _batch(address, timer_trace, "info registers eip")
    assert "another gdb is already attached" in other
    gdb.run("detach")
    # the server closes the connection just after its reply to the detach: a gdb that
    # comes in that moment (longer than the hand-over grace on a stalled machine) is
    # refused, and comes again
    deadline = time.monotonic() + EVENT_TIMEOUT
    while "another gdb is already attached" in (
        again := _batch(address, timer_trace, "monitor info replay")
    ):
        assert time.monotonic() < deadline, again
    assert "icount 1234 of" in again  # the same replay, where the first gdb left it

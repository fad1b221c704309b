"""gdb can detach and attach again; a second gdb meanwhile is told the target is taken."""

from __future__ import annotations

import subprocess
from pathlib import Path

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
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    return result.stdout + result.stderr


def test_second_client_is_refused_and_reconnect_works(gdb: Gdb, timer_trace: Path) -> None:
    address = gdb.address
    gdb.run("monitor replay_seek 1234")
    other = _batch(address, timer_trace, "info registers eip")
    assert "another gdb is already attached" in other
    gdb.run("detach")
    again = _batch(address, timer_trace, "monitor info replay")
    assert "icount 1234 of" in again  # the same replay, where the first gdb left it

"""A real gdb (through pygdbmi) attached to `rdebug replay TRACE --gdb`.

Every test gets a fresh server over a `timer` recording made once per session, and a
`Gdb` helper that runs console commands and waits for gdb's answer (no sleeps: each
command waits for its `^done`/`^error` and, for execution commands, the `*stopped`).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pygdbmi.gdbcontroller import GdbController

from rdebug.gdb import console_text, exchange
from tests.conftest import EVENT_TIMEOUT, ROOT, record_cli

GDB = shutil.which("gdb")
pytestmark = pytest.mark.skipif(GDB is None, reason="gdb is not installed")


@pytest.fixture(scope="session")
def timer_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("gdb") / "timer"
    return record_cli("timer", folder, "-m", "8", "--serial", "null")


class Gdb:
    def __init__(self, controller: Any, address: str) -> None:
        self._gdb = controller
        self.address = address

    def run(self, command: str, timeout: float = EVENT_TIMEOUT) -> tuple[str, list[dict[str, Any]]]:
        """A console command; returns (console text, records).  Waits for its result
        record and, for a command that resumed the target, for the `*stopped`."""
        escaped = command.replace("\\", "\\\\").replace('"', '\\"')
        records = exchange(self._gdb, f'-interpreter-exec console "{escaped}"', timeout)
        text = console_text(records)
        return text, records

    def values(self, *expressions: str) -> list[int]:
        fmt = " ".join(["%u"] * len(expressions))
        text, _ = self.run(f'printf "{fmt}\\n", {", ".join(expressions)}')
        return [int(v) for v in text.strip().splitlines()[-1].split()]

    def value(self, expression: str) -> int:
        return self.values(expression)[0]

    def pc(self) -> int:
        return self.value("$pc")


@contextlib.contextmanager
def rdebug_gdb_server(*args: str) -> Iterator[str]:
    """`rdebug ARGS --gdb 127.0.0.1:0` running; yields the address it printed."""
    with subprocess.Popen(
        [sys.executable, "-m", "rdebug", *args, "--gdb", "127.0.0.1:0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        text=True,
    ) as server:
        try:
            assert server.stderr is not None
            banner = server.stderr.readline() + server.stderr.readline()
            match = re.search(r"target remote ([\d.]+):(\d+)", banner)
            assert match, banner
            yield f"{match[1]}:{match[2]}"
        finally:
            server.kill()


@contextlib.contextmanager
def attached_gdb(address: str, program: Path, *settings: str) -> Iterator[Gdb]:
    """A real gdb (pygdbmi) with `program`'s symbols, attached to `address`."""
    assert GDB is not None
    controller = GdbController(
        command=[GDB, "--nx", "--quiet", "--interpreter=mi3"],
        time_to_check_for_additional_output_sec=0.01,
    )
    try:
        helper = Gdb(controller, address)
        for setting in ("set architecture i386", "set confirm off", *settings):
            helper.run(setting)
        helper.run(f"file {program}")
        _, records = helper.run(f"target remote {address}")
        assert not any(r.get("message") == "error" for r in records), records
        yield helper
    finally:
        controller.exit()


@pytest.fixture
def gdb(timer_trace: Path) -> Iterator[Gdb]:
    with (
        rdebug_gdb_server("replay", str(timer_trace)) as address,
        attached_gdb(address, timer_trace / "guest") as helper,
    ):
        yield helper

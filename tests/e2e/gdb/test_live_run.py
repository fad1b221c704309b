"""rdebug run GUEST --gdb: forward-only live debugging with a real gdb."""

from __future__ import annotations

import re
import subprocess
import sys

from pygdbmi.gdbcontroller import GdbController

from tests.conftest import GUESTS, ROOT
from tests.e2e.gdb.conftest import GDB, Gdb


def test_live_run_breaks_steps_and_has_no_history() -> None:
    assert GDB is not None
    with subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rdebug",
            "run",
            str(GUESTS / "timer.elf"),
            "--gdb",
            "127.0.0.1:0",
            "--serial",
            "null",
            "-m",
            "8",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        text=True,
    ) as server:
        controller = None
        try:
            assert server.stderr is not None
            banner = server.stderr.readline() + server.stderr.readline()
            match = re.search(r"target remote ([\d.]+):(\d+)", banner)
            assert match, banner
            controller = GdbController(
                command=[GDB, "--nx", "--quiet", "--interpreter=mi3"],
                time_to_check_for_additional_output_sec=0.01,
            )
            gdb = Gdb(controller, f"{match[1]}:{match[2]}")
            gdb.run(f"file {GUESTS / 'timer.elf'}")
            gdb.run(f"target remote {match[1]}:{match[2]}")
            gdb.run("break timer_irq")
            text, _ = gdb.run("continue")
            assert "Breakpoint 1" in text and gdb.pc() == gdb.value("timer_irq")
            before = gdb.pc()
            gdb.run("stepi")
            assert gdb.pc() != before
            _, records = gdb.run("reverse-stepi")
            errors = [str(r.get("payload")) for r in records if r.get("message") == "error"]
            assert errors and "does not support" in errors[0], records
            gdb.run("delete")
            text, _ = gdb.run("continue")
            assert "exited with code 01" in text  # the guest's exit port status
        finally:
            if controller is not None:
                controller.exit()
            server.kill()

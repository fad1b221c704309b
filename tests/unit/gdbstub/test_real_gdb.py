"""A real gdb (batch mode) attached to a FakeTarget server.

These tests also record what gdb 13 does with the replies rsp.md left open:

- ``T05replaylog:begin;`` and ``T00replaylog:begin;`` print the same thing: "No more
  reverse-execution history." (and ``replaylog:end`` too).
- An ``E0e`` reply to ``bs`` (QEMU's way) prints "warning: Remote failure reply: E0e" and
  "Program stopped." -- worse than ``replaylog:begin``.
- In MI, the stop at a history boundary is ``*stopped`` with NO ``reason`` field, after the
  console line ``~"\\nNo more reverse-execution history.\\n"`` (not ``reason="no-history"``).
- A reverse watchpoint stop must land BEFORE the writing instruction (memory holding the old
  value): gdb then prints Old/New values swapped.  Landing after it (value unchanged),
  gdb silently sends ``bc`` again and the watchpoint is missed.
- gdb removes (``z``) and re-inserts (``Z``) breakpoints around every resume, and picks the
  i386 architecture from target.xml without ``set architecture``.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable

import pytest

from rdebug.gdbstub import (
    GdbServer,
    GdbSignal,
    LogBoundary,
    ReplayLogEnd,
    StopReason,
    TargetError,
    Watch,
    WatchKind,
)
from tests.unit.gdbstub.fakes import FakeTarget

GDB = shutil.which("gdb")
pytestmark = [
    pytest.mark.skipif(GDB is None, reason="gdb is not installed"),
    pytest.mark.timeout(120),
]
HISTORY_END = "No more reverse-execution history."


def run_gdb(target: FakeTarget, *commands: str, arch: bool = True) -> str:
    """Attach gdb in batch mode, run `commands`; return stdout + stderr."""
    assert GDB is not None
    with GdbServer(target) as server:
        server.start()
        args = [GDB, "-batch", "-nx"]
        if arch:
            args += ["-ex", "set architecture i386"]
        args += ["-ex", f"target remote 127.0.0.1:{server.address[1]}"]
        for command in commands:
            args += ["-ex", command]
        result = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result
    return result.stdout + result.stderr


def run_gdb_mi(target: FakeTarget, *commands: str) -> str:
    """Drive gdb's MI through stdin; return stdout."""
    assert GDB is not None
    with GdbServer(target) as server:
        server.start()
        script = [f"-target-select remote 127.0.0.1:{server.address[1]}", *commands, "-gdb-exit"]
        result = subprocess.run(
            [GDB, "-nx", "-q", "--interpreter=mi3"],
            input="\n".join(script) + "\n",
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    return result.stdout


def test_registers_memory_stepi_and_reverse_stepi() -> None:
    target = FakeTarget()
    out = run_gdb(
        target,
        "info registers eip",
        "x/4xb 0x1000",
        "stepi",
        "info registers eip",
        "reverse-stepi",
        "info registers eip",
        "reverse-stepi",
    )
    lines = out.splitlines()
    assert lines.count("eip            0x1000              0x1000") == 2
    assert "0x1000:\t0x00\t0x01\t0x02\t0x03" in lines
    assert "eip            0x1001              0x1001" in lines
    assert HISTORY_END in lines
    assert "[Inferior 1 (Remote target) detached]" in lines  # qAttached=1: quit detaches
    assert target.detached


def test_target_xml_selects_i386_and_its_registers() -> None:
    out = run_gdb(
        FakeTarget(), "show architecture", "p $eflags", "p $st0", "p $xmm0.v4_int32", arch=False
    )
    assert 'The target architecture is set to "auto" (currently "i386").' in out
    assert "= [ ]" in out  # eflags as i386_eflags flags
    assert "= {0, 0, 0, 0}" in out


@pytest.mark.parametrize("signal", [GdbSignal.TRAP, GdbSignal.NONE])
def test_replaylog_begin_prints_no_more_history_whatever_the_signal(signal: int) -> None:
    target = FakeTarget()
    target.script.append(ReplayLogEnd(LogBoundary.BEGIN, signal))
    out = run_gdb(target, "reverse-stepi", "info registers eip")
    assert HISTORY_END in out
    assert "signal" not in out.lower()


def test_an_error_reply_to_bs_is_a_warning_and_a_vague_stop() -> None:
    def fail(interrupted: Callable[[], bool]) -> StopReason:
        raise TargetError(14)

    target = FakeTarget()
    target.script.append(fail)
    out = run_gdb(target, "reverse-stepi")
    assert "Remote failure reply: E0e" in out
    assert "Program stopped." in out
    assert HISTORY_END not in out


def test_reverse_continue_to_a_breakpoint_and_monitor() -> None:
    target = FakeTarget()
    target.eip = 0x1020
    out = run_gdb(target, "break *0x1010", "reverse-continue", "monitor echo hello gdb")
    assert "Breakpoint 1, 0x00001010 in ?? ()" in out
    assert "hello gdb" in out
    assert target.monitor_commands == ["echo hello gdb"]


def _watch_scenario(land_before_the_write: bool) -> tuple[FakeTarget, str]:
    target = FakeTarget()
    target.memory[0x800] = 0x22  # *0x1800 now: written by the instruction at 0x1010
    target.eip = 0x1020

    def back_to_the_write(interrupted: Callable[[], bool]) -> StopReason:
        if land_before_the_write:
            target.memory[0x800] = 0x11  # the state before the write: the old value
            target.eip = 0x1010
        else:
            target.eip = 0x1012  # just after the write: value unchanged
        return Watch(WatchKind.WRITE, 0x1800)

    def back_to_the_start(interrupted: Callable[[], bool]) -> StopReason:
        target.memory[0x800] = 0x00
        target.eip = 0x1000
        return ReplayLogEnd(LogBoundary.BEGIN)

    target.script.extend([back_to_the_write, back_to_the_start])
    out = run_gdb(target, "watch *(unsigned char*)0x1800", "reverse-continue", "p $eip")
    return target, out


def test_reverse_watchpoint_must_land_before_the_writing_instruction() -> None:
    target, out = _watch_scenario(land_before_the_write=True)
    assert "Hardware watchpoint 1: *(unsigned char*)0x1800\n\nOld value = 34" in out
    assert "New value = 17" in out
    assert "(void (*)()) 0x1010" in out
    assert len(target.resumes) == 1


def test_reverse_watchpoint_landing_after_the_write_is_missed() -> None:
    target, out = _watch_scenario(land_before_the_write=False)
    assert "Old value" not in out
    assert HISTORY_END in out
    assert len(target.resumes) == 2  # gdb saw no change and went on backward


def test_mi_history_boundary_has_no_reason() -> None:
    out = run_gdb_mi(FakeTarget(), "-exec-step-instruction --reverse", "-exec-step-instruction")
    stops = [line for line in out.splitlines() if line.startswith("*stopped")]
    assert len(stops) == 3  # connect, reverse step at the boundary, forward step
    assert "reason=" not in stops[1]
    assert '~"\\nNo more reverse-execution history.\\n"' in out
    assert stops[2].startswith('*stopped,reason="end-stepping-range"')

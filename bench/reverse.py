"""Reverse execution as gdb sees it, and reverse-continue against forward replay.

1. Records `crc` (256 MiB machine) for >= 1.1e9 instructions, serves it with
   `rdebug replay --gdb`, attaches a real gdb (pygdbmi), goes 1e9 instructions in
   (`monitor replay_seek`), and times 100 `reverse-stepi` in a row, each a full round
   trip as gdb sees it (its own register reads included): median and max.
2. With the Python API on the same recording: the forward replay time of a 1e8
   instruction span, and a reverse-continue over that span (a breakpoint at its start),
   and their ratio.

    python bench/reverse.py
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pygdbmi.gdbcontroller import GdbController

import rdebug

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: make `bench` importable
from bench.seek import record  # noqa: E402


def gdb_command(gdb: GdbController, command: str) -> list[dict[str, object]]:
    gdb.write(f'-interpreter-exec console "{command}"', read_response=False)
    records: list[dict[str, object]] = []
    while True:
        records += gdb.get_gdb_response(timeout_sec=60, raise_error_on_timeout=False)
        done = any(r.get("type") == "result" for r in records)
        running = any(r.get("message") == "running" for r in records)
        stopped = any(r.get("message") == "stopped" for r in records)
        if done and (stopped or not running):
            return records


def bench_reverse_stepi(trace: Path, at: int, count: int) -> None:
    gdb_path = shutil.which("gdb")
    if gdb_path is None:
        print("reverse-stepi through gdb: skipped (gdb is not installed)")
        return
    with subprocess.Popen(
        [sys.executable, "-m", "rdebug", "replay", str(trace), "--gdb", "127.0.0.1:0"],
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
            gdb = GdbController(
                command=[gdb_path, "--nx", "--quiet", "--interpreter=mi3"],
                time_to_check_for_additional_output_sec=0.001,
            )
            gdb_command(gdb, "set architecture i386")
            gdb_command(gdb, f"target remote {match[1]}:{match[2]}")
            t0 = time.perf_counter()
            gdb_command(gdb, f"monitor replay_seek {at}")
            gdb_command(gdb, "flushregs")
            print(f"gdb: monitor replay_seek {at:,}: {time.perf_counter() - t0:.2f} s")
            times = []
            for _ in range(count):
                t0 = time.perf_counter()
                gdb_command(gdb, "reverse-stepi")
                times.append(time.perf_counter() - t0)
            print(
                f"gdb: {count} reverse-stepi in a row at {at:,}: median "
                f"{statistics.median(times) * 1e3:.1f} ms, max {max(times) * 1e3:.1f} ms"
            )
            gdb.exit()
        finally:
            server.kill()


def bench_reverse_continue(trace: Path, start: int, span: int) -> None:
    with rdebug.open(trace) as session:
        session.seek(start)
        t0 = time.perf_counter()
        session.seek(start + span)
        forward = time.perf_counter() - t0
        # a breakpoint never executed, and replay_break at the start of the span: the
        # reverse-continue scans the whole span for hits and stops at its start
        session.add_breakpoint(0xFFFFFFF0)
        session.replay_break = start
        t0 = time.perf_counter()
        stop = session.reverse_cont()
        backward = time.perf_counter() - t0
        assert stop.icount == start, stop
        print(
            f"forward replay of {span:,} instructions: {forward:.2f} s; reverse-continue "
            f"back over them: {backward:.2f} s ({backward / forward:.2f}x)"
        )


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "crc"
        t0 = time.perf_counter()
        icount = record(trace, passes=8_000)
        print(f"recorded {icount:,} instructions in {time.perf_counter() - t0:.1f} s")
        bench_reverse_stepi(trace, at=1_000_000_000, count=100)
        bench_reverse_continue(trace, start=900_000_000, span=100_000_000)
    return 0


if __name__ == "__main__":
    sys.exit(main())

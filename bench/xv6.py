"""xv6's full `usertests` under QEMU `-icount` and under `rdebug record` and `replay`.

A real teaching kernel's test suite (about 7e9 instructions: forks, pipes, the IDE disk
with IRQ14, the LAPIC timer preempting ring 3, system calls), timed side by side, whole
processes as a user runs them, each from its start to "ALL TESTS PASSED" on COM1:

- QEMU: `qemu-system-i386 -nographic -drive file=fs.img,index=1,media=disk,format=raw
  -drive file=xv6.img,index=0,media=disk,format=raw -smp 1 -m 512 -icount shift=S`
  (and `-snapshot`, so that fs.img is never written), booted from xv6.img by its BIOS;
  `usertests` is typed on its serial console once the shell's prompt is out, a byte at
  a time, and the typing time is not counted;
- `rdebug record -o TRACE -m 512 --icount-shift S --drive file=fs.img,format=raw,index=1
  --serial-input FILE kernel`: xv6's multiboot `kernel` ELF loaded directly, the line
  `usertests` fed to COM1 from FILE (paced in virtual time); the recording is stopped
  with SIGTERM once the line is out (it is finished and replays to the icount printed);
- `rdebug replay TRACE`: its output must be the recording's, byte for byte.  Every
  second round replays the last round's trace before it records (the order of two
  runs moves their times by as much as record and replay differ: compare rounds of
  both orders, `--rounds 2` or more).

xv6 does not power off after its tests, so each process is ended once the line is seen.
Printed for each: wall seconds and CPU seconds (user + system of the process, read from
/proc at the moment the line was seen: the machine may be shared, and CPU time says more
than wall time then), guest MIPS (from the instruction count `rdebug record` reports;
QEMU runs the same kernel on the same inputs, plus its BIOS and boot loader), and the
ratios rdebug / QEMU (above 1: rdebug is slower).

xv6 is not in this repository. Build it once (the x86 version, public):

    git clone https://github.com/mit-pdos/xv6-public /tmp/xv6
    sed -i 's/-Werror//' /tmp/xv6/Makefile       # newer compilers warn where it did not
    make -C /tmp/xv6 xv6.img fs.img CPUS=1

then

    python3 bench/xv6.py --xv6 /tmp/xv6 [--shift 7] [--rounds 1] [--timeout 600]

(with `--xv6` naming an unbuilt tree, the script runs that `make` itself).  At some
shifts xv6's own `linkunlink` test can deadlock on two inode locks (QEMU and rdebug
alike: docs/machine.md); a run that does not pass within --timeout is reported as such:
a QEMU run is then left out of the figures (the rdebug rows are still printed), an
rdebug run ends the script.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PASSED = b"ALL TESTS PASSED"
PROMPT = b"$ "
COMMAND = b"usertests\n"
MEMORY_MB = 512
TYPING_GAP_S = 0.005  # a byte at a time: the UART has a 16-byte FIFO
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Timing:
    """One process's run to the line: wall and CPU seconds, what it printed."""

    wall: float
    cpu: float
    output: bytes
    stderr: bytes = b""


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process (all its threads), from /proc."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime: fields 14, 15


def _read_until(
    proc: subprocess.Popen[bytes], seen: bytearray, marker: bytes, deadline: float
) -> bool:
    """Read the process's stdout into `seen` until it holds `marker` (True), the
    process ends or the deadline passes (False)."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    while marker not in seen:
        if time.perf_counter() > deadline:
            return False
        chunk = os.read(fd, 65536)
        if not chunk:
            return False
        seen += chunk
    return True


class TimedOut(Exception):
    """A run did not print the line within its time (xv6's linkunlink deadlock, say)."""


def _timed_out(name: str, seen: bytes | bytearray, timeout: float) -> TimedOut:
    tail = seen[-400:].decode(errors="replace")
    return TimedOut(f"{name}: no {PASSED.decode()!r} within {timeout:.0f} s; last output:\n{tail}")


def _alarm_reader(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Kill the process at the deadline, so that a blocking read returns."""

    def kill() -> None:
        if proc.poll() is None:
            proc.kill()

    timer = threading.Timer(timeout, kill)
    timer.daemon = True
    timer.start()


def qemu_usertests(tree: Path, shift: int, timeout: float) -> Timing:
    """QEMU -icount shift=S, xv6 booted from its disk, usertests typed at the prompt."""
    argv = [
        "qemu-system-i386", "-nographic", "-monitor", "none", "-net", "none",
        "-drive", f"file={tree / 'fs.img'},index=1,media=disk,format=raw",
        "-drive", f"file={tree / 'xv6.img'},index=0,media=disk,format=raw",
        "-smp", "1", "-m", str(MEMORY_MB), "-icount", f"shift={shift}", "-snapshot",
    ]  # fmt: skip
    t0 = time.perf_counter()
    deadline = t0 + timeout
    seen = bytearray()
    with subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    ) as proc:
        assert proc.stdin is not None
        _alarm_reader(proc, timeout)
        try:
            if not _read_until(proc, seen, PROMPT, deadline):
                raise _timed_out("QEMU (to the prompt)", seen, timeout)
            typing = time.perf_counter()
            for byte in COMMAND:
                proc.stdin.write(bytes([byte]))
                proc.stdin.flush()
                time.sleep(TYPING_GAP_S)
            typing = time.perf_counter() - typing
            if not _read_until(proc, seen, PASSED, deadline):
                raise _timed_out("QEMU", seen, timeout)
            wall = time.perf_counter() - t0 - typing
            cpu = cpu_seconds(proc.pid)
        finally:
            proc.kill()
    return Timing(wall, cpu, bytes(seen))


def _rdebug(argv: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "rdebug", *argv]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _rdebug_to_line(name: str, argv: list[str], timeout: float) -> tuple[Timing, int]:
    """Run an rdebug command to the line; SIGTERM then (a recording is finished); the
    timing and the process's exit status."""
    t0 = time.perf_counter()
    seen = bytearray()
    with subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=_env(),
    ) as proc:
        _alarm_reader(proc, timeout)
        if not _read_until(proc, seen, PASSED, t0 + timeout):
            proc.kill()
            raise _timed_out(name, seen, timeout)
        wall = time.perf_counter() - t0
        cpu = cpu_seconds(proc.pid)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        rest, err = proc.communicate(timeout=timeout)
    return Timing(wall, cpu, bytes(seen) + rest, err), proc.returncode


def rdebug_record(tree: Path, shift: int, trace: Path, timeout: float) -> tuple[Timing, int]:
    """`rdebug record` of the session; the timing and the instructions recorded."""
    feed = trace.parent / "usertests.txt"
    feed.write_bytes(COMMAND)
    shutil.rmtree(trace, ignore_errors=True)
    argv = _rdebug([
        "record", "-o", str(trace), "-m", str(MEMORY_MB), "--icount-shift", str(shift),
        "--drive", f"file={tree / 'fs.img'},format=raw,index=1",
        "--serial", "stdio", "--serial-input", str(feed), str(tree / "kernel"),
    ])  # fmt: skip
    timing, _ = _rdebug_to_line("rdebug record", argv, timeout)
    found = re.search(rb"recorded (\d+) instructions", timing.stderr)
    if found is None:
        raise SystemExit(f"rdebug record did not finish its trace: {timing.stderr[-400:]!r}")
    return timing, int(found.group(1))


def rdebug_replay(trace: Path, timeout: float) -> Timing:
    """`rdebug replay` of the trace, to the line."""
    timing, _ = _rdebug_to_line("rdebug replay", _rdebug(["replay", str(trace)]), timeout)
    return timing


def ensure_built(tree: Path) -> None:
    """xv6's kernel, xv6.img and fs.img in `tree`; made there if missing."""
    wanted = [tree / name for name in ("kernel", "xv6.img", "fs.img")]
    if all(path.exists() for path in wanted):
        return
    if not (tree / "Makefile").exists():
        raise SystemExit(f"{tree}: not an xv6 tree (see `python3 bench/xv6.py --help`)")
    print(f"building xv6 in {tree} (make xv6.img fs.img CPUS=1) ...", flush=True)
    made = subprocess.run(
        ["make", "-C", str(tree), "xv6.img", "fs.img", "CPUS=1"], capture_output=True, check=False
    )
    if made.returncode != 0 or not all(path.exists() for path in wanted):
        raise SystemExit(
            f"make failed in {tree} (remove -Werror from its Makefile for newer compilers):\n"
            + made.stderr.decode(errors="replace")[-1000:]
        )


def _console(output: bytes) -> bytes:
    """The guest's console from its start to the line (what must agree)."""
    return output[: output.index(PASSED) + len(PASSED)]


def _replay_round(
    round_: int, trace: Path, timings: dict[str, list[Timing]], timeout: float
) -> None:
    """Replay `trace`, the last recording, and check its console against the recording's."""
    replayed = rdebug_replay(trace, timeout)
    timings["replay"].append(replayed)
    print(f"round {round_ + 1}: replay {replayed.wall:.1f} s", flush=True)
    if _console(replayed.output) != _console(timings["record"][-1].output):
        raise SystemExit("the replay's console differs from the recording's")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--xv6", type=Path, required=True, help="a (built) xv6-public tree")
    parser.add_argument("--shift", type=int, default=7, help="icount shift of both (default 7)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=600, help="seconds per process")
    parser.add_argument("--no-qemu", action="store_true", help="rdebug only")
    args = parser.parse_args(argv)
    tree = args.xv6.resolve()
    ensure_built(tree)
    with_qemu = not args.no_qemu
    if with_qemu and shutil.which("qemu-system-i386") is None:
        print("qemu-system-i386 not found: rdebug only", file=sys.stderr)
        with_qemu = False

    timings: dict[str, list[Timing]] = {"qemu": [], "record": [], "replay": []}
    icount = 0
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "trace"
        for round_ in range(args.rounds):
            if with_qemu:
                try:
                    timings["qemu"].append(qemu_usertests(tree, args.shift, args.timeout))
                    print(f"round {round_ + 1}: QEMU {timings['qemu'][-1].wall:.1f} s", flush=True)
                except TimedOut as exc:  # rdebug's rows are still worth having
                    print(f"round {round_ + 1}: {exc}\n(this QEMU run left out)", flush=True)
            # every second round replays the last round's trace before it records: on
            # these machines the order of two runs moved their times by as much as
            # record and replay differ
            if round_ % 2:
                _replay_round(round_, trace, timings, args.timeout)
            recorded, icount = rdebug_record(tree, args.shift, trace, args.timeout)
            timings["record"].append(recorded)
            print(f"round {round_ + 1}: record {recorded.wall:.1f} s", flush=True)
            if not round_ % 2:
                _replay_round(round_, trace, timings, args.timeout)
    load_after = os.getloadavg()

    print(
        f"\nxv6 usertests to {PASSED.decode()!r}, -icount shift={args.shift}, "
        f"{icount:,} instructions (rdebug's count), {args.rounds} round(s)"
    )
    print(f"load average {load[0]:.2f} before, {load_after[0]:.2f} after (2-core machines: noisy)")
    print(f"{'':16} {'wall s':>8} {'CPU s':>8} {'MIPS wall':>10} {'MIPS CPU':>9}   (best round)")
    best: dict[str, tuple[float, float]] = {}
    for name, runs in timings.items():
        if not runs:
            continue
        wall, cpu = min(t.wall for t in runs), min(t.cpu for t in runs)
        best[name] = (wall, cpu)
        label = {"qemu": "QEMU", "record": "rdebug record", "replay": "rdebug replay"}[name]
        print(
            f"{label:16} {wall:8.1f} {cpu:8.1f} {icount / wall / 1e6:10.1f} "
            f"{icount / cpu / 1e6:9.1f}"
        )
        if len(runs) > 1:
            walls = statistics.median(t.wall for t in runs)
            cpus = statistics.median(t.cpu for t in runs)
            print(f"{'  median':16} {walls:8.1f} {cpus:8.1f}")
    if "qemu" in best:
        qwall, qcpu = best["qemu"]
        for name in ("record", "replay"):
            wall, cpu = best[name]
            print(
                f"rdebug {name} / QEMU: wall {wall / qwall:.2f}x, CPU {cpu / qcpu:.2f}x"
                "  (target <= 1.0)"
            )
    rwall, rcpu = best["record"]
    pwall, pcpu = best["replay"]
    print(f"replay / record: wall {pwall / rwall:.2f}x, CPU {pcpu / rcpu:.2f}x")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except TimedOut as exc:
        sys.exit(str(exc))

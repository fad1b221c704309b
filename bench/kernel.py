"""The minikernel's long workload under run, record and replay, against raw unicorn.

The workload is the shell command `crc N` of sample_guests/minikernel: ring 3 computes
a bitwise CRC-32 of a 4 KiB buffer N times with two system calls (int 0x80) a pass,
while the LAPIC timer interrupts it every 10 ms of virtual time; N is chosen so that the
session (boot, the command, `exit`) lasts more than 1e9 instructions.  The session is
typed on COM1 (IRQ4 through the IOAPIC) by a FileSerialSource, the same bytes for the
three modes (in another order each round, record always before replay: on a shared
machine the first machine of a round measured slower, whichever mode it ran):

- run: a Machine with live inputs;
- record: the same, its inputs going through the Recorder into a log file;
- replay: a Machine fed by the Player from that log.

For comparison, in the same process and run, raw unicorn (no hooks, bench/speed.py's
method) on the `crc` and `memcopy` sample guests' workload loops.  Printed: guest MIPS
of each mode (whole session, boot included), the ratios to raw unicorn and record/run,
and the wall time of `rdebug run` from its start to the shell's first prompt (Python
start-up included).  Shared machines are noisy: take the best of several rounds.

Against QEMU (when `qemu-system-i386` is installed; `--no-qemu` skips it), the same
session as a user would run it, whole processes, interleaved round by round:
`qemu-system-i386 -icount shift=7` with the session typed on COM1 once the shell's
first prompt is out (typing time not counted), and `rdebug record -o TRACE
--serial-input FILE` (paced in virtual time); printed: wall time and guest MIPS of
each (QEMU's instruction count taken as rdebug's, the same guest and session) and
their ratio, in wall seconds and in CPU seconds of the processes (user + system, from
the kernel's accounting of the finished child: on a shared machine the CPU time is the
steadier figure).  Each process also runs the session `crc 0` (start-up, boot, the
command's output, `exit`: the fixed cost of a process on this guest), and the ratio is
printed again over the `crc N` work alone: each one's best time on `crc N` less its best
on `crc 0`.

    python bench/kernel.py [--rounds 2] [--passes 3600] [--no-qemu]
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from unicorn import x86_const as X

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script
from bench.speed import _boot_to_begin, _raw_engine
from rdebug.host.sources import FileSerialSource, LiveInputs
from rdebug.machine.inputs import ExternalInputs
from rdebug.machine.loader import load_image
from rdebug.machine.machine import Machine, MachineConfig, StopEvent, StopReason
from rdebug.replay.player import Player
from rdebug.replay.recorder import Recorder

ROOT = Path(__file__).resolve().parent.parent
GUESTS = ROOT / "sample_guests" / "build"
KERNEL = GUESTS / "minikernel.elf"
CONFIG = MachineConfig(memory_mb=64)
PROMPT = b"$ "


class _Sink:
    """COM1 output, kept to check the session's result."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data


def _session(passes: int) -> bytes:
    return b"crc %d\nexit 0\n" % passes


def _kernel_run(inputs: ExternalInputs) -> tuple[StopEvent, bytes]:
    sink = _Sink()
    machine = Machine(CONFIG, inputs, [sink])
    try:
        machine.load(load_image(KERNEL))
        return machine.run(), bytes(sink.data)
    finally:
        machine.close()


def _timed(fn: Callable[[], tuple[StopEvent, bytes]]) -> tuple[float, StopEvent, bytes]:
    t0 = time.perf_counter()
    stop, out = fn()
    return time.perf_counter() - t0, stop, out


#: The order of the modes, round by round (replay needs record's log first): the first
#: machine of a round measured slower on a shared machine, whichever mode it ran.
MODE_ORDERS = (
    ("run", "record", "replay"),
    ("record", "replay", "run"),
    ("record", "run", "replay"),
)


def kernel_modes(
    passes: int, folder: Path, order: tuple[str, ...] = MODE_ORDERS[0]
) -> tuple[int, dict[str, float], bytes]:
    """One round of run, record, replay in `order`: icount, wall seconds of each, COM1
    output."""
    session = _session(passes)
    log = folder / "minikernel.log"
    times: dict[str, float] = {}
    results: set[tuple[str, int, bytes]] = set()

    def live() -> ExternalInputs:
        return LiveInputs({0: FileSerialSource(session)})

    def run() -> tuple[float, StopEvent, bytes]:
        return _timed(lambda: _kernel_run(live()))

    def record() -> tuple[float, StopEvent, bytes]:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            recorder = Recorder(live(), fd)

            def recorded() -> tuple[StopEvent, bytes]:
                stop, out = _kernel_run(recorder)
                recorder.finish(stop.icount)
                return stop, out

            return _timed(recorded)
        finally:
            os.close(fd)

    def replay() -> tuple[float, StopEvent, bytes]:
        with log.open("rb") as stream:
            return _timed(lambda: _kernel_run(Player(stream, str(log))))

    modes = {"run": run, "record": record, "replay": replay}
    for mode in order:
        dt, stop, out = modes[mode]()
        times[mode] = dt
        results.add((stop.reason.value, stop.icount, out))
    if len(results) != 1:
        raise SystemExit("minikernel: run, record and replay ended differently")
    reason, icount, out = results.pop()
    if reason != StopReason.EXIT.value or b"crc %d: 0x" % passes not in out:
        raise SystemExit(f"minikernel: the session did not complete ({reason}): {out[-200:]!r}")
    return icount, times, out


def raw_unicorn(name: str, passes: int) -> tuple[int, float]:
    """Instructions and seconds of raw unicorn on a sample guest's workload loop."""
    image = load_image(GUESTS / f"{name}.elf")
    begin, end = image.symbols["workload_begin"], image.symbols["workload_end"]
    machine = _boot_to_begin(image, f"{name}_passes", passes)
    try:
        uc = _raw_engine(machine)
        t0 = time.perf_counter()
        uc.emu_start(begin, end)
        seconds = time.perf_counter() - t0
        raw_eax = uc.reg_read(X.UC_X86_REG_EAX)
        start = machine.icount
        machine.add_breakpoint(end)
        machine.run()  # the exact instruction count of the stretch
        if machine.cpu.read("eax") != raw_eax:
            raise SystemExit(f"{name}: raw unicorn and rdebug disagree")
        return machine.icount - start, seconds
    finally:
        machine.close()


def boot_to_prompt() -> float:
    """Wall seconds from starting `rdebug run minikernel.elf` to the shell's first prompt."""
    t0 = time.perf_counter()
    with subprocess.Popen(
        [sys.executable, "-m", "rdebug", "run", str(KERNEL), "-m", "224", "--serial", "stdio"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    ) as proc:
        assert proc.stdout is not None
        seen = b""
        try:
            while not seen.endswith(PROMPT):
                byte = proc.stdout.read(1)
                if not byte:
                    raise SystemExit(f"rdebug run ended before the prompt: {seen[-200:]!r}")
                seen += byte
            return time.perf_counter() - t0
        finally:
            proc.kill()


QEMU_TYPING_GAP_S = 0.005


def _children_cpu() -> float:
    """CPU seconds of this process's finished (waited for) children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_of(fn: Callable[[], float]) -> tuple[float, float]:
    """`fn`'s result (wall seconds of a child process it runs and waits for) and the
    CPU seconds that child used."""
    before = _children_cpu()
    wall = fn()
    return wall, _children_cpu() - before


def qemu_session(passes: int) -> float:
    """Wall seconds of QEMU (`-icount shift=7`) on the session, typing time excluded."""
    argv = [
        "qemu-system-i386", "-kernel", str(KERNEL), "-m", str(CONFIG.memory_mb),
        "-display", "none", "-monitor", "none", "-net", "none", "-serial", "stdio",
        "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04", "-no-reboot",
        "-icount", f"shift={CONFIG.icount_shift}",
    ]  # fmt: skip
    t0 = time.perf_counter()
    with subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        seen = b""
        while not seen.endswith(PROMPT):
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                raise SystemExit(f"QEMU ended before the prompt: {seen[-200:]!r}")
            seen += chunk
        typing = time.perf_counter()
        for byte in _session(passes):  # a byte at a time: the UART has a 16-byte FIFO
            proc.stdin.write(bytes([byte]))
            proc.stdin.flush()
            time.sleep(QEMU_TYPING_GAP_S)
        typing = time.perf_counter() - typing
        rest = proc.stdout.read()
        proc.wait(timeout=600)
    elapsed = time.perf_counter() - t0 - typing
    if proc.returncode != 1 or b"crc %d: 0x" % passes not in seen + rest:
        raise SystemExit(f"QEMU: the session did not complete: {(seen + rest)[-200:]!r}")
    return elapsed


def rdebug_record_session(passes: int, folder: Path, counts: list[int] | None = None) -> float:
    """Wall seconds of `rdebug record` (a whole process) on the session; the number of
    instructions it reports is appended to `counts`."""
    feed = folder / "session.txt"
    feed.write_bytes(_session(passes))
    trace = folder / "trace"
    shutil.rmtree(trace, ignore_errors=True)
    argv = [
        sys.executable, "-m", "rdebug", "record", "-o", str(trace),
        "-m", str(CONFIG.memory_mb), "--icount-shift", str(CONFIG.icount_shift),
        "--serial", "stdio", "--serial-input", str(feed), str(KERNEL),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, check=False, cwd=ROOT, env=env)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 1 or b"crc %d: 0x" % passes not in proc.stdout:
        raise SystemExit(f"rdebug record: the session did not complete: {proc.stderr[-300:]!r}")
    if counts is not None:
        found = re.search(rb"recorded ([0-9]+) instructions", proc.stderr)
        if found is None:
            raise SystemExit(f"rdebug record: no instruction count in {proc.stderr[-300:]!r}")
        counts.append(int(found.group(1)))
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--passes", type=int, default=3600, help="N of `crc N`")
    parser.add_argument("--crc-passes", type=int, default=2000, help="raw unicorn's crc")
    parser.add_argument("--memcopy-passes", type=int, default=500, help="raw's memcopy")
    parser.add_argument("--no-qemu", action="store_true", help="skip the QEMU comparison")
    args = parser.parse_args(argv)
    with_qemu = not args.no_qemu and shutil.which("qemu-system-i386") is not None

    raw: dict[str, list[float]] = {"crc": [], "memcopy": []}
    modes: dict[str, list[float]] = {"run": [], "record": [], "replay": []}
    boots: list[float] = []
    versus: dict[str, list[float]] = {"qemu": [], "record": []}
    versus_cpu: dict[str, list[float]] = {"qemu": [], "record": []}
    #: the same for the session `crc 0`: each process's fixed cost on this guest
    fixed: dict[str, list[float]] = {"qemu": [], "record": []}
    fixed_cpu: dict[str, list[float]] = {"qemu": [], "record": []}
    fixed_icount: list[int] = []
    icount = 0
    with tempfile.TemporaryDirectory() as tmp:
        for round_index in range(args.rounds):
            for name, passes in (("crc", args.crc_passes), ("memcopy", args.memcopy_passes)):
                insns, seconds = raw_unicorn(name, passes)
                raw[name].append(insns / seconds / 1e6)
            order = MODE_ORDERS[round_index % len(MODE_ORDERS)]
            icount, times, _ = kernel_modes(args.passes, Path(tmp), order)
            for mode, seconds in times.items():
                modes[mode].append(icount / seconds / 1e6)
            boots.append(boot_to_prompt())
            if with_qemu:
                sessions: dict[str, Callable[[], float]] = {
                    "qemu": functools.partial(qemu_session, args.passes),
                    "record": functools.partial(rdebug_record_session, args.passes, Path(tmp)),
                }
                for name, session in sessions.items():
                    wall, cpu = cpu_of(session)
                    versus[name].append(wall)
                    versus_cpu[name].append(cpu)
                empty: dict[str, Callable[[], float]] = {
                    "qemu": functools.partial(qemu_session, 0),
                    "record": functools.partial(
                        rdebug_record_session, 0, Path(tmp), fixed_icount
                    ),
                }
                for name, session in empty.items():
                    wall, cpu = cpu_of(session)
                    fixed[name].append(wall)
                    fixed_cpu[name].append(cpu)

    print(f"minikernel `crc {args.passes}` session: {icount:,} instructions, {args.rounds} rounds")
    print("(a shared, noisy machine: best and median of the rounds)\n")
    print(f"{'':22} {'best':>8} {'median':>8}")
    for name, values in raw.items():
        print(f"{'raw unicorn ' + name + ' MIPS':22} {max(values):>8.1f} "
              f"{statistics.median(values):>8.1f}")  # fmt: skip
    for mode, values in modes.items():
        print(f"{'minikernel ' + mode + ' MIPS':22} {max(values):>8.1f} "
              f"{statistics.median(values):>8.1f}")  # fmt: skip
    print()
    for mode in ("record", "replay"):
        best = max(modes[mode])
        ratios = ", ".join(f"{best / max(raw[n]):.2f}x raw {n}" for n in raw)
        print(f"{mode}: {ratios}")
    best_ratio = max(modes["run"]) / max(modes["record"])
    median_ratio = statistics.median(modes["run"]) / statistics.median(modes["record"])
    print(f"record time / run time: best {best_ratio:.3f}, median {median_ratio:.3f}"
          "  (target <= 1.15)")  # fmt: skip
    print(f"boot to the prompt (rdebug run, wall): best {min(boots):.2f} s, "
          f"median {statistics.median(boots):.2f} s  (target < 2 s)")  # fmt: skip
    if versus["qemu"]:
        print("\nwhole processes, the same session (QEMU -icount shift=7; rdebug record):")
        for name, label in (("qemu", "QEMU run"), ("record", "rdebug record")):
            best, median = min(versus[name]), statistics.median(versus[name])
            cpu = min(versus_cpu[name])
            print(f"{label:14} best {best:6.2f} s ({icount / best / 1e6:6.1f} MIPS), "
                  f"median {median:6.2f} s; CPU best {cpu:6.2f} s")  # fmt: skip
        ratio = min(versus["qemu"]) / min(versus["record"])
        cpu_ratio = min(versus_cpu["qemu"]) / min(versus_cpu["record"])
        print(f"rdebug record throughput / QEMU's: {ratio:.2f} wall, {cpu_ratio:.2f} CPU"
              " (best rounds; target >= 1.0)")  # fmt: skip
        print("the session `crc 0` (each process's fixed cost: start-up, boot, exit):")
        for name, label in (("qemu", "QEMU run"), ("record", "rdebug record")):
            print(f"{label:14} best {min(fixed[name]):6.2f} s, "
                  f"CPU best {min(fixed_cpu[name]):6.2f} s")  # fmt: skip
        work = {n: min(versus[n]) - min(fixed[n]) for n in versus}
        work_cpu = {n: min(versus_cpu[n]) - min(fixed_cpu[n]) for n in versus_cpu}
        if min(work.values()) > 0 and min(work_cpu.values()) > 0:
            insns = icount - min(fixed_icount)
            print(f"the `crc {args.passes}` work alone ({insns:,} instructions): QEMU "
                  f"{insns / work['qemu'] / 1e6:.1f} MIPS, rdebug record "
                  f"{insns / work['record'] / 1e6:.1f} MIPS; rdebug / QEMU "
                  f"{work['qemu'] / work['record']:.2f} wall, "
                  f"{work_cpu['qemu'] / work_cpu['record']:.2f} CPU")  # fmt: skip
        else:
            print("the `crc N` work alone: too short against the noise to measure")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""rdebug against QEMU's own record/replay (`-icount rr=...`) and gdbstub, side by side.

Both emulators boot the same sample guests the same way: a multiboot ELF, 256 MiB of RAM,
COM1, isa-debug-exit at 0xF4, virtual time = icount << 7.  Everything runs as a user would
run it, as subprocesses, in one run of this script, interleaved round by round:

1. wall time of a plain run, a record and a replay (QEMU: `-icount shift=7`,
   `rr=record|replay,rrfile=F,rrsnapshot=init` with an empty qcow2 overlay holding the
   snapshot; rdebug: `rdebug run|record|replay`), the log and snapshot file sizes, for
   `crc` and `memcopy` (CPU-bound, pass count patched in the ELF), `timer` (interrupts,
   HLT) and `echo` (serial input: QEMU gets it on stdin once the guest's banner is out,
   rdebug through `--serial-input`);
2. through a real gdb (pygdbmi) attached to each replay: `reverse-stepi` latency at 1e7,
   1e8 and 1e9 instructions into the `crc` recording (reached with `monitor replay_break
   N` + `continue`), and a `reverse-continue` to a breakpoint at `workload_begin`, 1e8
   instructions back (QEMU's is given 300 s, 60 s with --quick: in QEMU 7.2 it may never
   stop).

It prints a table (figure, QEMU, rdebug, rdebug/QEMU) and the raw unicorn speed of the
crc workload measured in the same run (the physical limit for rdebug).  It installs
nothing: without `qemu-system-i386`/`qemu-img` the QEMU column is empty, without `gdb`
part 2 is skipped.

    python bench/vs_qemu.py [--quick] [--rounds N] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pygdbmi.gdbcontroller import GdbController

from rdebug.gdb import console_text, exchange
from rdebug.machine.loader import load_image, parse_image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: make `bench` importable
from bench.speed import Workload, measure, patched_elf  # noqa: E402

GUESTS = ROOT / "sample_guests" / "build"
MEMORY_MB = 256
SHIFT = 7
BANNER = b"echo: type, q quits"
# how long QEMU's reverse-continue may take before we give up on it (QEMU 7.2's has
# taken from 20 s to "never" here, mostly idle); --quick: 60 s
# How QEMU gets echo's input on stdin: a pause after the banner, then one byte at a time
# (in record mode, QEMU 7.2 stalls on a burst longer than the UART's 16-byte FIFO)
TYPING_DELAY_S = 0.2
TYPING_GAP_S = 0.005


# --------------------------------------------------------------------- pure helpers


@dataclass(frozen=True, slots=True)
class Figure:
    """One row of the table: the same measurement for both emulators (None = not taken)."""

    name: str
    unit: str
    qemu: float | None
    rdebug: float | None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.qemu is None or self.rdebug is None or self.qemu == 0:
            return None
        return self.rdebug / self.qemu


def format_value(value: float | None, unit: str) -> str:
    """`1.23 s`, `45.6 ms`, `1,234 B`; `-` for a figure not taken."""
    if value is None:
        return "-"
    if unit == "B":
        return f"{int(value):,} B"
    if unit == "s" and value < 1:
        return f"{value * 1e3:.1f} ms"
    return f"{value:.2f} {unit}"


def format_table(figures: Sequence[Figure]) -> str:
    """The table as printed (and pasted into docs/performance.md): Markdown."""
    rows = [("figure", "QEMU", "rdebug", "rdebug/QEMU", "note")]
    for f in figures:
        ratio = f.ratio
        rows.append(
            (
                f.name,
                format_value(f.qemu, f.unit),
                format_value(f.rdebug, f.unit),
                "-" if ratio is None else f"{ratio:.3g}",
                f.note,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            c.ljust(w) if i in (0, 4) else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("| " + " | ".join(cells) + " |")
        if n == 0:
            marks = [
                ("-" * w if i in (0, 4) else "-" * (w - 1) + ":") for i, w in enumerate(widths)
            ]
            lines.append("| " + " | ".join(marks) + " |")
    return "\n".join(lines)


_QEMU_ICOUNT = re.compile(r"instruction count = (\d+)")
_RDEBUG_ICOUNT = re.compile(r"^icount (\d+) of \d+", re.MULTILINE)


def parse_icount(monitor_text: str) -> int | None:
    """The icount in `monitor info replay`'s answer, from QEMU
    (`Replaying execution 'F': instruction count = N`) or from rdebug (`icount N of M`)."""
    match = _QEMU_ICOUNT.search(monitor_text) or _RDEBUG_ICOUNT.search(monitor_text)
    return int(match[1]) if match else None


_RECORDED = re.compile(r"recorded (\d+) instructions")


def parse_recorded(stderr_text: str) -> int | None:
    """The instruction count `rdebug record` reports on stderr."""
    match = _RECORDED.search(stderr_text)
    return int(match[1]) if match else None


# ------------------------------------------------------------------ the two emulators


@dataclass(frozen=True, slots=True)
class Guest:
    name: str  # the sample guest
    elf: Path  # the (patched) file both emulators boot
    serial_input: bytes | None = None


@dataclass(slots=True)
class Timings:
    times: dict[str, list[float]] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    icount: int | None = None

    def add(self, key: str, seconds: float) -> None:
        self.times.setdefault(key, []).append(seconds)

    def median(self, key: str) -> float | None:
        values = self.times.get(key)
        return statistics.median(values) if values else None


def qemu_argv(kernel: Path, icount: str, *extra: str) -> list[str]:
    """The QEMU command line of sample_guests/run_qemu.sh, plus `-m 256` (rdebug's
    default) and `-net none`: with the default NIC (its option ROM), a replay that loads
    the `rrsnapshot` at start never gets going in QEMU 7.2."""
    return [
        "qemu-system-i386",
        "-kernel", str(kernel),
        "-m", str(MEMORY_MB),
        "-display", "none",
        "-monitor", "none",
        "-net", "none",
        "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
        "-no-reboot",
        "-icount", icount,
        *extra,
    ]  # fmt: skip


def rdebug_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "rdebug", *args]


# rdebug runs as an installed user's would: with its compiled bytecode cached (this
# environment may set PYTHONDONTWRITEBYTECODE, which makes every start compile ~100
# modules: 0.4 s of every command)
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


class Failure(Exception):
    """A run that did not do what the guest should do: the comparison would be void."""


def _run(
    argv: list[str], stdin_data: bytes | None, want: int, what: str
) -> tuple[float, bytes, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(
        argv,
        check=False,
        input=stdin_data or b"",
        capture_output=True,
        cwd=ROOT,
        env=ENV,
        timeout=900,
    )
    elapsed = time.perf_counter() - t0
    if proc.returncode != want:
        raise Failure(
            f"{what}: exit status {proc.returncode}, want {want}\n"
            f"  {' '.join(argv)}\n  {proc.stderr.decode(errors='replace')[-500:]}"
        )
    return elapsed, proc.stdout, proc.stderr.decode(errors="replace")


def _run_typing(argv: list[str], text: bytes, what: str) -> tuple[float, bytes]:
    """QEMU with COM1 on stdio, `text` typed one byte every TYPING_GAP_S, starting
    TYPING_DELAY_S after the guest's banner.  The typing time is not counted: it is the
    harness's, and rdebug's `--serial-input` paces its bytes in virtual time instead."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT
    )
    assert proc.stdin is not None and proc.stdout is not None
    seen = b""
    while BANNER not in seen:
        chunk = os.read(proc.stdout.fileno(), 4096)
        if not chunk:
            break
        seen += chunk
    typing = time.perf_counter()
    time.sleep(TYPING_DELAY_S)
    for byte in text:
        proc.stdin.write(bytes([byte]))
        proc.stdin.flush()
        time.sleep(TYPING_GAP_S)
    typing = time.perf_counter() - typing
    try:
        rest, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise Failure(f"{what}: no exit within 300 s") from None
    elapsed = time.perf_counter() - t0 - typing
    if proc.returncode != 1:
        raise Failure(f"{what}: exit status {proc.returncode}, want 1: {err.decode()[-300:]}")
    return elapsed, seen + rest


def _blank_overlay(path: Path) -> None:
    path.unlink(missing_ok=True)
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", str(path), "1M"], check=True, cwd=ROOT
    )


def qemu_round(guest: Guest, work: Path, out: Timings, outputs: set[bytes]) -> None:
    log, overlay = work / f"{guest.name}.qemu.rr", work / f"{guest.name}.qemu.qcow2"
    drive = ("-drive", f"file={overlay},if=none,id=rr")
    rr = f"shift={SHIFT},rr=%s,rrfile={log},rrsnapshot=init"
    for mode in ("run", "record", "replay"):
        icount = f"shift={SHIFT}" if mode == "run" else rr % mode
        argv = qemu_argv(guest.elf, icount, "-serial", "stdio", *(drive if mode != "run" else ()))
        if mode == "record":
            _blank_overlay(overlay)
        what = f"QEMU {mode} {guest.name}"
        if guest.serial_input is not None and mode != "replay":
            elapsed, stdout = _run_typing(argv, guest.serial_input, what)
        else:
            elapsed, stdout, _ = _run(argv, None, 1, what)
        out.add(mode, elapsed)
        outputs.add(stdout)
    out.sizes = {"log": log.stat().st_size, "snapshots": overlay.stat().st_size}


def rdebug_round(guest: Guest, work: Path, out: Timings, outputs: set[bytes]) -> None:
    trace = work / f"{guest.name}.rdebug"
    shutil.rmtree(trace, ignore_errors=True)
    feed: tuple[str, ...] = ()
    if guest.serial_input is not None:
        (work / "input").write_bytes(guest.serial_input)
        feed = ("--serial-input", str(work / "input"))
    common = ("-m", str(MEMORY_MB), "--icount-shift", str(SHIFT), "--serial", "stdio")
    for mode, argv in (
        ("run", rdebug_argv("run", *common, *feed, str(guest.elf))),
        ("record", rdebug_argv("record", "-o", str(trace), *common, *feed, str(guest.elf))),
        ("replay", rdebug_argv("replay", "--serial", "stdio", str(trace))),
    ):
        elapsed, stdout, stderr = _run(argv, None, 1, f"rdebug {mode} {guest.name}")
        out.add(mode, elapsed)
        outputs.add(stdout)
        if mode == "record":
            out.icount = parse_recorded(stderr)
    out.sizes = {
        "log": (trace / "replay.log").stat().st_size,
        "snapshots": (trace / "snapshots.qcow2").stat().st_size,
    }


def measure_runs(guest: Guest, rounds: int, work: Path, with_qemu: bool) -> list[Figure]:
    qemu, rd = Timings(), Timings()
    outputs: set[bytes] = set()
    for _ in range(rounds):
        if with_qemu:
            qemu_round(guest, work, qemu, outputs)
        rdebug_round(guest, work, rd, outputs)
    if len(outputs) != 1:
        raise Failure(f"{guest.name}: the runs wrote different COM1 output: {outputs!r:.400}")
    insns = "" if rd.icount is None else f"{rd.icount:.3g} insns (rdebug)"
    figures = [
        Figure(f"{guest.name}: {mode}", "s", qemu.median(mode), rd.median(mode), insns)
        for mode in ("run", "record", "replay")
    ]
    for key, label in (("log", "log"), ("snapshots", "init snapshot file")):
        figures.append(
            Figure(f"{guest.name}: {label}", "B", qemu.sizes.get(key), float(rd.sizes[key]), "")
        )
    print(format_table(figures).split("\n", 2)[2], flush=True)
    return figures


# ------------------------------------------------------------------------ through gdb


class Gdb:
    """A real gdb (pygdbmi) running console commands, each waited for."""

    def __init__(self, symbols: Path | None) -> None:
        self._gdb = GdbController(
            command=["gdb", "--nx", "--quiet", "--interpreter=mi3"],
            time_to_check_for_additional_output_sec=0.001,
        )
        for setting in ("set architecture i386", "set confirm off"):
            self.run(setting)
        if symbols is not None:
            self.run(f"file {symbols}")

    def run(self, command: str, timeout: float = 600) -> str:
        """Console command -> its console/target text; waits for the result record and,
        for a command that resumed the target, the `*stopped`.  TimeoutError otherwise."""
        records = exchange(self._gdb, f'-interpreter-exec console "{command}"', timeout)
        return console_text(records)

    def icount(self) -> int:
        text = self.run("monitor info replay")
        icount = parse_icount(text)
        if icount is None:
            raise Failure(f"no icount in {text!r}")
        return icount

    def close(self) -> None:
        self._gdb.exit()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def qemu_gdb_server(elf: Path, log: Path, overlay: Path) -> Iterator[tuple[str, int]]:
    """QEMU replaying `log` from its init snapshot, stopped, its gdbstub listening.
    Yields (address, pid).  Killed with SIGKILL: QEMU in replay mode may not act on
    SIGTERM while a reverse execution is stuck."""
    port = _free_port()
    argv = qemu_argv(
        elf,
        f"shift={SHIFT},rr=replay,rrfile={log},rrsnapshot=init",
        "-drive", f"file={overlay},if=none,id=rr",
        "-serial", "null",
        "-gdb", f"tcp:127.0.0.1:{port}",
        "-S",
    )  # fmt: skip
    with subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL) as proc:
        try:
            deadline = time.monotonic() + 30
            while True:  # wait for the gdbstub to listen
                with socket.socket() as s:
                    if s.connect_ex(("127.0.0.1", port)) == 0:
                        break
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise Failure(f"QEMU's gdbstub did not come up: {' '.join(argv)}")
                time.sleep(0.05)
            yield f"127.0.0.1:{port}", proc.pid
        finally:
            proc.kill()


@contextlib.contextmanager
def rdebug_gdb_server(trace: Path) -> Iterator[tuple[str, int]]:
    """`rdebug replay TRACE --gdb 127.0.0.1:0`; yields (the address it printed, pid)."""
    with subprocess.Popen(
        rdebug_argv("replay", str(trace), "--gdb", "127.0.0.1:0"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=ENV,
        text=True,
    ) as proc:
        try:
            assert proc.stderr is not None
            banner = proc.stderr.readline() + proc.stderr.readline()
            match = re.search(r"target remote ([\d.]+):(\d+)", banner)
            if not match:
                raise Failure(f"rdebug replay --gdb: {banner!r}")
            yield f"{match[1]}:{match[2]}", proc.pid
        finally:
            proc.kill()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def go_to(gdb: Gdb, icount: int) -> None:
    """Forward to exactly `icount` (QEMU's `replay_seek` does not tell gdb it stopped)."""
    gdb.run(f"monitor replay_break {icount}")
    gdb.run("continue")
    gdb.run("monitor replay_delete_break")
    if (at := gdb.icount()) != icount:
        raise Failure(f"replay_break {icount} + continue stopped at {at}")


def reverse_stepi_latency(
    address: str, points: Sequence[int], steps: int
) -> dict[int, list[float]]:
    """`steps` reverse-stepi in a row at each of `points` (ascending), each timed as gdb
    sees it (its register reads included)."""
    gdb = Gdb(None)
    try:
        gdb.run(f"target remote {address}")
        result: dict[int, list[float]] = {}
        for point in points:
            go_to(gdb, point)
            times = []
            for _ in range(steps):
                t0 = time.perf_counter()
                gdb.run("reverse-stepi")
                times.append(time.perf_counter() - t0)
            if (at := gdb.icount()) != point - steps:
                raise Failure(f"{steps} reverse-stepi from {point} went to {at}")
            result[point] = times
        return result
    finally:
        gdb.close()


@dataclass(frozen=True, slots=True)
class ReverseContinue:
    seconds: float | None  # None: no stop within the time allowed
    cpu_seconds: float  # the server's CPU time meanwhile
    start: int  # the icount of the breakpoint


def reverse_continue_time(
    address: str, pid: int, symbols: Path | None, bp: int, span: int, allowed: float
) -> ReverseContinue:
    """Breakpoint at `bp` (executed once), forward to `span` instructions past it, delete
    it and come back with a timed `reverse-continue` to it."""
    gdb = Gdb(symbols)
    try:
        gdb.run(f"target remote {address}")
        gdb.run(f"break *{bp:#x}")
        gdb.run("continue")
        start = gdb.icount()
        gdb.run("delete")
        go_to(gdb, start + span)
        gdb.run(f"break *{bp:#x}")
        cpu0 = cpu_seconds(pid)
        t0 = time.perf_counter()
        try:
            gdb.run("reverse-continue", timeout=allowed)
        except TimeoutError:
            return ReverseContinue(None, cpu_seconds(pid) - cpu0, start)
        seconds = time.perf_counter() - t0
        cpu = cpu_seconds(pid) - cpu0
        if (at := gdb.icount()) != start:
            raise Failure(f"reverse-continue stopped at {at}, the breakpoint is at {start}")
        return ReverseContinue(seconds, cpu, start)
    finally:
        gdb.close()


def measure_gdb(
    elf: Path,
    work: Path,
    points: Sequence[int],
    steps: int,
    span: int,
    with_qemu: bool,
    qemu_allowed: float,
) -> list[Figure]:
    bp = load_image(elf).symbols["workload_begin"]
    trace = work / "gdb.rdebug"
    shutil.rmtree(trace, ignore_errors=True)
    _run(rdebug_argv("record", "-o", str(trace), "--serial", "null", str(elf)), None, 1, "rdebug")
    rd_rsi: dict[int, list[float]] = {}
    qemu_rsi: dict[int, list[float]] = {}
    rd_rc = qemu_rc = None
    with rdebug_gdb_server(trace) as (address, _):
        rd_rsi = reverse_stepi_latency(address, points, steps)
    with rdebug_gdb_server(trace) as (address, pid):
        rd_rc = reverse_continue_time(address, pid, trace / "guest", bp, span, 600)
    if with_qemu:
        log, overlay = work / "gdb.qemu.rr", work / "gdb.qemu.qcow2"
        _blank_overlay(overlay)
        rr = f"shift={SHIFT},rr=record,rrfile={log},rrsnapshot=init"
        _run(qemu_argv(elf, rr, "-drive", f"file={overlay},if=none,id=rr", "-serial", "null"),
             None, 1, "QEMU record for gdb")  # fmt: skip
        with qemu_gdb_server(elf, log, overlay) as (address, _):
            qemu_rsi = reverse_stepi_latency(address, points, steps)
        with qemu_gdb_server(elf, log, overlay) as (address, pid):
            qemu_rc = reverse_continue_time(address, pid, None, bp, span, qemu_allowed)

    def med(times: dict[int, list[float]], point: int) -> float | None:
        return statistics.median(times[point]) if point in times else None

    figures = [
        Figure(
            f"gdb reverse-stepi at {point:.0e}",
            "s",
            med(qemu_rsi, point),
            med(rd_rsi, point),
            f"median of {steps}; max rdebug {max(rd_rsi[point]) * 1e3:.0f} ms",
        )
        for point in points
    ]
    note = f"bp at workload_begin, {span:.0e} insns back; CPU s: rdebug {rd_rc.cpu_seconds:.2f}"
    if qemu_rc is not None:
        note += f", QEMU {qemu_rc.cpu_seconds:.2f}"
        if qemu_rc.seconds is None:
            note += f" (QEMU: no stop within {qemu_allowed:.0f} s)"
    figures.append(
        Figure(
            f"gdb reverse-continue {span:.0e} back",
            "s",
            None if qemu_rc is None else qemu_rc.seconds,
            rd_rc.seconds,
            note,
        )
    )
    print(format_table(figures).split("\n", 2)[2], flush=True)
    return figures


# ----------------------------------------------------------------------------- main


def raw_unicorn_mips(workload: Workload) -> tuple[float, float]:
    """(raw unicorn MIPS, rdebug Machine MIPS) on a workload, best of 3, in-process
    (bench/speed.py's measurement)."""
    result = measure(workload, 3)
    return result.mips(result.raw_times, "best"), result.mips(result.rd_times, "best")


def machine_line() -> str:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{model}, {os.cpu_count()} CPUs, load average {load}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller guests, 1e8 at most")
    parser.add_argument("--rounds", type=int, help="rounds of run/record/replay (3; quick 1)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures")
    args = parser.parse_args(argv)
    quick: bool = args.quick
    rounds = args.rounds or (1 if quick else 3)
    crc_passes = 1_000 if quick else 8_500  # ~1.44e8 / ~1.22e9 instructions
    memcopy_passes = 250 if quick else 2_000
    points = (10**7, 10**8) if quick else (10**7, 10**8, 10**9)
    steps = 3 if quick else 5
    span = 10**7 if quick else 10**8

    with_qemu = shutil.which("qemu-system-i386") is not None and shutil.which("qemu-img")
    if not with_qemu:
        print("qemu-system-i386 or qemu-img is not installed: the QEMU column stays empty")
    with_gdb = shutil.which("gdb") is not None
    if not with_gdb:
        print("gdb is not installed: skipping the reverse-execution figures")
    print(f"machine: {machine_line()}", flush=True)
    subprocess.run(rdebug_argv("--help"), env=ENV, stdout=subprocess.DEVNULL, check=True)

    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="vs_qemu") as tmp:
        work = Path(tmp)
        guests = []
        for name, symbol, passes in (
            ("crc", "crc_passes", crc_passes),
            ("memcopy", "memcopy_passes", memcopy_passes),
        ):
            data = (GUESTS / f"{name}.elf").read_bytes()
            addr = parse_image(data, f"{name}.elf").symbols[symbol]
            elf = work / f"{name}{passes}.elf"
            elf.write_bytes(patched_elf(data, addr, passes))
            guests.append(Guest(name, elf))
        guests.append(Guest("timer", GUESTS / "timer.elf"))
        # < 256 bytes: QEMU delivers stdin as fast as the UART takes it, and the guest's
        # 256-byte ring would drop the rest (the final `q` with it)
        text = b"".join(b"%d," % i for i in range(66)) + b"q"
        guests.append(Guest("echo", GUESTS / "echo.elf", text))

        print(format_table([]))
        for guest in guests:
            figures += measure_runs(guest, rounds, work, bool(with_qemu))
        if with_gdb:
            figures += measure_gdb(
                guests[0].elf, work, points, steps, span, bool(with_qemu), 60 if quick else 300
            )

    speeds = {
        name: raw_unicorn_mips(Workload(name, f"{name}_passes", passes // 4))
        for name, passes in (("crc", crc_passes), ("memcopy", memcopy_passes))
    }
    print("\nall figures (medians; ratio = rdebug/QEMU):\n" + format_table(figures))
    for name, (raw, machine) in speeds.items():
        print(
            f"{name} workload in-process: raw unicorn (no hooks) {raw:.0f} MIPS, rdebug's "
            f"Machine {machine:.0f} MIPS ({machine / raw:.2f}x raw)"
        )
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "machine": machine_line(),
                    "quick": quick,
                    "rounds": rounds,
                    "figures": [asdict(f) | {"ratio": f.ratio} for f in figures],
                    "mips": {
                        name: {"raw_unicorn": raw, "rdebug_machine": machine}
                        for name, (raw, machine) in speeds.items()
                    },
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Failure as error:
        print(f"vs_qemu: {error}", file=sys.stderr)
        sys.exit(2)

"""Shared fixtures: the sample guests and a machine factory."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest
from elftools.elf.elffile import ELFFile

from rdebug.api import Session
from rdebug.host.sources import FileSerialSource, LiveInputs
from rdebug.machine.counter import CounterFactory
from rdebug.machine.devices.uart import SerialBackend
from rdebug.machine.disks import OverlayDisk
from rdebug.machine.inputs import ExternalInputs, SerialSource
from rdebug.machine.loader import load_image, parse_image
from rdebug.machine.machine import Machine, MachineConfig, StopReason
from rdebug.machine.native_counter import NativeCounter
from rdebug.replay.log import End, Instruction, Shutdown, ShutdownCause, encode, encode_header
from rdebug.replay.player import Player, recording_end
from rdebug.replay.recorder import Recorder
from rdebug.replay.trace import Trace, open_disks
from tests.oracle.reference_counter import ReferenceCounter

ROOT = Path(__file__).resolve().parent.parent
GUESTS = ROOT / "sample_guests" / "build"
EXPECTED = ROOT / "sample_guests" / "expected"
#: The instruction counters a test can give a machine: the real one and the oracle.
COUNTERS: dict[str, CounterFactory] = {"native": NativeCounter, "reference": ReferenceCounter}


def record_cli(guest: str, trace: Path, *options: str) -> Path:
    """`rdebug record GUEST -o TRACE OPTIONS` as a user types it; the guest must succeed."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "rdebug",
            "record",
            str(GUESTS / f"{guest}.elf"),
            "-o",
            str(trace),
            *options,
        ],
        capture_output=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    return trace


def long_crc_trace(tmp_path_factory: pytest.TempPathFactory, passes: int = 50) -> Path:
    """A recording of the `crc` guest patched to do `passes` passes (about 145 000
    instructions each): several progress reports long.  Made once per test run."""
    folder = tmp_path_factory.getbasetemp() / f"repl-crc-{passes}"
    trace = folder / "trace"
    if (trace / "replay.log").exists():
        return trace
    data = bytearray((GUESTS / "crc.elf").read_bytes())
    with (GUESTS / "crc.elf").open("rb") as stream:
        elf = ELFFile(stream)
        symtab = elf.get_section_by_name(".symtab")
        addr = symtab.get_symbol_by_name("crc_passes")[0]["st_value"]
        offset = next(
            seg["p_offset"] + addr - seg["p_vaddr"]
            for seg in elf.iter_segments()
            if seg["p_type"] == "PT_LOAD"
            and seg["p_vaddr"] <= addr < seg["p_vaddr"] + seg["p_filesz"]
        )
    data[offset : offset + 4] = passes.to_bytes(4, "little")
    folder.mkdir(parents=True, exist_ok=True)
    guest = folder / "crc-long.elf"
    guest.write_bytes(data)
    result = subprocess.run(
        [sys.executable, "-m", "rdebug", "record", str(guest), "-o", str(trace), "-m", "8",
         "--serial", "null"],
        capture_output=True, timeout=300, cwd=ROOT, check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    return trace


class BytesImage:
    """A disk image in memory (read-only, like the user's image file)."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.size = len(data)

    def read(self, offset: int, length: int) -> bytes:
        return self._data[offset : offset + length]


#: The disk the `disk` and `portregs` guests' expected outputs were made with
#: (sample_guests/README.md), on the primary master.
DISK_IMAGE = bytes(range(256)) * 4096
DISK_GUESTS = ("disk", "portregs")


class Capture:
    """A serial backend that keeps what the guest sent."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data


def make_machine(
    guest: str,
    counter: str = "native",
    serial_input: bytes | None = None,
    memory_mb: int = 16,
    clock_ns: int | None = None,
) -> tuple[Machine, Capture]:
    disks = [OverlayDisk(BytesImage(DISK_IMAGE))] if guest in DISK_GUESTS else []
    out = Capture()
    sources: dict[int, SerialSource] = {}
    if serial_input is not None:
        sources[0] = FileSerialSource(serial_input)
    inputs = LiveInputs(sources) if clock_ns is None else LiveInputs(sources, lambda: clock_ns)
    config = MachineConfig(memory_mb=memory_mb)
    machine = Machine(config, inputs, [out], disks, counter=COUNTERS[counter])
    machine.load(load_image(GUESTS / f"{guest}.elf"))
    return machine, out


def stride_walk(
    machine: Machine, out: Capture, stride: Callable[[int], int]
) -> list[tuple[object, ...]]:
    """Run `machine` to its end in steps of `stride(previous step)` instructions (from 1):
    (reason, icount, registers) at each stop, then (the serial output,)."""
    stops: list[tuple[object, ...]] = []
    step = 1
    while True:
        stop = machine.run(machine.icount + step)
        stops.append((stop.reason, stop.icount, tuple(sorted(machine.cpu.registers().items()))))
        if stop.reason is not StopReason.TARGET:
            break
        step = stride(step)
    stops.append((bytes(out.data),))
    return stops


#: what a run over some inputs returns: a tuple whose [1] is the icount it ended at
Run = TypeVar("Run", bound=tuple[Any, ...])


def record_log(log: Path, inputs: LiveInputs, run: Callable[[ExternalInputs], Run]) -> Run:
    """`run` over a recorder of `inputs` writing `log`, the log finished where it ended."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        recorder = Recorder(inputs, fd)
        result = run(recorder)
        recorder.finish(result[1])
    finally:
        os.close(fd)
    return result


def replay_log(log: Path, run: Callable[[ExternalInputs], Run]) -> Run:
    """`run` over a player of `log`, which must end where the run did."""
    with log.open("rb") as stream:
        player = Player(stream, str(log))
        result = run(player)
        player.verify_end(result[1], "stopped")
    return result


@pytest.fixture
def machines() -> Iterator[list[Machine]]:
    made: list[Machine] = []
    yield made
    for machine in made:
        machine.close()


class Replay:
    """A machine + player over a trace (the machine set up as the trace says), for
    straight runs and timelines."""

    def __init__(self, trace: Trace, serial: Sequence[SerialBackend] = ()) -> None:
        self.log = trace.log_path.open("rb")
        self.end = recording_end(self.log, "log")
        self.log.seek(0)
        self.player = Player(self.log, "log", self.end)
        disks = open_disks(trace.info.drives, check=False)
        self.machine = Machine(trace.info.machine_config(), self.player, serial, disks)
        self.machine.load(trace.loaded_guest())

    def close(self) -> None:
        self.machine.close()
        self.log.close()


UNIT = Path(__file__).resolve().parent / "unit"


def pytest_configure(config: pytest.Config) -> None:
    """Ctrl-C as a terminal delivers it, however the suite was started.  A shell that
    starts a job in the background (`bash tests/stress.sh &`, a CI runner) leaves SIGINT
    ignored, and an ignored disposition is inherited: the tests that press Ctrl-C (on
    the suite's own process or on an rdebug child) would see nothing happen."""
    del config
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`-m quick`: the unit tests (no gdb, tmux, qemu-img or long guest runs), a first
    check in a minute or two."""
    for item in items:
        if item.path.is_relative_to(UNIT):
            item.add_marker(pytest.mark.quick)


@pytest.fixture(autouse=True, scope="session")
def _own_trace_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The tests never touch the user's trace store: recordings made without -o, and
    `latest-trace`, go to a temporary folder (the rdebug subprocesses inherit it)."""
    patch = pytest.MonkeyPatch()
    patch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg-data")))
    yield
    patch.undo()


def straight_hash(trace: Trace, icount: int) -> str:
    """The state hash at `icount` of a fresh replay run straight there."""
    replay = Replay(trace)
    try:
        replay.machine.run(icount)
        assert replay.machine.icount == icount
        return replay.machine.state_hash()
    finally:
        replay.close()


def patched_guest(guest: str, **values: int) -> bytes:
    """`GUESTS/guest.elf` with the given 32-bit globals (kept in .data) set in the file."""
    data = bytearray((GUESTS / f"{guest}.elf").read_bytes())
    symbols = parse_image(bytes(data), f"{guest}.elf").symbols
    (phoff,) = struct.unpack_from("<I", data, 28)
    phentsize, phnum = struct.unpack_from("<HH", data, 42)
    for name, value in values.items():
        addr = symbols[name]
        for i in range(phnum):
            _, offset, vaddr, _, filesz, _, _, _ = struct.unpack_from(
                "<8I", data, phoff + i * phentsize
            )
            if vaddr <= addr < vaddr + filesz:
                struct.pack_into("<I", data, offset + addr - vaddr, value)
                break
        else:
            raise AssertionError(f"{name} is not in a loaded segment of {guest}.elf")
    return bytes(data)


#: The safety net of a wait on an event: long enough for a loaded machine, and a hang
#: becomes a failure that says what never happened.
EVENT_TIMEOUT = 120.0


def endless_trace(folder: Path) -> Path:
    """A trace of a guest that never ends: ``cli; jmp $`` (no interrupt, no input, so any
    stretch of its replay is exact), recorded for 1000 instructions, its log then made
    to say the recording went on for 4096 * (2**32 - 1) instructions (~1.8e13: hours of
    replay).  An operation that runs to its end is still running whenever a test
    interrupts it, however fast the machine is."""
    folder.mkdir(parents=True, exist_ok=True)
    guest = folder / "spin.bin"
    guest.write_bytes(bytes.fromhex("fa ebfe"))
    trace = folder / "trace"
    result = subprocess.run(
        [sys.executable, "-m", "rdebug", "record", str(guest), "-o", str(trace),
         "--format", "flat", "--load-address", "0x100000", "-m", "2", "--serial", "null",
         "--max-insns", "1000"],
        capture_output=True, timeout=120, cwd=ROOT, check=False,
    )  # fmt: skip
    assert result.returncode == 4, result.stderr  # stopped by --max-insns
    log = encode_header() + encode(Instruction(0xFFFF_FFFF)) * 4096
    log += encode(Shutdown(ShutdownCause.HOST_COMMAND)) + encode(End())
    (trace / "replay.log").write_bytes(log)
    return trace


class HeldOperation:
    """Holds a session's long operation (seek, continue, reverse-continue...) in its
    progress callback, at the first report past icount 0, until the session has been
    interrupted: it cannot end before the interrupt, and stops at `icount`.

    Install it after the front end has set its own `progress` (it is called too).
    """

    def __init__(self, session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
        self.reached = threading.Event()  # the operation is under way, held at `icount`
        self.interrupted = threading.Event()  # session.interrupt() was called
        self.icount = 0
        report = session.progress
        interrupt = session.interrupt

        def progress(icount: int) -> None:
            if report is not None:
                report(icount)
            if icount > 0 and not self.interrupted.is_set():
                self.icount = icount
                self.reached.set()
                if not self.interrupted.wait(EVENT_TIMEOUT):
                    raise AssertionError(f"held at icount {icount}: nothing interrupted it")

        def interrupted() -> None:
            interrupt()
            self.interrupted.set()

        session.progress = progress
        monkeypatch.setattr(session, "interrupt", interrupted)

    def wait_reached(self) -> int:
        """Until the operation is held; its icount."""
        assert self.reached.wait(EVENT_TIMEOUT), "the operation never reported progress"
        return self.icount

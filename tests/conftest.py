"""Shared fixtures: the sample guests and a machine factory."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rdebug.host.sources import FileSerialSource, LiveInputs
from rdebug.machine.counter import CounterFactory
from rdebug.machine.disks import OverlayDisk
from rdebug.machine.inputs import SerialSource
from rdebug.machine.loader import load_image
from rdebug.machine.machine import Machine, MachineConfig
from rdebug.machine.native_counter import NativeCounter
from rdebug.replay.player import Player, recording_end
from rdebug.replay.trace import Trace
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


class BytesImage:
    """A disk image in memory (read-only, like the user's image file)."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.size = len(data)

    def read(self, offset: int, length: int) -> bytes:
        return self._data[offset : offset + length]


#: The disk the `disk` guest's expected output was made with (sample_guests/README.md).
DISK_IMAGE = bytes(range(256)) * 4096


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
    disks = [OverlayDisk(BytesImage(DISK_IMAGE))] if guest == "disk" else []
    out = Capture()
    sources: dict[int, SerialSource] = {}
    if serial_input is not None:
        sources[0] = FileSerialSource(serial_input)
    inputs = LiveInputs(sources) if clock_ns is None else LiveInputs(sources, lambda: clock_ns)
    config = MachineConfig(memory_mb=memory_mb)
    machine = Machine(config, inputs, [out], disks, counter=COUNTERS[counter])
    machine.load(load_image(GUESTS / f"{guest}.elf"))
    return machine, out


@pytest.fixture
def machines() -> Iterator[list[Machine]]:
    made: list[Machine] = []
    yield made
    for machine in made:
        machine.close()


class Replay:
    """A machine + player over a trace (the machine set up as the trace says), for
    straight runs and timelines."""

    def __init__(self, trace: Trace) -> None:
        self.log = trace.log_path.open("rb")
        self.end = recording_end(self.log, "log")
        self.log.seek(0)
        self.player = Player(self.log, "log")
        self.machine = Machine(trace.info.machine_config(), self.player, [])
        self.machine.load(trace.loaded_guest())

    def close(self) -> None:
        self.machine.close()
        self.log.close()


def straight_hash(trace: Trace, icount: int) -> str:
    """The state hash at `icount` of a fresh replay run straight there."""
    replay = Replay(trace)
    try:
        replay.machine.run(icount)
        assert replay.machine.icount == icount
        return replay.machine.state_hash()
    finally:
        replay.close()

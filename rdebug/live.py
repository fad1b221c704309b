"""Guests running live, forward only: `rdebug run` (with gdb or not) and `rdebug record`.

A `LiveSession` is the live counterpart of the replaying `Session` (rdebug/api.py): the
one place a front end gets a running machine from.  It answers in the same `Stop`
vocabulary; unlike a replay, its guest may be changed (registers, memory).  `record`
runs one into a new trace folder.
"""

from __future__ import annotations

from collections.abc import Callable, Set
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rdebug.errors import UsageError
from rdebug.machine.cpu import register_ids
from rdebug.machine.devices.uart import SerialBackend
from rdebug.machine.inputs import ExternalInputs
from rdebug.machine.loader import ImageFormat, LoadedImage, parse_image
from rdebug.machine.machine import Machine, MachineConfig, StopEvent
from rdebug.replay.stops import Stop, stop_of
from rdebug.replay.trace import DriveSpec, GuestSpec, open_disks, sha256

if TYPE_CHECKING:
    from rdebug.machine.devices.ne2000 import FrameSink
    from rdebug.machine.devices.sb16 import AudioSink


@dataclass(frozen=True, slots=True)
class Guest:
    """A guest image file, read and parsed: refused at once if it is not one."""

    path: Path
    data: bytes
    image: LoadedImage
    initrd: bytes | None = None  # a Linux kernel's initrd
    #: how it was read (`read`'s arguments, the files' absolute paths), for `spec`
    format: str = "auto"
    load_address: int | None = None
    entry: int | None = None
    append: str = ""
    source: str = ""
    initrd_source: str | None = None

    @property
    def spec(self) -> GuestSpec:
        """What a trace keeps of it.  The files' SHA-256 digests are computed here, for a
        recording: a plain run needs none (a Linux kernel and its initrd: ~5 ms, and
        hashlib's import 2.5 ms of a small guest's start-up)."""
        return GuestSpec(
            name=self.path.name,
            source=self.source,
            sha256=sha256(self.data),
            format=self.format,
            load_address=self.load_address,
            entry=self.entry,
            append=self.append,
            initrd=self.initrd_source,
            initrd_sha256=None if self.initrd is None else sha256(self.initrd),
        )

    @classmethod
    def read(
        cls,
        path: Path,
        format: str = "auto",
        load_address: int | None = None,
        entry: int | None = None,
        append: str = "",
        initrd: Path | None = None,
    ) -> Guest:
        """`format`: an `ImageFormat` value; `load_address` and `entry` for flat binaries,
        `append` the kernel command line (multiboot, Linux); `initrd` a Linux kernel's
        initial RAM disk."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise UsageError(f"{path}: no such file") from None
        except IsADirectoryError:
            raise UsageError(f"{path}: is a directory, not a guest image") from None
        except OSError as exc:
            raise UsageError(f"{path}: cannot read: {exc.strerror}") from None
        initrd_data: bytes | None = None
        if initrd is not None:
            try:
                initrd_data = initrd.read_bytes()
            except OSError as exc:
                raise UsageError(f"--initrd {initrd}: {exc.strerror}") from None
        image = parse_image(
            data, str(path), ImageFormat(format), load_address, entry, append, initrd_data
        )
        return cls(
            path,
            data,
            image,
            initrd_data,
            format,
            load_address,
            entry,
            append,
            str(path.resolve()),
            None if initrd is None else str(initrd.resolve()),
        )


class LiveSession:
    """A guest running live on the emulated PC (nothing recorded, unless by `record`)."""

    def __init__(self, machine: Machine) -> None:
        """Around a machine that is loaded and ready; `start` makes one."""
        self._machine = machine
        #: the machine's own account of the last stop (what a recording logs)
        self.last_event: StopEvent | None = None

    @classmethod
    def start(
        cls,
        guest: Guest,
        config: MachineConfig,
        inputs: ExternalInputs,
        *,
        serial: SerialBackend | None = None,
        drives: tuple[DriveSpec, ...] = (),
        net: FrameSink | None = None,
        audio: AudioSink | None = None,
    ) -> LiveSession:
        """The machine of `config` with `guest` loaded, fed by `inputs`; COM1's output
        goes to `serial`, the NIC's frames to `net`, the sound card's samples to `audio`."""
        disks = open_disks(drives, check=False)
        serial_out = [] if serial is None else [serial]
        machine = Machine(config, inputs, serial_out, disks, net, audio=audio)
        try:
            machine.load(guest.image)
        except BaseException:
            machine.close()
            raise
        return cls(machine)

    @property
    def icount(self) -> int:
        """Instructions executed since the guest started."""
        return self._machine.icount

    def run(self, target: int | None = None) -> Stop:
        """Run to icount `target` (exact; None: as long as the guest goes) or another
        stop: a breakpoint, the guest's exit, a halt or crash, `interrupt()`."""
        event = self._machine.run(target)
        self.last_event = event
        return stop_of(event, self._machine.cpu.linear_pc())

    def interrupt(self) -> None:
        """Stop a `run` soon (from any thread, e.g. a SIGINT handler)."""
        self._machine.interrupt()

    # -- the guest, read and changed ------------------------------------------------------

    def register(self, name: str) -> int:
        """Any register of gdb's i386 description, and cr0-cr4, by name."""
        return self._machine.cpu.gdb_register(name)

    @staticmethod
    def writable_registers() -> Set[str]:
        """The names `write_register` takes (the general, segment and control ones)."""
        return register_ids().keys()

    def write_register(self, name: str, value: int) -> None:
        if name not in register_ids():
            raise UsageError(f"{name}: not a register that can be written")
        self._machine.cpu.write(name, value)
        self._machine.counter.invalidate()

    def read_memory(self, addr: int, length: int) -> bytes | None:
        """Guest memory at the linear address `addr`; None if it is not mapped."""
        return self._machine.cpu.read_linear(addr, length)

    def write_memory(self, addr: int, data: bytes) -> bool:
        """Write guest memory at the linear address `addr`; False if it is not mapped."""
        if not self._machine.cpu.write_linear(addr, data):
            return False
        self._machine.counter.invalidate()
        return True

    def add_breakpoint(self, addr: int) -> None:
        self._machine.add_breakpoint(addr)

    def remove_breakpoint(self, addr: int) -> None:
        self._machine.remove_breakpoint(addr)

    def close(self) -> None:
        self._machine.close()


@dataclass(frozen=True, slots=True)
class Recorded:
    """A recording made by `record`."""

    path: Path  # the trace folder
    stop: Stop  # how the run ended
    events: int  # events logged


def record(
    folder: Path,
    guest: Guest,
    config: MachineConfig,
    inputs: ExternalInputs,
    *,
    serial: SerialBackend | None = None,
    drives: tuple[DriveSpec, ...] = (),
    net: FrameSink | None = None,
    audio: AudioSink | None = None,
    run: Callable[[LiveSession], Stop] = lambda live: live.run(),
) -> Recorded:
    """Run `guest` live and record it into the new trace folder `folder`; `run` runs the
    loaded guest (e.g. under a Ctrl-C handler, up to an instruction limit)."""
    stops: list[Stop] = []

    def run_machine(machine: Machine) -> StopEvent:
        live = LiveSession(machine)
        stops.append(run(live))
        assert live.last_event is not None
        return live.last_event

    from rdebug.replay import recording  # noqa: PLC0415 - a plain run needs none of it

    made = recording.record(
        folder,
        guest.data,
        guest.spec,
        config,
        inputs,
        serial=[] if serial is None else [serial],
        drives=drives,
        net=net,
        audio=audio,
        run=run_machine,
        initrd=guest.initrd,
        image=guest.image,
    )
    return Recorded(made.trace.path, stops[-1], made.events)

"""Making a recording: a trace folder, the `init` snapshot, the log, the disk overlays.

The one place that knows how a recording is put together; `rdebug record`, the scripting
API's users, the benchmarks and the tests all record through `record`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rdebug.machine.devices.uart import SerialBackend
from rdebug.machine.inputs import ExternalInputs
from rdebug.machine.loader import LoadedImage
from rdebug.machine.machine import Machine, MachineConfig, StopEvent, StopReason
from rdebug.replay.log import ShutdownCause
from rdebug.replay.recorder import Recorder
from rdebug.replay.trace import DriveSpec, GuestSpec, Trace, load_guest, open_disks
from rdebug.snapshots import vmstate
from rdebug.snapshots.images import write_overlay
from rdebug.snapshots.named import SnapshotFile

if TYPE_CHECKING:  # the NIC's and the sound card's modules load only with one
    from rdebug.machine.devices.ne2000 import FrameSink
    from rdebug.machine.devices.sb16 import AudioSink

#: How a recording that the guest did not end itself is logged (EVENT_SHUTDOWN cause).
_HOST_CAUSE = {
    StopReason.INTERRUPTED: ShutdownCause.HOST_SIGNAL,
    StopReason.TARGET: ShutdownCause.HOST_COMMAND,
    StopReason.FAULT: ShutdownCause.HOST_ERROR,
}


@dataclass(frozen=True, slots=True)
class Recording:
    """A finished recording: its trace, how the run stopped, its recorded events."""

    trace: Trace
    stop: StopEvent
    events: int


def record(
    folder: Path,
    guest: bytes,
    spec: GuestSpec,
    config: MachineConfig,
    inputs: ExternalInputs,
    *,
    serial: Sequence[SerialBackend] = (),
    drives: tuple[DriveSpec, ...] = (),
    net: FrameSink | None = None,
    audio: AudioSink | None = None,
    run: Callable[[Machine], StopEvent] = lambda machine: machine.run(),
    prepare: Callable[[Machine], None] = lambda machine: None,
    initrd: bytes | None = None,
    image: LoadedImage | None = None,
) -> Recording:
    """Record `guest` into the new trace folder `folder`.

    `run` runs the loaded machine (e.g. with a Ctrl-C handler and an instruction limit);
    `prepare` may change the loaded machine first (a benchmark raising a pass count).
    `net` gets the frames the guest's NIC (`config.nic`) sends, `audio` the samples its
    sound card (`config.sound`) plays; `initrd` is a Linux guest's initrd (its path and
    hash in `spec`); `image` is `guest` already parsed, if the caller has it (a Linux
    kernel's symbols, which the recording reads for its KASLR offset, are then read once).
    """
    disks = open_disks(drives, check=False)
    trace = Trace.create(folder, guest, spec, config, drives, initrd)
    fd = trace.open_log_for_writing()
    try:
        recorder = Recorder(inputs, fd)
        machine = Machine(config, recorder, serial, disks, net, audio=audio)
        try:
            if image is None:
                image = load_guest(spec, guest, initrd)
            image.read_symbols_ahead()  # for the kernel's KASLR offset, at the end
            machine.load(image)
            prepare(machine)
            # The seed's rrsnapshot: the machine at the start of the recording.
            SnapshotFile(trace.snapshots_path).save("init", vmstate.encode(machine, None), 0, 0)
            stop = run(machine)
            recorder.finish(stop.icount, _HOST_CAUSE.get(stop.reason))
            offset = machine.kernel_offset()
            if offset is not None:
                trace.set_kernel_offset(offset, machine.symbols)
            for drive in drives:
                disk = disks[drive.index]
                assert disk is not None
                write_overlay(
                    trace.disk_overlay_path(drive.index),
                    Path(drive.source),
                    drive.format,
                    disk.base.size,
                    disk.written,
                )
        finally:
            machine.close()
    finally:
        os.close(fd)
    return Recording(trace, stop, recorder.events)

"""Doctest setup: a small recording for the API examples."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from rdebug.machine.inputs import LiveInputs
from rdebug.machine.machine import Machine, MachineConfig
from rdebug.replay.recorder import Recorder
from rdebug.replay.trace import GuestSpec, Trace, load_guest, sha256

GUESTS = Path(__file__).resolve().parent.parent / "sample_guests" / "build"


@pytest.fixture(autouse=True)
def _example_trace(
    doctest_namespace: dict[str, object], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    folder = tmp_path_factory.getbasetemp() / "example-trace"
    if not folder.exists():
        data = (GUESTS / "hello.elf").read_bytes()
        spec = GuestSpec("hello.elf", str(GUESTS / "hello.elf"), sha256(data))
        config = MachineConfig(memory_mb=16)
        trace = Trace.create(folder, data, spec, config)
        fd = trace.open_log_for_writing()
        try:
            recorder = Recorder(LiveInputs(), fd)
            machine = Machine(config, recorder, [])
            machine.load(load_guest(spec, data))
            stop = machine.run()
            recorder.finish(stop.icount)
            machine.close()
        finally:
            os.close(fd)
    doctest_namespace["EXAMPLE_TRACE"] = folder
    yield

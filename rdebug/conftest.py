"""Doctest setup: a small recording for the API examples."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rdebug.host.sources import LiveInputs
from rdebug.machine.machine import MachineConfig
from rdebug.replay.recording import record
from rdebug.replay.trace import GuestSpec, sha256

GUESTS = Path(__file__).resolve().parent.parent / "sample_guests" / "build"


@pytest.fixture(autouse=True)
def _example_trace(
    doctest_namespace: dict[str, object], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    folder = tmp_path_factory.getbasetemp() / "example-trace"
    if not folder.exists():
        data = (GUESTS / "hello.elf").read_bytes()
        spec = GuestSpec("hello.elf", str(GUESTS / "hello.elf"), sha256(data))
        record(folder, data, spec, MachineConfig(memory_mb=16), LiveInputs())
    doctest_namespace["EXAMPLE_TRACE"] = folder
    yield

"""WriteTracker: the pages written since the last rearm, by either kind of fault (the
kernel's userfaultfd write-protection, or rdebug's SIGSEGV handler), through every way
guest RAM gets written: the host's own stores, unicorn's translated code, and (kernel
faults only: a signal-tracked page must be opened first) a system call."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator

import numpy as np
import pytest

from rdebug.machine.cpu import Cpu
from rdebug.machine.pages import PAGE, FaultKind, WriteTracker, write_fault_seconds

RAM_MB = 8


@pytest.fixture(params=list(FaultKind), ids=lambda kind: kind.value)
def kind(request: pytest.FixtureRequest) -> FaultKind:
    kind: FaultKind = request.param
    if write_fault_seconds(kind) == 0.0:
        pytest.skip(f"this host does not let rdebug track writes by {kind.value} faults")
    return kind


@pytest.fixture
def cpu() -> Iterator[Cpu]:
    cpu = Cpu(RAM_MB)
    yield cpu
    cpu.close()


def _written(tracker: WriteTracker, dirty: np.ndarray) -> set[int]:
    tracker.collect()
    return set(np.flatnonzero(dirty).tolist())


def test_every_way_of_writing_ram_is_tracked_until_the_next_rearm(
    cpu: Cpu, kind: FaultKind
) -> None:
    # mov dword [0x300010], 0x12345678 ; hlt (placed before tracking starts)
    code = bytes.fromhex("c7051000300078563412f4")
    cpu.write_physical(0x1000, code)
    dirty = np.zeros(cpu.ram_size // PAGE, dtype=np.uint8)
    tracker = WriteTracker.start(cpu.ram_address, cpu.ram_size, dirty.ctypes.data, kind)
    assert tracker is not None and tracker.kind is kind
    try:
        assert _written(tracker, dirty) == set()
        cpu.write_physical(0, b"\x01")
        cpu.write_physical(7 * PAGE + PAGE - 1, b"\x02")  # a page's last byte
        cpu.write_physical(256 * PAGE - 2, b"\x03\x04\x05\x06")  # across two pages
        cpu.uc.emu_start(0x1000, 0x1000 + len(code) - 1)  # a store by translated code
        assert cpu.read_physical(0x300010, 4) == bytes.fromhex("78563412")
        _ = cpu.read_physical(0x200000, PAGE)  # reads are not writes
        assert _written(tracker, dirty) == {0, 7, 255, 256, 0x300}
        assert _written(tracker, dirty) == {0, 7, 255, 256, 0x300}  # collect twice: same

        tracker.rearm()
        assert _written(tracker, dirty) == set()
        cpu.write_physical(7 * PAGE, b"\x05")  # written again: faults again
        assert _written(tracker, dirty) == {7}

        # Pages the host is about to rewrite are opened, and counted, first.
        opened = np.array([9, 10], dtype=np.uint32)
        tracker.open_pages(opened.ctypes.data, len(opened))
        cpu.ram[9 * PAGE : 11 * PAGE] = b"\x06" * (2 * PAGE)
        assert _written(tracker, dirty) == {7, 9, 10}

        if kind is FaultKind.KERNEL:
            # The kernel writes into RAM on the process's behalf: resolved, and counted.
            read, write = os.pipe()
            try:
                os.write(write, b"from a pipe")
                buffer = (ctypes.c_char * 11).from_address(cpu.ram_address + 20 * PAGE + 5)
                assert os.readv(read, [buffer]) == 11
            finally:
                os.close(read)
                os.close(write)
            assert cpu.read_physical(20 * PAGE + 5, 11) == b"from a pipe"
            assert _written(tracker, dirty) == {7, 9, 10, 20}
    finally:
        tracker.stop()
    cpu.write_physical(30 * PAGE, b"\x07")  # RAM stays writable once tracking stops
    assert cpu.read_physical(30 * PAGE, 1) == b"\x07"


def test_a_kind_the_host_refuses_starts_no_tracker(cpu: Cpu) -> None:
    """Asked for one kind, the tracker is that kind or none at all (the checkpoint store
    then compares pages): never the other kind in its place."""
    dirty = np.zeros(cpu.ram_size // PAGE, dtype=np.uint8)
    for kind in FaultKind:
        tracker = WriteTracker.start(cpu.ram_address, cpu.ram_size, dirty.ctypes.data, kind)
        if tracker is None:
            assert write_fault_seconds(kind) == 0.0
            continue
        assert tracker.kind is kind
        tracker.stop()


def test_the_default_kind_is_the_kernels_where_the_host_offers_it(cpu: Cpu) -> None:
    dirty = np.zeros(cpu.ram_size // PAGE, dtype=np.uint8)
    tracker = WriteTracker.start(cpu.ram_address, cpu.ram_size, dirty.ctypes.data)
    assert tracker is not None
    try:
        offered = write_fault_seconds(FaultKind.KERNEL) > 0.0
        assert tracker.kind is (FaultKind.KERNEL if offered else FaultKind.SIGNAL)
    finally:
        tracker.stop()

"""Registers computed on read (the LAPIC current count) without any memory hook: while the
LAPIC timer counts, no UC_HOOK_MEM_READ / MEM_WRITE hook exists (any one of them sends
every guest load and store through unicorn's slow path); the page walk refuses reads of
the LAPIC page instead, and the value each read returns is the same under both counters,
in a recording and its replays, and after seeks."""

from __future__ import annotations

import ctypes
import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from unicorn import (
    UC_ARCH_X86,
    UC_HOOK_MEM_READ,
    UC_HOOK_MEM_READ_AFTER,
    UC_HOOK_MEM_WRITE,
    UC_MODE_32,
    Uc,
)

from rdebug.host.sources import FileSerialSource, LiveInputs
from rdebug.machine import regpages
from rdebug.machine.devices.lapic import TIMER_CURRENT, LocalApic
from rdebug.machine.disks import OverlayDisk
from rdebug.machine.inputs import ExternalInputs
from rdebug.machine.loader import ImageFormat, load_image, parse_image
from rdebug.machine.machine import Machine, MachineConfig, StopReason
from rdebug.replay.player import Player
from rdebug.replay.recorder import Recorder
from rdebug.replay.recording import record
from rdebug.replay.timeline import Timeline
from rdebug.replay.trace import GuestSpec, sha256
from tests.conftest import COUNTERS, GUESTS, BytesImage, Capture, Replay
from tests.integration.test_minikernel import MEMORY_MB, SHORT_SESSION, slave_image

MEMORY_HOOKS = UC_HOOK_MEM_READ | UC_HOOK_MEM_READ_AFTER | UC_HOOK_MEM_WRITE
CLOCK_NS = 1_764_000_000_000_000_000
STEP = 7919

#: (icount, eip, value) of every guest read of the LAPIC page while its timer counts
Reads = list[tuple[int, int, int]]


def _hook_type(handle: int) -> int:
    """The type of a unicorn hook: the first field of the struct its handle points to."""
    return ctypes.c_int.from_address(handle).value


def test_hook_types_read_from_the_engine_are_right() -> None:
    """What the tests below rely on: a hook handle's type reads back as added."""
    uc = Uc(UC_ARCH_X86, UC_MODE_32)
    handle = uc.hook_add(UC_HOOK_MEM_READ, lambda *_: None)
    assert _hook_type(handle) == UC_HOOK_MEM_READ
    uc.hook_del(handle)
    handle = uc.hook_add(UC_HOOK_MEM_WRITE, lambda *_: None)
    assert _hook_type(handle) == UC_HOOK_MEM_WRITE


def _memory_hooks(machine: Machine) -> list[int]:
    callbacks: dict[int, object] = machine.cpu.uc._callbacks  # type: ignore[attr-defined]
    return [h for h in callbacks if _hook_type(h) & MEMORY_HOOKS]


def _lapic(machine: Machine) -> LocalApic:
    return next(d for d in machine.devices if isinstance(d, LocalApic))


def _check_stepping(machine: Machine, step: int) -> int:
    """Run `machine` to its end in steps; at every stop no memory hook exists.  Returns
    the stops at which the LAPIC timer was counting."""
    counting = 0
    lapic = _lapic(machine)
    while True:
        stop = machine.run(machine.icount + step)
        if lapic.hot_registers():
            counting += 1
        assert _memory_hooks(machine) == [], stop
        if stop.reason is not StopReason.TARGET:
            assert stop.reason is StopReason.EXIT, stop
            return counting


def test_no_memory_hook_while_the_apic_guest_timer_counts() -> None:
    machine = Machine(MachineConfig(memory_mb=16), LiveInputs(clock=lambda: CLOCK_NS), [])
    try:
        machine.load(load_image(GUESTS / "apic.elf"))
        reads: Reads = []
        hooks: list[list[int]] = []
        _spy(machine, reads, lambda: hooks.append(_memory_hooks(machine)))
        assert _check_stepping(machine, 97) > 10  # it mostly waits in HLT for the timer
        assert len(reads) > 2  # the guest reads the current count: just before each...
        assert hooks == [[]] * len(reads)  # ...no memory hook
        assert machine.cpu.vtlb.device_reads >= len(reads)
    finally:
        machine.close()


def test_no_memory_hook_while_the_minikernel_timer_counts() -> None:
    disks = [None, OverlayDisk(BytesImage(slave_image()))]
    inputs = LiveInputs({0: FileSerialSource(SHORT_SESSION)}, lambda: CLOCK_NS)
    machine = Machine(MachineConfig(memory_mb=MEMORY_MB), inputs, [Capture()], disks)
    try:
        machine.load(load_image(GUESTS / "minikernel.elf"))
        assert _check_stepping(machine, STEP) > 10
    finally:
        machine.close()


def _spy(machine: Machine, reads: Reads, also: Callable[[], None] = lambda: None) -> None:
    """Note each value published for a guest read (the run loop's refresh)."""
    pages = machine._register_pages
    lapic = _lapic(machine)
    refresh = pages.refresh_hot_registers

    def noted() -> None:
        refresh()
        also()
        reads.append((machine.icount, machine.cpu.eip, lapic.read_register(TIMER_CURRENT)))

    pages.refresh_hot_registers = noted  # type: ignore[method-assign]


Run = tuple[Reads, bytes, str, int]


def _apic_reads(inputs: ExternalInputs, counter: str = "native") -> Run:
    out = Capture()
    machine = Machine(MachineConfig(memory_mb=16), inputs, [out], counter=COUNTERS[counter])
    reads: Reads = []
    try:
        machine.load(load_image(GUESTS / "apic.elf"))
        _spy(machine, reads)
        stop = machine.run()
        assert stop.reason is StopReason.EXIT, stop
        return reads, bytes(out.data), machine.state_hash(), stop.icount
    finally:
        machine.close()


@pytest.fixture(scope="module")
def straight() -> Run:
    return _apic_reads(LiveInputs(clock=lambda: CLOCK_NS))


def test_current_count_reads_are_equal_under_both_counters(
    straight: Run,
) -> None:
    reads = straight[0]
    assert len(reads) > 2
    assert len({value for _, _, value in reads}) > 2  # the count moves between reads
    assert _apic_reads(LiveInputs(clock=lambda: CLOCK_NS), "reference") == straight


def test_current_count_reads_are_equal_in_record_and_replays(tmp_path: Path) -> None:
    log = tmp_path / "apic.log"
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        recorder = Recorder(LiveInputs(), fd)
        recorded = _apic_reads(recorder)
        recorder.finish(recorded[3])
    finally:
        os.close(fd)
    for _ in range(2):
        with log.open("rb") as stream:
            assert _apic_reads(Player(stream, str(log))) == recorded


@pytest.fixture
def timeline(tmp_path: Path) -> Iterator[Timeline]:
    data = (GUESTS / "apic.elf").read_bytes()
    spec = GuestSpec("apic.elf", str(GUESTS / "apic.elf"), sha256(data))
    config = MachineConfig(memory_mb=16)
    trace = record(tmp_path / "trace", data, spec, config, LiveInputs(clock=lambda: CLOCK_NS))
    replay = Replay(trace.trace)
    line = Timeline(
        replay.machine, replay.player, replay.end, min_interval=replay.end // 16, adaptive=False
    )
    try:
        yield line
    finally:
        line.close()
        replay.close()


def test_current_count_reads_after_seeks_are_those_of_the_straight_run(
    timeline: Timeline, straight: Run
) -> None:
    reads: Reads = []
    _spy(timeline.machine, reads)
    end = timeline.end_icount
    timeline.seek(end)
    assert reads == [r for r in straight[0] if r[0] < end]
    for target in (end // 2, end // 5, end * 3 // 4):
        timeline.seek(target)
        reads.clear()
        timeline.seek(end)
        assert reads == [r for r in straight[0] if target <= r[0] < end], target


#: The LAPIC timer counting for ever (divide by 1, masked, periodic, initial 0xFFFFFFFF),
#: then READS reads of the current count stored one after the other at 0x10000, exit.
READS = 400
BUFFER = 0x10000
POLL_GUEST = (
    bytes.fromhex("c705e003e0fe0b000000c7052003e0fe00000300c7058003e0feffffffff")
    + bytes.fromhex("b9")
    + READS.to_bytes(4, "little")  # mov ecx, READS
    + bytes.fromhex("bf")
    + BUFFER.to_bytes(4, "little")  # mov edi, BUFFER
    + bytes.fromhex("a19003e0fe890783c7044975f3")  # mov eax, [TMCCT]; stosd-ish
    + bytes.fromhex("b000e6f4f4")  # exit
)


def _poll(counter: str, strides: bool) -> tuple[bytes, str, bool]:
    machine = Machine(
        MachineConfig(memory_mb=4),
        LiveInputs(clock=lambda: CLOCK_NS),
        [],
        counter=COUNTERS[counter],
    )
    hooked = False
    try:
        machine.load(parse_image(POLL_GUEST, "poll", ImageFormat.FLAT, load_address=0x100000))
        step = 1
        while True:
            stop = machine.run(machine.icount + step if strides else None)
            hooked |= machine._register_pages.hooked
            if stop.reason is not StopReason.TARGET:
                break
            step = step * 7 % 311 + 1  # uneven strides: stops before and after reads
        assert stop.reason is StopReason.EXIT, stop
        values = machine.cpu.read_physical(BUFFER, 4 * READS)
        return values, machine.state_hash(), hooked
    finally:
        machine.close()


def test_a_guest_polling_the_count_gets_the_same_values_both_ways() -> None:
    """Past BURST_READS refused reads the read hook takes over: the values read are the
    same under both counters, straight or stopped anywhere."""
    straight = _poll("native", strides=False)
    values = [int.from_bytes(straight[0][i : i + 4], "little") for i in range(0, 4 * READS, 4)]
    assert all(a > b for a, b in itertools.pairwise(values)), values[:8]
    assert straight[2]  # the hook took over (READS > BURST_READS)
    assert _poll("reference", strides=False) == straight
    assert _poll("native", strides=True)[:2] == straight[:2]
    assert _poll("reference", strides=True)[:2] == straight[:2]


def _minikernel_hash(session: bytes) -> tuple[str, bool, int]:
    disks = [None, OverlayDisk(BytesImage(slave_image()))]
    inputs = LiveInputs({0: FileSerialSource(session)}, lambda: CLOCK_NS)
    machine = Machine(MachineConfig(memory_mb=MEMORY_MB), inputs, [Capture()], disks)
    try:
        machine.load(load_image(GUESTS / "minikernel.elf"))
        stop = machine.run()
        assert stop.reason is StopReason.EXIT, stop
        return machine.state_hash(), machine._register_pages.hooked, stop.icount
    finally:
        machine.close()


def test_refused_reads_and_the_read_hook_give_the_same_minikernel_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The minikernel reads the LAPIC ID after every EOI: by default the read hook soon
    serves the page; with refused reads only, the same final state."""
    session = b"crc 20\nexit 0\n"
    hooked = _minikernel_hash(session)
    assert hooked[1]
    monkeypatch.setattr(regpages, "BURST_READS", 1 << 62)
    refused = _minikernel_hash(session)
    assert not refused[1]
    assert refused[0] == hooked[0] and refused[2] == hooked[2]

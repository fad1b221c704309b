"""The `paging` guest (Accessed/Dirty bits, CR0.WP, U/S and not-present faults from both
rings, a page-crossing fault, a ring-3 fetch fault, ring-3 segment loads, 4 MiB pages,
INVLPG, CR3 reloads) through rdebug's page walk: QEMU's output, exact fault positions
under both counters, the same state however the run is cut, recorded or sought.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rdebug.host.sources import LiveInputs
from rdebug.machine.loader import load_image
from rdebug.machine.machine import Machine, StopReason
from rdebug.replay.player import Ending, Player
from rdebug.replay.recorder import Recorder
from rdebug.replay.recording import record
from rdebug.replay.timeline import Timeline
from rdebug.replay.trace import GuestSpec, Trace, sha256
from tests.conftest import EXPECTED, GUESTS, Capture, Replay, make_machine, straight_hash
from tests.integration.test_apic import CONFIG

CLOCK_NS = 1_764_000_000_000_000_000


def _run_straight(inputs: LiveInputs | Recorder | Player) -> tuple[StopReason, int, bytes, str]:
    out = Capture()
    machine = Machine(CONFIG, inputs, [out])
    try:
        machine.load(load_image(GUESTS / "paging.elf"))
        stop = machine.run()
        return stop.reason, stop.icount, bytes(out.data), machine.state_hash()
    finally:
        machine.close()


def test_paging_guest_prints_what_qemu_printed() -> None:
    machine, out = make_machine("paging")
    try:
        stop = machine.run()
        fills = machine.cpu.vtlb.fills
    finally:
        machine.close()
    assert stop.reason is StopReason.EXIT and stop.exit_code == 1, stop
    assert bytes(out.data) == (EXPECTED / "paging.txt").read_bytes()
    assert fills > 0  # the page walk is rdebug's, not unicorn's


def _faults(counter: str) -> tuple[list[tuple[object, ...]], str]:
    """Every entry into the #PF handler: where, at which icount, with which registers."""
    machine, _ = make_machine("paging", counter=counter, clock_ns=CLOCK_NS)
    stops: list[tuple[object, ...]] = []
    try:
        machine.add_breakpoint(machine.symbols["page_fault"])
        while True:
            stop = machine.run()
            regs = tuple(sorted(machine.cpu.registers().items()))
            stops.append((stop.reason, stop.icount, regs))
            if stop.reason is not StopReason.BREAKPOINT:
                break
        return stops, machine.state_hash()
    finally:
        machine.close()


def test_native_and_reference_counters_agree_on_every_page_fault() -> None:
    native = _faults("native")
    reference = _faults("reference")
    assert native[0][-1][0] is StopReason.EXIT
    assert sum(1 for s in native[0] if s[0] is StopReason.BREAKPOINT) == 12
    assert native == reference


def test_stopping_anywhere_does_not_change_the_run() -> None:
    straight = _run_straight(LiveInputs(clock=lambda: CLOCK_NS))
    machine, out = make_machine("paging", clock_ns=CLOCK_NS)
    try:
        step = 1
        while (stop := machine.run(machine.icount + step)).reason is StopReason.TARGET:
            step = step * 7 % 997 + 1  # uneven strides: stops inside blocks, at faults
        assert (stop.reason, stop.icount, bytes(out.data), machine.state_hash()) == straight
    finally:
        machine.close()


def test_record_then_replay_twice_gives_the_same_state(tmp_path: Path) -> None:
    log = tmp_path / "paging.log"
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        recorder = Recorder(LiveInputs(), fd)
        recorded = _run_straight(recorder)
        recorder.finish(recorded[1])
    finally:
        os.close(fd)
    assert recorded[0] is StopReason.EXIT
    for _ in range(2):
        with log.open("rb") as stream:
            player = Player(stream, str(log))
            replayed = _run_straight(player)
            player.verify_end(replayed[1], "stopped")
        assert replayed == recorded
        assert player.ending is Ending.SHUTDOWN


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> Trace:
    data = (GUESTS / "paging.elf").read_bytes()
    spec = GuestSpec("paging.elf", str(GUESTS / "paging.elf"), sha256(data))
    folder = tmp_path_factory.mktemp("paging") / "trace"
    return record(folder, data, spec, CONFIG, LiveInputs(clock=lambda: CLOCK_NS)).trace


def test_seeks_in_any_order_match_straight_replays(trace: Trace) -> None:
    replay = Replay(trace)
    line = Timeline(
        replay.machine,
        replay.player,
        replay.end,
        min_interval=max(31, replay.end // 16),
        adaptive=False,
    )
    try:
        end = line.end_icount
        line.seek(end)
        for target in [end // 2, 7, end - 1, end // 3, 0, end // 2 + 1, end * 5 // 7, end]:
            line.seek(target)
            assert line.icount == target
            assert line.machine.state_hash() == straight_hash(trace, target), target
    finally:
        line.close()
        replay.close()


def test_pae_paging_stops_the_machine_with_a_clear_message() -> None:
    machine, _ = make_machine("hello")
    try:
        cpu = machine.cpu
        cpu.write_physical(0x9000, bytes(4096))  # a page directory pointer table
        cpu.write("cr3", 0x9000)
        cpu.write("cr4", cpu.read("cr4") | 0x20)  # PAE
        cpu.write("cr0", cpu.read("cr0") | 0x80000000)  # PG
        machine.counter.invalidate()
        stop = machine.run()
    finally:
        machine.close()
    assert stop.reason is StopReason.FAULT
    assert stop.detail == "PAE paging is not supported"

"""The `apic` guest (MP table, LAPIC timer, IOAPIC, IPIs, TPR, priorities) under run,
both counters, record/replay and seek: the same output as QEMU, the same state everywhere.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rdebug.host.sources import LiveInputs
from rdebug.machine.inputs import ExternalInputs
from rdebug.machine.loader import load_image
from rdebug.machine.machine import Machine, MachineConfig, StopEvent, StopReason
from rdebug.replay.player import Ending, Player
from rdebug.replay.recorder import Recorder
from rdebug.replay.recording import record
from rdebug.replay.timeline import Timeline
from rdebug.replay.trace import GuestSpec, Trace, sha256
from tests.conftest import (
    COUNTERS,
    EXPECTED,
    GUESTS,
    Capture,
    Replay,
    make_machine,
    straight_hash,
)

CONFIG = MachineConfig(memory_mb=16)
STEP = 7919  # a prime: stops fall at every phase of the guest's loops
CLOCK_NS = 1_764_000_000_000_000_000


def _run(inputs: ExternalInputs, counter: str = "native") -> tuple[StopEvent, bytes, str]:
    out = Capture()
    machine = Machine(MachineConfig(memory_mb=16), inputs, [out], counter=COUNTERS[counter])
    try:
        machine.load(load_image(GUESTS / "apic.elf"))
        stop = machine.run()
        return stop, bytes(out.data), machine.state_hash()
    finally:
        machine.close()


def test_apic_guest_prints_what_qemu_printed() -> None:
    stop, out, _ = _run(LiveInputs())
    assert stop.reason is StopReason.EXIT and stop.exit_code == 1, stop
    assert out == (EXPECTED / "apic.txt").read_bytes()


def _stepped(counter: str) -> tuple[list[tuple[object, ...]], str]:
    machine, _ = make_machine("apic", counter=counter, clock_ns=CLOCK_NS)
    stops: list[tuple[object, ...]] = []
    try:
        machine.add_breakpoint(machine.symbols["isr_dispatch"])
        while True:
            stop = machine.run(machine.icount + STEP)
            regs = tuple(sorted(machine.cpu.registers().items()))
            stops.append((stop.reason, stop.icount, regs))
            if stop.reason not in (StopReason.TARGET, StopReason.BREAKPOINT):
                break
            assert len(stops) < 20_000
        return stops, machine.state_hash()
    finally:
        machine.close()


def test_native_and_reference_counters_agree_on_apic_stores_and_interrupts() -> None:
    native = _stepped("native")
    reference = _stepped("reference")
    assert native[0][-1][0] is StopReason.EXIT
    # 5 periodic, 1 one-shot, 3 PIT, 1 self-IPI, 1 after the TPR, 4 in priority order
    assert sum(1 for s in native[0] if s[0] is StopReason.BREAKPOINT) == 15
    assert native == reference


def test_stopping_anywhere_does_not_change_the_run() -> None:
    straight = _run(LiveInputs(clock=lambda: CLOCK_NS))
    machine, out = make_machine("apic", clock_ns=CLOCK_NS)
    try:
        step = 1
        while (stop := machine.run(machine.icount + step)).reason is StopReason.TARGET:
            step = step * 3 % 1013 + 1  # uneven strides: stops inside blocks and stores
        assert (stop.reason, bytes(out.data), machine.state_hash()) == (
            straight[0].reason,
            straight[1],
            straight[2],
        )
    finally:
        machine.close()


def test_record_then_replay_twice_gives_the_same_state(tmp_path: Path) -> None:
    log = tmp_path / "apic.log"
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        recorder = Recorder(LiveInputs(), fd)
        recorded = _run(recorder)
        recorder.finish(recorded[0].icount)
    finally:
        os.close(fd)
    assert recorded[0].reason is StopReason.EXIT
    for _ in range(2):
        with log.open("rb") as stream:
            player = Player(stream, str(log))
            replayed = _run(player)
            player.verify_end(replayed[0].icount, "stopped")
        assert replayed == recorded
        assert player.ending is Ending.SHUTDOWN


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> Trace:
    data = (GUESTS / "apic.elf").read_bytes()
    spec = GuestSpec("apic.elf", str(GUESTS / "apic.elf"), sha256(data))
    folder = tmp_path_factory.mktemp("apic") / "trace"
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
        assert len(line.store) > 3
        for target in [end // 2, 7, end - 1, end // 3, 0, end // 2 + 1, end * 5 // 7, end]:
            line.seek(target)
            assert line.icount == target
            assert line.machine.state_hash() == straight_hash(trace, target), target
    finally:
        line.close()
        replay.close()

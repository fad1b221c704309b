"""The `sysenter` guest: SYSENTER/SYSEXIT round trips between ring 3 and ring 0 and the
#GP(0) of a SYSENTER while IA32_SYSENTER_CS is 0 (unicorn 2.1.4 does not emulate
SYSENTER: machine/sysenter.py does), with the output QEMU gave; both counters agree on
every stop; record and replay give the same state.
"""

from __future__ import annotations

import os
from pathlib import Path

from rdebug.host.sources import LiveInputs
from rdebug.machine.inputs import ExternalInputs
from rdebug.machine.loader import load_image
from rdebug.machine.machine import Machine, MachineConfig, StopEvent, StopReason
from rdebug.replay.player import Player
from rdebug.replay.recorder import Recorder
from tests.conftest import COUNTERS, EXPECTED, GUESTS, Capture, make_machine


def _run(inputs: ExternalInputs, counter: str = "native") -> tuple[StopEvent, bytes, str]:
    out = Capture()
    machine = Machine(MachineConfig(memory_mb=16), inputs, [out], counter=COUNTERS[counter])
    try:
        machine.load(load_image(GUESTS / "sysenter.elf"))
        stop = machine.run()
        return stop, bytes(out.data), machine.state_hash()
    finally:
        machine.close()


def test_sysenter_guest_prints_what_qemu_printed() -> None:
    for counter in ("native", "reference"):
        stop, out, _ = _run(LiveInputs(), counter)
        assert out.decode() == (EXPECTED / "sysenter.txt").read_text()
        assert stop.reason is StopReason.EXIT and stop.exit_code == 1, stop


def test_counters_agree_at_every_sysenter_and_sysexit() -> None:
    runs = []
    for counter in ("native", "reference"):
        machine, _ = make_machine("sysenter", counter=counter)
        stops = []
        try:
            for name in ("sysenter_entry", "sysenter_call", "general_protection"):
                machine.add_breakpoint(machine.symbols[name])
            while (stop := machine.run(machine.icount + 997)).reason in (
                StopReason.TARGET,
                StopReason.BREAKPOINT,
            ):
                stops.append(
                    (stop.reason, stop.icount, tuple(sorted(machine.cpu.registers().items())))
                )
            stops.append((stop.reason, stop.icount, ()))
            runs.append((stops, machine.state_hash()))
        finally:
            machine.close()
    assert sum(1 for s in runs[0][0] if s[0] is StopReason.BREAKPOINT) == 1 + 4 + 4
    assert runs[0] == runs[1]


def test_record_then_replay_gives_the_same_state(tmp_path: Path) -> None:
    log = tmp_path / "sysenter.log"
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        recorder = Recorder(LiveInputs(), fd)
        recorded = _run(recorder)
        recorder.finish(recorded[0].icount)
    finally:
        os.close(fd)
    for _ in range(2):
        with log.open("rb") as stream:
            player = Player(stream, str(log))
            assert _run(player) == recorded

"""The PIT's idle expiries taken by the native counter (machine/ticker.py) against
every expiry taken in Python: the same stops, registers, output and final state, and
the same log, byte for byte, which replays either way.

`pitmask` masks IRQ0 at the 8259 for long busy loops (idle ticks, taken in C) and
unmasks it in between with a plain OUT in the middle of straight-line code (the ticks
then count); then it programs the PIT anew in the run that took a slower period's idle
ticks and unmasks IRQ0 at once (the new count's ticks must come, not the slow period's
next one: the PIT takes back its schedule before that access); the minikernel never
unmasks it (the LAPIC timer drives it); `timer` takes every tick (never idle); `crc`
never programs the PIT nor the 8259.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rdebug.host.sources import LiveInputs
from rdebug.machine.inputs import ExternalInputs
from rdebug.machine.loader import load_image
from rdebug.machine.machine import Machine, MachineConfig, StopReason
from rdebug.machine.ticker import NativeTicker
from tests.conftest import GUESTS, Capture, make_machine, record_log, replay_log, stride_walk

CLOCK_NS = 1_764_000_000_000_000_000
SESSIONS = {"minikernel": b"crc 30\nexit 0\n"}
#: guests that leave the PIT's IRQ0 masked while they compute
IDLE_TICKS = {"pitmask", "minikernel", "crc"}


def _walk(guest: str) -> tuple[list[tuple[object, ...]], str, int]:
    machine, out = make_machine(guest, serial_input=SESSIONS.get(guest), clock_ns=CLOCK_NS)
    try:
        # uneven strides: before, at and after ticks
        stops = stride_walk(machine, out, lambda step: step * 7 % 90_011 + 1)
        ticker = machine.native_ticker
        return stops, machine.state_hash(), 0 if ticker is None else ticker.taken
    finally:
        machine.close()


@pytest.mark.parametrize("guest", ["pitmask", "minikernel", "timer", "crc"])
def test_idle_pit_expiries_in_c_give_the_python_run(
    guest: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    native = _walk(guest)
    monkeypatch.setattr(NativeTicker, "default_enabled", False)
    python = _walk(guest)
    assert native[0][-2][0] is StopReason.EXIT
    assert python[2] == 0
    if guest in IDLE_TICKS:
        assert native[2] > 0
    else:
        assert native[2] == 0  # an unmasked tick is never idle
    assert native[:2] == python[:2]
    if guest == "pitmask":
        out = native[0][-1][0]
        assert isinstance(out, bytes) and b"pitmask done" in out
        assert int(out.split(b"done: ")[1].split()[0]) > 8  # the unmasked stretches' ticks
        # ~3 ms at ~20 kHz from the new count (the slow period's next tick: 0 or 1)
        assert int(out.split(b"after a new count: ")[1].split()[0]) > 20


Result = tuple[StopReason, int, bytes, str, int]


def _run(inputs: ExternalInputs) -> Result:
    out = Capture()
    machine = Machine(MachineConfig(memory_mb=16), inputs, [out])
    try:
        machine.load(load_image(GUESTS / "pitmask.elf"))
        stop = machine.run()
        ticker = machine.native_ticker
        taken = 0 if ticker is None else ticker.taken
        return stop.reason, stop.icount, bytes(out.data), machine.state_hash(), taken
    finally:
        machine.close()


def test_idle_pit_expiries_in_c_record_the_same_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    native_log, python_log = tmp_path / "native.log", tmp_path / "python.log"
    native = record_log(native_log, LiveInputs(clock=lambda: CLOCK_NS), _run)
    native_replay = replay_log(native_log, _run)
    monkeypatch.setattr(NativeTicker, "default_enabled", False)
    python = record_log(python_log, LiveInputs(clock=lambda: CLOCK_NS), _run)
    python_replay_of_native = replay_log(native_log, _run)
    assert native[0] is StopReason.EXIT
    assert native[4] > 0 and native_replay[4] > 0 and python[4] == 0
    assert native_log.read_bytes() == python_log.read_bytes()
    assert native[:4] == python[:4] == native_replay[:4] == python_replay_of_native[:4]

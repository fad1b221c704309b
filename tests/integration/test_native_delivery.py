"""Interrupt delivery in C (rd_deliver) against interrupts.py's Python delivery: every
guest that takes interrupts and exceptions from ring 0 and ring 3 runs the same way,
stop for stop, register for register, to the same final state, with either.
"""

from __future__ import annotations

import pytest

from rdebug.machine.machine import StopReason
from rdebug.machine.vtlb import VirtualTlb
from tests.conftest import make_machine

CLOCK_NS = 1_764_000_000_000_000_000
SESSIONS = {"minikernel": b"crc 30\nexit 0\n"}


def _walk(guest: str) -> tuple[list[tuple[object, ...]], str, int]:
    machine, out = make_machine(guest, serial_input=SESSIONS.get(guest), clock_ns=CLOCK_NS)
    stops: list[tuple[object, ...]] = []
    try:
        step = 1
        while True:
            stop = machine.run(machine.icount + step)
            stops.append((stop.reason, stop.icount, tuple(sorted(machine.cpu.registers().items()))))
            if stop.reason is not StopReason.TARGET:
                break
            step = step * 5 % 60_013 + 1  # uneven strides: inside handlers and user code
        stops.append((bytes(out.data),))
        return stops, machine.state_hash(), machine.cpu.vtlb.delivered
    finally:
        machine.close()


@pytest.mark.parametrize("guest", ["usermode", "paging", "apic", "timer", "minikernel"])
def test_native_delivery_gives_the_python_delivery_run(
    guest: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    native = _walk(guest)
    monkeypatch.setattr(VirtualTlb, "deliver", lambda self, *args: False)
    python = _walk(guest)
    assert native[0][-2][0] is StopReason.EXIT
    assert native[2] > 0 and python[2] == 0  # each path was the one taken
    assert native[:2] == python[:2]

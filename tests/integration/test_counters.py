"""The native counter agrees exactly with the reference counter on every sample guest.

Both machines run the same guest with the same inputs, stopping every `STEP`
instructions and at every breakpoint hit; at each stop icount, EIP and every register
must be equal, and the final state hashes (registers + RAM + devices + time) too.
"""

from __future__ import annotations

import pytest

from rdebug.machine.machine import Machine, StopEvent, StopReason
from tests.conftest import make_machine

STEP = 7919  # a prime, so stops fall at every phase of every loop
INPUTS = {"echo": b"hello\rq"}
#: Shorter workloads than the default build (the reference counter is slow).
PASSES = {"crc": ("crc_passes", 1), "memcopy": ("memcopy_passes", 1)}
CLOCK_NS = 1_764_000_000_000_000_000
BREAKPOINTS = {
    "timer": "isr_dispatch",
    "usermode": "isr_dispatch",
    "echo": "isr_dispatch",
    "disk": "isr_dispatch",
}


def _trace(guest: str, counter: str) -> tuple[list[tuple[object, ...]], str, bytes]:
    machine, out = make_machine(
        guest, counter=counter, serial_input=INPUTS.get(guest), clock_ns=CLOCK_NS
    )
    stops: list[tuple[object, ...]] = []
    try:
        if guest in PASSES:
            symbol, passes = PASSES[guest]
            machine.cpu.write_physical(machine.symbols[symbol], passes.to_bytes(4, "little"))
        if guest in BREAKPOINTS:
            machine.add_breakpoint(machine.symbols[BREAKPOINTS[guest]])
        while True:
            stop = machine.run(machine.icount + STEP)
            stops.append(_describe(machine, stop))
            if stop.reason not in (StopReason.TARGET, StopReason.BREAKPOINT):
                break
            assert len(stops) < 10_000
        return stops, machine.state_hash(), bytes(out.data)
    finally:
        machine.close()


def _describe(machine: Machine, stop: StopEvent) -> tuple[object, ...]:
    regs = machine.cpu.registers()
    return (stop.reason, stop.icount, stop.exit_code, tuple(sorted(regs.items())))


@pytest.mark.parametrize(
    "guest", ["hello", "timer", "echo", "clock", "usermode", "crc", "memcopy", "disk"]
)
def test_native_and_reference_counters_agree(guest: str) -> None:
    native = _trace(guest, "native")
    reference = _trace(guest, "reference")
    assert native[0][-1][0] is StopReason.EXIT
    assert len(native[0]) == len(reference[0])
    for mine, theirs in zip(native[0], reference[0], strict=True):
        assert mine == theirs
    assert native[1:] == reference[1:]

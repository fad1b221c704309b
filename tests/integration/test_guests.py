"""Every sample guest runs and prints what its source says (the bytes QEMU printed)."""

from __future__ import annotations

import re

import pytest

from rdebug.machine.machine import StopReason
from tests.conftest import EXPECTED, make_machine

INPUTS = {"echo": b"abcq"}


@pytest.mark.parametrize("guest", ["hello", "timer", "echo", "usermode", "crc", "memcopy", "disk"])
def test_guest_prints_what_qemu_printed(guest: str) -> None:
    machine, out = make_machine(guest, serial_input=INPUTS.get(guest))
    try:
        stop = machine.run()
    finally:
        machine.close()
    assert stop.reason is StopReason.EXIT, stop
    assert stop.exit_code == 1
    expected = (EXPECTED / f"{guest}.txt").read_bytes()
    # the one line that differs: the disk's IDENTIFY model string
    expected = expected.replace(b"QEMU HARDDISK", b"RDEBUG HARDDISK")
    assert bytes(out.data) == expected


def test_clock_reads_the_rtc_and_a_virtual_tsc() -> None:
    machine, out = make_machine("clock")
    try:
        stop = machine.run()
    finally:
        machine.close()
    assert stop.exit_code == 1
    text = out.data.decode()
    assert re.fullmatch(
        r"rtc: 20\d\d-\d\d-\d\d \d\d:\d\d:\d\d\ntsc delta: 768512\ntsc monotonic: yes\n", text
    ), text


@pytest.mark.parametrize("guest", ["timer", "echo", "clock"])
def test_same_run_twice_gives_the_same_state(guest: str) -> None:
    results = []
    for _ in range(2):
        machine, out = make_machine(
            guest, serial_input=INPUTS.get(guest), clock_ns=1_764_000_000_123_456_789
        )
        try:
            stop = machine.run()
            results.append((stop, bytes(out.data), machine.state_hash()))
        finally:
            machine.close()
    assert results[0][0].reason is StopReason.EXIT
    assert results[0] == results[1]

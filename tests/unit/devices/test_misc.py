"""Port 0x80 and isa-debug-exit."""

from __future__ import annotations

import pytest

from rdebug.machine.devices.misc import DebugExit, PostPort
from tests.unit.devices.conftest import FakeContext


@pytest.mark.parametrize(
    ("port", "size", "value", "code"),
    [
        (0xF4, 1, 0x00, 1),
        (0xF4, 1, 0x10, 0x21),
        (0xF4, 1, 0x1FF, 0x1FF),  # an OUTB carries 8 bits only
        (0xF4, 2, 0x1234, 0x2469),
        (0xF4, 4, 0x7FFFFFFF, 0xFFFFFFFF),
        (0xF7, 1, 0x03, 7),  # any port of the 4-byte range
    ],
)
def test_debug_exit_code(ctx: FakeContext, port: int, size: int, value: int, code: int) -> None:
    device = DebugExit(ctx)
    device.io_write(port, size, value)
    assert ctx.exits == [code]


def test_debug_exit_ports_and_reads(ctx: FakeContext) -> None:
    device = DebugExit(ctx, iobase=0x501, iosize=2)
    assert device.ports == (range(0x501, 0x503),)
    assert DebugExit(ctx).ports == (range(0xF4, 0xF8),)
    assert device.io_read(0x501, 1) == 0xFF
    assert device.io_read(0x501, 2) == 0xFFFF
    assert ctx.exits == []


def test_post_port_accepts_writes_and_reads_ones(ctx: FakeContext) -> None:
    device = PostPort(ctx)
    assert device.ports == (range(0x80, 0x81),)
    device.io_write(0x80, 1, 0x42)
    assert device.io_read(0x80, 1) == 0xFF
    assert device.io_read(0x80, 4) == 0xFFFFFFFF
    assert device.save_state() == {}
    assert ctx.irq_calls == [] and ctx.exits == []

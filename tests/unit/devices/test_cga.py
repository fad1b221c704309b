"""CGA I/O registers: CRTC index/data read back, mode/colour registers, status timing."""

from __future__ import annotations

import pytest

from rdebug.machine.devices.cga import (
    FRAME_NS,
    HSYNC_NS,
    TEXT_80X25,
    VRETRACE_NS,
    Cga,
)
from tests.unit.devices.conftest import FakeContext


@pytest.fixture
def cga(ctx: FakeContext) -> Cga:
    return Cga(ctx)


def crtc_read(cga: Cga, index: int) -> int:
    cga.io_write(0x3D4, 1, index)
    return cga.io_read(0x3D5, 1)


def test_power_on_registers_are_a_text_mode(cga: Cga) -> None:
    assert [crtc_read(cga, i) for i in range(16)] == list(TEXT_80X25[:16])
    assert cga.io_read(0x3D8, 1) == 0x29


def test_cursor_as_a_kernel_moves_it(cga: Cga) -> None:
    # xv6's cgaputc: index 14 / 15 for the high / low byte of the position.
    pos = 80 * 3 + 17
    cga.io_write(0x3D4, 1, 14)
    cga.io_write(0x3D5, 1, pos >> 8)
    cga.io_write(0x3D4, 1, 15)
    cga.io_write(0x3D5, 1, pos & 0xFF)
    assert crtc_read(cga, 14) << 8 | crtc_read(cga, 15) == pos
    assert cga.cursor() == pos
    assert cga.io_read(0x3D4, 1) == 15


def test_word_write_sets_index_then_data(cga: Cga) -> None:
    cga.io_write(0x3D4, 2, 0x1234 << 8 | 12)  # start address high = 0x34
    assert crtc_read(cga, 12) == 0x34


@pytest.mark.parametrize("index", [16, 17, 18, 31])
def test_light_pen_and_missing_registers_read_zero(cga: Cga, index: int) -> None:
    cga.io_write(0x3D4, 1, index)
    cga.io_write(0x3D5, 1, 0x77)
    assert crtc_read(cga, index) == 0


def test_never_reads_ff_from_the_crtc(cga: Cga) -> None:
    assert all(crtc_read(cga, i) != 0xFF for i in range(32))


def test_status_follows_virtual_time(ctx: FakeContext, cga: Cga) -> None:
    ctx.now = 0
    assert cga.io_read(0x3DA, 1) == 0x00
    ctx.now = HSYNC_NS // 2
    assert cga.io_read(0x3DA, 1) == 0x01
    ctx.now = FRAME_NS - VRETRACE_NS
    assert cga.io_read(0x3DA, 1) == 0x09
    ctx.now = FRAME_NS
    assert cga.io_read(0x3DA, 1) & 0x08 == 0


def test_state_round_trip(ctx: FakeContext, cga: Cga) -> None:
    cga.io_write(0x3D4, 1, 14)
    cga.io_write(0x3D5, 1, 0x07)
    cga.io_write(0x3D9, 1, 0x11)
    state = cga.save_state()
    twin = Cga(FakeContext())
    twin.load_state(state)
    assert twin.save_state() == state
    assert twin.cursor() == 0x700
    with pytest.raises(TypeError):
        twin.load_state({**state, "crtc": b"\x00"})

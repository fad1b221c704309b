"""i8042: controller commands, keyboard and mouse command sets, host input pacing, IRQs."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest

from rdebug.machine.devices.i8042 import (
    BYTE_GAP_NS,
    I8042,
    INITIAL_COMMAND_BYTE,
    FastA20Port,
)
from tests.unit.devices.conftest import FakeContext

DATA, STATUS = 0x60, 0x64


@pytest.fixture
def kbc(ctx: FakeContext) -> I8042:
    device = I8042(ctx)
    device.reset()
    return device


def command(kbc: I8042, value: int, data: int | None = None) -> None:
    kbc.io_write(STATUS, 1, value)
    if data is not None:
        kbc.io_write(DATA, 1, data)


def drain(ctx: FakeContext, kbc: I8042) -> list[int]:
    """Every byte the controller has to give, read as a polling driver does."""
    out: list[int] = []
    for _ in range(1000):
        if not kbc.io_read(STATUS, 1) & 0x01:
            if ctx.deadline(kbc) is None:
                return out
            ctx.advance_to(ctx.deadline(kbc) or 0)
            continue
        out.append(kbc.io_read(DATA, 1))
    raise AssertionError("the controller never runs dry")


def to_aux(ctx: FakeContext, kbc: I8042, *values: int) -> list[int]:
    out: list[int] = []
    for value in values:
        command(kbc, 0xD4, value)
        out += drain(ctx, kbc)
    return out


def test_power_on_status_and_command_byte(ctx: FakeContext, kbc: I8042) -> None:
    assert kbc.io_read(STATUS, 1) == 0x14  # unlocked, system flag
    command(kbc, 0x20)
    assert kbc.io_read(STATUS, 1) == 0x1D  # OBF, A2 (last write was a command)
    assert ctx.level(1)  # any byte for the keyboard side interrupts, replies too
    assert drain(ctx, kbc) == [INITIAL_COMMAND_BYTE]
    assert not ctx.level(1)


def test_command_byte_write_and_ram(ctx: FakeContext, kbc: I8042) -> None:
    command(kbc, 0x60, 0x03)
    command(kbc, 0x20)
    assert drain(ctx, kbc) == [0x03]
    assert kbc.io_read(STATUS, 1) & 0x04 == 0  # system flag follows the command byte
    command(kbc, 0x65, 0x5A)
    command(kbc, 0x25)
    assert drain(ctx, kbc) == [0x5A]


@pytest.mark.parametrize(
    ("cmd", "reply"), [(0xAA, [0x55]), (0xAB, [0x00]), (0xA9, [0x00]), (0xC0, [0x80])]
)
def test_controller_tests(ctx: FakeContext, kbc: I8042, cmd: int, reply: list[int]) -> None:
    command(kbc, cmd)
    assert drain(ctx, kbc) == reply
    command(kbc, 0x20)
    assert drain(ctx, kbc) == [INITIAL_COMMAND_BYTE]  # the keyboard still works after


def test_interface_enable_bits(ctx: FakeContext, kbc: I8042) -> None:
    command(kbc, 0xAD)
    command(kbc, 0xA8)
    command(kbc, 0x20)
    assert drain(ctx, kbc) == [(INITIAL_COMMAND_BYTE | 0x10) & ~0x20]
    command(kbc, 0xAE)
    command(kbc, 0xA7)
    command(kbc, 0x20)
    assert drain(ctx, kbc) == [INITIAL_COMMAND_BYTE]


def test_output_port_and_a20(ctx: FakeContext, kbc: I8042) -> None:
    command(kbc, 0xD0)
    assert drain(ctx, kbc) == [0x03]
    command(kbc, 0xD1, 0x01)  # A20 off, no reset
    command(kbc, 0xD0)
    assert drain(ctx, kbc) == [0x01]
    command(kbc, 0xDF)
    command(kbc, 0xD0)
    assert drain(ctx, kbc) == [0x03]
    assert ctx.exits == []


@pytest.mark.parametrize("how", ["pulse", "output-port"])
def test_reset_powers_off(ctx: FakeContext, kbc: I8042, how: str) -> None:
    if how == "pulse":
        command(kbc, 0xFE)
    else:
        command(kbc, 0xD1, 0x02)
    assert ctx.exits == [0]


def test_pulse_without_bit0_is_ignored(ctx: FakeContext, kbc: I8042) -> None:
    command(kbc, 0xFF)
    assert ctx.exits == []


def test_fast_a20_port(ctx: FakeContext) -> None:
    port = FastA20Port(ctx)
    assert port.io_read(0x92, 1) == 0x02
    port.io_write(0x92, 1, 0x00)
    assert port.io_read(0x92, 1) == 0x00
    assert ctx.exits == []
    port.io_write(0x92, 1, 0x03)
    assert ctx.exits == [0]


# -- the keyboard -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "reply"),
    [
        ([0xFF], [0xFA, 0xAA]),
        ([0xF4], [0xFA]),
        ([0xF5], [0xFA]),
        ([0xED, 0x07], [0xFA, 0xFA]),
        ([0xF0, 0x00], [0xFA, 0xFA, 0x41]),  # scan set 2, translated
        ([0xF0, 0x01], [0xFA, 0xFA]),
        ([0xF2], [0xFA, 0xAB, 0x41]),
        ([0xEE], [0xEE]),
        ([0xF3, 0x20], [0xFA, 0xFA]),
        ([0x12], [0xFE]),
    ],
)
def test_keyboard_commands(ctx: FakeContext, kbc: I8042, sent: list[int], reply: list[int]) -> None:
    got: list[int] = []
    for value in sent:
        kbc.io_write(DATA, 1, value)
        got += drain(ctx, kbc)
    assert got == reply


def test_keyboard_bytes_raise_irq1_when_enabled(ctx: FakeContext, kbc: I8042) -> None:
    kbc.io_write(DATA, 1, 0xF4)
    assert ctx.level(1)
    assert kbc.io_read(DATA, 1) == 0xFA
    assert not ctx.level(1)
    command(kbc, 0x60, INITIAL_COMMAND_BYTE & ~0x01)
    kbc.io_write(DATA, 1, 0xF4)
    assert kbc.io_read(STATUS, 1) & 0x01
    assert not ctx.level(1)  # polled mode


def test_key_input_make_and_break_codes(ctx: FakeContext, kbc: I8042) -> None:
    kbc.key_input(0x1E, True)  # A
    kbc.key_input(0x1E, False)
    kbc.key_input(0xE01D, True)  # right Ctrl
    kbc.key_input(0xE01D, False)
    assert drain(ctx, kbc) == [0x1E, 0x9E, 0xE0, 0x1D, 0xE0, 0x9D]


def test_host_bytes_are_paced_each_with_its_own_edge(ctx: FakeContext, kbc: I8042) -> None:
    ctx.now = 1000
    kbc.key_input(0x10, True)
    kbc.key_input(0x10, False)
    assert ctx.rises(1) == [1000]
    ctx.now = 5000
    assert kbc.io_read(DATA, 1) == 0x10
    assert not ctx.level(1)
    assert ctx.deadline(kbc) == 5000 + BYTE_GAP_NS
    ctx.advance_to(5000 + BYTE_GAP_NS - 1)
    assert not kbc.io_read(STATUS, 1) & 0x01
    ctx.advance_to(5000 + BYTE_GAP_NS)
    assert ctx.rises(1) == [1000, 5000 + BYTE_GAP_NS]
    assert kbc.io_read(DATA, 1) == 0x90


def test_keys_wait_while_the_keyboard_is_disabled(ctx: FakeContext, kbc: I8042) -> None:
    command(kbc, 0xAD)
    kbc.key_input(0x02, True)
    assert drain(ctx, kbc) == []
    assert kbc.host_pending()
    command(kbc, 0xAE)
    assert drain(ctx, kbc) == [0x02]
    kbc.io_write(DATA, 1, 0xF5)  # the keyboard stops scanning
    assert drain(ctx, kbc) == [0xFA]
    kbc.key_input(0x03, True)
    assert drain(ctx, kbc) == []
    kbc.io_write(DATA, 1, 0xF4)
    assert drain(ctx, kbc) == [0xFA, 0x03]
    assert not kbc.host_pending()


def test_replies_come_before_typed_keys(ctx: FakeContext, kbc: I8042) -> None:
    kbc.key_input(0x02, True)
    kbc.key_input(0x03, True)  # 0x02 is in the buffer, 0x03 waits
    command(kbc, 0x20)
    assert drain(ctx, kbc) == [0x02, INITIAL_COMMAND_BYTE, 0x03]


# -- the mouse --------------------------------------------------------------------------


def enable_mouse(ctx: FakeContext, kbc: I8042) -> None:
    command(kbc, 0xA8)
    command(kbc, 0x60, INITIAL_COMMAND_BYTE & ~0x20 | 0x02)
    assert to_aux(ctx, kbc, 0xF4) == [0xFA]


def test_mouse_commands(ctx: FakeContext, kbc: I8042) -> None:
    command(kbc, 0xA8)
    assert to_aux(ctx, kbc, 0xFF) == [0xFA, 0xAA, 0x00]
    assert to_aux(ctx, kbc, 0xF2) == [0xFA, 0x00]
    assert to_aux(ctx, kbc, 0xF3, 40) == [0xFA, 0xFA]
    assert to_aux(ctx, kbc, 0xE8, 3) == [0xFA, 0xFA]
    assert to_aux(ctx, kbc, 0xE7, 0xF4) == [0xFA, 0xFA]
    assert to_aux(ctx, kbc, 0xE9) == [0xFA, 0x30, 3, 40]  # enabled, 2:1 scaling
    assert to_aux(ctx, kbc, 0xF6, 0xE9) == [0xFA, 0xFA, 0x00, 2, 100]
    assert to_aux(ctx, kbc, 0x00) == [0xFE]


def test_mouse_bytes_raise_irq12_and_set_auxb(ctx: FakeContext, kbc: I8042) -> None:
    enable_mouse(ctx, kbc)
    command(kbc, 0xD4, 0xF2)
    assert kbc.io_read(STATUS, 1) & 0x21 == 0x21
    assert ctx.level(12)
    assert not ctx.level(1)
    assert kbc.io_read(DATA, 1) == 0xFA


@pytest.mark.parametrize(
    ("move", "packet"),
    [
        ((5, 3, 0), [0x08, 5, 3]),
        ((-1, 0, 1), [0x19, 0xFF, 0x00]),
        ((0, -2, 2), [0x2A, 0x00, 0xFE]),
        ((4, 4, 4), [0x0C, 4, 4]),
        ((300, 0, 0), [0x48, 0xFF, 0]),
        ((0, -400, 0), [0xA8, 0, 0x00]),
    ],
)
def test_movement_packets(
    ctx: FakeContext, kbc: I8042, move: tuple[int, int, int], packet: list[int]
) -> None:
    enable_mouse(ctx, kbc)
    kbc.mouse_input(*move)
    assert drain(ctx, kbc) == packet


def test_mouse_reports_wait_for_data_reporting(ctx: FakeContext, kbc: I8042) -> None:
    kbc.mouse_input(1, 1, 1)
    assert drain(ctx, kbc) == []  # aux interface disabled by the BIOS
    command(kbc, 0xA8)
    assert drain(ctx, kbc) == []  # reporting off
    assert to_aux(ctx, kbc, 0xF4) == [0xFA, 0x09, 1, 1]
    assert to_aux(ctx, kbc, 0xE9) == [0xFA, 0x24, 2, 100]  # left button held


def test_keyboard_and_mouse_interleave_without_loss(ctx: FakeContext, kbc: I8042) -> None:
    enable_mouse(ctx, kbc)
    kbc.key_input(0x1C, True)
    kbc.mouse_input(1, 2, 0)
    kbc.key_input(0x1C, False)
    got: list[tuple[bool, int]] = []
    for _ in range(10):
        status = kbc.io_read(STATUS, 1)
        if status & 0x01:
            got.append((bool(status & 0x20), kbc.io_read(DATA, 1)))
        elif ctx.deadline(kbc) is not None:
            ctx.advance_to(ctx.deadline(kbc) or 0)
    assert [b for aux, b in got if not aux] == [0x1C, 0x9C]
    assert [b for aux, b in got if aux] == [0x08, 1, 2]


# -- snapshots --------------------------------------------------------------------------


def test_state_round_trip_mid_stream(
    ctx: FakeContext, kbc: I8042, new_ctx: Callable[[int], FakeContext]
) -> None:
    enable_mouse(ctx, kbc)
    ctx.now = 10_000
    for key in (0x10, 0x11, 0xE048):
        kbc.key_input(key, True)
    kbc.mouse_input(-3, 7, 2)
    kbc.io_read(DATA, 1)
    command(kbc, 0xD1)  # a command waiting for its data byte
    state = copy.deepcopy(kbc.save_state())
    twin_ctx = new_ctx(ctx.now)
    twin = I8042(twin_ctx)
    twin.reset()
    twin.load_state(state)
    assert twin.save_state() == state
    assert twin_ctx.deadline(twin) == ctx.deadline(kbc)
    kbc.io_write(DATA, 1, 0x03)
    twin.io_write(DATA, 1, 0x03)
    assert drain(twin_ctx, twin) == drain(ctx, kbc)
    assert twin.save_state() == kbc.save_state()


def test_malformed_state_is_refused(kbc: I8042) -> None:
    state = kbc.save_state()
    with pytest.raises(TypeError):
        kbc.load_state({**state, "ram": b"\x00"})
    with pytest.raises(TypeError):
        kbc.load_state({**state, "expect": "bogus"})
    with pytest.raises(TypeError):
        kbc.load_state({**state, "host_mouse": [[1, 2]]})

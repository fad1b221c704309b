"""8254 PIT and port 0x61: modes 0-5, access modes, latch and read-back, IRQ0 timing."""

from __future__ import annotations

import itertools

import pytest

from rdebug.machine.devices.pit import (
    PIT_HZ,
    Pit,
    SystemControlPort,
    pit_ticks,
    tick_deadline_ns,
)
from tests.unit.devices.conftest import FakeContext

MS = 1_000_000
HZ_100 = 11932  # round(1193182 / 100)


def control(pit: Pit, channel: int, access: int, mode: int, bcd: bool = False) -> None:
    pit.io_write(0x43, 1, channel << 6 | access << 4 | mode << 1 | int(bcd))


def load(pit: Pit, channel: int, count: int) -> None:
    pit.io_write(0x40 + channel, 1, count & 0xFF)
    pit.io_write(0x40 + channel, 1, count >> 8)


def latch_and_read(pit: Pit, channel: int) -> int:
    pit.io_write(0x43, 1, channel << 6)  # counter latch command
    low = pit.io_read(0x40 + channel, 1)
    return low | pit.io_read(0x40 + channel, 1) << 8


@pytest.fixture
def pit(ctx: FakeContext) -> Pit:
    return Pit(ctx)


def test_mode2_at_100hz_gives_irq0_every_10ms(ctx: FakeContext, pit: Pit) -> None:
    ctx.advance_to(5 * MS)  # start off the tick grid
    control(pit, 0, 3, 2)
    load(pit, 0, HZ_100)
    start = pit_ticks(ctx.now)
    ctx.irq_calls.clear()
    ctx.advance(1000 * MS)
    rises = ctx.rises(0)
    assert len(rises) == 99  # 1 s holds 99.998 periods
    assert rises == [tick_deadline_ns(start + k * HZ_100) for k in range(1, 100)]
    for earlier, later in itertools.pairwise(rises):
        assert abs(later - earlier - 10 * MS) < 1000  # 10.00015 ms, to the ns
    assert not ctx.level(0)  # each edge is a pulse: high, then low
    assert [level for _, _, level in ctx.irq_calls[:2]] == [True, False]


def test_timer_deadline_is_the_first_ns_of_the_edge_tick(ctx: FakeContext, pit: Pit) -> None:
    control(pit, 0, 3, 2)
    load(pit, 0, 100)
    deadline = ctx.deadline(pit)
    assert deadline == tick_deadline_ns(100)
    assert pit_ticks(deadline) == 100
    assert pit_ticks(deadline - 1) == 99


def test_counter_latch_reads_a_decreasing_count(ctx: FakeContext, pit: Pit) -> None:
    control(pit, 0, 3, 2)
    load(pit, 0, 50_000)
    start = pit_ticks(ctx.now)
    counts = []
    for _ in range(5):
        ctx.advance(3 * MS)
        counts.append(latch_and_read(pit, 0))
        assert counts[-1] == 50_000 - (pit_ticks(ctx.now) - start) % 50_000
    assert counts == sorted(counts, reverse=True)


def test_latched_count_holds_until_read(ctx: FakeContext, pit: Pit) -> None:
    control(pit, 0, 3, 0)
    load(pit, 0, 0xFFFF)
    ctx.advance(1 * MS)
    pit.io_write(0x43, 1, 0x00)
    expected = 0xFFFF - pit_ticks(ctx.now)
    ctx.advance(1 * MS)
    pit.io_write(0x43, 1, 0x00)  # ignored: the first latch is not read yet
    assert pit.io_read(0x40, 1) | pit.io_read(0x40, 1) << 8 == expected


def test_read_back_status_and_count(ctx: FakeContext, pit: Pit) -> None:
    control(pit, 2, 3, 0)  # counter 2, LOHI, mode 0: OUT low, null count
    pit.io_write(0x43, 1, 0xE8)  # read-back: status only, counter 2
    assert pit.io_read(0x42, 1) == 0x40 | 0x30 | 0x00
    load(pit, 2, 1000)
    pit.io_write(0x43, 1, 0xC8)  # read-back: status and count, counter 2
    assert pit.io_read(0x42, 1) == 0x30  # loaded; gate low so still counting 1000
    assert pit.io_read(0x42, 1) | pit.io_read(0x42, 1) << 8 == 1000


def test_read_back_latches_several_counters(ctx: FakeContext, pit: Pit) -> None:
    for channel in (0, 1):
        control(pit, channel, 3, 2)
        load(pit, channel, 30_000 + channel)
    ctx.advance(2 * MS)
    pit.io_write(0x43, 1, 0xD6)  # count only, counters 0 and 1
    elapsed = pit_ticks(ctx.now)
    ctx.advance(5 * MS)
    for channel in (0, 1):
        low = pit.io_read(0x40 + channel, 1)
        assert low | pit.io_read(0x40 + channel, 1) << 8 == 30_000 + channel - elapsed


@pytest.mark.parametrize(
    ("access", "writes", "count", "reads"),
    [
        (1, [0x34], 0x0034, 1),  # LSB only
        (2, [0x12], 0x1200, 1),  # MSB only
        (3, [0x34, 0x12], 0x1234, 2),  # LSB then MSB
    ],
)
def test_access_modes(pit: Pit, access: int, writes: list[int], count: int, reads: int) -> None:
    control(pit, 0, access, 0)
    for value in writes:
        pit.io_write(0x40, 1, value)
    pit.io_write(0x43, 1, 0x00)
    value = 0
    for i in range(reads):
        value |= pit.io_read(0x40, 1) << (8 * i)
    expected = {1: count & 0xFF, 2: count >> 8, 3: count}[access]
    assert value == expected


def test_bcd_counting(ctx: FakeContext, pit: Pit) -> None:
    control(pit, 0, 3, 0, bcd=True)
    load(pit, 0, 0x1000)  # 1000 decimal
    ctx.advance_to(tick_deadline_ns(250))
    assert latch_and_read(pit, 0) == 0x0750
    ctx.advance_to(tick_deadline_ns(1000))
    assert ctx.level(0)  # terminal count after 1000 ticks
    ctx.advance_to(tick_deadline_ns(1001))
    assert latch_and_read(pit, 0) == 0x9999  # wraps to 9999 in BCD


def test_mode0_irq0_rises_at_terminal_count_and_stays(ctx: FakeContext, pit: Pit) -> None:
    control(pit, 0, 3, 0)
    assert not ctx.level(0)
    load(pit, 0, 1193)  # ~1 ms
    ctx.advance(900_000)
    assert not ctx.level(0)
    ctx.advance(200_000)
    assert ctx.rises(0) == [tick_deadline_ns(1193)]
    assert ctx.level(0)
    ctx.advance(100 * MS)
    assert ctx.rises(0) == [tick_deadline_ns(1193)]  # one shot
    pit.io_write(0x40, 1, 0x10)  # first byte of a new count: OUT low again
    assert not ctx.level(0)


def test_mode2_new_count_applies_at_next_reload(ctx: FakeContext, pit: Pit) -> None:
    control(pit, 0, 3, 2)
    load(pit, 0, 1000)
    ctx.advance_to(tick_deadline_ns(300))
    load(pit, 0, 500)  # running: takes effect when this period ends at tick 1000
    ctx.advance_to(tick_deadline_ns(2100))
    assert ctx.rises(0) == [tick_deadline_ns(t) for t in (1000, 1500, 2000)]


def test_mode3_square_wave_on_port_61(ctx: FakeContext, pit: Pit) -> None:
    port61 = SystemControlPort(ctx, pit)
    ctx.advance(3 * MS)
    port61.io_write(0x61, 1, 0x03)  # gate 2 on, speaker data on
    control(pit, 2, 3, 3)
    load(pit, 2, 100)
    start = pit_ticks(ctx.now)
    outs = []
    for tick in (0, 49, 50, 99, 100, 149, 150):
        ctx.advance_to(tick_deadline_ns(start + tick))
        value = port61.io_read(0x61, 1)
        assert value & 0x03 == 0x03
        outs.append(bool(value & 0x20))
    assert outs == [True, True, False, False, True, True, False]
    assert ctx.rises(0) == []  # counter 2 drives no IRQ


def test_mode3_out_levels(ctx: FakeContext, pit: Pit) -> None:
    control(pit, 0, 3, 3)
    load(pit, 0, 7)  # odd: high 4 ticks, low 3
    levels = []
    for tick in range(15):
        ctx.advance_to(tick_deadline_ns(tick))
        levels.append(pit.out(0))
    assert levels == [True] * 4 + [False] * 3 + [True] * 4 + [False] * 3 + [True]


def test_mode2_out_is_low_for_one_tick(ctx: FakeContext, pit: Pit) -> None:
    control(pit, 0, 3, 2)
    load(pit, 0, 4)
    levels = []
    for tick in range(9):
        ctx.advance_to(tick_deadline_ns(tick))
        levels.append(pit.out(0))
    assert levels == [True, True, True, False, True, True, True, False, True]


def test_channel2_gate_and_out_through_port_61(ctx: FakeContext, pit: Pit) -> None:
    # The calibration loop Linux and others run: mode 0 on counter 2, poll bit 5.
    port61 = SystemControlPort(ctx, pit)
    port61.io_write(0x61, 1, 0x00)  # gate low
    control(pit, 2, 3, 0)
    load(pit, 2, 11932)
    ctx.advance(50 * MS)
    assert port61.io_read(0x61, 1) & 0x21 == 0x00  # gate low: not counting
    port61.io_write(0x61, 1, 0x01)
    gate_tick = pit_ticks(ctx.now)
    ctx.advance_to(tick_deadline_ns(gate_tick + 11931))
    assert port61.io_read(0x61, 1) & 0x21 == 0x01
    ctx.advance_to(tick_deadline_ns(gate_tick + 11932))
    assert port61.io_read(0x61, 1) & 0x21 == 0x21  # terminal count: OUT2 high


def test_gate_low_suspends_mode0(ctx: FakeContext, pit: Pit) -> None:
    port61 = SystemControlPort(ctx, pit)
    port61.io_write(0x61, 1, 0x01)
    control(pit, 2, 3, 0)
    load(pit, 2, 1000)
    ctx.advance_to(tick_deadline_ns(400))
    port61.io_write(0x61, 1, 0x00)
    ctx.advance(10 * MS)
    assert latch_and_read(pit, 2) == 600
    port61.io_write(0x61, 1, 0x01)
    resumed = pit_ticks(ctx.now)
    ctx.advance_to(tick_deadline_ns(resumed + 100))
    assert latch_and_read(pit, 2) == 500


def test_mode1_is_triggered_by_the_gate(ctx: FakeContext, pit: Pit) -> None:
    port61 = SystemControlPort(ctx, pit)
    control(pit, 2, 3, 1)
    load(pit, 2, 10)
    assert pit.out(2)  # waiting for a trigger
    ctx.advance(MS)
    port61.io_write(0x61, 1, 0x01)  # rising gate: OUT low for 10 ticks
    trigger = pit_ticks(ctx.now)
    assert not pit.out(2)
    ctx.advance_to(tick_deadline_ns(trigger + 10))
    assert pit.out(2)


def test_mode4_strobe_pulses_irq0_once(ctx: FakeContext, pit: Pit) -> None:
    control(pit, 0, 3, 4)
    load(pit, 0, 20)
    ctx.advance_to(tick_deadline_ns(20))
    assert not pit.out(0)  # the one-tick strobe
    ctx.advance(10 * MS)
    assert pit.out(0)
    assert ctx.rises(0) == [tick_deadline_ns(21)]


def test_refresh_bit_toggles_with_virtual_time(ctx: FakeContext, pit: Pit) -> None:
    port61 = SystemControlPort(ctx, pit)
    seen = set()
    for step in range(8):
        ctx.advance_to(step * 7_600)
        seen.add(port61.io_read(0x61, 1) & 0x10)
    assert seen == {0x00, 0x10}


def test_power_on_runs_counter0_at_18hz(ctx: FakeContext, pit: Pit) -> None:
    ctx.advance(1_000 * MS)
    assert len(ctx.rises(0)) == PIT_HZ // 65536  # 18.2 Hz


def test_reprogramming_mode_stops_the_old_schedule(ctx: FakeContext, pit: Pit) -> None:
    control(pit, 0, 3, 2)
    load(pit, 0, 1000)
    control(pit, 0, 3, 2)  # a control word stops the counter until a count arrives
    assert ctx.deadline(pit) is None
    ctx.advance(10 * MS)
    assert ctx.rises(0) == []


def test_control_port_reads_as_floating_bus(pit: Pit) -> None:
    assert pit.io_read(0x43, 1) == 0xFF

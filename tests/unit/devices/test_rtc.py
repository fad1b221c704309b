"""CMOS RTC: host time once, BCD/binary, 12/24 h, UIP timing, setting the clock, IRQ8, NVRAM."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from rdebug.machine.devices.rtc import CalendarTime, Rtc
from tests.unit.devices.conftest import FakeContext

S = 1_000_000_000
#: Sunday 2024-03-10 13:45:30.250 UTC.
HOST_NS = int(datetime(2024, 3, 10, 13, 45, 30, tzinfo=UTC).timestamp()) * S + S // 4


class HostClock:
    """Counts its calls; the RTC must make exactly one per reset."""

    def __init__(self, ns: int = HOST_NS) -> None:
        self.ns = ns
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        return self.ns


@pytest.fixture
def host() -> HostClock:
    return HostClock()


@pytest.fixture
def rtc(ctx: FakeContext, host: HostClock) -> Rtc:
    return Rtc(ctx, host, memory_mb=128)


def read(rtc: Rtc, index: int) -> int:
    rtc.io_write(0x70, 1, index)
    return rtc.io_read(0x71, 1)


def write(rtc: Rtc, index: int, value: int) -> None:
    rtc.io_write(0x70, 1, index)
    rtc.io_write(0x71, 1, value)


def clock(rtc: Rtc) -> tuple[int, ...]:
    """Hours, minutes, seconds as read (in whatever format B says)."""
    return read(rtc, 0x04), read(rtc, 0x02), read(rtc, 0x00)


def test_host_time_is_read_once_at_first_access(
    ctx: FakeContext, rtc: Rtc, host: HostClock
) -> None:
    assert host.calls == 0  # not at construction
    ctx.advance(5 * S)
    assert read(rtc, 0x00) == 0x30  # the base is the host time at first access
    ctx.advance(3 * S)
    assert read(rtc, 0x00) == 0x33
    read(rtc, 0x0A)
    assert host.calls == 1
    rtc.reset()
    read(rtc, 0x0D)
    assert host.calls == 2  # once per reset


@pytest.mark.parametrize(
    ("index", "bcd", "binary"),
    [
        (0x00, 0x30, 30),  # seconds
        (0x02, 0x45, 45),  # minutes
        (0x04, 0x13, 13),  # hours
        (0x06, 0x01, 1),  # day of week: Sunday
        (0x07, 0x10, 10),  # day of month
        (0x08, 0x03, 3),  # month
        (0x09, 0x24, 24),  # year
        (0x32, 0x20, 20),  # century
    ],
)
def test_time_registers_bcd_and_binary(rtc: Rtc, index: int, bcd: int, binary: int) -> None:
    assert read(rtc, 0x0B) == 0x02  # power-on: BCD, 24 hour
    assert read(rtc, index) == bcd
    write(rtc, 0x0B, 0x06)  # DM: binary
    assert read(rtc, index) == binary


@pytest.mark.parametrize(
    ("hour", "bcd_12h", "binary_12h"),
    [
        (0, 0x12, 12),
        (1, 0x01, 1),
        (11, 0x11, 11),
        (12, 0x92, 0x8C),
        (13, 0x81, 0x81),
        (23, 0x91, 0x8B),
    ],
)
def test_12_hour_mode(ctx: FakeContext, hour: int, bcd_12h: int, binary_12h: int) -> None:
    rtc = Rtc(ctx, HostClock(hour * 3600 * S), memory_mb=16)
    write(rtc, 0x0B, 0x00)  # 12 hour, BCD
    assert read(rtc, 0x04) == bcd_12h
    write(rtc, 0x0B, 0x04)  # 12 hour, binary
    assert read(rtc, 0x04) == binary_12h
    write(rtc, 0x04, binary_12h)  # writing it back changes nothing
    write(rtc, 0x0B, 0x06)
    assert read(rtc, 0x04) == hour


def test_uip_is_set_for_the_last_244us_of_each_second(ctx: FakeContext, rtc: Rtc) -> None:
    read(rtc, 0x0D)  # first access at wall .250 s
    next_second = 3 * S // 4
    ctx.advance_to(next_second - 244_001)
    assert read(rtc, 0x0A) == 0x26
    assert read(rtc, 0x00) == 0x30
    ctx.advance_to(next_second - 244_000)
    assert read(rtc, 0x0A) == 0xA6
    ctx.advance_to(next_second - 1)
    assert read(rtc, 0x0A) == 0xA6
    assert read(rtc, 0x00) == 0x30
    ctx.advance_to(next_second)
    assert read(rtc, 0x0A) == 0x26
    assert read(rtc, 0x00) == 0x31


def test_the_clock_follows_virtual_time_across_midnight(ctx: FakeContext) -> None:
    host = HostClock(int(datetime(1999, 12, 31, 23, 59, 58, tzinfo=UTC).timestamp()) * S)
    rtc = Rtc(ctx, host, memory_mb=16)
    read(rtc, 0x0D)
    ctx.advance(3 * S)
    assert [read(rtc, i) for i in (0x32, 0x09, 0x08, 0x07, 0x06)] == [0x20, 0x00, 0x01, 0x01, 0x07]
    assert clock(rtc) == (0x00, 0x00, 0x01)


def test_setting_the_clock_with_the_set_bit(ctx: FakeContext, rtc: Rtc, host: HostClock) -> None:
    write(rtc, 0x0B, 0x82)  # SET: updates stop while the guest writes
    for index, value in ((0x00, 0x58), (0x02, 0x59), (0x04, 0x23), (0x07, 0x29), (0x08, 0x02)):
        write(rtc, index, value)
    write(rtc, 0x09, 0x00)
    ctx.advance(5 * S)
    assert clock(rtc) == (0x23, 0x59, 0x58)  # frozen while SET
    assert read(rtc, 0x0A) & 0x80 == 0  # no update in progress either
    write(rtc, 0x0B, 0x02)
    ctx.advance(2 * S)
    assert clock(rtc) == (0x00, 0x00, 0x00)
    assert [read(rtc, i) for i in (0x07, 0x08, 0x09, 0x06)] == [0x01, 0x03, 0x00, 0x04]  # Wed
    assert host.calls == 1


def test_writing_a_time_register_keeps_the_clock_running(ctx: FakeContext, rtc: Rtc) -> None:
    write(rtc, 0x02, 0x10)  # minutes, without SET
    assert clock(rtc) == (0x13, 0x10, 0x30)
    ctx.advance(3 * S // 4)  # the fraction of a second is kept: .250 + .750
    assert clock(rtc) == (0x13, 0x10, 0x31)
    write(rtc, 0x06, 0x05)  # day of week is derived from the date: ignored
    assert read(rtc, 0x06) == 0x01


def test_status_registers_and_nmi_bit(rtc: Rtc) -> None:
    rtc.io_write(0x70, 1, 0x80 | 0x0D)  # bit 7 is the NMI mask, not part of the index
    assert rtc.io_read(0x71, 1) == 0x80  # D: valid RAM and time
    write(rtc, 0x0D, 0x00)
    assert read(rtc, 0x0D) == 0x80
    write(rtc, 0x0A, 0xAF)  # UIP is read-only
    assert read(rtc, 0x0A) & 0x7F == 0x2F
    assert read(rtc, 0x0C) == 0x00
    assert rtc.io_read(0x70, 1) == 0xFF


def test_nvram_bytes(rtc: Rtc) -> None:
    write(rtc, 0x40, 0x5A)
    write(rtc, 0x7F, 0xA5)
    assert (read(rtc, 0x40), read(rtc, 0x7F)) == (0x5A, 0xA5)


@pytest.mark.parametrize(
    ("memory_mb", "expected"),
    [
        (
            16,
            {
                0x15: 0x80,
                0x16: 0x02,
                0x17: 0x00,
                0x18: 0x3C,
                0x30: 0x00,
                0x31: 0x3C,
                0x34: 0,
                0x35: 0,
            },
        ),
        (32, {0x17: 0x00, 0x18: 0x7C, 0x34: 0x00, 0x35: 0x01}),
        (128, {0x17: 0xFF, 0x18: 0xFF, 0x30: 0xFF, 0x31: 0xFF, 0x34: 0x00, 0x35: 0x07}),
        (224, {0x34: 0x00, 0x35: 0x0D}),
    ],
)
def test_memory_size_bytes(ctx: FakeContext, memory_mb: int, expected: dict[int, int]) -> None:
    rtc = Rtc(ctx, HostClock(), memory_mb=memory_mb)
    assert {index: read(rtc, index) for index in expected} == expected


def test_periodic_interrupt(ctx: FakeContext, rtc: Rtc) -> None:
    # A = 0x26: 1024 Hz, a tick every 976562.5 ns on the wall clock; the host time's
    # .250 s is exactly tick 256 of its second, so the next ticks are at k * 976562.5 ns.
    write(rtc, 0x0B, 0x42)  # PIE, 24 hour
    assert ctx.deadline(rtc) == 976_563
    ctx.advance(10 * S // 1024)
    assert ctx.rises(8) == [976_563]  # the line stays high until register C is read
    assert read(rtc, 0x0C) == 0xC0  # IRQF | PF
    assert not ctx.level(8)
    assert ctx.deadline(rtc) == 10_742_188  # the 11th tick, 10742187.5 rounded up
    ctx.advance_to(10_742_188)
    assert ctx.rises(8) == [976_563, 10_742_188]


def test_periodic_rate_and_phase(ctx: FakeContext) -> None:
    rtc = Rtc(ctx, HostClock(0), memory_mb=16)  # wall time starts on a second
    write(rtc, 0x0A, 0x2F)  # RS 15: 2 Hz
    write(rtc, 0x0B, 0x42)
    times = []
    for _ in range(4):
        ctx.advance_to(ctx.deadline(rtc) or 0)
        times.append(ctx.now)
        assert read(rtc, 0x0C) & 0xC0 == 0xC0  # (UF too, on the whole seconds)
    assert times == [S // 2, S, 3 * S // 2, 2 * S]


def test_update_flag_without_interrupt(ctx: FakeContext, rtc: Rtc) -> None:
    read(rtc, 0x0C)
    ctx.advance(S)
    # UF (and PF: it is set at the periodic rate whatever PIE says), but no IRQF, no IRQ.
    assert read(rtc, 0x0C) == 0x50
    assert read(rtc, 0x0C) == 0x00
    assert ctx.rises(8) == []


def test_update_ended_interrupt(ctx: FakeContext, rtc: Rtc) -> None:
    write(rtc, 0x0B, 0x12)  # UIE
    assert ctx.deadline(rtc) == 3 * S // 4
    ctx.advance(S)
    assert ctx.rises(8) == [3 * S // 4]
    assert read(rtc, 0x0C) == 0xD0  # IRQF | PF | UF


def test_alarm_interrupt(ctx: FakeContext, rtc: Rtc) -> None:
    write(rtc, 0x01, 0x33)  # 13:45:33
    write(rtc, 0x03, 0x45)
    write(rtc, 0x05, 0x13)
    write(rtc, 0x0B, 0x22)  # AIE
    ctx.advance(10 * S)
    assert ctx.rises(8) == [3 * S // 4 + 2 * S]
    assert read(rtc, 0x0C) == 0xF0  # IRQF | PF | AF | UF


def test_alarm_dont_care_matches_every_hour(ctx: FakeContext, rtc: Rtc) -> None:
    write(rtc, 0x01, 0x00)  # hh:00:00, any hour
    write(rtc, 0x03, 0x00)
    write(rtc, 0x05, 0xC0)
    ctx.advance(3 * 3600 * S)
    assert read(rtc, 0x0C) == 0x70  # PF | AF | UF, accounted lazily: no AIE, no IRQ
    write(rtc, 0x0B, 0x22)
    ctx.advance(3600 * S)
    assert len(ctx.rises(8)) == 1


def test_calendar_round_trip() -> None:
    for seconds in (0, 951_782_400, 4_102_444_799, -1, 1_709_999_999):
        assert CalendarTime.from_unix(seconds).to_unix() == seconds

"""MC146818 CMOS real-time clock and NVRAM (index port 0x70, data port 0x71).

Owns the 128 bytes of CMOS (time, alarm and status registers A-D, NVRAM including the
memory-size bytes), the clock, and IRQ8 (periodic, alarm and update-ended interrupts).
It does not know where host time comes from: a `host_time_ns` callable (ns since the Unix
epoch, UTC) is called once, at the first guest access after reset; from then on the
clock is that base plus the virtual time elapsed (`ctx.now_ns()`), so a replay shows
the same dates at the same instructions.  The clock is kept in UTC as one number
(`wall = now_ns + offset`); the time registers are views of it in the format status
register B asks for (BCD or binary, 12 or 24 hour).

Reference: Motorola MC146818A datasheet, "Address Map", "Register A-D"; QEMU
hw/rtc/mc146818rtc.c for the PC's CMOS layout.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from rdebug.machine.devices.base import (
    BOOL,
    BUFFER,
    INT,
    OPT_INT,
    ByteDevice,
    Codec,
    DeviceContext,
    Field,
    StateValue,
    fields,
    state_int,
)

NS_PER_S = 1_000_000_000
SECONDS_PER_DAY = 86_400
#: Status A UIP is set this long before each update (the seconds rolling over).
UIP_NS = 244_000
#: The time base's frequency (divider 010 in register A).
TIME_BASE_HZ = 32_768
RTC_IRQ = 8
CMOS_SIZE = 128

# Time and alarm register indexes.
REG_SECONDS = 0x00
REG_SECONDS_ALARM = 0x01
REG_MINUTES = 0x02
REG_MINUTES_ALARM = 0x03
REG_HOURS = 0x04
REG_HOURS_ALARM = 0x05
REG_DAY_OF_WEEK = 0x06
REG_DAY_OF_MONTH = 0x07
REG_MONTH = 0x08
REG_YEAR = 0x09
REG_A = 0x0A
REG_B = 0x0B
REG_C = 0x0C
REG_D = 0x0D
REG_CENTURY = 0x32
# PC CMOS memory-size bytes (IBM AT technical reference, QEMU pc.c).
REG_BASE_MEM_LO = 0x15
REG_BASE_MEM_HI = 0x16
REG_EXT_MEM_LO = 0x17
REG_EXT_MEM_HI = 0x18
REG_EXT_MEM2_LO = 0x30
REG_EXT_MEM2_HI = 0x31
REG_MEM_ABOVE_16M_LO = 0x34
REG_MEM_ABOVE_16M_HI = 0x35

# Register A.
_A_UIP = 0x80
_A_RS = 0x0F  # rate select
_A_DEFAULT = 0x26  # 32.768 kHz time base, 1024 Hz periodic rate
# Register B.
_B_SET = 0x80  # updates inhibited while the guest sets the clock
_B_PIE = 0x40
_B_AIE = 0x20
_B_UIE = 0x10
_B_DM = 0x04  # data mode: binary (1) or BCD (0)
_B_24H = 0x02
_B_DEFAULT = _B_24H
# Register C.
_C_IRQF = 0x80
_C_PF = 0x40
_C_AF = 0x20
_C_UF = 0x10
# Register D.
_D_VRT = 0x80  # valid RAM and time
_HOUR_PM = 0x80
_DONT_CARE = 0xC0  # an alarm byte of 11xxxxxx matches every value

_TIME_REGISTERS = frozenset(
    {
        REG_SECONDS,
        REG_MINUTES,
        REG_HOURS,
        REG_DAY_OF_WEEK,
        REG_DAY_OF_MONTH,
        REG_MONTH,
        REG_YEAR,
        REG_CENTURY,
    }
)


@dataclass(frozen=True, slots=True)
class CalendarTime:
    """A broken-down UTC time, binary and 24-hour.

    >>> CalendarTime.from_unix(0)
    CalendarTime(year=1970, month=1, day=1, hour=0, minute=0, second=0)
    >>> CalendarTime.from_unix(951_782_400).weekday  # 2000-02-29, a Tuesday
    3
    """

    year: int
    month: int
    day: int
    hour: int
    minute: int
    second: int

    @staticmethod
    def from_unix(seconds: int) -> CalendarTime:
        days, second_of_day = divmod(seconds, SECONDS_PER_DAY)
        year, month, day = _civil_from_days(days)
        hour, rest = divmod(second_of_day, 3600)
        minute, second = divmod(rest, 60)
        return CalendarTime(year, month, day, hour, minute, second)

    def to_unix(self) -> int:
        """Seconds since the epoch; out-of-range fields roll over rather than fail."""
        days = _days_from_civil(self.year, min(max(self.month, 1), 12), 1) + self.day - 1
        return days * SECONDS_PER_DAY + self.hour * 3600 + self.minute * 60 + self.second

    @property
    def weekday(self) -> int:
        """Day of the week as the RTC counts it: 1 = Sunday ... 7 = Saturday."""
        days = _days_from_civil(self.year, min(max(self.month, 1), 12), 1) + self.day - 1
        return (days + 4) % 7 + 1  # 1970-01-01 was a Thursday


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146_097 + day_of_era - 719_468


def _civil_from_days(days: int) -> tuple[int, int, int]:
    days += 719_468
    era = days // 146_097
    day_of_era = days - era * 146_097
    year_of_era = (
        day_of_era - day_of_era // 1460 + day_of_era // 36_524 - day_of_era // 146_096
    ) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    shifted_month = (5 * day_of_year + 2) // 153
    day = day_of_year - (153 * shifted_month + 2) // 5 + 1
    month = shifted_month + (3 if shifted_month < 10 else -9)
    return year_of_era + era * 400 + (month <= 2), month, day


def _to_bcd(value: int) -> int:
    return (value // 10 % 10) << 4 | value % 10


def _from_bcd(value: int) -> int:
    return (value >> 4) * 10 + (value & 0x0F)


def _save_frozen(frozen: CalendarTime | None) -> StateValue:
    if frozen is None:
        return None
    return [frozen.year, frozen.month, frozen.day, frozen.hour, frozen.minute, frozen.second]


def _load_frozen(frozen: StateValue) -> CalendarTime | None:
    if frozen is None:
        return None
    if not (isinstance(frozen, list)):
        raise TypeError("malformed rtc device state")
    year, month, day, hour, minute, second = (state_int(field) for field in frozen)
    return CalendarTime(year, month, day, hour, minute, second)


class Rtc(ByteDevice):
    """The CMOS RTC: `Rtc(ctx, host_time_ns, memory_mb=...)`.

    `memory_mb` (the guest's RAM) fills the CMOS memory-size bytes.  Writes to the
    day-of-week register are ignored: it is always derived from the date.
    """

    name = "rtc"
    ports = (range(0x70, 0x72),)

    def __init__(
        self, ctx: DeviceContext, host_time_ns: Callable[[], int], *, memory_mb: int
    ) -> None:
        super().__init__(ctx)
        self._host_time_ns = host_time_ns
        self._memory_mb = memory_mb
        self._irq_level = False
        self.reset()

    def reset(self) -> None:
        if self._irq_level:
            self.ctx.set_irq(RTC_IRQ, False)
        self.index = 0
        self.cmos = bytearray(CMOS_SIZE)
        self.cmos[REG_A] = _A_DEFAULT
        self.cmos[REG_B] = _B_DEFAULT
        self._store_memory_size()
        self._offset_ns: int | None = None  # wall ns - virtual ns; None until first access
        self._frozen: CalendarTime | None = None  # the time being set while B.SET is 1
        self._flags = 0  # register C PF/AF/UF
        self._accounted_ns = 0  # virtual ns up to which the C flags are accounted
        self._irq_level = False
        self._deadline: int | None = None
        self.ctx.set_timer(self, None)

    def _store_memory_size(self) -> None:
        base_kib = 640
        ext_kib = min(max(self._memory_mb - 1, 0) * 1024, 0xFFFF)  # KiB above 1 MiB
        above_16m = min(max(self._memory_mb - 16, 0) * 16, 0xFFFF)  # 64 KiB above 16 MiB
        for lo, value in (
            (REG_BASE_MEM_LO, base_kib),
            (REG_EXT_MEM_LO, ext_kib),
            (REG_EXT_MEM2_LO, ext_kib),
            (REG_MEM_ABOVE_16M_LO, above_16m),
        ):
            self.cmos[lo] = value & 0xFF
            self.cmos[lo + 1] = value >> 8

    # -- the clock ----------------------------------------------------------------------------

    def _wall_ns(self) -> int:
        assert self._offset_ns is not None
        return self.ctx.now_ns() + self._offset_ns

    def _time(self) -> CalendarTime:
        if self._frozen is not None:
            return self._frozen
        return CalendarTime.from_unix(self._wall_ns() // NS_PER_S)

    def _set_time(self, time: CalendarTime) -> None:
        """A guest write to a time register: keep the fraction of the current second."""
        if self._frozen is not None:
            self._frozen = time
            return
        fraction = self._wall_ns() % NS_PER_S
        self._offset_ns = time.to_unix() * NS_PER_S + fraction - self.ctx.now_ns()

    def _uip(self) -> bool:
        """Status A UIP: the last `UIP_NS` of every second, unless B.SET stops updates."""
        if self.cmos[REG_B] & _B_SET:
            return False
        return self._wall_ns() % NS_PER_S >= NS_PER_S - UIP_NS

    def _encode(self, value: int) -> int:
        return value if self.cmos[REG_B] & _B_DM else _to_bcd(value)

    def _decode(self, value: int) -> int:
        return value if self.cmos[REG_B] & _B_DM else _from_bcd(value)

    def _encode_hour(self, hour: int) -> int:
        if self.cmos[REG_B] & _B_24H:
            return self._encode(hour)
        return self._encode(hour % 12 or 12) | (_HOUR_PM if hour >= 12 else 0)

    def _decode_hour(self, value: int) -> int:
        if self.cmos[REG_B] & _B_24H:
            return self._decode(value)
        return self._decode(value & ~_HOUR_PM) % 12 + (12 if value & _HOUR_PM else 0)

    def _read_time_register(self, index: int) -> int:
        time = self._time()
        match index:
            case 0x00:
                return self._encode(time.second)
            case 0x02:
                return self._encode(time.minute)
            case 0x04:
                return self._encode_hour(time.hour)
            case 0x06:
                return self._encode(time.weekday)
            case 0x07:
                return self._encode(time.day)
            case 0x08:
                return self._encode(time.month)
            case 0x09:
                return self._encode(time.year % 100)
            case _:  # REG_CENTURY
                return self._encode(time.year // 100)

    def _write_time_register(self, index: int, value: int) -> None:
        time = self._time()
        match index:
            case 0x00:
                time = replace(time, second=self._decode(value))
            case 0x02:
                time = replace(time, minute=self._decode(value))
            case 0x04:
                time = replace(time, hour=self._decode_hour(value))
            case 0x06:
                return  # day of week: derived from the date
            case 0x07:
                time = replace(time, day=self._decode(value))
            case 0x08:
                time = replace(time, month=self._decode(value))
            case 0x09:
                time = replace(time, year=time.year // 100 * 100 + self._decode(value))
            case _:  # REG_CENTURY
                time = replace(time, year=self._decode(value) * 100 + time.year % 100)
        self._account()
        self._set_time(time)
        self._rearm()

    # -- the guest's side ---------------------------------------------------------------------

    def io_read(self, port: int, size: int) -> int:
        self._first_access()
        return super().io_read(port, size)

    def io_write(self, port: int, size: int, value: int) -> None:
        self._first_access()
        super().io_write(port, size, value)

    def _first_access(self) -> None:
        """Host time enters here, once per reset."""
        if self._offset_ns is None:
            now = self.ctx.now_ns()
            self._offset_ns = self._host_time_ns() - now
            self._accounted_ns = now

    def _read_byte(self, port: int) -> int:
        if port != 0x71:
            return 0xFF  # the index register is write-only
        index = self.index
        if index in _TIME_REGISTERS:
            return self._read_time_register(index)
        match index:
            case 0x0A:  # status A: UIP, DV2-DV0, RS3-RS0
                return self.cmos[REG_A] & ~_A_UIP | (_A_UIP if self._uip() else 0)
            case 0x0C:  # status C: IRQF, PF, AF, UF; cleared by reading
                self._account()
                value = self._flags | (_C_IRQF if self._irqf() else 0)
                self._flags = 0
                self._rearm()
                return value
            case 0x0D:  # status D: VRT
                return _D_VRT
            case _:  # B, the alarms, NVRAM
                return self.cmos[index]

    def _write_byte(self, port: int, value: int) -> None:
        if port == 0x70:
            self.index = value & 0x7F  # bit 7 is the NMI mask, not part of the index
            return
        if port != 0x71:
            return
        index = self.index
        if index in _TIME_REGISTERS:
            self._write_time_register(index, value)
            return
        match index:
            case 0x0A:  # status A: UIP is read-only
                self._account()
                self.cmos[REG_A] = value & ~_A_UIP
                self._rearm()
            case 0x0B:
                self._write_status_b(value)
            case 0x0C | 0x0D:  # read-only
                pass
            case 0x01 | 0x03 | 0x05:  # alarm seconds, minutes, hours
                self._account()
                self.cmos[index] = value
                self._rearm()
            case _:
                self.cmos[index] = value

    def _write_status_b(self, value: int) -> None:
        """Status B: SET freezes the clock for setting; PIE/AIE/UIE enable IRQ8."""
        self._account()
        setting = bool(value & _B_SET)
        if setting:
            value &= ~_B_UIE  # "UIE is cleared when SET is written to one"
            if self._frozen is None:
                self._frozen = self._time()
        elif self._frozen is not None:
            # Updates resume with the time the guest set, at the start of its second.
            assert self._offset_ns is not None
            self._offset_ns = self._frozen.to_unix() * NS_PER_S - self.ctx.now_ns()
            self._frozen = None
        self.cmos[REG_B] = value
        self._rearm()

    # -- IRQ8 -----------------------------------------------------------------------------

    def _periodic_clocks(self) -> int | None:
        """Periodic interrupt period in time-base clocks, from A RS3-RS0 (None: off)."""
        rate = self.cmos[REG_A] & _A_RS
        if rate == 0:
            return None
        if rate < 3:
            rate += 7  # RS 1, 2 give 256 Hz, 128 Hz with a 32.768 kHz time base
        return 1 << (rate - 1)

    def _periodic_index(self, wall_ns: int) -> int | None:
        """How many periodic ticks happened up to `wall_ns` (None: no periodic rate)."""
        clocks = self._periodic_clocks()
        if clocks is None:
            return None
        return wall_ns * TIME_BASE_HZ // (NS_PER_S * clocks)

    def _periodic_tick_ns(self, index: int) -> int:
        """Wall ns of periodic tick `index` (an integer ceiling)."""
        clocks = self._periodic_clocks()
        assert clocks is not None
        return -(-index * NS_PER_S * clocks // TIME_BASE_HZ)

    def _account(self) -> None:
        """Set register C's flags for every event since the last accounting."""
        now = self.ctx.now_ns()
        if self._offset_ns is not None and now > self._accounted_ns:
            start = self._accounted_ns + self._offset_ns
            end = now + self._offset_ns
            ticks_before = self._periodic_index(start)
            if ticks_before is not None and self._periodic_index(end) != ticks_before:
                self._flags |= _C_PF
            if not self.cmos[REG_B] & _B_SET:
                first = start // NS_PER_S + 1
                last = end // NS_PER_S
                if last >= first:
                    self._flags |= _C_UF
                    if self._alarm_between(first, last):
                        self._flags |= _C_AF
        self._accounted_ns = now

    def _alarm_field(self, index: int, limit: int) -> range | None:
        """The values an alarm byte matches (every one for 11xxxxxx); None if invalid."""
        raw = self.cmos[index]
        if raw & _DONT_CARE == _DONT_CARE:
            return range(limit)
        value = self._decode_hour(raw) if index == REG_HOURS_ALARM else self._decode(raw)
        return range(value, value + 1) if value < limit else None

    def _alarm_between(self, first: int, last: int) -> bool:
        """Did an update at some Unix second in [first, last] match the alarm?"""
        hours = self._alarm_field(REG_HOURS_ALARM, 24)
        minutes = self._alarm_field(REG_MINUTES_ALARM, 60)
        seconds = self._alarm_field(REG_SECONDS_ALARM, 60)
        if hours is None or minutes is None or seconds is None:
            return False
        if last - first + 1 >= SECONDS_PER_DAY:
            return True
        start = first % SECONDS_PER_DAY
        end = start + last - first
        spans = [(start, min(end, SECONDS_PER_DAY - 1))]
        if end >= SECONDS_PER_DAY:
            spans.append((0, end - SECONDS_PER_DAY))
        for hour in hours:
            for minute in minutes:
                low = hour * 3600 + minute * 60 + seconds.start
                high = hour * 3600 + minute * 60 + seconds.stop - 1
                if any(low <= span_end and span_start <= high for span_start, span_end in spans):
                    return True
        return False

    def _irqf(self) -> bool:
        b = self.cmos[REG_B]
        return bool(
            (self._flags & _C_PF and b & _B_PIE)
            or (self._flags & _C_AF and b & _B_AIE)
            or (self._flags & _C_UF and b & _B_UIE)
        )

    def _rearm(self) -> None:
        """Drive IRQ8 to C.IRQF; wake at the next event that could set it."""
        level = self._irqf()
        self._irq_level = self.drive_irq(RTC_IRQ, level, self._irq_level)
        self._deadline = None
        if not level and self._offset_ns is not None:
            b = self.cmos[REG_B]
            wall = self._wall_ns()
            candidates = []
            index = self._periodic_index(wall)
            if b & _B_PIE and index is not None:
                candidates.append(self._periodic_tick_ns(index + 1))
            if b & (_B_AIE | _B_UIE) and not b & _B_SET:
                candidates.append((wall // NS_PER_S + 1) * NS_PER_S)
            if candidates:
                self._deadline = min(candidates) - self._offset_ns
        self.ctx.set_timer(self, self._deadline)

    def on_timer(self) -> None:
        self._account()
        self._rearm()

    # -- snapshots ----------------------------------------------------------------------------

    state_fields = (
        *fields(INT, "index"),
        *fields(BUFFER, "cmos"),
        *fields(OPT_INT, "_offset_ns"),
        Field("_frozen", Codec(_load_frozen, _save_frozen)),
        *fields(INT, "_flags", "_accounted_ns"),
        *fields(BOOL, "_irq_level"),
        *fields(OPT_INT, "_deadline"),
    )

    def load_state(self, state: Mapping[str, StateValue]) -> None:
        cmos = state["cmos"]
        if not (isinstance(cmos, bytes) and len(cmos) == CMOS_SIZE):
            raise TypeError("malformed rtc device state")
        super().load_state(state)
        self.ctx.set_timer(self, self._deadline)

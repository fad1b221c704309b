"""8254 programmable interval timer (0x40-0x43) and system control port B (0x61).

Owns the three counters (count register CR, counting element CE, output latch OL, status
latch, the read/write byte flip-flops), their GATE inputs and OUT outputs, and the
scheduling of IRQ0 from counter 0.  Port 0x61 (`SystemControlPort`) owns the counter 2
gate and speaker bits and shows counter 2's OUT.  Neither knows the PIC or the CPU: OUT0
reaches the machine only as `ctx.set_irq(0, ...)`.

Time is the virtual clock only.  The input clock ticks at `PIT_HZ`; tick number `t` is
`floor(now_ns * PIT_HZ / 1e9)` in exact integers.  A counter remembers the tick at which
its CE was loaded and computes CE and OUT from the ticks elapsed since, so nothing runs
per tick.  Counter 0's next output edge is scheduled with `ctx.set_timer`.

IRQ0: in mode 0 the line follows OUT0 (high from terminal count until reprogrammed).  In
modes 1-5 each rising edge of OUT0 (terminal count of a one-shot, end of a strobe, every
period) is delivered as a pulse (`set_irq(0, True)` then `set_irq(0, False)`), which the
edge-triggered PIC latches; between pulses the line is low.

Reference: Intel 8254 datasheet (231164), "Modes of Operation", "Read-Back Command".
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum

from rdebug.machine.devices.base import (
    BOOL,
    INT,
    OPT_INT,
    ByteDevice,
    Device,
    DeviceContext,
    Field,
    State,
    Stateful,
    StateValue,
    enum_codec,
    fields,
)

#: The 8254's input clock on a PC (14.31818 MHz / 12).
PIT_HZ = 1_193_182
NS_PER_S = 1_000_000_000
PIT_PORTS = range(0x40, 0x44)
CONTROL_PORT = 0x43
SYSTEM_CONTROL_PORT = 0x61
#: Port 0x61 bit 4 toggles with each DRAM refresh request (every 15.085 us on an AT).
REFRESH_PERIOD_NS = 15_085


def pit_ticks(now_ns: int) -> int:
    """Input-clock ticks elapsed at virtual time `now_ns`.

    >>> pit_ticks(1_000_000_000)
    1193182
    >>> pit_ticks(838), pit_ticks(839)
    (0, 1)
    """
    return now_ns * PIT_HZ // NS_PER_S


def tick_deadline_ns(tick: int) -> int:
    """The first virtual ns at which `pit_ticks` reaches `tick` (an integer ceiling).

    >>> tick_deadline_ns(1)
    839
    >>> pit_ticks(tick_deadline_ns(11932) - 1), pit_ticks(tick_deadline_ns(11932))
    (11931, 11932)
    """
    return -(-tick * NS_PER_S // PIT_HZ)


class AccessMode(Enum):
    """Control word RW1 RW0: how the counter's 16 bits are transferred."""

    LATCH = 0  # counter latch command, not a mode
    LOBYTE = 1
    HIBYTE = 2
    LOHI = 3


class _Phase(Enum):
    """What a counting element is doing."""

    IDLE = "idle"  # no count loaded since the control word, or waiting for a gate trigger
    RUNNING = "running"  # CE counts from `start_ce` at `start_tick`
    SUSPENDED = "suspended"  # CE holds `start_ce` (GATE low, or mode 0 between LSB and MSB)


class _Counter(Stateful):
    """One 8254 counter.  All methods take the current input-clock tick `t`."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.mode_bits = 0  # control word M2-M0 as written (6, 7 alias 2, 3)
        self.access = AccessMode.LOHI
        self.bcd = False
        self.cr = 0  # count register (binary value; 0 means the maximum count)
        self.has_count = False  # a count was written since the control word
        self.null_count = True  # status bit 6: CR not yet loaded into CE
        self.write_lo = 0
        self.write_msb_next = False  # write flip-flop (LOHI)
        self.read_msb_next = False  # read flip-flop (LOHI)
        self.ol: int | None = None  # output latch (counter latch / read-back)
        self.status: int | None = None  # latched status byte (read-back)
        self.gate = True
        self.phase = _Phase.IDLE
        self.start_tick = 0
        self.start_ce = 0
        self.tc_done = False  # one-shot modes: terminal count reached before start_tick
        self.period = 0x10000  # modes 2, 3: N in use
        self.pending: int | None = None  # modes 2, 3: N for the next period
        self.pending_tick = 0

    # -- derived values -------------------------------------------------------------------

    @property
    def mode(self) -> int:
        return self.mode_bits - 4 if self.mode_bits >= 6 else self.mode_bits

    @property
    def modulus(self) -> int:
        return 10_000 if self.bcd else 0x10000

    def initial(self) -> int:
        """N: the count in CR (0 stands for 2^16 binary, 10^4 BCD)."""
        return self.cr or self.modulus

    def catch_up(self, t: int) -> None:
        """Apply a count written during modes 2/3 once its period boundary has passed."""
        if self.pending is not None and t >= self.pending_tick:
            self.start_tick = self.pending_tick
            self.period = self.pending
            self.pending = None
            self.null_count = False

    def ce(self, t: int) -> int:
        """Counting element value (binary)."""
        if self.phase is not _Phase.RUNNING:
            return self.start_ce
        elapsed = t - self.start_tick
        match self.mode:
            case 2:
                return (self.period - elapsed % self.period) % self.modulus
            case 3:
                return (self.period - 2 * elapsed % self.period) % self.modulus
            case _:
                return (self.start_ce - elapsed) % self.modulus

    def _ticks_to_tc(self) -> int:
        return self.start_ce or self.modulus

    def out(self, t: int) -> bool:
        """The OUT pin."""
        mode = self.mode
        if self.phase is _Phase.IDLE:
            return mode != 0  # "OUT goes low" on a mode 0 control word, high otherwise
        if self.phase is _Phase.SUSPENDED:
            return self.tc_done if mode == 0 else True
        elapsed = t - self.start_tick
        match mode:
            case 0 | 1:  # low until terminal count
                return self.tc_done or elapsed >= self._ticks_to_tc()
            case 4 | 5:  # low for one clock at terminal count
                return self.tc_done or elapsed != self._ticks_to_tc()
            case 2:  # low for one clock when CE = 1
                return self.period == 1 or elapsed % self.period != self.period - 1
            case _:  # 3: high for ceil(N/2), low for floor(N/2)
                return elapsed % self.period < (self.period + 1) // 2

    def next_edge(self, t: int) -> int | None:
        """Tick of OUT's next rising edge after tick `t`, if it has one."""
        if self.phase is not _Phase.RUNNING:
            return None
        elapsed = t - self.start_tick
        match self.mode:
            case 0 | 1:
                tc = self._ticks_to_tc()
                return None if self.tc_done or elapsed >= tc else self.start_tick + tc
            case 4 | 5:
                end = self._ticks_to_tc() + 1
                return None if self.tc_done or elapsed >= end else self.start_tick + end
            case _:
                return self.start_tick + (elapsed // self.period + 1) * self.period

    # -- programming ------------------------------------------------------------------------

    def control(self, value: int, t: int) -> None:
        """Control word with RW != 00: set mode, reset the counter's control logic."""
        self.start_ce = self.ce(t)
        self.access = AccessMode((value >> 4) & 3)
        self.mode_bits = (value >> 1) & 7
        self.bcd = bool(value & 1)
        self.has_count = False
        self.null_count = True
        self.write_msb_next = False
        self.read_msb_next = False
        self.ol = None
        self.status = None
        self.phase = _Phase.IDLE
        self.tc_done = False
        self.pending = None

    def latch_count(self, t: int) -> None:
        """Counter latch command: OL holds CE until read (a second latch is ignored)."""
        if self.ol is None:
            self.ol = self.ce(t)

    def latch_status(self, t: int) -> None:
        """Read-back status: OUT, NULL COUNT, RW, M2-M0, BCD."""
        if self.status is None:
            self.status = (
                (0x80 if self.out(t) else 0)
                | (0x40 if self.null_count else 0)
                | self.access.value << 4
                | self.mode_bits << 1
                | int(self.bcd)
            )

    def write(self, value: int, t: int) -> None:
        """A count byte, as the access mode says."""
        match self.access:
            case AccessMode.LOBYTE:
                self._load(value, t)
            case AccessMode.HIBYTE:
                self._load(value << 8, t)
            case AccessMode.LOHI | AccessMode.LATCH:
                if not self.write_msb_next:
                    self.write_lo = value
                    self.write_msb_next = True
                    if self.mode == 0 and self.phase is _Phase.RUNNING:
                        # "Writing the first byte disables counting. OUT is set low."
                        self.start_ce = self.ce(t)
                        self.phase = _Phase.SUSPENDED
                    self.tc_done = self.tc_done and self.mode != 0
                else:
                    self.write_msb_next = False
                    self._load(self.write_lo | value << 8, t)

    def _load(self, raw: int, t: int) -> None:
        self.cr = _from_bcd(raw) % self.modulus if self.bcd else raw
        self.has_count = True
        self.null_count = True
        match self.mode:
            case 0 | 4:  # loaded at once; counts while GATE is high
                self._start(t, self.cr)
                if not self.gate:
                    self.phase = _Phase.SUSPENDED
            case 1 | 5:  # loaded by the next GATE trigger
                if self.phase is not _Phase.RUNNING:
                    self.phase = _Phase.IDLE
            case _:  # 2, 3: a running counter takes the new count at its next reload
                if self.phase is _Phase.RUNNING:
                    elapsed = t - self.start_tick
                    self.pending = self.initial()
                    self.pending_tick = self.start_tick + (elapsed // self.period + 1) * (
                        self.period
                    )
                elif self.gate:
                    self._start(t, self.cr)
                else:
                    self.phase = _Phase.SUSPENDED

    def _start(self, t: int, ce: int) -> None:
        self.phase = _Phase.RUNNING
        self.start_tick = t
        self.start_ce = ce
        self.period = self.initial()
        self.pending = None
        self.tc_done = False
        self.null_count = False

    def set_gate(self, level: bool, t: int) -> None:
        """GATE input: enables counting (modes 0, 2, 3, 4), triggers (1, 2, 3, 5)."""
        rising = level and not self.gate
        self.gate = level
        mode = self.mode
        if mode in (0, 4):
            if not level and self.phase is _Phase.RUNNING:
                self.tc_done = self.tc_done or t - self.start_tick >= self._ticks_to_tc()
                self.start_ce = self.ce(t)
                self.phase = _Phase.SUSPENDED
            elif rising and self.phase is _Phase.SUSPENDED and not self.write_msb_next:
                self.start_tick = t
                self.phase = _Phase.RUNNING
        elif mode in (1, 5):
            if rising and self.has_count:
                self._start(t, self.cr)
        elif not level and self.phase is _Phase.RUNNING:
            self.start_ce = self.ce(t)
            self.phase = _Phase.SUSPENDED
        elif rising and self.has_count:
            self._start(t, self.cr)

    # -- reading ----------------------------------------------------------------------------

    def read(self, t: int) -> int:
        """A read of the counter's port: latched status, then latched count, else CE."""
        if self.status is not None:
            value, self.status = self.status, None
            return value
        count = self.ol if self.ol is not None else self.ce(t)
        if self.bcd:
            count = _to_bcd(count)
        match self.access:
            case AccessMode.LOBYTE:
                self.ol = None
                return count & 0xFF
            case AccessMode.HIBYTE:
                self.ol = None
                return count >> 8 & 0xFF
            case AccessMode.LOHI | AccessMode.LATCH:
                if self.read_msb_next:
                    self.read_msb_next = False
                    self.ol = None
                    return count >> 8 & 0xFF
                self.read_msb_next = True
                return count & 0xFF

    # -- snapshots --------------------------------------------------------------------------

    state_fields = (
        *fields(INT, "mode_bits"),
        Field("access", enum_codec(AccessMode)),
        *fields(BOOL, "bcd"),
        *fields(INT, "cr"),
        *fields(BOOL, "has_count", "null_count"),
        *fields(INT, "write_lo"),
        *fields(BOOL, "write_msb_next", "read_msb_next"),
        *fields(OPT_INT, "ol", "status"),
        *fields(BOOL, "gate"),
        Field("phase", enum_codec(_Phase)),
        *fields(INT, "start_tick", "start_ce"),
        *fields(BOOL, "tc_done"),
        *fields(INT, "period"),
        *fields(OPT_INT, "pending"),
        *fields(INT, "pending_tick"),
    )


def _from_bcd(value: int) -> int:
    return sum(((value >> (4 * i)) & 0xF) * 10**i for i in range(4))


def _to_bcd(value: int) -> int:
    return sum(((value // 10**i) % 10) << (4 * i) for i in range(4))


class Pit(ByteDevice):
    """The 8254 at 0x40-0x43: counter 0 drives IRQ0, counter 2's GATE/OUT go to port 0x61.

    Power-on state is what QEMU gives: every counter in mode 3 with count 0 (65536), so
    counter 0 runs at 18.2 Hz; counter 2's GATE is low.
    """

    name = "pit"
    ports = (PIT_PORTS,)

    def __init__(self, ctx: DeviceContext) -> None:
        super().__init__(ctx)
        self._counters = [_Counter(i) for i in range(3)]
        self._irq_level = False  # the level last driven on IRQ0
        self._edge_tick: int | None = None  # counter 0's scheduled OUT edge
        self.reset()

    def reset(self) -> None:
        t = self._now_tick()
        self._counters = [_Counter(i) for i in range(3)]
        for counter in self._counters:
            counter.control(0x36, t)  # LOHI, mode 3, binary
            counter.gate = counter.index != 2
            counter.write(0, t)
            counter.write(0, t)
        if self._irq_level:
            self._irq_level = False
            self.ctx.set_irq(0, False)
        self._sync_irq0()

    # -- the machine's side -----------------------------------------------------------------

    def set_gate(self, channel: int, level: bool) -> None:
        """Drive counter `channel`'s GATE input (counters 0 and 1 are tied high on a PC)."""
        counter = self._counters[channel]
        t = self._now_tick()
        counter.catch_up(t)
        counter.set_gate(level, t)
        if channel == 0:
            self._sync_irq0()

    def gate(self, channel: int) -> bool:
        return self._counters[channel].gate

    def out(self, channel: int) -> bool:
        """Counter `channel`'s OUT pin now."""
        counter = self._counters[channel]
        t = self._now_tick()
        counter.catch_up(t)
        return counter.out(t)

    def on_timer(self) -> None:
        t = self._now_tick()
        counter = self._counters[0]
        if self._edge_tick is not None and t >= self._edge_tick and counter.mode != 0:
            self.ctx.set_irq(0, True)
            self.ctx.set_irq(0, False)
        self._sync_irq0()

    def periodic_edges(self) -> tuple[int, int, int] | None:
        """(start tick, period, next edge) of counter 0's IRQ0 pulses when each timer
        expiry is one pulse a period (mode 2 or 3, counting, no new count waiting for
        the period's end), for a native counter that takes the idle ones itself."""
        counter = self._counters[0]
        if (
            self._edge_tick is None
            or counter.phase is not _Phase.RUNNING
            or counter.mode not in (2, 3)
            or counter.pending is not None
            or self._irq_level
        ):
            return None
        return counter.start_tick, counter.period, self._edge_tick

    def edge_passed(self, edge_tick: int) -> None:
        """The native counter took the expiries up to now, all idle: `edge_tick` is the
        next rising edge (what `on_timer` would have set), its timer re-armed as there."""
        self._edge_tick = edge_tick
        self.ctx.set_timer(self, None)
        self._arm()

    # -- the guest's side -------------------------------------------------------------------

    def _read_byte(self, port: int) -> int:
        if port not in PIT_PORTS or port == CONTROL_PORT:
            return 0xFF  # the control word register is write-only
        counter = self._counters[port - PIT_PORTS.start]
        t = self._now_tick()
        counter.catch_up(t)
        return counter.read(t)

    def _write_byte(self, port: int, value: int) -> None:
        if port not in PIT_PORTS:
            return
        t = self._now_tick()
        for counter in self._counters:
            counter.catch_up(t)
        if port == CONTROL_PORT:
            self._control_word(value, t)
        else:
            self._counters[port - PIT_PORTS.start].write(value, t)
        self._sync_irq0()

    def _control_word(self, value: int, t: int) -> None:
        select = value >> 6
        if select == 3:  # read-back: D5 = !COUNT, D4 = !STATUS, D3-D1 = CNT2-CNT0
            for counter in self._counters:
                if value & (2 << counter.index):
                    if not value & 0x10:
                        counter.latch_status(t)
                    if not value & 0x20:
                        counter.latch_count(t)
        elif (value >> 4) & 3 == AccessMode.LATCH.value:
            self._counters[select].latch_count(t)
        else:
            self._counters[select].control(value, t)

    # -- IRQ0 -------------------------------------------------------------------------------

    def _now_tick(self) -> int:
        return pit_ticks(self.ctx.now_ns())

    def _sync_irq0(self) -> None:
        """Drive IRQ0 to OUT0 (mode 0) and schedule counter 0's next rising edge."""
        counter = self._counters[0]
        t = self._now_tick()
        counter.catch_up(t)
        level = counter.mode == 0 and counter.out(t)
        self._irq_level = self.drive_irq(0, level, self._irq_level)
        self._edge_tick = counter.next_edge(t)
        self._arm()

    def _arm(self) -> None:
        deadline = None if self._edge_tick is None else tick_deadline_ns(self._edge_tick)
        self.ctx.set_timer(self, deadline)

    # -- snapshots --------------------------------------------------------------------------

    state_fields = (*fields(BOOL, "_irq_level"), *fields(OPT_INT, "_edge_tick"))

    def save_state(self) -> State:
        counters: list[StateValue] = [counter.save_state() for counter in self._counters]
        return {"counters": counters, **super().save_state()}

    def load_state(self, state: Mapping[str, StateValue]) -> None:
        counters = state["counters"]
        if not (isinstance(counters, list) and len(counters) == 3):
            raise TypeError("malformed pit device state")
        for counter, saved in zip(self._counters, counters, strict=True):
            if not (isinstance(saved, dict)):
                raise TypeError("malformed pit device state")
            counter.load_state(saved)
        super().load_state(state)
        self._arm()


class SystemControlPort(Device):
    """Port 0x61, system control port B (IBM PC/AT technical reference).

    Write: bit 0 counter 2 GATE, bit 1 speaker data enable, bits 2-3 parity / channel
    check enables.  Read: those bits, bit 4 refresh request toggle (from virtual time),
    bit 5 counter 2 OUT; bits 6-7 (channel check, parity error) read 0.
    """

    name = "port61"
    ports = (range(SYSTEM_CONTROL_PORT, SYSTEM_CONTROL_PORT + 1),)

    def __init__(self, ctx: DeviceContext, pit: Pit) -> None:
        super().__init__(ctx)
        self._pit = pit
        self._bits = 0  # bits 1-3 as last written; bit 0 lives in the PIT (counter 2 GATE)

    def reset(self) -> None:
        self._bits = 0

    def io_read(self, port: int, size: int) -> int:
        value = self._bits | int(self._pit.gate(2))
        if (self.ctx.now_ns() // REFRESH_PERIOD_NS) & 1:
            value |= 0x10
        if self._pit.out(2):
            value |= 0x20
        return value | ((1 << (8 * size)) - 1) & ~0xFF

    def io_write(self, port: int, size: int, value: int) -> None:
        self._bits = value & 0x0E
        self._pit.set_gate(2, bool(value & 1))

    state_fields = fields(INT, "_bits")

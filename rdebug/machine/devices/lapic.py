"""The local APIC of the one CPU (xAPIC, memory-mapped at 0xFEE00000).

Owns the register file (ID, version, TPR/PPR, EOI, LDR/DFR, SVR, ISR/TMR/IRR, ESR, ICR,
the LVT and the timer), the priority logic that picks the next vector, and the timer in
virtual time.  Knows nothing of the CPU or of the IOAPIC and the 8259 behind it: the
machine asks `intr()` and calls `acknowledge()` when it delivers; the IOAPIC calls
`accept(vector)`.

Registers live in a host page the machine maps read-only (see `Device.register_pages`):
reads, the ID above all, cost no callback.  The registers themselves are `_regs`, and
the IRR/ISR/TMR bit sets in `core` (machine/lapiccore.py: a C struct whose functions
hold the priority logic, shared with the native counter, which takes the periodic
timer's expiries and delivers this APIC's interrupts without a Python round trip); the
page is a copy that `_publish` keeps equal to what the guest must read.  The timer's
current count (0x390) moves with time: it is a `Countdown` (machine/countdown.py) that
the instruction counter writes into the page at every branch boundary while the timer
counts, and this device whenever a register store reloads or rescales it.  So the guest
reads the count as of the last branch boundary (or timer register store) at or before
its read: a few instructions old at most, and the same in every run (no memory hook:
see docs/machine.md).

The timer counts down once per `divisor` virtual nanoseconds, as QEMU's APIC does.
There is one CPU: IPIs to other APIC ids (INIT, STARTUP, fixed) are dropped; a fixed IPI
that includes this APIC (self, broadcast, its own id) is accepted.

Reference: Intel SDM vol. 3A chapter 10 "Advanced Programmable Interrupt Controller".
"""

from __future__ import annotations

import mmap
from collections.abc import Mapping

from rdebug.machine.countdown import Countdown
from rdebug.machine.debuglog import debug
from rdebug.machine.devices.base import (
    INT,
    OPT_INT,
    Codec,
    Device,
    DeviceContext,
    Field,
    StateValue,
    fields,
    state_int,
)
from rdebug.machine.lapiccore import Bitmap, LapicCore

LAPIC_BASE = 0xFEE00000
PAGE_SIZE = 4096
#: version 0x14 (integrated xAPIC), max LVT entry 5 (timer, thermal, perf, LINT0, LINT1,
#: error: the CMCI entry at 0x2F0 is not there).
LAPIC_VERSION = 0x00050014

# Register offsets (SDM table 10-1).
ID = 0x020
VERSION = 0x030
TPR = 0x080
APR = 0x090
PPR = 0x0A0
EOI = 0x0B0
RRD = 0x0C0
LDR = 0x0D0
DFR = 0x0E0
SVR = 0x0F0
ISR_BASE = 0x100
TMR_BASE = 0x180
IRR_BASE = 0x200
ESR = 0x280
ICR_LOW = 0x300
ICR_HIGH = 0x310
LVT_TIMER = 0x320
LVT_THERMAL = 0x330
LVT_PERF = 0x340
LVT_LINT0 = 0x350
LVT_LINT1 = 0x360
LVT_ERROR = 0x370
TIMER_INITIAL = 0x380
TIMER_CURRENT = 0x390
TIMER_DIVIDE = 0x3E0

LVT_MASKED = 1 << 16
LVT_PERIODIC = 1 << 17
SVR_ENABLE = 1 << 8
DELIVERY_EXTINT = 7

_LVTS = (LVT_TIMER, LVT_THERMAL, LVT_PERF, LVT_LINT0, LVT_LINT1, LVT_ERROR)
#: Writable bits of each register (others read as written-never; reserved bits as 0).
_WRITABLE: dict[int, int] = {
    ID: 0xFF000000,
    TPR: 0xFF,
    LDR: 0xFF000000,
    DFR: 0xF0000000,
    SVR: 0x13FF,
    ICR_LOW: 0x000CCFFF,  # vector, delivery/dest mode, level, trigger, shorthand
    ICR_HIGH: 0xFF000000,
    LVT_TIMER: 0x000700FF,
    LVT_THERMAL: 0x000107FF,
    LVT_PERF: 0x000107FF,
    LVT_LINT0: 0x0001A7FF,
    LVT_LINT1: 0x0001A7FF,
    LVT_ERROR: 0x000100FF,
    TIMER_INITIAL: 0xFFFFFFFF,
    TIMER_DIVIDE: 0x0B,
}
_RESET: dict[int, int] = {
    ID: 0,
    VERSION: LAPIC_VERSION,
    TPR: 0,
    LDR: 0,
    DFR: 0xFFFFFFFF,
    SVR: 0xFF,
    ESR: 0,
    ICR_LOW: 0,
    ICR_HIGH: 0,
    **{lvt: LVT_MASKED for lvt in _LVTS},
    TIMER_INITIAL: 0,
    TIMER_DIVIDE: 0,
}

# ICR fields.
_ICR_DELIVERY_SHIFT = 8
_ICR_SHORTHAND_SHIFT = 18
_MODE_FIXED, _MODE_LOWEST = 0, 1


def timer_divisor(divide_config: int) -> int:
    """The divide configuration register's value (bits 0, 1, 3) as a divisor.

    >>> [timer_divisor(v) for v in (0x0, 0x1, 0x2, 0x3, 0x8, 0x9, 0xA, 0xB)]
    [2, 4, 8, 16, 32, 64, 128, 1]
    """
    code = (divide_config & 3) | ((divide_config >> 1) & 4)
    return 1 if code == 7 else 2 << code


def _save_regs(regs: dict[int, int]) -> StateValue:
    return {f"{k:#05x}": v for k, v in sorted(regs.items())}


def _load_regs(regs: StateValue) -> dict[int, int]:
    if not isinstance(regs, dict) or set(regs) != {f"{k:#05x}" for k in _RESET}:
        raise TypeError("a LAPIC state needs every register")
    return {int(k, 16): state_int(v) for k, v in regs.items()}


class LocalApic(Device):
    """The LAPIC of CPU 0 (APIC id 0), one device named "lapic"."""

    name = "lapic"
    # IRR, ISR and TMR (bit v: vector v), kept by the core
    irr = Bitmap()
    isr = Bitmap()
    tmr = Bitmap()

    def __init__(self, ctx: DeviceContext, base: int = LAPIC_BASE) -> None:
        super().__init__(ctx)
        self.base = base
        self.page = mmap.mmap(-1, PAGE_SIZE)
        #: the current count register as the guest reads it (published into `page`)
        self.countdown = Countdown(self.page, TIMER_CURRENT)
        #: IRR, ISR, TMR and the priority logic (C, shared with the native counter)
        self.core = LapicCore(self.page, self.countdown)
        self._regs: dict[int, int] = {}
        self._timer_start_ns = 0  # when the current count was last loaded
        self._timer_deadline: int | None = None  # next expiry that raises the LVT vector
        self._written: set[int] = set()  # offsets stored to since the last settle


    # -- power-on ----------------------------------------------------------------------

    def reset(self) -> None:
        self._regs = dict(_RESET)
        self.irr = self.isr = self.tmr = 0
        self._copy_registers()
        self.core.update()
        self._timer_start_ns = 0
        self._set_deadline(None)
        self.countdown.disarm()
        self.countdown.write(0)
        self._written.clear()
        self._publish_all()

    # -- the machine's side --------------------------------------------------------------

    @property
    def software_enabled(self) -> bool:
        """SVR bit 8: a disabled APIC delivers nothing (the 8259 goes straight to the CPU)."""
        return bool(self._regs[SVR] & SVR_ENABLE)

    def extint_open(self) -> bool:
        """LINT0 passes the 8259's INTR through (unmasked, delivery mode ExtINT)."""
        lint0 = self._regs[LVT_LINT0]
        return not lint0 & LVT_MASKED and (lint0 >> 8) & 7 == DELIVERY_EXTINT

    @property
    def apic_id(self) -> int:
        return self._regs[ID] >> 24

    def ppr(self) -> int:
        """Processor priority: the TPR or the class of the highest vector in service."""
        return self.core.ppr()

    def intr(self) -> bool:
        """A requested vector's priority class is above the processor priority class."""
        return self.core.int_out

    def acknowledge(self) -> int:
        """The INTA cycle: move the highest requested vector into service and return it
        (the spurious vector when nothing is deliverable any more)."""
        vector = self.core.acknowledge()
        return self._regs[SVR] & 0xFF if vector is None else vector

    def accept(self, vector: int, level: bool = False) -> None:
        """An interrupt message for this APIC (from the IOAPIC, an IPI or the LVT)."""
        if not self.software_enabled:
            return
        if vector < 16:
            self._regs[ESR] |= 1 << 6  # received illegal vector
            self._publish(ESR)
            return
        if self.core.accept(vector, level):
            self.ctx.intr_raised()

    def _update(self) -> None:
        if self.core.update():
            self.ctx.intr_raised()

    # -- guest accesses (see Device.register_pages) ---------------------------------------

    def register_pages(self) -> tuple[tuple[int, mmap.mmap], ...]:
        return ((self.base, self.page),)

    def countdowns(self) -> tuple[Countdown, ...]:
        return (self.countdown,)

    def native_store_hook(self, base: int, fallback: int) -> tuple[int, int] | None:
        return self.core.store_hook(base, fallback)  # EOIs (see machine/lapiccore.py)

    def read_register(self, offset: int) -> int:
        """What the guest reads at `offset` (what the page holds once settled).

        The current count is the one published last (see `Countdown`); `current_count`
        is the count at this very instant."""
        if offset == TIMER_CURRENT:
            return self.countdown.published
        if offset == PPR:
            return self.ppr()
        if ISR_BASE <= offset < IRR_BASE + 0x80:  # ISR, TMR, IRR: eight words 16 bytes apart
            return self.core.word((offset - ISR_BASE) >> 7, ((offset - ISR_BASE) >> 4) & 7)
        return self._regs.get(offset, 0)

    def mmio_write(self, addr: int, size: int, value: int) -> None:
        offset = addr - self.base
        self._written.add(offset & ~0xF)
        if offset & 0xF or size != 4:
            debug(__name__, "LAPIC: %d-byte write at +%#x ignored", size, offset)
            return
        self.write_register(offset, value)

    def mmio_settle(self) -> None:
        for offset in sorted(self._written):
            self._publish(offset)
            self._publish(offset + 4)  # a store may straddle into the next dword
        self._written.clear()

    def settles_before_store(self, addr: int, size: int, value: int) -> bool:
        offset = addr - self.base
        if size != 4:
            return False
        if offset == EOI:  # once per interrupt: it reads as 0, and kernels write 0 to it
            return value == self.read_register(EOI)
        # The initial count, which a one-shot kernel loads at every tick (Linux's
        # clockevents: 137,000 times in a 6.9e9-instruction boot), reads back as written.
        # Its new deadline asks for a stop itself when the run must take it (ctx.set_timer:
        # not with the native counter, whose block hook has it from the core).
        return offset == TIMER_INITIAL

    def write_register(self, offset: int, value: int) -> None:
        """A 32-bit guest write to the register at `offset` (SDM 10.4-10.6)."""
        value &= 0xFFFFFFFF
        if offset == EOI:
            self._eoi()
        elif offset == ESR:
            self._regs[ESR] = 0  # the write latches the (never set) error flags
        elif offset == ICR_LOW:
            self._regs[ICR_LOW] = value & _WRITABLE[ICR_LOW]
            self._send_ipi()
        elif offset == SVR:
            self._regs[SVR] = (value & _WRITABLE[SVR]) | 0x0F  # vector bits 0-3 are 1
            if not self.software_enabled:  # software disable masks every LVT entry
                for lvt in _LVTS:
                    self._regs[lvt] |= LVT_MASKED
                    self._publish(lvt)
            self._copy_registers()
            self._update()
        elif offset == DFR:
            self._regs[DFR] = (value & _WRITABLE[DFR]) | 0x0FFFFFFF
        elif offset in _LVTS:
            if not self.software_enabled:
                value |= LVT_MASKED
            self._write_timer_config(offset, value & _WRITABLE[offset])
        elif offset == TIMER_INITIAL:
            self._regs[TIMER_INITIAL] = value
            self._timer_start_ns = self.ctx.now_ns()
            self._schedule()
        elif offset == TIMER_DIVIDE:
            self._write_timer_config(offset, value & _WRITABLE[offset])
        elif offset in _WRITABLE:
            self._regs[offset] = value & _WRITABLE[offset]
            if offset == TPR:
                self._copy_registers()
                self._publish(PPR)
                self._update()
        else:
            debug(__name__, "LAPIC: write to read-only register +%#x ignored", offset)
        if offset in (LVT_TIMER, LVT_LINT0):
            self._copy_registers()
        self._publish(offset)

    def _copy_registers(self) -> None:
        regs = self._regs
        self.core.copy_registers(regs[TPR], regs[SVR], regs[LVT_TIMER], regs[LVT_LINT0])

    def _eoi(self) -> None:
        if self.core.eoi():
            self.ctx.intr_raised()

    def _send_ipi(self) -> None:
        icr = self._regs[ICR_LOW]
        mode = (icr >> _ICR_DELIVERY_SHIFT) & 7
        shorthand = (icr >> _ICR_SHORTHAND_SHIFT) & 3
        dest = self._regs[ICR_HIGH] >> 24
        to_self = shorthand in (1, 2) or (shorthand == 0 and dest in (self.apic_id, 0xFF))
        if mode in (_MODE_FIXED, _MODE_LOWEST) and to_self:
            self.accept(icr & 0xFF)
        else:
            # INIT/STARTUP for CPUs that are not there (an INIT level de-assert only
            # resynchronizes arbitration ids), an NMI/SMI: nothing to do on one CPU.
            debug(__name__, "LAPIC: IPI %#x to %#x (shorthand %d) dropped", icr, dest, shorthand)

    # -- timer ---------------------------------------------------------------------------

    def _divisor(self) -> int:
        return timer_divisor(self._regs[TIMER_DIVIDE])

    def _periodic(self) -> bool:
        return bool(self._regs[LVT_TIMER] & LVT_PERIODIC)

    def _elapsed_counts(self, now: int) -> int:
        return max(0, now - self._timer_start_ns) // self._divisor()

    def current_count(self) -> int:
        """The current count register: initial count minus the ticks since it was loaded."""
        initial = self._regs[TIMER_INITIAL]
        if initial == 0:
            return 0
        elapsed = self._elapsed_counts(self.ctx.now_ns())
        if self._periodic():
            return initial - elapsed % initial
        return max(0, initial - elapsed)

    def _write_timer_config(self, offset: int, value: int) -> None:
        """LVT timer mode or divide changes: keep the current count, restart the schedule."""
        if offset not in (LVT_TIMER, TIMER_DIVIDE):
            self._regs[offset] = value
            return
        now = self.ctx.now_ns()
        current = self.current_count()
        initial = self._regs[TIMER_INITIAL]
        self._regs[offset] = value
        if current:
            # Rebase so that the count goes on from where it is, at the new rate.
            self._timer_start_ns = now - (initial - current) * self._divisor()
        self._schedule()

    def _schedule(self) -> None:
        """Arm the virtual-time timer for the next time the count reaches zero, and
        publish the count as of now (a reload, a rescale or an expiry)."""
        initial = self._regs[TIMER_INITIAL]
        now = self.ctx.now_ns()
        if initial == 0:
            self._set_deadline(None)
        elif self._periodic():
            period = initial * self._divisor()
            done = max(0, now - self._timer_start_ns) // period
            self._set_deadline(self._timer_start_ns + (done + 1) * period)
        else:
            end = self._timer_start_ns + initial * self._divisor()
            self._set_deadline(end if end > now else None)
        self._arm_countdown()
        self.countdown.write(self.current_count())

    def _arm_countdown(self) -> None:
        """While the count moves (periodic, or one-shot before its expiry), the counter
        publishes it at every branch boundary."""
        initial = self._regs[TIMER_INITIAL]
        if initial and (self._periodic() or self._timer_deadline is not None):
            self.countdown.arm(self._timer_start_ns, initial, self._divisor(), self._periodic())
        else:
            self.countdown.disarm()

    def _set_deadline(self, deadline: int | None) -> None:
        self._timer_deadline = deadline
        self.ctx.set_timer(self, deadline)
        initial = self._regs[TIMER_INITIAL]
        period = initial * self._divisor() if initial and self._periodic() else 0
        self.core.set_timer(deadline, self._timer_start_ns, period)

    def native_expiries_taken(self) -> None:
        """After a run: the native counter may have taken timer expiries (the core's
        deadline moved on); the machine's clock gets the next one."""
        deadline = self.core.deadline_ns
        if deadline != self._timer_deadline:
            self._timer_deadline = deadline
            self.ctx.set_timer(self, deadline)

    def on_timer(self) -> None:
        lvt = self._regs[LVT_TIMER]
        if not lvt & LVT_MASKED:
            self.accept(lvt & 0xFF)
        self._schedule()

    # -- the register page ---------------------------------------------------------------

    def _publish(self, offset: int) -> None:
        if 0 <= offset < PAGE_SIZE and not offset & 0xF:
            self.page[offset : offset + 4] = self.read_register(offset).to_bytes(4, "little")

    def _publish_all(self) -> None:
        self.page[:] = bytes(PAGE_SIZE)
        for offset in range(0, 0x400, 0x10):
            self._publish(offset)
        self.core.page_written()

    # -- snapshots -----------------------------------------------------------------------

    state_fields = (
        Field("_regs", Codec(_load_regs, _save_regs)),
        *fields(INT, "irr", "isr", "tmr", "_timer_start_ns"),
        *fields(OPT_INT, "_timer_deadline"),
        Field("_count_published", INT, key="current_count_published"),
    )

    @property
    def _count_published(self) -> int:
        return self.countdown.published

    @_count_published.setter
    def _count_published(self, value: int) -> None:
        self.countdown.write(value)

    def load_state(self, state: Mapping[str, StateValue]) -> None:
        super().load_state(state)
        self._set_deadline(self._timer_deadline)
        self._arm_countdown()
        self._copy_registers()
        self.core.update()
        self._written.clear()
        self._publish_all()

"""Local APIC: registers as the guest reads them (the page), priorities, EOI, TPR, IPIs,
the timer in virtual time, and save/load."""

from __future__ import annotations

import mmap
import random

import pytest

from rdebug.machine.countdown import Countdown
from rdebug.machine.devices import lapic as L
from rdebug.machine.devices.lapic import LocalApic, timer_divisor
from tests.unit.devices.conftest import FakeContext

BASE = L.LAPIC_BASE


def page_read(apic: LocalApic, offset: int) -> int:
    """What a guest load right after a branch boundary at `ctx.now` sees: the register
    page, where the instruction counter published the current count while it moves."""
    countdown = apic.countdown
    if countdown.armed:
        countdown.set_clock(0, 0)  # the fake context's ns are "instructions"
        countdown.publish_at(apic.ctx.now_ns())
    return int.from_bytes(apic.page[offset : offset + 4], "little")


def store(apic: LocalApic, offset: int, value: int, size: int = 4) -> None:
    """A guest store as unicorn does it: hook, then the bytes land, then the settle."""
    apic.mmio_write(BASE + offset, size, value)
    apic.page[offset : offset + size] = value.to_bytes(size, "little")
    apic.mmio_settle()


@pytest.fixture
def apic(ctx: FakeContext) -> LocalApic:
    device = LocalApic(ctx)
    device.reset()
    return device


@pytest.fixture
def enabled(apic: LocalApic) -> LocalApic:
    store(apic, L.SVR, 0x1FF)
    return apic


def test_power_on_registers(apic: LocalApic) -> None:
    assert page_read(apic, L.ID) == 0
    assert page_read(apic, L.VERSION) == 0x00050014
    assert page_read(apic, L.SVR) == 0xFF
    assert page_read(apic, L.DFR) == 0xFFFFFFFF
    for lvt in (L.LVT_TIMER, L.LVT_LINT0, L.LVT_LINT1, L.LVT_ERROR):
        assert page_read(apic, lvt) == L.LVT_MASKED
    assert not apic.software_enabled


def test_read_only_and_write_only_registers_settle_back(enabled: LocalApic) -> None:
    store(enabled, L.VERSION, 0x12345678)
    store(enabled, L.EOI, 0xDEAD)
    store(enabled, L.PPR, 0xFF)
    store(enabled, L.ESR, 0x77)
    assert page_read(enabled, L.VERSION) == 0x00050014
    assert page_read(enabled, L.EOI) == 0
    assert page_read(enabled, L.PPR) == 0
    assert page_read(enabled, L.ESR) == 0


def test_writable_registers_keep_their_bits(enabled: LocalApic) -> None:
    store(enabled, L.ID, 0x05000000)
    store(enabled, L.TPR, 0x1FF)
    store(enabled, L.LDR, 0x01FFFFFF)
    store(enabled, L.DFR, 0)
    store(enabled, L.TIMER_DIVIDE, 0xFF)
    assert page_read(enabled, L.ID) == 0x05000000
    assert page_read(enabled, L.TPR) == 0xFF
    assert page_read(enabled, L.LDR) == 0x01000000
    assert page_read(enabled, L.DFR) == 0x0FFFFFFF
    assert page_read(enabled, L.TIMER_DIVIDE) == 0x0B


def test_software_disable_masks_the_lvt_and_refuses_interrupts(enabled: LocalApic) -> None:
    store(enabled, L.LVT_LINT0, 0x700)
    assert enabled.extint_open()
    store(enabled, L.SVR, 0xFF)
    assert page_read(enabled, L.LVT_LINT0) & L.LVT_MASKED
    store(enabled, L.LVT_TIMER, 0x30)
    assert page_read(enabled, L.LVT_TIMER) == 0x30 | L.LVT_MASKED
    enabled.accept(0x40)
    assert not enabled.intr()


def test_highest_vector_first_and_eoi_clears_the_highest_in_service(
    enabled: LocalApic, ctx: FakeContext
) -> None:
    for vector in (0x31, 0x52, 0x45):
        enabled.accept(vector)
    assert ctx.stops == 1  # INTR rose once
    assert page_read(enabled, L.IRR_BASE + 0x10) == 1 << (0x31 - 32)
    assert page_read(enabled, L.IRR_BASE + 0x20) == (1 << (0x52 - 64)) | (1 << (0x45 - 64))
    assert enabled.acknowledge() == 0x52
    assert page_read(enabled, L.ISR_BASE + 0x20) == 1 << (0x52 - 64)
    assert page_read(enabled, L.PPR) == 0x50
    assert not enabled.intr()  # 0x45's class is below the one in service
    store(enabled, L.EOI, 0)
    assert enabled.intr()
    assert enabled.acknowledge() == 0x45
    # a higher class nests above one in service
    enabled.accept(0x60)
    assert enabled.acknowledge() == 0x60
    store(enabled, L.EOI, 0)  # ends 0x60, 0x45 stays in service
    assert page_read(enabled, L.ISR_BASE + 0x20) == 1 << (0x45 - 64)
    store(enabled, L.EOI, 0)
    assert enabled.acknowledge() == 0x31
    store(enabled, L.EOI, 0)
    assert enabled.isr == 0 and enabled.irr == 0


def test_tpr_holds_back_classes_at_or_below_it(enabled: LocalApic) -> None:
    store(enabled, L.TPR, 0x40)
    enabled.accept(0x4F)
    assert not enabled.intr()
    assert page_read(enabled, L.PPR) == 0x40
    assert enabled.acknowledge() == 0xFF  # nothing deliverable: the spurious vector
    store(enabled, L.TPR, 0x3F)
    assert enabled.intr()
    assert enabled.acknowledge() == 0x4F


def test_illegal_vectors_set_esr_instead(enabled: LocalApic) -> None:
    enabled.accept(0x05)
    assert not enabled.intr()
    assert page_read(enabled, L.ESR) == 1 << 6


def test_ipis(enabled: LocalApic) -> None:
    store(enabled, L.ICR_HIGH, 1 << 24)
    store(enabled, L.ICR_LOW, 0x4500)  # INIT assert to APIC 1: not there
    store(enabled, L.ICR_LOW, 0x0608)  # STARTUP
    store(enabled, L.ICR_LOW, 0x0041)  # fixed, to APIC 1
    assert enabled.irr == 0
    assert page_read(enabled, L.ICR_LOW) & 0x1000 == 0  # delivery status: idle
    store(enabled, L.ICR_HIGH, 0)
    store(enabled, L.ICR_LOW, 0x0042)  # fixed, to APIC 0: itself
    store(enabled, L.ICR_LOW, 0x40043)  # self shorthand
    store(enabled, L.ICR_LOW, 0x80044)  # all including self
    store(enabled, L.ICR_LOW, 0xC0045)  # all excluding self
    store(enabled, L.ICR_LOW, 0x88500)  # xv6's broadcast INIT de-assert
    assert enabled.irr == (1 << 0x42) | (1 << 0x43) | (1 << 0x44)


@pytest.mark.parametrize(
    ("config", "divisor"), [(0, 2), (1, 4), (2, 8), (3, 16), (8, 32), (9, 64), (10, 128), (11, 1)]
)
def test_divide_configuration(config: int, divisor: int) -> None:
    assert timer_divisor(config) == divisor


def test_periodic_timer_counts_one_per_ns_over_the_divisor(
    enabled: LocalApic, ctx: FakeContext
) -> None:
    store(enabled, L.TIMER_DIVIDE, 0x0)  # divide by 2
    store(enabled, L.LVT_TIMER, L.LVT_PERIODIC | 0x40)
    ctx.now = 1000
    store(enabled, L.TIMER_INITIAL, 500)
    assert ctx.deadline(enabled) == 2000
    assert enabled.countdown.armed
    ctx.now = 1300
    assert page_read(enabled, L.TIMER_CURRENT) == 350
    ctx.advance_to(2000)
    assert enabled.irr == 1 << 0x40
    assert ctx.deadline(enabled) == 3000
    ctx.now = 2002
    assert page_read(enabled, L.TIMER_CURRENT) == 499
    # late firing (a timer fires at a branch boundary): the schedule does not drift
    ctx.advance_to(3017)
    assert ctx.deadline(enabled) == 4000
    store(enabled, L.TIMER_INITIAL, 0)
    assert ctx.deadline(enabled) is None
    assert page_read(enabled, L.TIMER_CURRENT) == 0
    assert not enabled.countdown.armed


def test_one_shot_fires_once_then_reads_zero(enabled: LocalApic, ctx: FakeContext) -> None:
    store(enabled, L.TIMER_DIVIDE, 0xB)
    store(enabled, L.LVT_TIMER, 0x41)
    store(enabled, L.TIMER_INITIAL, 100)
    ctx.now = 99
    assert page_read(enabled, L.TIMER_CURRENT) == 1
    ctx.advance_to(100)
    assert enabled.irr == 1 << 0x41
    assert ctx.deadline(enabled) is None
    assert not enabled.countdown.armed
    ctx.advance_to(10_000)
    assert page_read(enabled, L.TIMER_CURRENT) == 0


def test_masked_timer_counts_without_interrupts(enabled: LocalApic, ctx: FakeContext) -> None:
    store(enabled, L.TIMER_DIVIDE, 0xB)
    store(enabled, L.LVT_TIMER, L.LVT_MASKED | L.LVT_PERIODIC | 0x40)
    store(enabled, L.TIMER_INITIAL, 100)
    ctx.advance_to(450)
    assert enabled.irr == 0
    assert page_read(enabled, L.TIMER_CURRENT) == 50


def test_divide_change_keeps_the_current_count(enabled: LocalApic, ctx: FakeContext) -> None:
    store(enabled, L.TIMER_DIVIDE, 0xB)
    store(enabled, L.LVT_TIMER, 0x41)
    store(enabled, L.TIMER_INITIAL, 1000)
    ctx.now = 400
    store(enabled, L.TIMER_DIVIDE, 0x1)  # divide by 4 from now on
    assert page_read(enabled, L.TIMER_CURRENT) == 600
    assert ctx.deadline(enabled) == 400 + 600 * 4


def test_save_load_restores_the_page_and_the_timer(
    enabled: LocalApic, ctx: FakeContext, new_ctx: type[FakeContext]
) -> None:
    store(enabled, L.TPR, 0x20)
    store(enabled, L.TIMER_DIVIDE, 0xB)
    store(enabled, L.LVT_TIMER, L.LVT_PERIODIC | 0x40)
    store(enabled, L.TIMER_INITIAL, 1000)
    enabled.accept(0x33)
    enabled.accept(0x55)
    assert enabled.acknowledge() == 0x55
    ctx.now = 1234
    state = enabled.save_state()
    twin_ctx = new_ctx(1234)
    twin = LocalApic(twin_ctx)
    twin.reset()
    twin.load_state(state)
    assert twin.save_state() == state
    # the current count is refreshed by each read (it is the hot register)
    assert page_read(twin, L.TIMER_CURRENT) == page_read(enabled, L.TIMER_CURRENT) == 766
    assert bytes(twin.page) == bytes(enabled.page)
    assert twin_ctx.deadline(twin) == ctx.deadline(enabled) == 1000
    assert twin.intr() == enabled.intr()


def test_damaged_state_is_refused(apic: LocalApic) -> None:
    state = apic.save_state()
    state["regs"] = {}
    with pytest.raises(TypeError):
        apic.load_state(state)


def test_the_page_holds_every_bitmap_register_after_accepts_and_eois(
    enabled: LocalApic,
) -> None:
    for vector in (0x20, 0x41, 0x7F, 0x80, 0xC3, 0xFF):
        enabled.accept(vector, level=vector & 1 == 1)
    enabled.acknowledge()  # 0xFF in service
    store(enabled, L.TPR, 0x30)
    store(enabled, L.EOI, 0)
    enabled.acknowledge()
    for offset in range(0, 0x400, 0x10):
        if offset != L.TIMER_CURRENT:
            assert page_read(enabled, offset) == enabled.read_register(offset), hex(offset)
    assert page_read(enabled, L.IRR_BASE + 0x20) == 1 << (0x41 - 64)  # vectors 64-95


def _count(
    icount: int, shift: int, bias: int, start: int, initial: int, divisor: int, periodic: bool
) -> int:
    """The current count at `icount`, from its definition (the test's oracle)."""
    elapsed = max(0, (icount << shift) + bias - start) // divisor
    return initial - elapsed % initial if periodic else max(0, initial - elapsed)


def test_the_published_count_is_the_count_at_its_icount() -> None:
    """The C countdown (published at branch boundaries) gives `current_count`'s value,
    in any order of icounts (a seek goes backwards), periodic and one-shot."""
    rng = random.Random(14)
    countdown = Countdown(mmap.mmap(-1, 4096), L.TIMER_CURRENT)
    for _ in range(200):
        initial = rng.choice([1, 2, 7, 1000, rng.randrange(1, 1 << 32)])
        divisor = 1 << rng.randrange(8)
        periodic = rng.random() < 0.5
        shift = rng.randrange(11)
        bias = rng.randrange(1 << 40)
        start = bias + rng.randrange(1 << 30)
        countdown.arm(start, initial, divisor, periodic)
        countdown.set_clock(shift, bias)
        for _ in range(30):
            icount = rng.randrange(1 << 34)
            expected = _count(icount, shift, bias, start, initial, divisor, periodic)
            assert countdown.publish_at(icount) == expected
            assert int.from_bytes(countdown._page[0x390:0x394], "little") == expected


def test_the_count_stays_exact_across_its_fast_path_stretches() -> None:
    """Walking icount by small steps (as the branch boundaries of a run do), and back:
    the C side's linear stretch of each period or one-shot gives the exact count at
    every step, across the ends of periods and of the one-shot's countdown, and after
    the clock's bias moves (a warp) or the countdown is armed again."""
    rng = random.Random(16)
    countdown = Countdown(mmap.mmap(-1, 4096), L.TIMER_CURRENT)
    for _ in range(60):
        initial = rng.choice([1, 2, 3, 50, 1000])
        divisor = 1 << rng.randrange(5)
        periodic = rng.random() < 0.6
        shift = rng.randrange(8)
        bias = rng.randrange(1 << 20)
        start = bias + rng.randrange(1 << 12)
        countdown.arm(start, initial, divisor, periodic)
        for _warp in range(2):
            countdown.set_clock(shift, bias)
            icount = rng.randrange(1 << 8)
            for _ in range(400):
                icount = max(0, icount + rng.choice([1, 1, 2, 3, 7, 40, -1, -5]))
                expected = _count(icount, shift, bias, start, initial, divisor, periodic)
                assert countdown.value_at(icount) == expected
                assert countdown.publish_at(icount) == expected
            bias += rng.randrange(1, 1 << 10)


def test_the_page_follows_every_mix_of_accepts_acknowledges_eois_and_tpr_stores(
    ctx: FakeContext,
) -> None:
    """Only the bitmap dwords that change are written at each step: after any mix of
    them, guest stores to the read-only bitmaps and restored states, every register in
    the page reads as `read_register` says."""
    rng = random.Random(17)
    apic = LocalApic(ctx)
    apic.reset()
    store(apic, L.SVR, 0x1FF)
    for step in range(3000):
        action = rng.randrange(6)
        if action == 0:
            apic.accept(rng.randrange(16, 256), level=rng.random() < 0.3)
        elif action == 1:
            apic.acknowledge()
        elif action == 2:
            store(apic, L.EOI, 0)
        elif action == 3:
            store(apic, L.TPR, rng.randrange(256))
        elif action == 4:
            base = rng.choice((L.ISR_BASE, L.TMR_BASE, L.IRR_BASE))
            store(apic, base + 16 * rng.randrange(8), rng.randrange(1 << 32))  # settles back
        elif rng.random() < 0.1:
            state = apic.save_state()
            apic.reset()
            apic.load_state(state)
        for offset in range(0, 0x400, 0x10):
            if offset != L.TIMER_CURRENT:
                assert page_read(apic, offset) == apic.read_register(offset), (step, hex(offset))

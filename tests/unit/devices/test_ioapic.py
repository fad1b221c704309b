"""IOAPIC: the select/data window as the guest reads it, version and ID, redirection
entries, edge routing of ISA IRQs (IRQ0 on pin 2) to the LAPIC, masking, save/load."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdebug.machine.devices import lapic as L
from rdebug.machine.devices.ioapic import IOAPIC_BASE, IOAPIC_ID, IoApic, isa_pin
from rdebug.machine.devices.lapic import LocalApic
from tests.unit.devices.conftest import FakeContext

MASKED = 1 << 16


def store(ioapic: IoApic, offset: int, value: int) -> None:
    ioapic.mmio_write(IOAPIC_BASE + offset, 4, value)
    ioapic.page[offset : offset + 4] = value.to_bytes(4, "little")
    ioapic.mmio_settle()


def read(ioapic: IoApic, index: int) -> int:
    store(ioapic, 0x00, index)
    return int.from_bytes(ioapic.page[0x10:0x14], "little")


def write(ioapic: IoApic, index: int, value: int) -> None:
    store(ioapic, 0x00, index)
    store(ioapic, 0x10, value)


@pytest.fixture
def lapic(ctx: FakeContext) -> LocalApic:
    device = LocalApic(ctx)
    device.reset()
    device.write_register(L.SVR, 0x1FF)
    return device


@pytest.fixture
def ioapic(ctx: FakeContext, lapic: LocalApic) -> IoApic:
    device = IoApic(ctx, lapic)
    device.reset()
    return device


def test_id_version_and_reset_entries(ioapic: IoApic) -> None:
    assert read(ioapic, 0) >> 24 == IOAPIC_ID
    version = read(ioapic, 1)
    assert version & 0xFF == 0x11
    assert (version >> 16) & 0xFF == 23  # 24 redirection entries
    assert read(ioapic, 2) >> 24 == IOAPIC_ID
    for pin in range(24):
        assert read(ioapic, 0x10 + 2 * pin) == MASKED
        assert read(ioapic, 0x11 + 2 * pin) == 0
    assert int.from_bytes(ioapic.page[0:4], "little") == 0x11 + 2 * 23  # IOREGSEL reads back


def test_entries_keep_writable_bits_only(ioapic: IoApic) -> None:
    write(ioapic, 0x10 + 2 * 5, 0xFFFFFFFF)
    write(ioapic, 0x11 + 2 * 5, 0xFFFFFFFF)
    assert read(ioapic, 0x10 + 2 * 5) == 0x0001AFFF  # delivery status, remote IRR: 0
    assert read(ioapic, 0x11 + 2 * 5) == 0xFF000000
    write(ioapic, 0, 0x0F000000)
    assert read(ioapic, 0) == 0x0F000000
    write(ioapic, 1, 0)  # read-only
    assert (read(ioapic, 1) >> 16) & 0xFF == 23


def test_isa_irq0_is_pin_2_the_others_their_own() -> None:
    assert isa_pin(0) == 2
    assert [isa_pin(irq) for irq in range(1, 16)] == list(range(1, 16))


def test_edges_on_unmasked_pins_reach_the_lapic(ioapic: IoApic, lapic: LocalApic) -> None:
    write(ioapic, 0x10 + 2 * 4, 0x24)  # COM1 (IRQ4) -> vector 0x24, physical dest 0
    write(ioapic, 0x10 + 2 * 2, 0x20)  # the PIT
    ioapic.set_irq(4, True)
    assert lapic.irr == 1 << 0x24
    ioapic.set_irq(4, True)  # no new edge
    assert lapic.acknowledge() == 0x24
    assert lapic.irr == 0
    ioapic.set_irq(4, False)
    ioapic.set_irq(4, True)
    assert lapic.irr == 1 << 0x24
    ioapic.set_irq(0, True)
    assert lapic.irr == (1 << 0x24) | (1 << 0x20)


def test_masked_edges_wait_for_the_unmask(ioapic: IoApic, lapic: LocalApic) -> None:
    write(ioapic, 0x10 + 2 * 1, MASKED | 0x21)
    ioapic.set_irq(1, True)
    ioapic.set_irq(1, False)
    assert lapic.irr == 0
    write(ioapic, 0x10 + 2 * 1, 0x21)
    assert lapic.irr == 1 << 0x21


def test_other_destinations_are_not_this_cpu(ioapic: IoApic, lapic: LocalApic) -> None:
    write(ioapic, 0x10 + 2 * 3, 0x23)
    write(ioapic, 0x11 + 2 * 3, 1 << 24)  # physical APIC id 1: absent
    ioapic.set_irq(3, True)
    assert lapic.irr == 0
    ioapic.set_irq(3, False)
    write(ioapic, 0x10 + 2 * 3, 0x23 | (1 << 11))  # logical, flat: LDR bit 0
    lapic.write_register(L.LDR, 1 << 24)
    write(ioapic, 0x11 + 2 * 3, 1 << 24)
    ioapic.set_irq(3, True)
    assert lapic.irr == 1 << 0x23


def test_save_load(ctx: FakeContext, ioapic: IoApic, lapic: LocalApic) -> None:
    write(ioapic, 0x10 + 2 * 7, MASKED | 0x27)
    ioapic.set_irq(7, True)
    store(ioapic, 0x00, 0x10 + 2 * 7)
    state = ioapic.save_state()
    twin = IoApic(ctx, lapic)
    twin.reset()
    twin.load_state(state)
    assert twin.save_state() == state
    assert bytes(twin.page) == bytes(ioapic.page)
    write(twin, 0x10 + 2 * 7, 0x27)
    assert lapic.irr == 1 << 0x27
    state["redirection"] = [0]
    with pytest.raises(TypeError):
        twin.load_state(state)


@settings(max_examples=200, deadline=None)
@given(
    stores=st.lists(
        st.tuples(
            st.sampled_from([(0x00, 4), (0x00, 2), (0x00, 1), (0x10, 4), (0x10, 2), (0x04, 4)]),
            st.one_of(st.integers(0, 0x3F), st.integers(0, 0xFFFFFFFF)),
        ),
        max_size=12,
    )
)
def test_a_store_settles_at_once_exactly_when_it_lands_on_what_the_settled_page_holds(
    stores: list[tuple[tuple[int, int], int]],
) -> None:
    """The machine settles a register page before the store lands (no stop after it) only
    when that gives the page it would have had by settling after it."""
    ctx = FakeContext()
    lapic = LocalApic(ctx)
    lapic.reset()
    ioapic = IoApic(ctx, lapic)
    ioapic.reset()
    for (offset, size), drawn in stores:
        value = drawn & ((1 << (8 * size)) - 1)
        ioapic.mmio_write(IOAPIC_BASE + offset, size, value)
        at_once = ioapic.settles_before_store(IOAPIC_BASE + offset, size, value)
        landed = value.to_bytes(size, "little")
        ioapic.mmio_settle()  # settled first, then the store lands
        first = bytearray(ioapic.page)
        first[offset : offset + size] = landed
        ioapic.page[offset : offset + size] = landed  # the store lands, then settled
        ioapic.mmio_settle()
        same = bytes(first) == bytes(ioapic.page)
        if at_once:
            assert same
        elif offset in (0x00, 0x10) and (offset, size) != (0x10, 2):
            assert not same  # (IOWIN takes 32-bit stores only)

"""8259A pair: ICW/OCW programming, masking, priorities, EOI, cascade, IRR/ISR reads."""

from __future__ import annotations

import pytest

from rdebug.machine.devices.pic import PicPair
from tests.unit.devices.conftest import FakeContext

MASTER_BASE = 0x20
SLAVE_BASE = 0x28

# OCW2 / OCW3 command bytes (8259A datasheet, figure 8).
NON_SPECIFIC_EOI = 0x20
READ_IRR = 0x0A
READ_ISR = 0x0B


def init_pair(pic: PicPair, *, icw1: int = 0x11, icw4: int = 0x01) -> None:
    """The ICW1-ICW4 sequence every PC kernel sends (vectors 0x20 and 0x28)."""
    pic.io_write(0x20, 1, icw1)  # ICW1: edge (or LTIM), cascade, ICW4 needed
    pic.io_write(0xA0, 1, icw1)
    pic.io_write(0x21, 1, MASTER_BASE)  # ICW2: vector base
    pic.io_write(0xA1, 1, SLAVE_BASE)
    pic.io_write(0x21, 1, 0x04)  # ICW3: slave on IR2
    pic.io_write(0xA1, 1, 0x02)  # ICW3: slave identity 2
    pic.io_write(0x21, 1, icw4)  # ICW4: 8086 mode (+ AEOI, SFNM...)
    pic.io_write(0xA1, 1, icw4)


@pytest.fixture
def pic(ctx: FakeContext) -> PicPair:
    device = PicPair(ctx)
    device.reset()
    init_pair(device)
    return device


def pulse(pic: PicPair, line: int) -> None:
    pic.set_irq(line, True)
    pic.set_irq(line, False)


def eoi(pic: PicPair, line: int) -> None:
    if line >= 8:
        pic.io_write(0xA0, 1, NON_SPECIFIC_EOI)
    pic.io_write(0x20, 1, NON_SPECIFIC_EOI)


def read_irr_isr(pic: PicPair, port: int) -> tuple[int, int]:
    pic.io_write(port, 1, READ_IRR)
    irr = pic.io_read(port, 1)
    pic.io_write(port, 1, READ_ISR)
    isr = pic.io_read(port, 1)
    return irr, isr


def test_power_on_masks_everything(ctx: FakeContext) -> None:
    pic = PicPair(ctx)
    pic.reset()
    assert pic.io_read(0x21, 1) == 0xFF
    assert pic.io_read(0xA1, 1) == 0xFF
    pulse(pic, 0)
    assert not pic.intr()


def test_full_init_sequence_sets_vectors_and_clears_imr(pic: PicPair) -> None:
    assert pic.io_read(0x21, 1) == 0x00  # ICW1 clears the IMR
    assert pic.io_read(0xA1, 1) == 0x00
    assert pic.master.icw2 == MASTER_BASE
    assert pic.slave.icw2 == SLAVE_BASE


@pytest.mark.parametrize(
    ("line", "vector"),
    [(line, MASTER_BASE + line) for line in (0, 1, 3, 4, 5, 6, 7)]
    + [(line, SLAVE_BASE + line - 8) for line in range(8, 16)]
    + [(2, SLAVE_BASE + 1)],  # the ISA IRQ2 pin is IRQ9 on an AT
)
def test_each_line_delivers_its_vector(pic: PicPair, line: int, vector: int) -> None:
    pulse(pic, line)
    assert pic.intr()
    assert pic.acknowledge() == vector
    assert not pic.intr()


def test_init_without_icw4_or_icw3(ctx: FakeContext) -> None:
    pic = PicPair(ctx)
    pic.io_write(0x20, 1, 0x12)  # ICW1: single, no ICW4
    pic.io_write(0x21, 1, 0x40)  # ICW2, then straight to operation
    pic.io_write(0x21, 1, 0xFD)  # OCW1: only IR1 enabled
    assert pic.io_read(0x21, 1) == 0xFD
    pulse(pic, 1)
    assert pic.acknowledge() == 0x41


@pytest.mark.parametrize(
    ("port", "imr", "line", "raised"),
    [
        (0x21, 0x01, 0, False),
        (0x21, 0xFE, 0, True),
        (0x21, 0x04, 12, False),  # masking the cascade masks the whole slave
        (0xA1, 0x10, 12, False),
        (0xA1, 0xEF, 12, True),
    ],
)
def test_masking(pic: PicPair, port: int, imr: int, line: int, raised: bool) -> None:
    pic.io_write(port, 1, imr)
    assert pic.io_read(port, 1) == imr
    pulse(pic, line)
    assert pic.intr() == raised


def test_masked_request_is_kept_and_delivered_on_unmask(pic: PicPair) -> None:
    pic.io_write(0x21, 1, 0x02)
    pulse(pic, 1)
    assert not pic.intr()
    pic.io_write(0x21, 1, 0x00)
    assert pic.intr()
    assert pic.acknowledge() == MASTER_BASE + 1


def test_fixed_priorities_and_nesting(pic: PicPair) -> None:
    pulse(pic, 5)
    pulse(pic, 3)
    assert pic.acknowledge() == MASTER_BASE + 3
    assert not pic.intr()  # IR3 in service holds back IR5
    pulse(pic, 1)
    assert pic.intr()  # a higher priority nests
    assert pic.acknowledge() == MASTER_BASE + 1
    assert read_irr_isr(pic, 0x20) == (0x20, 0x0A)
    eoi(pic, 1)  # non-specific EOI ends the highest in service: IR1
    assert not pic.intr()
    eoi(pic, 3)
    assert pic.acknowledge() == MASTER_BASE + 5


def test_specific_eoi(pic: PicPair) -> None:
    pulse(pic, 4)
    pulse(pic, 6)
    assert pic.acknowledge() == MASTER_BASE + 4
    pic.io_write(0x20, 1, 0x60 | 6)  # specific EOI for IR6: not in service, no effect
    assert read_irr_isr(pic, 0x20) == (0x40, 0x10)
    pic.io_write(0x20, 1, 0x60 | 4)
    assert read_irr_isr(pic, 0x20) == (0x40, 0x00)
    assert pic.acknowledge() == MASTER_BASE + 6


def test_cascade_through_the_slave(pic: PicPair) -> None:
    pulse(pic, 12)
    assert read_irr_isr(pic, 0x20) == (0x04, 0x00)  # the slave's INT on master IR2
    assert read_irr_isr(pic, 0xA0) == (0x10, 0x00)
    assert pic.acknowledge() == SLAVE_BASE + 4
    assert read_irr_isr(pic, 0x20) == (0x00, 0x04)
    assert read_irr_isr(pic, 0xA0) == (0x00, 0x10)
    pulse(pic, 14)
    pulse(pic, 1)
    assert pic.acknowledge() == MASTER_BASE + 1  # IR1 beats IR2 in service
    eoi(pic, 1)
    assert not pic.intr()  # IRQ14 waits for IRQ12's EOI on both chips
    eoi(pic, 12)
    assert pic.acknowledge() == SLAVE_BASE + 6


def test_slave_priority_is_that_of_ir2(pic: PicPair) -> None:
    pulse(pic, 3)
    pulse(pic, 8)
    pulse(pic, 1)
    assert [pic.acknowledge() for _ in range(1)] == [MASTER_BASE + 1]
    eoi(pic, 1)
    assert pic.acknowledge() == SLAVE_BASE + 0
    eoi(pic, 8)
    assert pic.acknowledge() == MASTER_BASE + 3


def test_edge_triggered_needs_a_new_edge(pic: PicPair) -> None:
    pic.set_irq(4, True)
    assert pic.acknowledge() == MASTER_BASE + 4
    eoi(pic, 4)
    assert not pic.intr()  # still high, but no new edge
    pic.set_irq(4, True)
    assert not pic.intr()
    pic.set_irq(4, False)
    pic.set_irq(4, True)
    assert pic.intr()


def test_level_triggered_follows_the_line(ctx: FakeContext) -> None:
    pic = PicPair(ctx)
    init_pair(pic, icw1=0x19)  # LTIM
    pic.set_irq(4, True)
    assert pic.acknowledge() == MASTER_BASE + 4
    eoi(pic, 4)
    assert pic.intr()  # still asserted: requests again
    pic.set_irq(4, False)
    assert not pic.intr()
    assert read_irr_isr(pic, 0x20) == (0x00, 0x00)


def test_spurious_irq7_when_a_level_request_goes_away(ctx: FakeContext) -> None:
    pic = PicPair(ctx)
    init_pair(pic, icw1=0x19)
    pic.set_irq(5, True)
    assert pic.intr()
    pic.set_irq(5, False)  # gone before the INTA cycle
    assert pic.acknowledge() == MASTER_BASE + 7
    assert read_irr_isr(pic, 0x20) == (0x00, 0x00)  # no ISR bit for a spurious IRQ7


def test_vanished_slave_request_is_a_spurious_irq7(ctx: FakeContext) -> None:
    # Master IR2 follows the slave's INT, so a slave request masked before the INTA
    # cycle takes the master's request away too: the master answers spurious IRQ7.
    pic = PicPair(ctx)
    init_pair(pic, icw1=0x19)
    pic.set_irq(10, True)
    assert pic.intr()
    pic.io_write(0xA1, 1, 0x04)
    assert pic.acknowledge() == MASTER_BASE + 7
    assert read_irr_isr(pic, 0xA0) == (0x04, 0x00)
    assert read_irr_isr(pic, 0x20) == (0x00, 0x00)


def test_auto_eoi(ctx: FakeContext) -> None:
    pic = PicPair(ctx)
    init_pair(pic, icw4=0x03)  # 8086 mode + AEOI
    pulse(pic, 3)
    pulse(pic, 5)
    assert pic.acknowledge() == MASTER_BASE + 3
    assert read_irr_isr(pic, 0x20) == (0x20, 0x00)
    assert pic.acknowledge() == MASTER_BASE + 5


def test_special_fully_nested_mode_lets_the_slave_nest(ctx: FakeContext) -> None:
    pic = PicPair(ctx)
    init_pair(pic, icw4=0x11)  # SFNM
    pulse(pic, 12)
    assert pic.acknowledge() == SLAVE_BASE + 4
    pulse(pic, 9)
    assert pic.acknowledge() == SLAVE_BASE + 1  # higher priority on the slave nests


def test_poll_command(pic: PicPair) -> None:
    pic.io_write(0x20, 1, 0x0C)  # OCW3 poll
    assert pic.io_read(0x20, 1) == 0x00  # nothing pending
    pulse(pic, 6)
    pic.io_write(0x20, 1, 0x0C)
    assert pic.io_read(0x20, 1) == 0x86  # and acknowledged
    assert read_irr_isr(pic, 0x20) == (0x00, 0x40)
    assert pic.io_read(0x21, 1) == 0x00  # the poll was one read only


def test_set_priority_rotates(pic: PicPair) -> None:
    pic.io_write(0x20, 1, 0xC0 | 3)  # OCW2 set priority: IR3 lowest, IR4 highest
    pulse(pic, 0)
    pulse(pic, 5)
    assert pic.acknowledge() == MASTER_BASE + 5
    pic.io_write(0x20, 1, 0xA0)  # rotate on non-specific EOI: IR5 becomes lowest
    assert pic.acknowledge() == MASTER_BASE + 0


def test_special_mask_mode(pic: PicPair) -> None:
    pulse(pic, 1)
    assert pic.acknowledge() == MASTER_BASE + 1
    pulse(pic, 6)
    assert not pic.intr()
    pic.io_write(0x21, 1, 0x02)  # mask the level in service ...
    pic.io_write(0x20, 1, 0x68)  # ... and set special mask mode
    assert pic.intr()
    assert pic.acknowledge() == MASTER_BASE + 6
    pic.io_write(0x20, 1, 0x48)  # reset special mask mode
    assert read_irr_isr(pic, 0x20) == (0x00, 0x42)


def test_reinit_resets_edge_sense_and_in_service(pic: PicPair) -> None:
    pic.set_irq(3, True)
    pic.acknowledge()
    init_pair(pic)
    assert read_irr_isr(pic, 0x20) == (0x00, 0x00)
    assert not pic.intr()  # the line is still high: it must go low then high again


def test_rising_int_asks_the_run_loop_to_stop(ctx: FakeContext, pic: PicPair) -> None:
    stops = ctx.stops
    pulse(pic, 0)
    pulse(pic, 1)
    assert ctx.stops == stops + 1


def test_word_access_reaches_both_registers(pic: PicPair) -> None:
    pic.io_write(0x20, 2, 0xA50A)  # OCW3 read IRR at 0x20, IMR 0xA5 at 0x21
    assert pic.io_read(0x20, 2) == 0xA500


def test_set_irq_rejects_bad_lines(pic: PicPair) -> None:
    with pytest.raises(ValueError, match="out of range"):
        pic.set_irq(16, True)

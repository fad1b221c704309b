"""8237A pair: registers through the flip-flop, page registers, masks, status, modes,
transfers both ways, terminal count with and without auto-init, 16-bit channels."""

from __future__ import annotations

import pytest

from rdebug.machine.devices.dma import IsaDma
from tests.unit.devices.conftest import FakeContext, Ram


def out(dma: IsaDma, port: int, value: int) -> None:
    dma.io_write(port, 1, value)


def inb(dma: IsaDma, port: int) -> int:
    return dma.io_read(port, 1)


def program8(dma: IsaDma, channel: int, addr: int, length: int, mode: int) -> None:
    """Channel 0-3: `mode` without the channel bits, `length` bytes at `addr`."""
    page_port = {0: 0x87, 1: 0x83, 2: 0x81, 3: 0x82}[channel]
    out(dma, 0x0A, 0x04 | channel)
    out(dma, 0x0C, 0)
    out(dma, 0x0B, mode | channel)
    out(dma, channel * 2, addr & 0xFF)
    out(dma, channel * 2, (addr >> 8) & 0xFF)
    out(dma, page_port, addr >> 16)
    out(dma, channel * 2 + 1, (length - 1) & 0xFF)
    out(dma, channel * 2 + 1, (length - 1) >> 8)
    out(dma, 0x0A, channel)


def test_ports(dma: IsaDma) -> None:
    ports = {p for r in dma.ports for p in r}
    assert 0x80 not in ports  # the POST port stays its own
    assert {0x00, 0x0F, 0x81, 0x8F, 0xC0, 0xDF} <= ports


def test_address_and_count_through_the_flip_flop(dma: IsaDma) -> None:
    out(dma, 0x0C, 0)
    out(dma, 0x02, 0x34)
    out(dma, 0x02, 0x12)
    out(dma, 0x03, 0xCD)
    out(dma, 0x03, 0xAB)
    out(dma, 0x0C, 0)
    assert [inb(dma, 0x02), inb(dma, 0x02), inb(dma, 0x03), inb(dma, 0x03)] == [
        0x34,
        0x12,
        0xCD,
        0xAB,
    ]
    # An odd number of accesses leaves the flip-flop on the high byte.
    inb(dma, 0x02)
    assert inb(dma, 0x02) == 0x12


@pytest.mark.parametrize(("channel", "port"), [(0, 0x87), (1, 0x83), (2, 0x81), (3, 0x82),
                                                (5, 0x8B), (6, 0x89), (7, 0x8A)])  # fmt: skip
def test_page_registers_read_back(dma: IsaDma, channel: int, port: int) -> None:
    out(dma, port, 0x5A)
    assert inb(dma, port) == 0x5A
    assert dma._channel(channel).page == 0x5A


def test_masks_single_all_and_clear(dma: IsaDma) -> None:
    assert inb(dma, 0x0F) & 0x0F == 0x0F  # all masked after reset
    out(dma, 0x0A, 0x01)  # unmask channel 1
    assert inb(dma, 0x0F) & 0x0F == 0x0D
    out(dma, 0x0F, 0x05)
    assert inb(dma, 0x0F) & 0x0F == 0x05
    out(dma, 0x0E, 0)
    assert inb(dma, 0x0F) & 0x0F == 0
    out(dma, 0x0D, 0)  # master clear masks everything
    assert inb(dma, 0x0F) & 0x0F == 0x0F


def test_write_transfer_single_cycle_reaches_terminal_count_and_masks(
    dma: IsaDma, ram: Ram
) -> None:
    program8(dma, 1, 0x12340, 6, 0x44)  # single, write (device -> memory)
    assert dma.ready(1, 0x04) and not dma.ready(1, 0x08)
    assert dma.write_memory(1, b"abcd") == 4
    assert dma.position(1) == (0x2344, 1)
    assert dma.write_memory(1, b"efgh") == 2  # only 2 left before terminal count
    assert ram.data[0x12340:0x12346] == b"abcdef"
    assert not dma.ready(1, 0x04)  # masked itself
    status = inb(dma, 0x08)
    assert status & 0x02  # TC of channel 1
    assert not inb(dma, 0x08) & 0x0F  # reading status cleared it


def test_read_transfer_auto_init_wraps_to_the_base(dma: IsaDma, ram: Ram) -> None:
    ram.data[0x20000:0x20004] = b"WXYZ"
    program8(dma, 3, 0x20000, 4, 0x48 | 0x10)  # single, read, auto-init
    assert dma.read_memory(3, 10) == b"WXYZWXYZWX"
    assert dma.ready(3, 0x08)
    assert dma.position(3) == (0x0002, 1)
    assert dma.terminal_count(3)


def test_address_decrement(dma: IsaDma, ram: Ram) -> None:
    ram.data[0x1000:0x1004] = b"1234"
    program8(dma, 2, 0x1003, 4, 0x48 | 0x20)
    assert dma.read_memory(2, 4) == b"4321"


def test_wraps_inside_the_64k_page(dma: IsaDma, ram: Ram) -> None:
    ram.data[0x3FFFE:0x40000] = b"ab"
    ram.data[0x30000:0x30002] = b"cd"
    program8(dma, 1, 0x3FFFE, 4, 0x48)
    assert dma.read_memory(1, 4) == b"abcd"


def test_verify_and_cascade_move_no_memory(dma: IsaDma, ram: Ram) -> None:
    program8(dma, 1, 0x5000, 4, 0x40)  # verify
    assert dma.write_memory(1, b"zzzz") == 4
    assert ram.data[0x5000:0x5004] == bytes(4)
    program8(dma, 0, 0x5000, 4, 0xC0)  # cascade
    assert not dma.ready(0, 0x04)
    assert dma.write_memory(0, b"zz") == 0


def test_masked_or_disabled_channel_moves_nothing(dma: IsaDma) -> None:
    program8(dma, 1, 0x6000, 4, 0x44)
    out(dma, 0x0A, 0x05)
    assert dma.write_memory(1, b"ab") == 0
    out(dma, 0x0A, 0x01)
    out(dma, 0x08, 0x04)  # command: controller disabled
    assert dma.write_memory(1, b"ab") == 0


def test_16_bit_channel_counts_words(dma: IsaDma, ram: Ram) -> None:
    addr = 0x24000
    out(dma, 0xD4, 0x04 | 1)
    out(dma, 0xD8, 0)
    out(dma, 0xD6, 0x48 | 1)  # single, read, channel 5
    out(dma, 0xC4, (addr >> 1) & 0xFF)
    out(dma, 0xC4, (addr >> 9) & 0xFF)
    out(dma, 0x8B, addr >> 16)
    out(dma, 0xC6, 2)  # 3 words
    out(dma, 0xC6, 0)
    out(dma, 0xD4, 1)
    ram.data[addr : addr + 8] = b"ABCDEFGH"
    assert dma.unit(5) == 2
    assert dma.read_memory(5, 7) == b"ABCDEF"  # whole words only, 3 of them
    assert inb(dma, 0xD0) & 0x02  # controller 2 status: TC of channel 5
    assert inb(dma, 0xC5) == 0xFF  # odd ports are not decoded


def test_status_shows_dreq(dma: IsaDma) -> None:
    dma.set_dreq(1, True)
    assert inb(dma, 0x08) & 0x20
    dma.set_dreq(1, False)
    out(dma, 0x09, 0x04 | 2)  # software request on channel 2
    assert inb(dma, 0x08) & 0x40


def test_save_load_save(ctx: FakeContext, dma: IsaDma, ram: Ram) -> None:
    program8(dma, 1, 0x12345, 100, 0x54)
    dma.write_memory(1, b"x" * 10)
    out(dma, 0x8C, 7)
    state = dma.save_state()
    twin = IsaDma(ctx, ram)
    twin.load_state(state)
    assert twin.save_state() == state
    assert twin.position(1) == dma.position(1)

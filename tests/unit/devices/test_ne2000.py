"""NE2000 (DP8390): PROM, remote DMA, transmit, the receive ring, filter, IRQ, state."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdebug.machine.devices.ne2000 import (
    DEFAULT_MAC,
    MAX_FRAME,
    Ne2000,
    NicConfig,
    ether_crc,
)
from tests.unit.devices.conftest import FakeContext

BASE = 0x300
CR, PSTART, PSTOP, BNRY, TPSR, TBCR0, TBCR1, ISR = (BASE + i for i in range(8))
RSAR0, RSAR1, RBCR0, RBCR1, RCR, TCR, DCR, IMR = (BASE + i for i in range(8, 16))
CURR = BASE + 7  # page 1
DATA = BASE + 0x10
RESET = BASE + 0x1F
CNTR2 = BASE + 0x0F

BROADCAST = b"\xff" * 6
PEER = bytes.fromhex("525400aabbcc")


class Sent:
    def __init__(self) -> None:
        self.frames: list[tuple[bytes, int]] = []

    def transmit(self, frame: bytes, now_ns: int) -> None:
        self.frames.append((frame, now_ns))


@pytest.fixture
def sent() -> Sent:
    return Sent()


@pytest.fixture
def nic(ctx: FakeContext, sent: Sent) -> Ne2000:
    device = Ne2000(ctx, NicConfig(), sent)
    device.reset()
    return device


def out(nic: Ne2000, port: int, value: int, size: int = 1) -> None:
    nic.io_write(port, size, value)


def inb(nic: Ne2000, port: int, size: int = 1) -> int:
    return nic.io_read(port, size)


def start(nic: Ne2000, rcr: int = 0x04, word: bool = True, imr: int = 0x7F) -> None:
    """What a driver does: stop, DCR, ring 0x46..0x80, RCR, CURR = BNRY, start."""
    out(nic, CR, 0x21)
    out(nic, DCR, 0x49 if word else 0x48)
    out(nic, RBCR0, 0)
    out(nic, RBCR1, 0)
    out(nic, RCR, rcr)
    out(nic, TCR, 0x00)
    out(nic, PSTART, 0x46)
    out(nic, PSTOP, 0x80)
    out(nic, BNRY, 0x46)
    out(nic, ISR, 0xFF)
    out(nic, IMR, imr)
    out(nic, CR, 0x61)  # page 1
    out(nic, CURR, 0x46)
    out(nic, CR, 0x22)  # page 0, start, no DMA


def remote_read(nic: Ne2000, addr: int, length: int) -> bytes:
    out(nic, RSAR0, addr & 0xFF)
    out(nic, RSAR1, addr >> 8)
    out(nic, RBCR0, length & 0xFF)
    out(nic, RBCR1, length >> 8)
    out(nic, CR, 0x0A)  # start, remote read
    return bytes(inb(nic, DATA) for _ in range(length))


def remote_write(nic: Ne2000, addr: int, data: bytes) -> None:
    out(nic, RSAR0, addr & 0xFF)
    out(nic, RSAR1, addr >> 8)
    out(nic, RBCR0, len(data) & 0xFF)
    out(nic, RBCR1, len(data) >> 8)
    out(nic, CR, 0x12)  # start, remote write
    for octet in data:
        out(nic, DATA, octet)


def frame(dest: bytes = DEFAULT_MAC, length: int = 64, fill: int = 0xA5) -> bytes:
    return dest + PEER + b"\x08\x00" + bytes([fill]) * (length - 14)


def test_power_on_is_stopped_with_rst(nic: Ne2000) -> None:
    assert inb(nic, CR) & 0x01
    assert inb(nic, ISR) == 0x80
    assert not nic.receive(frame())


def test_prom_holds_the_mac_doubled(nic: Ne2000) -> None:
    prom = remote_read(nic, 0, 32)
    assert prom[0:12:2] == DEFAULT_MAC
    assert prom[1:12:2] == DEFAULT_MAC
    assert prom[14:16] == b"WW"
    assert inb(nic, ISR) & 0x40  # remote DMA complete


def test_word_access_on_the_data_port(nic: Ne2000) -> None:
    out(nic, DCR, 0x49)
    out(nic, RSAR0, 0)
    out(nic, RSAR1, 0)
    out(nic, RBCR0, 4)
    out(nic, RBCR1, 0)
    out(nic, CR, 0x0A)
    assert inb(nic, DATA, 2) == 0x5252
    assert inb(nic, DATA, 2) == 0x5454


def test_remote_write_then_read_back(nic: Ne2000) -> None:
    remote_write(nic, 0x4000, b"hello, card")
    assert inb(nic, ISR) & 0x40
    out(nic, ISR, 0x40)
    assert not inb(nic, ISR) & 0x40
    assert remote_read(nic, 0x4000, 11) == b"hello, card"
    assert inb(nic, BASE + 8) | inb(nic, BASE + 9) << 8 == 0x400B  # CRDA


def test_transmit(nic: Ne2000, sent: Sent, ctx: FakeContext) -> None:
    start(nic)
    payload = frame(PEER, 60)
    remote_write(nic, 0x4000, payload)
    ctx.now = 12345
    out(nic, TPSR, 0x40)
    out(nic, TBCR0, 60)
    out(nic, TBCR1, 0)
    out(nic, CR, 0x26)  # start + TXP
    assert sent.frames == [(payload, 12345)]
    assert inb(nic, ISR) & 0x02
    assert not inb(nic, CR) & 0x04  # TXP clears when done
    assert inb(nic, BASE + 4) & 0x01  # TSR.PTX


def test_receive_writes_header_and_frame(nic: Ne2000, ctx: FakeContext) -> None:
    start(nic)
    data = frame(length=100)
    assert nic.receive(data)
    assert inb(nic, ISR) & 0x01
    assert ctx.level(9)
    header = remote_read(nic, 0x4600, 4)
    assert header == bytes([0x01, 0x47, 104, 0])
    assert remote_read(nic, 0x4604, 100) == data
    out(nic, CR, 0x62)
    assert inb(nic, CURR) == 0x47
    out(nic, CR, 0x22)
    out(nic, ISR, 0x41)  # PRX and the remote reads' RDC
    assert not ctx.level(9)


def test_runt_is_padded_and_tiny_frames_dropped(nic: Ne2000) -> None:
    start(nic)
    arp = frame(BROADCAST, 42)
    assert nic.receive(arp)
    header = remote_read(nic, 0x4600, 4)
    assert header == bytes([0x21, 0x47, 64, 0])  # PHY (broadcast), 60 + 4 bytes
    assert remote_read(nic, 0x4604, 60) == arp + bytes(18)
    assert not nic.receive(b"\x01\x02\x03")
    assert not nic.receive(b"")


def test_oversize_frames_are_dropped(nic: Ne2000) -> None:
    start(nic)
    assert not nic.receive(frame(length=MAX_FRAME + 1))
    assert nic.receive(frame(length=MAX_FRAME))
    out(nic, CR, 0x62)
    assert inb(nic, CURR) == 0x46 + 6  # (1518 + 4) / 256 rounded up


def test_frame_wraps_around_the_ring(nic: Ne2000) -> None:
    start(nic)
    out(nic, CR, 0x62)
    out(nic, CURR, 0x7F)
    out(nic, CR, 0x22)
    out(nic, BNRY, 0x7F)
    data = frame(length=300, fill=0x3C)
    assert nic.receive(data)
    out(nic, CR, 0x62)
    assert inb(nic, CURR) == 0x46 + 1  # 0x7F, 0x80 -> 0x46, next 0x47
    out(nic, CR, 0x22)
    # A remote read crossing PSTOP continues at PSTART, as drivers expect.
    assert remote_read(nic, 0x7F00, 304) == bytes([0x01, 0x47, 0x30, 0x01]) + data


def test_overflow_when_the_ring_is_full(nic: Ne2000, ctx: FakeContext) -> None:
    start(nic)
    stored = 0
    while nic.receive(frame(length=1000)):
        stored += 1
    assert stored == (0x80 - 0x46 - 1) // 4
    assert inb(nic, ISR) & 0x10
    assert inb(nic, CNTR2) == 1  # a missed packet, cleared by reading
    assert inb(nic, CNTR2) == 0
    out(nic, BNRY, 0x46 + 4)  # the driver took one frame
    out(nic, ISR, 0x10)
    assert nic.receive(frame(length=1000))
    assert not nic.receive(frame(length=1000))


@pytest.mark.parametrize(
    ("rcr", "dest", "accepted"),
    [
        (0x00, DEFAULT_MAC, True),
        (0x00, PEER, False),
        (0x00, BROADCAST, False),
        (0x04, BROADCAST, True),
        (0x10, PEER, True),  # promiscuous
        (0x00, bytes.fromhex("01005e000001"), False),
    ],
)
def test_address_filter(nic: Ne2000, rcr: int, dest: bytes, accepted: bool) -> None:
    start(nic, rcr=rcr)
    assert nic.receive(frame(dest)) is accepted


def test_multicast_hash(nic: Ne2000) -> None:
    group = bytes.fromhex("01005e000001")
    start(nic, rcr=0x08)
    assert not nic.receive(frame(group))  # MAR all zero
    index = ether_crc(group) >> 26
    out(nic, CR, 0x62)
    out(nic, BASE + 8 + (index >> 3), 1 << (index & 7))
    out(nic, CR, 0x22)
    assert nic.receive(frame(group))
    assert not nic.receive(frame(bytes.fromhex("01005e000002")))


@settings(deadline=None)
@given(st.binary(max_size=64))
def test_ether_crc_is_the_bit_reversed_ieee_crc(data: bytes) -> None:
    reflected = zlib.crc32(data) ^ 0xFFFFFFFF
    assert ether_crc(data) == int(f"{reflected:032b}"[::-1], 2)


def test_irq_follows_isr_and_imr(nic: Ne2000, ctx: FakeContext) -> None:
    start(nic, imr=0x00)
    nic.receive(frame())
    assert not ctx.level(9)
    out(nic, IMR, 0x01)
    assert ctx.level(9)
    out(nic, IMR, 0x00)
    assert not ctx.level(9)


def test_stopped_card_drops_frames_and_reset_port_stops_it(nic: Ne2000) -> None:
    start(nic)
    assert nic.receive(frame())
    inb(nic, RESET)
    assert inb(nic, ISR) & 0x80
    assert not nic.receive(frame())


def test_loopback_transmit_comes_back_without_leaving(nic: Ne2000, sent: Sent) -> None:
    start(nic)
    out(nic, TCR, 0x02)
    payload = frame(length=60)
    remote_write(nic, 0x4000, payload)
    out(nic, TPSR, 0x40)
    out(nic, TBCR0, 60)
    out(nic, CR, 0x26)
    assert sent.frames == []
    assert remote_read(nic, 0x4604, 60) == payload


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match="iobase"):
        NicConfig(iobase=0x301)
    with pytest.raises(ValueError, match="irq"):
        NicConfig(irq=16)
    with pytest.raises(ValueError, match="unicast"):
        NicConfig(mac=BROADCAST)


def test_state_round_trip_and_twin(nic: Ne2000, new_ctx: type[FakeContext]) -> None:
    start(nic)
    nic.receive(frame(length=200))
    state = nic.save_state()
    twin = Ne2000(new_ctx(0), NicConfig())
    twin.load_state(state)
    assert twin.save_state() == state
    for device in (nic, twin):
        device.receive(frame(length=80, fill=7))
    assert twin.save_state() == nic.save_state()
    assert remote_read(twin, 0x4600, 300) == remote_read(nic, 0x4600, 300)


def test_damaged_state_is_refused(nic: Ne2000) -> None:
    state = nic.save_state()
    state["ram"] = b"short"
    with pytest.raises(TypeError):
        nic.load_state(state)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 0x1F), st.integers(0, 255), st.sampled_from([1, 2])),
        max_size=60,
    ),
    st.lists(st.binary(max_size=1600), max_size=6),
)
def test_random_register_writes_and_frames_never_crash(
    writes: list[tuple[int, int, int]], frames: list[bytes]
) -> None:
    nic = Ne2000(FakeContext(), NicConfig(), Sent())
    nic.reset()
    for offset, value, size in writes:
        nic.io_write(BASE + offset, size, value)
        nic.io_read(BASE + offset, size)
    for data in frames:
        nic.receive(data)
    state = nic.save_state()
    nic.load_state(state)
    assert nic.save_state() == state

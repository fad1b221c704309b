"""Sound Blaster 16: DSP reset and version, commands and parameters, the mixer's IRQ,
DMA and status registers, transfers in virtual time both ways, interrupts and their
acknowledgement, pause/continue, exit auto-init, and save/load mid-transfer."""

from __future__ import annotations

import pytest

from rdebug.machine.audio import AudioFormat
from rdebug.machine.devices.dma import IsaDma
from rdebug.machine.devices.sb16 import Sb16, Sb16Config
from tests.unit.devices.conftest import FakeContext, Ram
from tests.unit.devices.test_dma import out, program8

BASE = 0x220
MS = 1_000_000


class Sink:
    def __init__(self) -> None:
        self.played: list[tuple[AudioFormat, bytes, int]] = []
        self.ctx: FakeContext | None = None

    def play(self, fmt: AudioFormat, data: bytes) -> None:
        self.played.append((fmt, data, self.ctx.now if self.ctx else 0))

    @property
    def data(self) -> bytes:
        return b"".join(chunk for _, chunk, _ in self.played)


class Mic:
    """Counts up from 0: byte i of the stream is i & 0xFF."""

    def __init__(self) -> None:
        self.next = 0
        self.requests: list[tuple[AudioFormat, int]] = []

    def __call__(self, fmt: AudioFormat, frames: int) -> bytes:
        self.requests.append((fmt, frames))
        n = frames * fmt.frame_bytes
        data = bytes((self.next + i) & 0xFF for i in range(n))
        self.next += n
        return data


@pytest.fixture
def sink(ctx: FakeContext) -> Sink:
    s = Sink()
    s.ctx = ctx
    return s


@pytest.fixture
def mic() -> Mic:
    return Mic()


@pytest.fixture
def sb(ctx: FakeContext, dma: IsaDma, sink: Sink, mic: Mic) -> Sb16:
    device = Sb16(ctx, dma, Sb16Config(), sink, mic)
    device.reset()
    return device


def dsp(sb: Sb16, *values: int) -> None:
    for value in values:
        assert sb.io_read(BASE + 0xC, 1) & 0x80 == 0
        sb.io_write(BASE + 0xC, 1, value)


def read_dsp(sb: Sb16) -> int:
    assert sb.io_read(BASE + 0xE, 1) & 0x80
    return sb.io_read(BASE + 0xA, 1)


def mixer(sb: Sb16, index: int, value: int | None = None) -> int:
    sb.io_write(BASE + 4, 1, index)
    if value is not None:
        sb.io_write(BASE + 5, 1, value)
    return sb.io_read(BASE + 5, 1)


def reset(sb: Sb16) -> None:
    sb.io_write(BASE + 6, 1, 1)
    sb.io_write(BASE + 6, 1, 0)


def test_reset_answers_0xaa_and_version_4_05(sb: Sb16) -> None:
    reset(sb)
    assert read_dsp(sb) == 0xAA
    assert not sb.io_read(BASE + 0xE, 1) & 0x80
    dsp(sb, 0xE1)
    assert (read_dsp(sb), read_dsp(sb)) == (4, 5)


def test_identification_test_register_copyright_speaker(sb: Sb16) -> None:
    reset(sb)
    read_dsp(sb)
    dsp(sb, 0xE0, 0x5A)
    assert read_dsp(sb) == 0xA5
    dsp(sb, 0xE4, 0x3C, 0xE8)
    assert read_dsp(sb) == 0x3C
    dsp(sb, 0xE3)
    text = bytes(read_dsp(sb) for _ in range(45))
    assert text.startswith(b"COPYRIGHT (C) CREATIVE") and text[-1] == 0
    dsp(sb, 0xD8)
    assert read_dsp(sb) == 0x00
    dsp(sb, 0xD1, 0xD8)
    assert read_dsp(sb) == 0xFF
    dsp(sb, 0xD3, 0xD8)
    assert read_dsp(sb) == 0x00


def test_mixer_resources_and_forced_interrupts(ctx: FakeContext, sb: Sb16) -> None:
    assert mixer(sb, 0x80) == 0x02  # IRQ 5
    assert mixer(sb, 0x81) == 0x22  # DMA 1 and 5
    assert mixer(sb, 0x82) & 3 == 0
    dsp(sb, 0xF2)
    assert ctx.level(5) and mixer(sb, 0x82) & 1
    sb.io_read(BASE + 0xE, 1)  # acknowledges the 8-bit interrupt
    assert not ctx.level(5)
    dsp(sb, 0xF3)
    assert ctx.level(5) and mixer(sb, 0x82) & 2
    sb.io_read(BASE + 0xE, 1)  # the 8-bit acknowledge leaves the 16-bit one
    assert ctx.level(5)
    sb.io_read(BASE + 0xF, 1)
    assert not ctx.level(5)
    mixer(sb, 0x80, 0x04)  # IRQ 7
    dsp(sb, 0xF2)
    assert ctx.level(7) and not ctx.level(5)
    mixer(sb, 0x30, 0x11)
    assert mixer(sb, 0x30) == 0x11
    mixer(sb, 0x00, 0)  # mixer reset: volumes back, IRQ setting kept
    assert mixer(sb, 0x30) == 0x20 and mixer(sb, 0x80) == 0x04


def test_8bit_single_cycle_output_in_virtual_time(
    ctx: FakeContext, sb: Sb16, dma: IsaDma, ram: Ram, sink: Sink
) -> None:
    ram.data[0x10000 : 0x10000 + 200] = bytes(range(200))
    program8(dma, 1, 0x10000, 200, 0x48)
    dsp(sb, 0x41, 8000 >> 8, 8000 & 0xFF)  # 8000 Hz
    dsp(sb, 0xC0, 0x00, 199, 0)  # 8-bit output, single-cycle, 200 samples
    ctx.advance(10 * MS)  # 80 samples due
    assert sink.data == bytes(range(80))
    assert not ctx.level(5)
    ctx.advance(15 * MS - 1)  # just short of 25 ms: moved in steps of 10 ms
    assert sink.data == bytes(range(160))
    assert not ctx.level(5)
    ctx.advance(1)
    assert sink.data == bytes(range(200))
    assert ctx.rises(5) == [25 * MS]
    assert sink.played[0][0] == AudioFormat(8000, 1, 8, False)
    assert ctx.deadline(sb) is None  # single-cycle: done
    ctx.advance(100 * MS)
    assert len(sink.data) == 200


def test_8bit_auto_init_input_two_halves(
    ctx: FakeContext, sb: Sb16, dma: IsaDma, ram: Ram, mic: Mic
) -> None:
    program8(dma, 1, 0x20000, 400, 0x44 | 0x10)
    dsp(sb, 0x42, 8000 >> 8, 8000 & 0xFF)
    dsp(sb, 0xCE, 0x00, 199, 0)  # input, auto-init: IRQ every 200 bytes
    ctx.advance(25 * MS)
    assert ctx.rises(5) == [25 * MS]
    sb.io_read(BASE + 0xE, 1)
    dsp(sb, 0xDA)  # exit auto-init after this block
    ctx.advance(100 * MS)
    assert ctx.rises(5) == [25 * MS, 50 * MS]
    assert ram.data[0x20000 : 0x20000 + 400] == bytes(i & 0xFF for i in range(400))
    assert mic.next == 400  # no sample taken beyond the transfer
    assert {fmt for fmt, _ in mic.requests} == {AudioFormat(8000, 1, 8, False)}
    assert max(frames for _, frames in mic.requests) <= 80  # 10 ms steps at most


def test_16bit_stereo_auto_init_on_channel_5(
    ctx: FakeContext, sb: Sb16, dma: IsaDma, ram: Ram, sink: Sink
) -> None:
    addr, frames = 0x40000, 100
    ram.data[addr : addr + 8 * frames] = bytes(i % 251 for i in range(8 * frames))
    out(dma, 0xD4, 0x05)
    out(dma, 0xD8, 0)
    out(dma, 0xD6, 0x59)
    out(dma, 0xC4, (addr >> 1) & 0xFF)
    out(dma, 0xC4, (addr >> 9) & 0xFF)
    out(dma, 0x8B, addr >> 16)
    words = 4 * frames
    out(dma, 0xC6, (words - 1) & 0xFF)
    out(dma, 0xC6, (words - 1) >> 8)
    out(dma, 0xD4, 0x01)
    dsp(sb, 0x41, 20000 >> 8, 20000 & 0xFF)
    dsp(sb, 0xB6, 0x30, (2 * frames - 1) & 0xFF, (2 * frames - 1) >> 8)  # block: 100 frames
    ctx.advance(5 * MS)  # one block of 100 frames at 20 kHz
    assert ctx.rises(5) == [5 * MS] and mixer(sb, 0x82) & 2
    sb.io_read(BASE + 0xF, 1)
    dsp(sb, 0xD9)
    ctx.advance(20 * MS)
    assert ctx.rises(5) == [5 * MS, 10 * MS]
    assert sink.data == bytes(ram.data[addr : addr + 8 * frames])
    assert sink.played[0][0] == AudioFormat(20000, 2, 16, True)


def test_pause_and_continue(ctx: FakeContext, sb: Sb16, dma: IsaDma, sink: Sink) -> None:
    program8(dma, 1, 0x10000, 1000, 0x48)
    dsp(sb, 0x41, 8000 >> 8, 8000 & 0xFF)
    dsp(sb, 0xC0, 0x00, 0xE7, 0x03)  # 1000 samples
    ctx.advance(10 * MS)
    dsp(sb, 0xD0)  # pause
    ctx.advance(50 * MS)
    assert len(sink.data) == 80
    dsp(sb, 0xD4)  # continue: counting restarts now
    ctx.advance(10 * MS)
    assert len(sink.data) == 160


def test_masked_channel_stalls_without_taking_samples(
    ctx: FakeContext, sb: Sb16, dma: IsaDma, mic: Mic
) -> None:
    program8(dma, 1, 0x20000, 400, 0x44 | 0x10)
    out(dma, 0x0A, 0x05)  # mask channel 1
    dsp(sb, 0x42, 8000 >> 8, 8000 & 0xFF)
    dsp(sb, 0xCE, 0x00, 199, 0)
    ctx.advance(50 * MS)
    assert mic.next == 0 and not ctx.level(5)
    out(dma, 0x0A, 0x01)
    ctx.advance(25 * MS)
    assert mic.next == 200 and ctx.level(5)


def test_time_constant_sets_the_rate(ctx: FakeContext, sb: Sb16, dma: IsaDma, sink: Sink) -> None:
    program8(dma, 1, 0x10000, 100, 0x48)
    dsp(sb, 0x40, 256 - 100)  # 1e6 / 100 = 10 kHz
    dsp(sb, 0x14, 99, 0)  # legacy 8-bit single-cycle output, 100 bytes
    ctx.advance(10 * MS)
    assert len(sink.data) == 100 and ctx.level(5)
    assert sink.played[0][0].rate == 10000


def test_reset_stops_a_transfer(ctx: FakeContext, sb: Sb16, dma: IsaDma, sink: Sink) -> None:
    program8(dma, 1, 0x10000, 1000, 0x48 | 0x10)
    dsp(sb, 0x48, 99, 0, 0x1C)  # block size 100, 8-bit auto-init output
    ctx.advance(50 * MS)
    reset(sb)
    played = len(sink.data)
    ctx.advance(50 * MS)
    assert len(sink.data) == played
    assert ctx.deadline(sb) is None


def test_save_load_mid_transfer_continues_the_same(new_ctx: type[FakeContext], ram: Ram) -> None:
    def machine() -> tuple[FakeContext, IsaDma, Sb16, Sink, Mic]:
        c = new_ctx(0)
        d = IsaDma(c, ram)
        d.reset()
        s = Sink()
        s.ctx = c
        m = Mic()
        card = Sb16(c, d, Sb16Config(), s, m)
        card.reset()
        return c, d, card, s, m

    ctx, dma, sb, _sink, mic = machine()
    program8(dma, 1, 0x20000, 400, 0x44 | 0x10)
    dsp(sb, 0x42, 8000 >> 8, 8000 & 0xFF)
    dsp(sb, 0xCE, 0x00, 199, 0)
    ctx.advance(12 * MS + 345)
    states = (dma.save_state(), sb.save_state(), ctx.now, mic.next)
    ctx.advance(40 * MS)
    straight = (bytes(ram.data[0x20000:0x20400]), ctx.rises(5), mic.next)

    ctx2, dma2, sb2, _sink2, mic2 = machine()
    ctx2.now = states[2]
    mic2.next = states[3]
    dma2.load_state(states[0])
    sb2.load_state(states[1])
    assert sb2.save_state() == states[1]
    ctx2.advance(40 * MS)
    assert (bytes(ram.data[0x20000:0x20400]), mic2.next) == (straight[0], straight[2])
    assert ctx2.rises(5) == [25 * MS]


def test_mixer_dma_setting_moves_the_8bit_channel(
    ctx: FakeContext, sb: Sb16, dma: IsaDma, ram: Ram, sink: Sink
) -> None:
    mixer(sb, 0x81, 0x08 | 0x20)  # 8-bit DMA 3, 16-bit DMA 5
    assert mixer(sb, 0x81) == 0x28
    ram.data[0x30000:0x30004] = b"abcd"
    program8(dma, 1, 0x10000, 4, 0x48)  # channel 1 is no longer the card's
    program8(dma, 3, 0x30000, 4, 0x48)
    dsp(sb, 0x41, 8000 >> 8, 8000 & 0xFF, 0xC0, 0x00, 3, 0)
    ctx.advance(10 * MS)
    assert sink.data == b"abcd" and ctx.level(5)
    assert dma.position(1) == (0x0000, 3)  # untouched

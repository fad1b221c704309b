"""RSP framing: checksums, escapes, run-length decoding, and the incremental decoder."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rdebug.gdbstub.errors import PacketError
from rdebug.gdbstub.packet import (
    Ack,
    BadPacket,
    Event,
    Interrupt,
    Nack,
    Packet,
    PacketDecoder,
    checksum,
    decode_hex,
    escape_binary,
    expand_rle,
    frame,
    unescape_binary,
)


@pytest.mark.parametrize(
    ("payload", "wire"),
    [
        (b"", b"$#00"),
        (b"OK", b"$OK#9a"),
        (b"g", b"$g#67"),
        (b"m1000,4", b"$m1000,4#8e"),
        (b"qSupported", b"$qSupported#37"),
        (b"\xff\xff", b"$\xff\xff#fe"),  # the sum wraps modulo 256
    ],
)
def test_frame_appends_the_mod_256_checksum(payload: bytes, wire: bytes) -> None:
    assert frame(payload) == wire
    assert checksum(payload) == int(wire[-2:], 16)


@pytest.mark.parametrize("bad", [b"a$b", b"a#b", b"0*!"])
def test_frame_refuses_unescaped_framing_bytes(bad: bytes) -> None:
    with pytest.raises(ValueError):
        frame(bad)


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        (b"abc", b"abc"),
        (b"#", b"}\x03"),
        (b"$", b"}\x04"),
        (b"}", b"}]"),
        (b"*", b"}\x0a"),
        (b"\x00\x7d\xff", b"\x00}]\xff"),
    ],
)
def test_binary_escapes(raw: bytes, escaped: bytes) -> None:
    assert escape_binary(raw) == escaped
    assert unescape_binary(escaped) == raw


@given(st.binary(max_size=200))
def test_escape_round_trips_and_leaves_no_framing_byte(data: bytes) -> None:
    escaped = escape_binary(data)
    assert unescape_binary(escaped) == data
    assert not set(escaped) & set(b"#$*")
    frame(escaped)  # no ValueError


def test_unescape_refuses_a_trailing_escape() -> None:
    with pytest.raises(PacketError):
        unescape_binary(b"ab}")


@pytest.mark.parametrize(
    ("encoded", "expanded"),
    [
        (b"0* ", b"0000"),  # ' ' = 32 = 3 + 29: three more
        (b'0*"00', b"00000000"),  # the manual's example
        (b"ab*!c", b"abbbbbc"),
        (b"plain", b"plain"),
    ],
)
def test_run_length_decoding(encoded: bytes, expanded: bytes) -> None:
    assert expand_rle(encoded) == expanded


@pytest.mark.parametrize("bad", [b"*  ", b"0*", b"0*\x10"])
def test_bad_run_length_is_a_packet_error(bad: bytes) -> None:
    with pytest.raises(PacketError):
        expand_rle(bad)


@pytest.mark.parametrize("bad", [b"0", b"zz", b"123"])
def test_decode_hex_refuses_non_hex(bad: bytes) -> None:
    with pytest.raises(PacketError):
        decode_hex(bad)


# -- the decoder --------------------------------------------------------------------------


def _cs(payload: bytes) -> bytes:
    return f"{checksum(payload):02x}".encode()


@pytest.mark.parametrize(
    ("stream", "events"),
    [
        (b"$g#67", [Packet(b"g")]),
        (b"+-\x03", [Ack(), Nack(), Interrupt()]),
        (b"+$m1000,4#8e", [Ack(), Packet(b"m1000,4")]),
        # garbage outside packets is ignored
        (b"hello\r\n$g#67junk", [Packet(b"g")]),
        # a bad checksum is reported, and the next packet still decodes
        (b"$g#68$g#67", [BadPacket(b"$g#68", "checksum 68, expected 67"), Packet(b"g")]),
        (b"$g#zz", [BadPacket(b"$g#zz", "checksum b'zz' is not hex")]),
        # checksums are case-insensitive hex
        (b"$OK#9A", [Packet(b"OK")]),
        # '$' inside a packet restarts it
        (b"$m10$g#67", [Packet(b"g")]),
        # 0x03 inside a packet is data, not an interrupt
        (b"$X1,1:\x03#" + _cs(b"X1,1:\x03"), [Packet(b"X1,1:\x03")]),
        # run-length encoded input is expanded after the checksum is checked
        (b"$0* #" + _cs(b"0* "), [Packet(b"0000")]),
        (
            b"$*0#" + _cs(b"*0"),
            [
                BadPacket(
                    b"$*0#" + _cs(b"*0"),
                    "run-length marker without a character to repeat or a count",
                )
            ],
        ),
    ],
)
def test_decoder_events(stream: bytes, events: list[Event]) -> None:
    assert PacketDecoder().feed(stream) == events


def test_decoder_survives_reads_split_anywhere() -> None:
    stream = b"+" + frame(b"qSupported:swbreak+;hwbreak+") + b"\x03$g#67-"
    whole = PacketDecoder().feed(stream)
    decoder = PacketDecoder()
    pieces: list[Event] = []
    for i in range(len(stream)):
        pieces += decoder.feed(stream[i : i + 1])
    assert pieces == whole
    assert whole == [
        Ack(),
        Packet(b"qSupported:swbreak+;hwbreak+"),
        Interrupt(),
        Packet(b"g"),
        Nack(),
    ]


def test_decoder_drops_a_packet_that_is_too_long() -> None:
    decoder = PacketDecoder(max_packet=16)
    events = decoder.feed(b"$" + b"a" * 100 + b"#00$g#67")
    assert isinstance(events[0], BadPacket) and events[0].reason == "packet too long"
    assert events[-1] == Packet(b"g")


@given(st.binary(max_size=300))
def test_decoder_never_crashes_on_noise(noise: bytes) -> None:
    decoder = PacketDecoder(max_packet=64)
    decoder.feed(noise)
    # and it recovers: a '#' may leave it expecting a checksum, a '$' resets it
    assert decoder.feed(b"00$g#67")[-1] == Packet(b"g")

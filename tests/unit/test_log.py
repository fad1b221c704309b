"""The replay log codec: every event's bytes, round trips, and malformed input."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rdebug.errors import FormatError
from rdebug.replay.log import (
    LOG_VERSION,
    AsyncBlock,
    AsyncBottomHalf,
    AsyncCharRead,
    AsyncInput,
    AsyncInputSync,
    AsyncNet,
    AudioIn,
    CharReadAll,
    CharReadAllError,
    CharWrite,
    Checkpoint,
    CheckpointKind,
    Clock,
    ClockKind,
    End,
    Event,
    ExceptionTaken,
    Instruction,
    InterruptTaken,
    Reader,
    Shutdown,
    ShutdownCause,
    Truncated,
    encode,
    encode_header,
)

CV = CheckpointKind.CLOCK_VIRTUAL

#: Each event and its exact bytes (big-endian, arrays as u32 length + bytes).
TABLE: list[tuple[Event, str]] = [
    (Instruction(0x01020304), "00 01020304"),
    (InterruptTaken(), "01"),
    (ExceptionTaken(), "02"),
    (AsyncBottomHalf(CV, 7), "03 04 00 0000000000000007"),
    (AsyncInput(CV, 1, bytes(range(8))), "03 04 01 00000001 0001020304050607"),
    (AsyncInputSync(CV), "03 04 02"),
    (AsyncCharRead(CV, 0, b"ab"), "03 04 03 00 00000002 6162"),
    (AsyncBlock(CV, 0x1122), "03 04 04 0000000000001122"),
    (AsyncNet(CV, 1, 0x10, b"\xff"), "03 04 05 01 00000010 00000001 ff"),
    (Shutdown(ShutdownCause.NONE), "04"),
    (Shutdown(ShutdownCause.GUEST_SHUTDOWN), "09"),
    (Shutdown(ShutdownCause.GUEST_PANIC), "0b"),
    (CharWrite(5, 6), "0c 00000005 00000006"),
    (CharReadAll(b"xyz"), "0d 00000003 78797a"),
    (CharReadAllError(11), "0e 0000000b"),
    (Clock(ClockKind.HOST, 0x0102030405060708), "0f 0102030405060708"),
    (Clock(ClockKind.VIRTUAL_RT, 1), "10 0000000000000001"),
    (Checkpoint(CheckpointKind.CLOCK_WARP_START), "11"),
    (Checkpoint(CheckpointKind.RESET), "19"),
    (End(), "1a"),
    (AudioIn(0, 8000, 1, 8, False, b"\x80\x7f"), "1b 00 00001f40 01 08 00 00000002 807f"),
    (AudioIn(1, 44100, 2, 16, True, bytes(4)), "1b 01 0000ac44 02 10 01 00000004 00000000"),
]


@pytest.mark.parametrize(("event", "hexbytes"), TABLE, ids=[type(e).__name__ for e, _ in TABLE])
def test_each_event_has_exactly_these_bytes(event: Event, hexbytes: str) -> None:
    raw = bytes.fromhex(hexbytes)
    assert encode(event) == raw
    reader = Reader(io.BytesIO(encode_header() + raw), "t")
    assert reader.read() == event
    assert reader.read() is None


def test_header_is_version_then_reserved_zero() -> None:
    assert encode_header() == LOG_VERSION.to_bytes(4, "big") + bytes(8)


events = st.one_of(
    st.builds(Instruction, st.integers(0, 0xFFFFFFFF)),
    st.just(InterruptTaken()),
    st.just(ExceptionTaken()),
    st.builds(AsyncCharRead, st.sampled_from(CheckpointKind), st.integers(0, 255), st.binary()),
    st.builds(
        AsyncNet,
        st.sampled_from(CheckpointKind),
        st.integers(0, 255),
        st.integers(0, 0xFFFFFFFF),
        st.binary(),
    ),
    st.builds(
        AsyncInput,
        st.sampled_from(CheckpointKind),
        st.integers(0, 0xFFFFFFFF),
        st.binary(min_size=8, max_size=8),
    ),
    st.builds(Shutdown, st.sampled_from(ShutdownCause)),
    st.builds(Clock, st.sampled_from(ClockKind), st.integers(0, 2**64 - 1)),
    st.builds(Checkpoint, st.sampled_from(CheckpointKind)),
    st.builds(CharReadAll, st.binary()),
    st.builds(
        AudioIn,
        st.integers(0, 255),
        st.integers(0, 0xFFFFFFFF),
        st.integers(0, 255),
        st.integers(0, 255),
        st.booleans(),
        st.binary(),
    ),
)


@given(st.lists(events, max_size=20))
def test_any_sequence_round_trips(sequence: list[Event]) -> None:
    raw = encode_header() + b"".join(encode(e) for e in sequence) + encode(End())
    assert list(Reader(io.BytesIO(raw), "t")) == [*sequence, End()]


@given(st.lists(events, min_size=1, max_size=10), st.data())
def test_a_cut_anywhere_is_either_a_clean_boundary_or_truncated(
    sequence: list[Event], data: st.DataObject
) -> None:
    body = b"".join(encode(e) for e in sequence)
    cut = data.draw(st.integers(0, len(body)))
    reader = Reader(io.BytesIO(encode_header() + body[:cut]), "t")
    decoded: list[Event] = []
    try:
        decoded.extend(reader)
    except Truncated as exc:
        assert exc.offset < 12 + cut
    assert decoded == sequence[: len(decoded)]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (encode_header() + b"\xff", "unknown event id 255"),
        (encode_header() + bytes.fromhex("03 63 00"), "unknown checkpoint id 99"),
        (encode_header() + bytes.fromhex("03 04 09"), "unknown async event kind 9"),
        (encode_header() + bytes.fromhex("0d ffffffff"), "claims an array"),
    ],
)
def test_damaged_events_are_named(raw: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        list(Reader(io.BytesIO(raw), "t"))


@given(st.lists(events, max_size=20), st.data())
def test_the_reader_knows_each_events_offset_and_icount(
    sequence: list[Event], data: st.DataObject
) -> None:
    """The one log walker: after each event, `offset` is where the next begins and
    `icount` the sum of the instruction counts so far; `seek` returns to such a point."""
    raw = encode_header() + b"".join(encode(e) for e in sequence)
    reader = Reader(io.BytesIO(raw), "t")
    offset, icount, points = 12, 0, [(12, 0)]
    for event in sequence:
        assert reader.read() == event
        offset += len(encode(event))
        icount += event.count if isinstance(event, Instruction) else 0
        assert (reader.offset, reader.icount) == (offset, icount)
        points.append((offset, icount))
    assert reader.read() is None
    back = data.draw(st.integers(0, len(sequence)))
    reader.seek(*points[back])
    assert (reader.offset, reader.icount) == points[back]
    assert list(reader) == sequence[back:]
    assert reader.icount == icount

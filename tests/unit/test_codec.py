"""The machine's input seam <-> log events (replay/codec.py): every input kind and every
synchronisation event survives the log's bytes, and the bytes are the documented ones."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rdebug.errors import FormatError
from rdebug.machine.audio import AudioFormat
from rdebug.machine.inputs import (
    AsyncInput,
    KeyInput,
    MouseInput,
    NetInput,
    SerialInput,
    SyncEvent,
)
from rdebug.replay.codec import (
    InputDecoder,
    decode_audio,
    decode_clock,
    encode_audio,
    encode_clock,
    encode_inputs,
    encode_sync,
    is_input,
    matches_sync,
)
from rdebug.replay.log import AsyncInput as LoggedInput
from rdebug.replay.log import CheckpointKind, Reader, describe, encode, encode_header

CP = CheckpointKind.CLOCK_VIRTUAL

inputs = st.lists(
    st.one_of(
        st.builds(SerialInput, st.integers(0, 3), st.binary(min_size=1, max_size=16)),
        st.builds(NetInput, st.integers(0, 255), st.binary(min_size=14, max_size=64)),
        st.builds(KeyInput, st.integers(0, 0x7F) | st.integers(0xE000, 0xE07F), st.booleans()),
        st.builds(
            MouseInput,
            st.integers(-(1 << 31), (1 << 31) - 1),
            st.integers(-300, 300),
            st.integers(0, 7),
        ),
    ),
    max_size=8,
)


@given(inputs)
def test_every_input_kind_survives_the_logs_bytes(items: list[AsyncInput]) -> None:
    raw = encode_header() + b"".join(encode(e) for item in items for e in encode_inputs(item))
    decoder = InputDecoder("log")
    decoded: list[AsyncInput] = []
    for event in Reader(io.BytesIO(raw), "log"):
        assert is_input(event)
        item = decoder.feed(event)
        if item is not None:
            decoded.append(item)
    assert decoded == items


@pytest.mark.parametrize(
    ("item", "hexbytes"),
    [
        # EVENT_ASYNC, checkpoint 4 (clock virtual), CHAR_READ, device, array
        (SerialInput(1, b"hi"), "03 04 03 01 00000002 6869"),
        # EVENT_ASYNC, checkpoint 4, NET, adapter, flags 0, array
        (NetInput(0, b"\x01\x02"), "03 04 05 00 00000000 00000002 0102"),
        # EVENT_ASYNC, checkpoint 4, INPUT, kind KEY, key, down, 3 zero bytes
        (KeyInput(0x1E, False), "03 04 01 00000000 0000001e 00 000000"),
    ],
)
def test_inputs_have_the_documented_bytes(item: AsyncInput, hexbytes: str) -> None:
    assert b"".join(encode(e) for e in encode_inputs(item)) == bytes.fromhex(hexbytes)


@pytest.mark.parametrize("event", list(SyncEvent))
def test_each_sync_event_matches_its_own_record_only(event: SyncEvent) -> None:
    raw = encode_header() + encode(encode_sync(event))
    logged = Reader(io.BytesIO(raw), "log").read()
    assert [other for other in SyncEvent if matches_sync(other, logged)] == [event]
    assert not is_input(logged)
    assert decode_clock(logged) is None


def test_host_clock_reads_round_trip_and_nothing_else_is_one() -> None:
    value = 1_700_000_000_123_456_789
    raw = encode_header() + encode(encode_clock(value))
    assert raw[12:] == bytes.fromhex("0f") + value.to_bytes(8, "big")
    logged = Reader(io.BytesIO(raw), "log").read()
    assert decode_clock(logged) == value
    assert not any(matches_sync(event, logged) for event in SyncEvent)
    assert decode_clock(None) is None


@given(
    st.builds(
        AudioFormat,
        st.integers(1, 0xFFFFFFFF),
        st.sampled_from([1, 2]),
        st.sampled_from([8, 16]),
        st.booleans(),
    ),
    st.binary(max_size=64),
)
def test_microphone_samples_round_trip_and_nothing_else_is_one(
    fmt: AudioFormat, data: bytes
) -> None:
    raw = encode_header() + encode(encode_audio(fmt, data))
    logged = Reader(io.BytesIO(raw), "log").read()
    assert decode_audio(logged) == (fmt, data)
    assert not is_input(logged) and decode_clock(logged) is None
    assert not any(matches_sync(event, logged) for event in SyncEvent)
    assert decode_audio(None) is None
    assert decode_audio(encode_clock(5)) is None


def test_mouse_report_is_a_qemu_style_group() -> None:
    events = encode_inputs(MouseInput(3, -4, 0x05))
    assert [describe(event) for event in events] == [
        "ASYNC INPUT checkpoint=CLOCK_VIRTUAL REL axis=X value=3",
        "ASYNC INPUT checkpoint=CLOCK_VIRTUAL REL axis=Y value=-4",
        "ASYNC INPUT checkpoint=CLOCK_VIRTUAL BTN button=left down",
        "ASYNC INPUT checkpoint=CLOCK_VIRTUAL BTN button=middle down",
        "ASYNC INPUT checkpoint=CLOCK_VIRTUAL BTN button=right up",
        "ASYNC INPUT_SYNC checkpoint=CLOCK_VIRTUAL",
    ]
    key = encode_inputs(KeyInput(0xE048, True))
    assert encode(key[0])[-8:] == bytes.fromhex("0000e048 01 000000")
    assert describe(key[0]) == "ASYNC INPUT checkpoint=CLOCK_VIRTUAL KEY key=0xe048 down"


@pytest.mark.parametrize(
    ("kind", "data", "message"),
    [
        (1, bytes.fromhex("00000009 01 000000"), "mouse button 9"),
        (2, bytes.fromhex("00000002 00000001"), "axis 2"),
        (3, bytes(8), "kind 3 is not replayable"),
    ],
)
def test_unreplayable_input_events_are_format_errors(kind: int, data: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        InputDecoder("log").feed(LoggedInput(CP, kind, data))
    assert "kind=" in describe(LoggedInput(CP, 7, data))

"""Keyboard/mouse inputs: text to key strokes, mouse scripts, and the INPUT event codec."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rdebug.errors import FormatError
from rdebug.host.keys import KEYMAP, parse_mouse_script, text_to_keys
from rdebug.machine.inputs import KeyInput, MouseInput
from rdebug.replay.input_events import InputAssembler, encode_input
from rdebug.replay.log import (
    AsyncInput,
    AsyncInputSync,
    CheckpointKind,
    Reader,
    describe,
    encode,
    encode_header,
)

CP = CheckpointKind.CLOCK_VIRTUAL


def test_text_to_keys_uses_shift_only_where_needed() -> None:
    keys = text_to_keys("a:\n")
    assert keys == [
        KeyInput(0x1E, True),
        KeyInput(0x1E, False),
        KeyInput(0x2A, True),
        KeyInput(0x27, True),
        KeyInput(0x27, False),
        KeyInput(0x2A, False),
        KeyInput(0x1C, True),
        KeyInput(0x1C, False),
    ]


def test_every_printable_ascii_character_is_on_the_keyboard() -> None:
    printable = [chr(c) for c in range(0x20, 0x7F)]
    assert all(c in KEYMAP for c in printable)
    codes = {KEYMAP[c] for c in printable}
    assert len(codes) == len(printable)  # no two characters share key and shift state


def test_characters_off_the_keyboard_are_refused() -> None:
    with pytest.raises(ValueError, match="offset 2"):
        text_to_keys("ab\u00e9")


@pytest.mark.parametrize(
    ("text", "message"),
    [("1 2", "line 1"), ("\n\n1 x 3", "line 3"), ("1 2 8", "bit mask"), ("1 2 -1", "bit mask")],
)
def test_bad_mouse_scripts(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_mouse_script(text)


def test_mouse_script_accepts_hex_and_comments() -> None:
    assert parse_mouse_script("0x10 -0x2 7  # all buttons\n\n") == [MouseInput(16, -2, 7)]


def _through_the_log(events: list[AsyncInput | AsyncInputSync]) -> list[object]:
    raw = encode_header() + b"".join(encode(event) for event in events)
    reader = Reader(io.BytesIO(raw), "log")
    assembler = InputAssembler("log")
    out: list[object] = []
    for event in reader:
        assert isinstance(event, AsyncInput | AsyncInputSync)
        item = assembler.feed(event)
        if item is not None:
            out.append(item)
    return out


inputs = st.lists(
    st.one_of(
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
def test_inputs_survive_the_log(items: list[KeyInput | MouseInput]) -> None:
    events = [event for item in items for event in encode_input(CP, item)]
    assert all(isinstance(e, AsyncInput | AsyncInputSync) for e in events)
    assert _through_the_log(events) == items  # type: ignore[arg-type]


def test_mouse_report_is_a_qemu_style_group() -> None:
    events = encode_input(CP, MouseInput(3, -4, 0x05))
    assert [describe(event) for event in events] == [
        "ASYNC INPUT checkpoint=CLOCK_VIRTUAL REL axis=X value=3",
        "ASYNC INPUT checkpoint=CLOCK_VIRTUAL REL axis=Y value=-4",
        "ASYNC INPUT checkpoint=CLOCK_VIRTUAL BTN button=left down",
        "ASYNC INPUT checkpoint=CLOCK_VIRTUAL BTN button=middle down",
        "ASYNC INPUT checkpoint=CLOCK_VIRTUAL BTN button=right up",
        "ASYNC INPUT_SYNC checkpoint=CLOCK_VIRTUAL",
    ]
    key = encode_input(CP, KeyInput(0xE048, True))
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
        InputAssembler("log").feed(AsyncInput(CP, kind, data))
    assert "kind=" in describe(AsyncInput(CP, 7, data))

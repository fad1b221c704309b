"""Keyboard/mouse inputs: text to key strokes, mouse scripts (their log events: test_codec.py)."""

from __future__ import annotations

import pytest

from rdebug.host.keys import KEYMAP, parse_mouse_script, text_to_keys
from rdebug.machine.inputs import KeyInput, MouseInput


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

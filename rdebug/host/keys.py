"""Host keyboard and mouse input from files: text typed as key strokes, scripted moves.

`text_to_keys` turns text into the key events a US keyboard makes typing it (scan code
set 1 make codes, Shift held around capitals and shifted symbols, Enter for a newline);
`parse_mouse_script` reads lines of "dx dy buttons".  `ListInputSource` hands such a list
to `LiveInputs` (host/sources.py) at once: the i8042 paces it to the guest in virtual time (see
machine/devices/i8042.py), so the input lands at the same instructions whatever the host did.
"""

from __future__ import annotations

from collections.abc import Sequence

from rdebug.machine.inputs import InputDeliverFn, KeyInput, MouseInput

LEFT_SHIFT = 0x2A
ENTER = 0x1C

_ROWS = (
    # (first make code, unshifted characters, shifted characters)
    (0x02, "1234567890-=", "!@#$%^&*()_+"),
    (0x10, "qwertyuiop[]", "QWERTYUIOP{}"),
    (0x1E, "asdfghjkl;'`", 'ASDFGHJKL:"~'),
    (0x2B, "\\zxcvbnm,./", "|ZXCVBNM<>?"),
)


def _keymap() -> dict[str, tuple[int, bool]]:
    table: dict[str, tuple[int, bool]] = {
        "\n": (ENTER, False),
        "\r": (ENTER, False),
        "\t": (0x0F, False),
        " ": (0x39, False),
        "\b": (0x0E, False),
        "\x1b": (0x01, False),
    }
    for first, plain, shifted in _ROWS:
        for offset, (low, high) in enumerate(zip(plain, shifted, strict=True)):
            table[low] = (first + offset, False)
            table[high] = (first + offset, True)
    return table


#: Character -> (set-1 make code, needs Shift), for a US layout.
KEYMAP = _keymap()


def text_to_keys(text: str) -> list[KeyInput]:
    """The key events that type `text`; a character no key makes raises ValueError.

    >>> [(hex(k.key), k.down) for k in text_to_keys("A")]
    [('0x2a', True), ('0x1e', True), ('0x1e', False), ('0x2a', False)]
    """
    keys: list[KeyInput] = []
    for index, char in enumerate(text):
        try:
            code, shift = KEYMAP[char]
        except KeyError:
            raise ValueError(
                f"character {char!r} at offset {index} is not on the keyboard"
            ) from None
        if shift:
            keys.append(KeyInput(LEFT_SHIFT, True))
        keys += (KeyInput(code, True), KeyInput(code, False))
        if shift:
            keys.append(KeyInput(LEFT_SHIFT, False))
    return keys


def parse_mouse_script(text: str) -> list[MouseInput]:
    """Lines of "dx dy buttons" (integers; blank lines and # comments skipped).

    >>> parse_mouse_script("5 -3 1\\n# comment\\n0 0 0")
    [MouseInput(dx=5, dy=-3, buttons=1), MouseInput(dx=0, dy=0, buttons=0)]
    """
    reports: list[MouseInput] = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        try:
            dx, dy, buttons = (int(field, 0) for field in fields)
        except ValueError:
            raise ValueError(
                f"line {number}: expected 'dx dy buttons' (three integers), got {line.strip()!r}"
            ) from None
        if not 0 <= buttons <= 7:
            raise ValueError(f"line {number}: buttons is a bit mask 0..7, got {buttons}")
        if not (-(1 << 31) <= dx < 1 << 31 and -(1 << 31) <= dy < 1 << 31):
            raise ValueError(f"line {number}: a move must fit in 32 bits")
        reports.append(MouseInput(dx, dy, buttons))
    return reports


class ListInputSource:
    """Keyboard or mouse events known in advance, handed over at once."""

    def __init__(self, items: Sequence[KeyInput | MouseInput]) -> None:
        self._items = list(items)

    def start(self, deliver: InputDeliverFn) -> None:
        if self._items:
            deliver(self._items)
        deliver(None)

    def close(self) -> None:
        pass

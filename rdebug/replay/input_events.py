"""Keyboard and mouse input <-> EVENT_ASYNC INPUT events (QEMU's InputEvent kinds).

The byte layout is log.py's (InputKind, INPUT_PRESS, INPUT_REL, documented there and in
docs/replay-log.md); this module maps the machine's input types onto it.  A `KeyInput`
is one INPUT event of kind KEY.  A `MouseInput` is a group, as QEMU logs a mouse report:
REL X, REL Y, then BTN for the left, middle and right buttons (each with its state),
closed by INPUT_SYNC.
"""

from __future__ import annotations

from rdebug.errors import FormatError
from rdebug.machine.inputs import KeyInput, MouseInput
from rdebug.replay.log import (
    INPUT_PRESS,
    INPUT_REL,
    AsyncInput,
    AsyncInputSync,
    Axis,
    CheckpointKind,
    Event,
    InputKind,
)

#: QEMU's InputButton numbers -> the PS/2 button bits of `MouseInput.buttons`.
BUTTON_BITS = {0: 0x01, 1: 0x04, 2: 0x02}


def encode_input(checkpoint: CheckpointKind, item: KeyInput | MouseInput) -> list[Event]:
    """The log events of one keyboard or mouse input."""
    if isinstance(item, KeyInput):
        return [AsyncInput(checkpoint, InputKind.KEY, INPUT_PRESS.pack(item.key, item.down))]
    events: list[Event] = [
        AsyncInput(checkpoint, InputKind.REL, INPUT_REL.pack(Axis.X, item.dx)),
        AsyncInput(checkpoint, InputKind.REL, INPUT_REL.pack(Axis.Y, item.dy)),
    ]
    for button, bit in BUTTON_BITS.items():
        data = INPUT_PRESS.pack(button, bool(item.buttons & bit))
        events.append(AsyncInput(checkpoint, InputKind.BTN, data))
    events.append(AsyncInputSync(checkpoint))
    return events


class InputAssembler:
    """Turns INPUT events read from a log back into `KeyInput` and `MouseInput`."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._dx = 0
        self._dy = 0
        self._buttons = 0

    def feed(self, event: AsyncInput | AsyncInputSync) -> KeyInput | MouseInput | None:
        """The input `event` completes, if any (a mouse report completes at INPUT_SYNC)."""
        if isinstance(event, AsyncInputSync):
            report = MouseInput(self._dx, self._dy, self._buttons)
            self._dx = self._dy = self._buttons = 0
            return report
        if event.kind == InputKind.KEY:
            key, down = INPUT_PRESS.unpack(event.data)
            return KeyInput(key, bool(down))
        if event.kind == InputKind.BTN:
            button, down = INPUT_PRESS.unpack(event.data)
            if button not in BUTTON_BITS:
                raise FormatError(f"{self._name}: mouse button {button} in an INPUT event")
            if down:
                self._buttons |= BUTTON_BITS[button]
            return None
        if event.kind == InputKind.REL:
            axis, value = INPUT_REL.unpack(event.data)
            if axis == Axis.X:
                self._dx = value
            elif axis == Axis.Y:
                self._dy = value
            else:
                raise FormatError(f"{self._name}: axis {axis} in a REL INPUT event")
            return None
        raise FormatError(f"{self._name}: input event kind {event.kind} is not replayable")

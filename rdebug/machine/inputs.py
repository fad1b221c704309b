"""The seam through which every non-deterministic input enters the machine.

The machine never reads the host clock, a terminal or a file itself: it asks an
`ExternalInputs`.  `LiveInputs` (rdebug/host/sources.py) answers from the host; the
recorder (which logs what it answers) and the player (which answers from the log) live in
replay/ and implement the same protocol.  This is QEMU's REPLAY_CLOCK / replay_char_* seam.

This module holds only the seam: the input values, `ExternalInputs`, and the protocols
host sources implement (they run on their own threads and only hand items over; the
machine thread takes them with `take_async` at its checkpoints, so the machine alone
decides at which icount each input lands).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from rdebug.machine.audio import AudioFormat


class SyncEvent(enum.Enum):
    """Deterministic events the inputs seam is told about, so a log can pin them down."""

    INTERRUPT = "interrupt"  # an external interrupt was delivered
    EXCEPTION = "exception"  # an exception or software interrupt was delivered
    SHUTDOWN = "shutdown"  # the guest powered off (exit port)
    RESET = "reset"  # the guest triple-faulted
    CLOCK_WARP = "clock-warp"  # a halted CPU's clock skipped ahead to the next timer


@dataclass(frozen=True, slots=True)
class SerialInput:
    """Bytes that arrived from the host for serial port `port` (0 = COM1)."""

    port: int
    data: bytes


@dataclass(frozen=True, slots=True)
class NetInput:
    """An Ethernet frame that arrived from the host for network adapter `adapter`."""

    adapter: int
    data: bytes


@dataclass(frozen=True, slots=True)
class KeyInput:
    """A key went down or up on the host keyboard.

    `key` is the key's scan code set 1 make code; keys sent with an E0 prefix are
    0xE000 | code (e.g. 0xE01D, right Ctrl).
    """

    key: int
    down: bool


@dataclass(frozen=True, slots=True)
class MouseInput:
    """One report of the host mouse: a relative move (y grows upwards, as PS/2 reports)
    and the buttons held (bit 0 left, bit 1 right, bit 2 middle)."""

    dx: int
    dy: int
    buttons: int


AsyncInput = SerialInput | NetInput | KeyInput | MouseInput


class ExternalInputs(Protocol):
    """What the machine asks of the outside world."""

    def host_clock_ns(self, icount: int) -> int:
        """Host wall-clock time (ns since the Unix epoch), e.g. for the RTC."""
        ...

    def take_async(self, icount: int) -> Sequence[AsyncInput]:
        """Inputs that arrived since the last call; they land at `icount` exactly."""
        ...

    def more_expected(self) -> bool:
        """Whether input may still arrive (an idle guest then waits instead of stopping)."""
        ...

    def horizon(self) -> int | None:
        """An icount the machine must stop at exactly and call `take_async` there.

        A replay answers the icount of its next recorded input (or of the end of the
        recording, where `take_async` then leaves the horizon in place: the run ends),
        or, while the next event is one the machine reports rather than takes (an
        interrupt), the end of the recording if it knows it: no run goes past it.  Live
        inputs answer None.
        """
        ...

    def synchronize(self, event: SyncEvent, icount: int) -> None:
        """`event` happened at `icount` (a recorder logs it; a player checks it)."""
        ...

    def synchronize_all(self, events: Sequence[tuple[SyncEvent, int]]) -> None:
        """`synchronize` each of `events` (event, icount), in order: the interrupts the
        machine took in C during one engine run (a recorder writes them at once)."""
        ...

    def audio_input(self, icount: int, fmt: AudioFormat, frames: int) -> bytes:
        """The microphone's next `frames` frames in `fmt` (exactly that many bytes),
        taken by the sound card at `icount` (a recorder logs them; a player serves them).
        """
        ...

    def finished(self) -> bool:
        """Nothing more will ever come: at its horizon, the run must end."""
        ...

    def wait(self, timeout: float) -> None:
        """Block until input may have arrived or `timeout` seconds passed."""
        ...

    def close(self) -> None: ...


class MicrophoneSource(Protocol):
    """The host's microphone: an audio file played from its start (host/wav.py)."""

    def read(self, fmt: AudioFormat, frames: int) -> bytes:
        """The next `frames` frames converted to `fmt`; silence once the source ends."""
        ...


class SerialSource(Protocol):
    """A host byte source for one serial port, read on its own thread."""

    def start(self, deliver: DeliverFn) -> None: ...

    def close(self) -> None: ...


class DeliverFn(Protocol):
    def __call__(self, data: bytes | None) -> None:
        """Hand over bytes; None means the source is exhausted."""
        ...


class InputDeliverFn(Protocol):
    def __call__(self, items: Sequence[KeyInput | MouseInput] | None) -> None:
        """Hand over keyboard or mouse events; None means the source is exhausted."""
        ...


class InputSource(Protocol):
    """A host source of keyboard or mouse events, read on its own thread."""

    def start(self, deliver: InputDeliverFn) -> None: ...

    def close(self) -> None: ...

"""The terminal and the process's signals, as a live run uses them.

Cbreak mode (keys reach the guest one at a time, unechoed), the signals that stop a run
(Ctrl-C's SIGINT, SIGTERM from kill/timeout/a CI job stop, SIGHUP when the terminal
closes) turned into a call (a session's `interrupt`), and whether standard input can be
read at all.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Callable, Iterator
from types import FrameType


@contextlib.contextmanager
def cbreak(enabled: bool) -> Iterator[None]:
    """Keys reach the guest one at a time, unechoed; Ctrl-C still interrupts."""
    if not enabled:
        yield
        return
    import termios  # noqa: PLC0415 - only when the guest reads the terminal
    import tty  # noqa: PLC0415

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield
    finally:
        with contextlib.suppress(termios.error, OSError):  # the terminal may be gone (SIGHUP)
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)


#: The signals that end a run the way Ctrl-C does: the run stops, a recording is
#: finished, and the process exits with 128 + the signal's number.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Caught:
    """The first stop signal that arrived, if any."""

    def __init__(self) -> None:
        self.signal: signal.Signals | None = None


@contextlib.contextmanager
def on_stop_signals(
    action: Callable[[], None], caught: Caught | None = None
) -> Iterator[Caught]:
    """Meanwhile SIGINT, SIGTERM and SIGHUP call `action` instead of ending the process
    (nor raising KeyboardInterrupt); the first one is kept in the `Caught` yielded."""
    noted = Caught() if caught is None else caught

    def handler(signum: int, _frame: FrameType | None) -> None:
        if noted.signal is None:
            noted.signal = signal.Signals(signum)
        action()

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield noted
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def exit_status(caught: Caught | None) -> int:
    """128 + the signal that stopped the run (130 for Ctrl-C, or when none is known)."""
    if caught is None or caught.signal is None:
        return 128 + signal.SIGINT
    return 128 + caught.signal


def named(caught: Caught | None) -> str:
    """" (SIGTERM)" after a message, for a stop signal other than Ctrl-C's."""
    if caught is None or caught.signal in (None, signal.SIGINT):
        return ""
    assert caught.signal is not None
    return f" ({caught.signal.name})"


def stdin_readable() -> bool:
    """Standard input is there to be read (not closed, not missing)."""
    try:
        sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    return not sys.stdin.closed

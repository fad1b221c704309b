"""The terminal and the process's signals, as a live run uses them.

Cbreak mode (keys reach the guest one at a time, unechoed), Ctrl-C (SIGINT) turned into
a call (a session's `interrupt`), and whether standard input can be read at all.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import termios
import tty
from collections.abc import Callable, Iterator
from types import FrameType


@contextlib.contextmanager
def cbreak(enabled: bool) -> Iterator[None]:
    """Keys reach the guest one at a time, unechoed; Ctrl-C still interrupts."""
    if not enabled:
        yield
        return
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


@contextlib.contextmanager
def on_sigint(action: Callable[[], None]) -> Iterator[None]:
    """SIGINT (Ctrl-C) calls `action` instead of raising KeyboardInterrupt, meanwhile."""

    def handler(_signum: int, _frame: FrameType | None) -> None:
        action()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def stdin_readable() -> bool:
    """Standard input is there to be read (not closed, not missing)."""
    try:
        sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    return not sys.stdin.closed

"""Serving gdb from the command line (`replay --gdb`, `run --gdb`, `rdebug gdb`).

`serve` is the one place where Ctrl-C meets the gdb stub: the handler only asks the
session to stop and the server to return (from another thread, closing nothing), and
the serving loop unwinds on its own; the sockets are closed once it has returned (a
handler that closed them under the waiting `select` made it fail with EBADF).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType

from rdebug.gdbstub.server import GdbServer
from rdebug.host.terminal import STOP_SIGNALS


def serve(
    server: GdbServer,
    interrupt: Callable[[], None],
    finished: Callable[[], bool] = lambda: False,
    announce: Callable[[], None] = lambda: None,
) -> bool:
    """Serve gdb connections one after the other until Ctrl-C, or until `finished()`
    is true when a connection ends; True if Ctrl-C ended it.  `interrupt` stops the
    target's current operation (from the signal handler).  `announce` prints the
    attach hint once the signal handlers are in place: whoever reads it and then
    signals us (a user's Ctrl-C, a script's kill) is always handled, never killed."""
    stopped = threading.Event()

    def on_sigint(_signum: int, _frame: FrameType | None) -> None:
        stopped.set()
        interrupt()
        threading.Thread(target=server.shutdown, name="gdbstub-shutdown", daemon=True).start()

    # Ctrl-C, SIGTERM (kill, timeout) and SIGHUP (the terminal closed) alike
    previous = {sig: signal.signal(sig, on_sigint) for sig in STOP_SIGNALS}
    try:
        announce()
        while server.serve_one():
            if finished():
                break
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    return stopped.is_set()

"""Debug messages of the machine's rare paths (a port with no device, a register write a
device ignores), sent through the standard `logging` module only once something has
imported it.

Importing `logging` costs ~2 ms of a process's start.  A debug message can only be
seen through a handler or level someone configured, which means importing `logging`
first; until then it would be dropped, so it is dropped without the import.  A script
or test that configures logging gets every message, as from `logging.getLogger`.
"""

from __future__ import annotations

import sys


def debug(logger: str, message: str, *args: object) -> None:
    """`logging.getLogger(logger).debug(message, *args)`, once `logging` is imported."""
    logging = sys.modules.get("logging")
    if logging is not None:
        logging.getLogger(logger).debug(message, *args)

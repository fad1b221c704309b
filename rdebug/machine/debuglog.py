"""Debug messages of the machine's rare paths (a port with no device, a register write a
device ignores): the standard `logging` module, imported only when one is sent, since
its import costs ~2 ms of every process's start."""

from __future__ import annotations


def debug(logger: str, message: str, *args: object) -> None:
    """`logging.getLogger(logger).debug(message, *args)`."""
    import logging  # noqa: PLC0415 - see the module's docstring

    logging.getLogger(logger).debug(message, *args)

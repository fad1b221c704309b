"""Where the guest's COM1 output goes: the terminal, a file, or nowhere (`--serial`)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from rdebug.errors import UsageError


class SerialOut:
    """COM1's output: flushed at every write (a terminal) or at line ends (a file, so
    that `tail -f` follows a long run)."""

    def __init__(self, stream: BinaryIO, flush: bool) -> None:
        self._stream = stream
        self._flush = flush

    def write(self, data: bytes) -> None:
        self._stream.write(data)
        if self._flush or b"\n" in data:
            self._stream.flush()


@contextlib.contextmanager
def serial_output(spec: str) -> Iterator[SerialOut | None]:
    """The backend of `--serial SPEC`: stdio, null (None: output dropped) or file:PATH."""
    if spec == "stdio":
        yield SerialOut(sys.stdout.buffer, flush=True)
    elif spec == "null":
        yield None
    elif spec.startswith("file:") and len(spec) > 5:
        path = Path(spec[5:])
        try:
            stream = path.open("wb")
        except OSError as exc:
            raise UsageError(f"--serial {spec}: cannot write {path}: {exc.strerror}") from None
        with stream:
            yield SerialOut(stream, flush=False)
    else:
        raise UsageError(f"--serial {spec!r}: expected stdio, null or file:PATH")

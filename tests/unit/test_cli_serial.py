"""COM1's output backends of the CLI."""

from __future__ import annotations

import io
import os

import pytest

from rdebug.host.serial import SerialOut


class Recording(io.BytesIO):
    def __init__(self) -> None:
        super().__init__()
        self.flushed: list[bytes] = []

    def flush(self) -> None:
        self.flushed.append(self.getvalue())


def test_a_file_is_flushed_at_line_ends() -> None:
    stream = Recording()
    out = SerialOut(stream, flush=False)
    for byte in b"$ ls\nx":
        out.write(bytes([byte]))
    assert stream.flushed == [b"$ ls\n"]  # a long run's output can be followed as it goes


def test_a_terminal_is_flushed_at_every_write() -> None:
    stream = Recording()
    out = SerialOut(stream, flush=True)
    out.write(b"$ ")
    assert stream.flushed == [b"$ "]


def test_a_terminal_that_went_away_drops_the_output_a_file_does_not() -> None:
    """Issue 17: the terminal closing (SIGHUP) must not crash a recording half way."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody reads any more: writes fail with EPIPE
    with open(write_end, "wb", buffering=0) as stream:
        out = SerialOut(stream, flush=True)
        out.write(b"lost\n")
        out.write(b"also lost\n")
        with pytest.raises(BrokenPipeError):
            SerialOut(stream, flush=False).write(b"a file's error is shown\n")

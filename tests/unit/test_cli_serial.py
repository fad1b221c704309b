"""COM1's output backends of the CLI."""

from __future__ import annotations

import io

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

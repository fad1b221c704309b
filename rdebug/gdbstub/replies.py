"""Reply payloads built from facts: stop replies, errors, ``qXfer`` chunks.

Owns the exact text of every reply that carries structure (GDB manual, nodes "Stop Reply
Packets" and "General Query Packets").  Knows nothing about framing (`packet`), sockets, or
how a target decides why it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import assert_never

from rdebug.gdbstub.packet import escape_binary
from rdebug.gdbstub.target import (
    Exited,
    HwBreak,
    ReplayLogEnd,
    Signalled,
    StopReason,
    SwBreak,
    Terminated,
    Watch,
)

OK = b"OK"
EMPTY = b""


def error_reply(errno: int) -> bytes:
    """``E NN``: two hex digits (node "Overview": numbers are hex unless noted otherwise).

    >>> error_reply(14), error_reply(22)
    (b'E0e', b'E16')
    """
    return f"E{errno & 0xFF:02x}".encode()


@dataclass(frozen=True, slots=True)
class StopReplyOptions:
    """What the peer agreed to receive (``qSupported``), and the thread to name."""

    #: gdb sent ``swbreak+`` and we advertised it: the ``swbreak`` reason may be sent.
    swbreak: bool = False
    #: Likewise for ``hwbreak``.
    hwbreak: bool = False
    tid: int = 1


def stop_reply(reason: StopReason, options: StopReplyOptions) -> bytes:
    """The stop reply for `reason` (node "Stop Reply Packets").

    ``T AA reason:r;thread:tid;`` with ``AA`` = 05 when a reason is present (at most one);
    ``W AA`` exited; ``X AA`` killed by a signal.

    >>> on = StopReplyOptions(swbreak=True, hwbreak=True)
    >>> stop_reply(SwBreak(), on), stop_reply(SwBreak(), StopReplyOptions())
    (b'T05swbreak:;thread:1;', b'T05thread:1;')
    >>> from rdebug.gdbstub.target import LogBoundary, WatchKind
    >>> stop_reply(Watch(WatchKind.READ, 0x804A01C), on)
    b'T05rwatch:804a01c;thread:1;'
    >>> stop_reply(ReplayLogEnd(LogBoundary.BEGIN), on)
    b'T05replaylog:begin;thread:1;'
    >>> stop_reply(Exited(0), on), stop_reply(Terminated(9), on)
    (b'W00', b'X09')
    """
    thread = f"thread:{options.tid:x};"
    match reason:
        case Signalled(signal=signal):
            return f"T{signal & 0xFF:02x}{thread}".encode()
        case SwBreak():
            return f"T05{'swbreak:;' if options.swbreak else ''}{thread}".encode()
        case HwBreak():
            return f"T05{'hwbreak:;' if options.hwbreak else ''}{thread}".encode()
        case Watch(kind=kind, addr=addr):
            return f"T05{kind.value}:{addr:x};{thread}".encode()
        case ReplayLogEnd(boundary=boundary, signal=signal):
            return f"T{signal & 0xFF:02x}replaylog:{boundary.value};{thread}".encode()
        case Exited(code=code):
            return f"W{code & 0xFF:02x}".encode()
        case Terminated(signal=signal):
            return f"X{signal & 0xFF:02x}".encode()
        case _:
            assert_never(reason)


def xfer_chunk(data: bytes, offset: int, length: int, max_payload: int) -> bytes:
    """One ``qXfer`` read reply: ``m`` + escaped data when more follows, ``l`` + data last.

    At most `length` bytes of `data` from `offset` are sent, and fewer if their escaped
    form would not fit `max_payload` bytes (with the ``m``/``l`` byte).

    >>> xfer_chunk(b"abcdef", 0, 4, 100), xfer_chunk(b"abcdef", 4, 4, 100)
    (b'mabcd', b'lef')
    >>> xfer_chunk(b"abc", 3, 4, 100), xfer_chunk(b"a#c", 0, 9, 4)
    (b'l', b'ma}\\x03')
    """
    chunk = data[offset : offset + max(length, 0)]
    room = max_payload - 1
    escaped = escape_binary(chunk)
    if len(escaped) > room:
        out = bytearray()
        taken = 0
        for b in chunk:
            piece = escape_binary(bytes((b,)))
            if len(out) + len(piece) > room:
                break
            out += piece
            taken += 1
        escaped = bytes(out)
        chunk = chunk[:taken]
    more = offset + len(chunk) < len(data)
    return (b"m" if more else b"l") + escaped

"""Stop replies and qXfer chunks built from facts (GDB manual, node "Stop Reply Packets")."""

from __future__ import annotations

import pytest

from rdebug.gdbstub.packet import unescape_binary
from rdebug.gdbstub.replies import StopReplyOptions, error_reply, stop_reply, xfer_chunk
from rdebug.gdbstub.target import (
    Exited,
    GdbSignal,
    HwBreak,
    LogBoundary,
    ReplayLogEnd,
    Signalled,
    StopReason,
    SwBreak,
    Terminated,
    Watch,
    WatchKind,
)

BOTH = StopReplyOptions(swbreak=True, hwbreak=True)
NEITHER = StopReplyOptions()


@pytest.mark.parametrize(
    ("reason", "options", "reply"),
    [
        (Signalled(GdbSignal.TRAP), BOTH, b"T05thread:1;"),
        (Signalled(GdbSignal.INT), BOTH, b"T02thread:1;"),
        (Signalled(GdbSignal.SEGV), BOTH, b"T0bthread:1;"),
        (SwBreak(), BOTH, b"T05swbreak:;thread:1;"),
        (HwBreak(), BOTH, b"T05hwbreak:;thread:1;"),
        # not negotiated: plain SIGTRAP, gdb works out the breakpoint itself
        (SwBreak(), NEITHER, b"T05thread:1;"),
        (HwBreak(), NEITHER, b"T05thread:1;"),
        (Watch(WatchKind.WRITE, 0x804A01C), NEITHER, b"T05watch:804a01c;thread:1;"),
        (Watch(WatchKind.READ, 0x10), BOTH, b"T05rwatch:10;thread:1;"),
        (Watch(WatchKind.ACCESS, 0), BOTH, b"T05awatch:0;thread:1;"),
        (ReplayLogEnd(LogBoundary.BEGIN), BOTH, b"T05replaylog:begin;thread:1;"),
        (ReplayLogEnd(LogBoundary.END), BOTH, b"T05replaylog:end;thread:1;"),
        (
            ReplayLogEnd(LogBoundary.BEGIN, GdbSignal.NONE),
            NEITHER,
            b"T00replaylog:begin;thread:1;",
        ),
        (Exited(0), BOTH, b"W00"),
        (Exited(0x101), BOTH, b"W01"),
        (Terminated(GdbSignal.KILL), BOTH, b"X09"),
        (SwBreak(), StopReplyOptions(swbreak=True, tid=0x2A), b"T05swbreak:;thread:2a;"),
    ],
)
def test_stop_reply(reason: StopReason, options: StopReplyOptions, reply: bytes) -> None:
    assert stop_reply(reason, options) == reply


def test_error_reply_is_two_hex_digits() -> None:
    assert error_reply(0) == b"E00"
    assert error_reply(14) == b"E0e"
    assert error_reply(255) == b"Eff"


def test_xfer_chunks_reassemble_the_document() -> None:
    document = bytes(range(256)) * 3
    got = b""
    offset = 0
    while True:
        reply = xfer_chunk(document, offset, 100, max_payload=64)
        assert len(reply) <= 64
        data = unescape_binary(reply[1:])
        got += data
        offset += len(data)
        if reply[:1] == b"l":
            break
        assert reply[:1] == b"m" and data
    assert got == document


def test_xfer_past_the_end_is_an_empty_last_chunk() -> None:
    assert xfer_chunk(b"abc", 10, 5, 100) == b"l"

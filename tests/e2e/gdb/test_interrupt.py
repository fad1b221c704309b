"""The RSP interrupt (0x03, what gdb sends on Ctrl-C) stops a long continue or
reverse-continue.

Driven by a raw RSP client: with pygdbmi, gdb 13's `-exec-interrupt` in mi-async mode
reached the stub only after the `bc` had finished (see the closing note of the gdb stub
work), so these tests send the interrupt byte themselves.  Neither races the machine's
speed: the continue runs a guest that never ends, and the reverse-continue is held at its
first progress report until the interrupt has reached the session.
"""

from __future__ import annotations

import re
import socket
import threading
from pathlib import Path

import pytest

import rdebug
from rdebug.gdb_target import SessionTarget
from rdebug.gdbstub.packet import frame
from rdebug.gdbstub.server import GdbServer
from tests.conftest import EVENT_TIMEOUT, HeldOperation, endless_trace, long_crc_trace
from tests.e2e.gdb.conftest import rdebug_gdb_server


def _reply(conn: socket.socket) -> bytes:
    """The payload of the next packet from the stub."""
    conn.settimeout(EVENT_TIMEOUT)
    data = b""
    while not re.search(rb"\$[^#]*#..", data):
        chunk = conn.recv(4096)
        assert chunk, f"the stub closed the connection; it sent {data!r}"
        data += chunk
    return re.search(rb"\$([^#]*)#..", data)[1]  # type: ignore[index]


def _exchange(conn: socket.socket, payload: bytes) -> bytes:
    conn.sendall(frame(payload))
    return _reply(conn)


def _icount(conn: socket.socket) -> int:
    """The replay's icount, as `monitor info replay` tells it."""
    reply = _exchange(conn, b"qRcmd," + b"info replay".hex().encode())
    return int(bytes.fromhex(reply.decode().lstrip("O")).decode().split()[1])


def test_interrupt_stops_a_continue_that_would_never_end(tmp_path: Path) -> None:
    trace = endless_trace(tmp_path / "endless")
    with rdebug_gdb_server("replay", str(trace)) as address:
        host, port = address.split(":")
        with socket.create_connection((host, int(port)), timeout=EVENT_TIMEOUT) as conn:
            assert _exchange(conn, b"QStartNoAckMode").endswith(b"OK")
            conn.sendall(frame(b"c"))
            conn.sendall(b"\x03")
            assert _reply(conn).startswith(b"T02")  # SIGINT, not the end of the log
            assert _icount(conn) < 4096 * 0xFFFF_FFFF


def test_interrupt_stops_a_long_reverse_continue(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    with rdebug.open(long_crc_trace(tmp_path_factory)) as session:
        start = session.end_icount
        session.seek(start)
        held = HeldOperation(session, monkeypatch)
        server = GdbServer(SessionTarget(session), "127.0.0.1", 0)
        host, port = server.listen()
        serving = threading.Thread(target=server.serve_one, daemon=True)
        serving.start()
        try:
            with socket.create_connection((host, port), timeout=EVENT_TIMEOUT) as conn:
                assert _exchange(conn, b"QStartNoAckMode").endswith(b"OK")
                conn.sendall(frame(b"bc"))
                held.wait_reached()  # the reverse-continue is under way, and held
                conn.sendall(b"\x03")
                reply = _reply(conn)
                assert reply.startswith(b"T02"), reply  # SIGINT, not the log's beginning
                assert _icount(conn) == held.icount
                assert 0 < held.icount < start
                conn.sendall(frame(b"D"))
                assert _reply(conn) == b"OK"
        finally:
            server.close()
            serving.join(EVENT_TIMEOUT)
        assert not serving.is_alive()

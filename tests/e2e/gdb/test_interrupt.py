"""The RSP interrupt (0x03, what gdb sends on Ctrl-C) stops a long reverse-continue.

Driven by a raw RSP client over the CLI's server: with pygdbmi, gdb 13's `-exec-interrupt`
in mi-async mode reached the stub only after the `bc` had finished (see the closing note
of the gdb stub work), so this test sends the interrupt byte itself.
"""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import pytest

from bench.seek import record
from rdebug.gdbstub.packet import frame
from tests.e2e.gdb.conftest import rdebug_gdb_server


@pytest.fixture(scope="module")
def long_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("long") / "crc"
    record(folder, passes=12_000)  # about 1.7e9 instructions
    return folder


def _exchange(conn: socket.socket, payload: bytes, timeout: float = 120) -> bytes:
    conn.sendall(frame(payload))
    conn.settimeout(timeout)
    data = b""
    while not re.search(rb"\$[^#]*#..", data):
        chunk = conn.recv(4096)
        assert chunk, data
        data += chunk
    return re.search(rb"\$([^#]*)#..", data)[1]  # type: ignore[index]


def test_interrupt_stops_a_long_reverse_continue(long_trace: Path) -> None:
    with rdebug_gdb_server("replay", str(long_trace)) as address:
        host, port = address.split(":")
        with socket.create_connection((host, int(port)), timeout=60) as conn:
            assert _exchange(conn, b"QStartNoAckMode").endswith(b"OK")
            command = b"replay_seek 1600000000".hex().encode()
            _exchange(conn, b"qRcmd," + command)
            conn.sendall(frame(b"bc"))
            time.sleep(0.3)  # the reverse-continue is under way (it takes > 1 s)
            started = time.monotonic()
            conn.sendall(b"\x03")
            reply = b""
            while b"#" not in reply:
                chunk = conn.recv(4096)
                assert chunk
                reply += chunk
            assert time.monotonic() - started < 10
            assert reply.startswith(b"$T02"), reply  # SIGINT, not the log's beginning
            where = bytes.fromhex(
                _exchange(conn, b"qRcmd," + b"info replay".hex().encode()).decode().lstrip("O")
            ).decode()
            icount = int(where.split()[1])
            assert 0 < icount < 1_600_000_000

"""Whole RSP sessions of random valid and malformed packets against a replay gdb server
(issue 17): whatever a client sent, and however it left, the server then answers ``?``
and a fresh stock gdb attaches and reverse-steps.

Bounded: a fixed, small number of examples (CI runs them all); no sleeps: a drain thread
reads whatever the server says, and every wait is on a reply or EOF, with a timeout only
as a safety net.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rdebug.gdbstub.packet import Packet, frame
from tests.e2e.gdb.conftest import GDB, rdebug_gdb_server
from tests.rsp_client import TIMEOUT, RawClient

#: Examples per run: bounded for CI (each ends with a stock gdb attaching);
#: RDEBUG_FUZZ_EXAMPLES=500 for a longer hunt.
EXAMPLES = int(os.environ.get("RDEBUG_FUZZ_EXAMPLES", "12"))
#: A refusal means the last client's connection was still ending; this many retries
#: (each an event: a refusal received) bound the wait.
ATTEMPTS = 40

MONITOR = [
    "info replay",
    "info breakpoints",
    "help",
    "regs",
    "x/99999999xb 0",
    "x/16xw 0x100000",
    "x/3i $eip",
    "disas 0x100000 99999999",
    "watch 0x100000 0xffffffffffffff",
    "watch 0x100000 4",
    "break 0x100070",
    "delete",
    "replay_seek 1000",
    "replay_seek end",
    "stepi 99999999",
    "rstepi 3",
    "events interrupt",
    "events --from 0 --to 99999999999999999999",
    "nonsense words",
    "x/",
]

_hex = st.integers(0, 2**64 - 1).map(lambda n: f"{n:x}")
_addr = st.one_of(st.sampled_from(["0", "100000", "100070", "ffffffff", "100000000"]), _hex)
_length = st.one_of(st.sampled_from(["0", "1", "4", "1000", "ffffffff"]), _hex)

_valid = st.one_of(
    st.sampled_from(
        [
            b"?",
            b"g",
            b"p8",
            b"p29",
            b"qC",
            b"qSupported:swbreak+;hwbreak+;vContSupported+",
            b"QStartNoAckMode",
            b"vCont?",
            b"qXfer:features:read:target.xml:0,fff",
            b"qXfer:features:read:target.xml:ffffffffffff,ffffffffffff",
            b"s",
            b"vCont;s:1",
            b"vCont;c",
            b"c",
            b"bs",
            b"bc",
            b"Hg0",
            b"qAttached",
            b"c100000",
            b"C0b",
            b"vCont;C0b",
            b"S05;100000",
            b"G" + b"00" * 10,
            b"P8=78563412",
        ]
    ),
    st.builds(lambda a, n: f"m{a},{n}".encode(), _addr, _length),
    st.builds(lambda a: f"M{a},4:00000000".encode(), _addr),
    st.builds(
        lambda z, t, a, n: f"{z}{t},{a},{n}".encode(),
        st.sampled_from("Zz"),
        st.integers(0, 5),
        _addr,
        _length,
    ),
    st.sampled_from(MONITOR).map(lambda c: b"qRcmd," + c.encode().hex().encode()),
)

# what goes on the wire: framed packets, or raw bytes
_wire = st.one_of(
    _valid.map(frame),
    _valid.map(lambda p: b"$" + p + b"#00"),  # a bad checksum
    st.binary(max_size=64),  # noise
    st.sampled_from([b"\x03", b"+", b"-", b"$m10", b"$" + b"a" * 40000 + b"#00", b"}"]),
)

_ending = st.sampled_from([b"", frame(b"D"), frame(b"k")])


@pytest.fixture(scope="module")
def server(timer_trace: Path) -> Iterator[str]:
    with rdebug_gdb_server("replay", str(timer_trace)) as address:
        yield address


def _connect(address: str) -> socket.socket:
    host, _, port = address.rpartition(":")
    return socket.create_connection((host, int(port)), timeout=TIMEOUT)


def _drain(sock: socket.socket) -> None:
    """Read until EOF or the socket closes under us (what the server says is ignored)."""
    try:
        while sock.recv(65536):
            pass
    except OSError:
        pass


def _answers_halt_reason(address: str) -> None:
    """A new client gets a stop reply to ``?`` (after at most ATTEMPTS refusals while
    the last one's connection ends)."""
    host, _, port = address.rpartition(":")
    for _ in range(ATTEMPTS):
        client = RawClient((host, int(port)))
        try:
            client.send(frame(b"?"))
            event = client.next_event()
            while not isinstance(event, Packet):
                event = client.next_event()
            if event.payload.startswith(b"E.another gdb"):
                continue
            assert event.payload.startswith((b"T", b"S")), event
            return
        finally:
            client.close()
    raise AssertionError("the server kept refusing new clients")


def _stock_gdb_reverse_steps(address: str, trace: Path) -> None:
    """A stock gdb attaches and reverse-steps (coming again, as a user would, if it
    came in just as the last client's connection was closing and was told so)."""
    assert GDB is not None
    commands = ["monitor replay_seek 1000", "reverse-stepi", "monitor info replay"]
    args = [GDB, "-batch", "-nx", "-ex", "set architecture i386", "-ex", f"file {trace}/guest"]
    args += ["-ex", f"target remote {address}"]
    for command in commands:
        args += ["-ex", command]
    output = ""
    for _ in range(ATTEMPTS):
        result = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
        output = result.stdout + result.stderr  # gdb -batch: monitor output on stderr
        if "another gdb is already attached" not in output:
            break
    assert "icount 999 " in output, output


@pytest.mark.timeout(900)
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(sends=st.lists(_wire, max_size=12), ending=_ending)
def test_random_sessions_leave_the_server_usable(
    server: str, timer_trace: Path, sends: list[bytes], ending: bytes
) -> None:
    sock = _connect(server)
    drain = threading.Thread(target=_drain, args=(sock,), daemon=True)
    drain.start()
    try:
        for data in [*sends, ending]:
            sock.sendall(data)
    except OSError:
        pass  # the server closed (D, k, or a packet it could not survive)
    finally:
        # abrupt unless the ending said goodbye; shutdown wakes the drain's recv
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        drain.join(TIMEOUT)
        sock.close()
    _answers_halt_reason(server)
    _stock_gdb_reverse_steps(server, timer_trace)

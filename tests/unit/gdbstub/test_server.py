"""GdbServer over a real loopback socket, with a raw client (port 0, no sleeps, timeouts)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from rdebug.gdbstub import GdbServer, StopReason
from rdebug.gdbstub.packet import Ack, Event, Packet, PacketDecoder, frame
from tests.conftest import EVENT_TIMEOUT
from tests.unit.gdbstub.fakes import FakeTarget, wait_for_interrupt

TIMEOUT = EVENT_TIMEOUT


class RawClient:
    """A minimal gdb: raw bytes out, decoded events in."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=TIMEOUT)
        self._decoder = PacketDecoder()
        self._events: list[Event] = []

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def next_event(self) -> Event:
        while not self._events:
            data = self.sock.recv(4096)
            if not data:
                raise EOFError("the server closed the connection")
            self._events += self._decoder.feed(data)
        return self._events.pop(0)

    def ask(self, payload: bytes, *, acks: bool = True) -> bytes:
        """Send a packet, check the ack if acks are on, return the reply payload."""
        self.send(frame(payload))
        if acks:
            assert self.next_event() == Ack()
        event = self.next_event()
        assert isinstance(event, Packet), event
        if acks:
            self.send(b"+")
        return event.payload

    def at_eof(self) -> bool:
        return self.sock.recv(1) == b""

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def target() -> FakeTarget:
    return FakeTarget()


@pytest.fixture
def server(target: FakeTarget) -> Iterator[GdbServer]:
    with GdbServer(target) as server:
        server.start()
        yield server


def test_listens_on_loopback_with_a_free_port(server: GdbServer) -> None:
    assert server.listening.wait(TIMEOUT)
    host, port = server.address
    assert host == "127.0.0.1" and port > 0


def test_a_session_over_tcp(server: GdbServer, target: FakeTarget) -> None:
    client = RawClient(server.address)
    client.send(b"+")
    assert b"QStartNoAckMode+" in client.ask(b"qSupported:swbreak+").split(b";")
    assert client.ask(b"m1000,4") == b"00010203"
    assert client.ask(b"QStartNoAckMode") == b"OK"
    assert client.ask(b"p8", acks=False) == b"00100000"
    # a run that only the interrupt byte ends
    target.script.append(wait_for_interrupt)
    client.send(frame(b"vCont;c"))
    client.send(b"\x03")
    assert client.next_event() == Packet(b"T02thread:1;")
    assert client.ask(b"D", acks=False) == b"OK"
    assert client.at_eof()
    client.close()
    assert target.detached


def test_the_server_survives_a_crashing_target(server: GdbServer, target: FakeTarget) -> None:
    first = RawClient(server.address)
    first.send(frame(b"qRcmd," + b"crash".hex().encode()))
    assert first.next_event() == Ack()
    with pytest.raises(EOFError):
        first.next_event()  # the connection is closed, no reply
    first.close()
    second = RawClient(server.address)
    assert second.ask(b"qRcmd," + b"echo again".hex().encode()) == b"again".hex().encode()
    assert second.ask(b"m0,1") == b"E0e"  # a TargetError keeps the session going
    assert second.ask(b"m1001,1") == b"01"
    second.send(frame(b"k"))
    assert second.next_event() == Ack()
    assert second.at_eof()
    second.close()
    assert target.killed
    assert server.connections == 2


def test_gdb_vanishing_mid_run_interrupts_the_target(server: GdbServer, target: FakeTarget) -> None:
    ended = threading.Event()

    def run(interrupted: Callable[[], bool]) -> StopReason:
        stop = wait_for_interrupt(interrupted)
        ended.set()
        return stop

    target.script.append(run)
    client = RawClient(server.address)
    client.send(frame(b"QStartNoAckMode"))
    assert client.next_event() == Ack()
    assert client.next_event() == Packet(b"OK")
    client.send(frame(b"c"))
    client.close()
    assert ended.wait(TIMEOUT), "the run went on after gdb had gone"
    # and the next gdb is served, where the run stopped
    again, reply = next_gdb(server)
    assert reply == b"T02thread:1;"
    again.close()


def next_gdb(server: GdbServer) -> tuple[RawClient, bytes]:
    """A new gdb once the server takes it, and its `?` reply.  The previous connection
    closes just after its last reply: a gdb that comes in that moment (a stalled server
    thread makes it longer than the hand-over grace) is told the target is taken, and
    comes again."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        client = RawClient(server.address)
        reply = client.ask(b"?")
        if not reply.startswith(b"E.another gdb is already attached"):
            return client, reply
        client.close()
        assert time.monotonic() < deadline, "the server never took the next gdb"


def test_close_ends_a_connected_session() -> None:
    server = GdbServer(FakeTarget())
    thread = server.start()
    client = RawClient(server.address)
    assert client.ask(b"qC") == b"QC1"
    server.close()
    thread.join(TIMEOUT)
    assert not thread.is_alive()
    assert client.at_eof()
    client.close()


def test_serve_forever_in_a_caller_thread_sets_listening() -> None:
    server = GdbServer(FakeTarget(), host="127.0.0.1", port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    assert server.listening.wait(TIMEOUT)
    client = RawClient(server.address)
    assert client.ask(b"qAttached") == b"1"
    client.close()
    server.close()
    thread.join(TIMEOUT)
    assert not thread.is_alive()

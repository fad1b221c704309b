"""GdbServer over a real loopback socket, with a raw client (port 0, no sleeps, timeouts)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from rdebug.gdbstub import BreakpointKind, GdbServer, StopReason
from rdebug.gdbstub.packet import Ack, Packet, frame
from tests.conftest import EVENT_TIMEOUT
from tests.rsp_client import RawClient
from tests.unit.gdbstub.fakes import FakeTarget, wait_for_interrupt

TIMEOUT = EVENT_TIMEOUT


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


def _refusal(client: RawClient) -> bytes:
    """The refuser's answer to a first packet: an ack and an ``E.`` text."""
    client.send(frame(b"qSupported"))
    assert client.next_event() == Ack()
    event = client.next_event()
    assert isinstance(event, Packet), event
    return event.payload


def _refuser_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "gdbstub-refuser"]


@pytest.mark.timeout(60)
def test_a_slow_client_cannot_hold_the_refuser(server: GdbServer) -> None:
    """Issue 17, case 6: a client trickling bytes while gdb is attached neither delays
    the next gdb after the first detaches, nor blocks a third client, nor leaves a
    thread behind."""
    first = RawClient(server.address)
    assert first.ask(b"qC") == b"QC1"
    slow = RawClient(server.address)
    slow.send(b"$q")  # the start of a packet, never finished
    # more clients than a backlog of 1 would take, while the slow one trickles
    others = [RawClient(server.address) for _ in range(4)]
    for other in others:
        assert _refusal(other).startswith(b"E.another gdb is already attached")
        assert other.at_eof()
        other.close()
    slow.send(b"S")
    # the first gdb leaves; the next one is served at once, not after the slow one's
    # timeout (the socket timeout bounds the wait: a hold-up fails the test)
    assert first.ask(b"D") == b"OK"
    first.close()
    nxt = RawClient(server.address)
    nxt.sock.settimeout(5.0)  # it used to wait for the slow client's 10 s
    assert nxt.ask(b"qC") == b"QC1"
    assert nxt.ask(b"D") == b"OK"
    nxt.close()
    slow.close()
    # the refuser of each finished connection is gone (joined, not left behind)
    assert len(_refuser_threads()) <= 1


@pytest.mark.timeout(60)
def test_a_client_that_never_sends_is_refused_by_its_deadline(server: GdbServer) -> None:
    first = RawClient(server.address)
    assert first.ask(b"qC") == b"QC1"
    silent = RawClient(server.address)
    # nothing sent: the refuser still answers and closes within its deadline
    assert silent.next_event() == Ack()
    event = silent.next_event()
    assert isinstance(event, Packet) and event.payload.startswith(b"E.another gdb")
    assert silent.at_eof()
    silent.close()
    assert first.ask(b"qC") == b"QC1"
    first.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("ending", ["drop", "detach", "kill"])
def test_a_connection_s_breakpoints_end_with_it(
    server: GdbServer, target: FakeTarget, ending: str
) -> None:
    """Issue 17, case 3: whatever ends a connection, what it placed is removed."""
    assert target.bps is not None
    first = RawClient(server.address)
    assert first.ask(b"Z0,1010,1") == b"OK"
    assert first.ask(b"Z2,1020,4") == b"OK"
    assert first.ask(b"Z0,1030,1") == b"OK"
    assert first.ask(b"z0,1030,1") == b"OK"
    if ending == "detach":
        assert first.ask(b"D") == b"OK"
    elif ending == "kill":
        first.send(frame(b"k"))
        assert first.next_event() == Ack()
    first.close()  # "drop": gone without a word
    second, _ = next_gdb(server)
    assert second.ask(b"Z0,1040,1") == b"OK"
    # the server served the second only after the first ended
    assert target.bps.placed == {(BreakpointKind.SOFTWARE, 0x1040, 1)}
    # a continue stops only at the second connection's own breakpoint
    assert second.ask(b"c") == b"T05thread:1;"
    assert target.eip == 0x1040
    second.close()


@pytest.mark.timeout(60)
def test_a_long_monitor_command_stops_on_0x03(server: GdbServer) -> None:
    client = RawClient(server.address)
    assert client.monitor("spin", interrupt=True) == b"interrupted\n"
    assert client.ask(b"qC") == b"QC1"
    client.close()


@pytest.mark.timeout(60)
def test_monitor_output_is_capped_with_a_last_line_saying_so(server: GdbServer) -> None:
    client = RawClient(server.address)
    output = client.monitor("big 200000").decode()  # ~2.2 MB
    lines = output.splitlines()
    assert lines[0] == "line 0"
    assert len(output) <= (1 << 20) + 100
    assert lines[-1].startswith("... output truncated: ") and lines[-1].endswith(
        " more bytes not sent"
    )
    assert all(line.startswith("line ") for line in lines[:-1])
    client.close()

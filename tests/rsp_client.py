"""A minimal gdb for tests: raw RSP bytes out over TCP, decoded events in."""

from __future__ import annotations

import socket
import weakref

from rdebug.gdbstub.packet import Ack, Event, Packet, PacketDecoder, frame
from tests.conftest import EVENT_TIMEOUT

#: A safety net for every socket operation: a hang fails the test.
TIMEOUT = EVENT_TIMEOUT


class RawClient:
    """A minimal gdb: raw bytes out, decoded events in."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # a test that fails half way must not leave an open socket to the next test
        weakref.finalize(self, self.sock.close)
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

    def monitor(self, command: str, *, acks: bool = True, interrupt: bool = False) -> bytes:
        """``qRcmd``: the console output it sent (``O`` packets and a hex reply), or
        the final ``E`` reply.  With `interrupt`, a 0x03 follows the request at once."""
        self.send(frame(b"qRcmd," + command.encode().hex().encode()))
        if acks:
            assert self.next_event() == Ack()
        if interrupt:
            self.send(b"\x03")
        output = b""
        while True:
            event = self.next_event()
            assert isinstance(event, Packet), event
            if acks:
                self.send(b"+")
            payload = event.payload
            if payload.startswith(b"O") and payload != b"OK":
                output += bytes.fromhex(payload[1:].decode())
                continue
            if payload.startswith(b"E"):
                return payload
            if payload != b"OK":
                output += bytes.fromhex(payload.decode())
            return output

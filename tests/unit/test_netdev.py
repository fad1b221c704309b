"""Host network backends: -netdev parsing, the UDP socket, the bounded frame queue, pcap."""

from __future__ import annotations

import io
import socket
import threading

import pytest

from rdebug.errors import UsageError
from rdebug.host.netdev import (
    FrameDeliverFn,
    NetInputs,
    NoNetdev,
    PcapWriter,
    SocketNetdev,
    UdpNetdev,
    parse_netdev,
    read_pcap,
)
from rdebug.host.sources import LiveInputs, ScriptedInputs
from rdebug.machine.inputs import NetInput, SerialInput
from tests.conftest import EVENT_TIMEOUT


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("none", NoNetdev()),
        ("none,id=n0", NoNetdev()),
        (
            "socket,udp=127.0.0.1:1234,localaddr=127.0.0.1:5678",
            SocketNetdev(("127.0.0.1", 1234), ("127.0.0.1", 5678)),
        ),
        (
            "socket,id=n1,localaddr=:0,udp=:9",
            SocketNetdev(("127.0.0.1", 9), ("127.0.0.1", 0)),
        ),
    ],
)
def test_parse_netdev(text: str, spec: object) -> None:
    assert parse_netdev(text) == spec


@pytest.mark.parametrize(
    "text",
    [
        "tap",
        "none,x=1",
        "socket",
        "socket,udp=1.2.3.4:5",
        "socket,udp=1.2.3.4,localaddr=:0",
        "socket,udp=:0,localaddr=:0",
        "socket,udp=:1,localaddr=:70000",
        "socket,udp=:1,udp=:2,localaddr=:0",
        "socket,listen=:1",
    ],
)
def test_bad_netdev_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="--netdev"):
        parse_netdev(text)


class Scripted:
    """A frame source the test drives from its own thread."""

    def __init__(self) -> None:
        self.deliver: FrameDeliverFn | None = None
        self.closed = False

    def start(self, deliver: FrameDeliverFn) -> None:
        self.deliver = deliver

    def close(self) -> None:
        self.closed = True


def test_net_inputs_follow_the_inner_inputs_and_bound_the_queue() -> None:
    source = Scripted()
    inputs = NetInputs(ScriptedInputs([(0, 0, b"k")]), {0: source}, queue_limit=3)
    assert source.deliver is not None
    for i in range(5):
        source.deliver(bytes([i]) * 20)
    assert inputs.more_expected()
    taken = inputs.take_async(10)
    assert taken == [SerialInput(0, b"k"), *(NetInput(0, bytes([i]) * 20) for i in range(3))]
    assert (inputs.received, inputs.dropped) == (3, 2)
    assert inputs.take_async(11) == []
    inputs.close()
    assert source.closed


def test_wait_returns_when_a_frame_arrives() -> None:
    source = Scripted()
    inputs = NetInputs(LiveInputs({}), {0: source})  # live: its wait() really blocks
    assert source.deliver is not None
    returned = threading.Event()

    def waiter() -> None:
        inputs.wait(3600.0)  # ends when the frame is there (before or while it waits)
        returned.set()

    thread = threading.Thread(target=waiter, daemon=True)
    thread.start()
    source.deliver(b"frame")
    assert returned.wait(EVENT_TIMEOUT), "wait() went on after a frame had arrived"
    thread.join()
    assert inputs.take_async(0) == [NetInput(0, b"frame")]
    inputs.close()


def test_udp_netdev_round_trip() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.bind(("127.0.0.1", 0))
        peer.settimeout(EVENT_TIMEOUT)
        udp = UdpNetdev(SocketNetdev(peer.getsockname(), ("127.0.0.1", 0)))
        got: list[bytes] = []
        arrived = threading.Event()

        def deliver(frame: bytes) -> None:
            got.append(frame)
            arrived.set()

        udp.start(deliver)
        try:
            udp.transmit(b"to the peer", 0)
            data, addr = peer.recvfrom(100)
            assert (data, addr) == (b"to the peer", udp.local)
            peer.sendto(b"to the guest", udp.local)
            assert arrived.wait(EVENT_TIMEOUT), "the peer's datagram never arrived"
            assert got == [b"to the guest"]
        finally:
            udp.close()


def test_sending_to_a_vanished_peer_is_not_an_error() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as gone:
        gone.bind(("127.0.0.1", 0))
        address = gone.getsockname()
    udp = UdpNetdev(SocketNetdev(address, ("127.0.0.1", 0)))
    try:
        for _ in range(3):
            udp.transmit(b"anyone?", 0)
    finally:
        udp.close()


def test_pcap_writer_stamps_frames_in_virtual_time() -> None:
    stream = io.BytesIO()
    writer = PcapWriter(stream)
    writer.transmit(b"a" * 60, 1_500_000_000)
    writer.transmit(b"b" * 42, 2_000_001_000)
    assert read_pcap(stream.getvalue()) == [(1_500_000, b"a" * 60), (2_000_001, b"b" * 42)]
    assert stream.getvalue()[:4] == bytes.fromhex("d4c3b2a1")

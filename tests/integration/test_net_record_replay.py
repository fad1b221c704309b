"""The `net` guest recorded with a UDP peer on loopback, replayed with no peer at all.

Each scenario records in-process (the peer is a thread; the recording's final state hash
is taken before the machine closes), then replays the trace through the scripting API:
same COM1 output, same state hash at the end, and the log holds every frame the NIC was
handed, malformed ones included.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from rdebug.api import Session
from rdebug.host.netdev import NetInputs, SocketNetdev, UdpNetdev
from rdebug.host.sources import LiveInputs
from rdebug.machine.devices.ne2000 import NicConfig
from rdebug.machine.loader import load_image
from rdebug.machine.machine import Machine, MachineConfig, StopEvent, StopReason
from rdebug.replay.log import AsyncNet, Reader
from rdebug.replay.player import Player
from rdebug.replay.recording import record
from rdebug.replay.trace import GuestSpec, sha256
from tests.conftest import EVENT_TIMEOUT, GUESTS, Capture
from tests.netframes import (
    GUEST_MAC,
    PEER_MAC,
    Peer,
    arp_request,
    echo_reply_of,
    icmp_echo,
    is_arp_reply,
    udp_quit,
)

CONFIG = MachineConfig(memory_mb=8, nic=NicConfig())


@dataclass
class Recorded:
    trace: Path
    stop: StopEvent
    com1: bytes
    state_hash: str
    net_inputs: NetInputs


def record_net(folder: Path, script: Callable[[Peer], None], queue_limit: int = 256) -> Recorded:
    """Record the `net` guest while `script` talks to it from a peer thread."""
    guest = (GUESTS / "net.elf").read_bytes()
    spec = GuestSpec("net.elf", str(GUESTS / "net.elf"), sha256(guest))
    peer = Peer()
    udp = UdpNetdev(SocketNetdev(("127.0.0.1", peer.port), ("127.0.0.1", 0)))
    inputs = NetInputs(LiveInputs(), {0: udp}, queue_limit=queue_limit)
    out = Capture()
    errors: list[BaseException] = []

    def talk() -> None:
        try:
            script(peer)
        except BaseException as exc:  # reported by the test below
            errors.append(exc)

    thread = threading.Thread(target=talk, daemon=True)
    thread.start()
    hashes: list[str] = []

    def run(machine: Machine) -> StopEvent:
        stop = machine.run(50_000_000)
        hashes.append(machine.state_hash())
        return stop

    try:
        recording = record(folder, guest, spec, CONFIG, inputs, serial=[out], net=udp, run=run)
    finally:
        peer.finished.set()
        thread.join(timeout=EVENT_TIMEOUT)
        peer.close()
    assert not errors, errors
    assert not thread.is_alive(), "the peer's script never ended"
    assert recording.stop.reason is StopReason.EXIT, recording.stop
    return Recorded(recording.trace.path, recording.stop, bytes(out.data), hashes[0], inputs)


def replay(trace: Path) -> tuple[bytes, str, int]:
    """COM1 output, final state hash and end icount of a replay with no peer."""
    with Session(trace) as session:
        session.seek(session.end_icount // 2)
        session.seek(session.end_icount)
        end_hash = session.state_hash()
        end = session.end_icount
    # The COM1 output, from a straight replay of a fresh session.
    out = Capture()
    with (trace / "replay.log").open("rb") as log:
        player = Player(log, "replay.log")
        machine = Machine(CONFIG, player, [out])
        try:
            machine.load(load_image(trace / "guest"))
            stop = machine.run()
            assert stop.reason is StopReason.EXIT
            assert machine.state_hash() == end_hash
        finally:
            machine.close()
    return bytes(out.data), end_hash, end


def net_events(trace: Path) -> list[bytes]:
    with (trace / "replay.log").open("rb") as log:
        return [e.packet for e in Reader(log, "replay.log") if isinstance(e, AsyncNet)]


def test_arp_and_ping_replay_without_the_peer(tmp_path: Path) -> None:
    replies: list[bytes] = []

    def script(peer: Peer) -> None:
        announce = peer.receive()
        assert announce[:6] == b"\xff" * 6 and announce[6:12] == GUEST_MAC
        peer.send(arp_request())
        replies.append(peer.receive())
        for seq in range(3):
            peer.send(icmp_echo(0x1234, seq, b"ping %d" % seq * 20))
            replies.append(peer.receive())
        peer.send(udp_quit())

    rec = record_net(tmp_path / "t", script)
    assert is_arp_reply(replies[0])
    assert [echo_reply_of(r) for r in replies[1:]] == [
        (0x1234, seq, b"ping %d" % seq * 20) for seq in range(3)
    ]
    assert rec.com1.count(b"-> reply") == 4
    assert b"net done: 5 frames received, 5 sent" in rec.com1
    assert len(net_events(rec.trace)) == 5
    com1, end_hash, end = replay(rec.trace)
    assert com1 == rec.com1
    assert end_hash == rec.state_hash
    assert end == rec.stop.icount


def test_malformed_frames_are_logged_and_survived(tmp_path: Path) -> None:
    runt = GUEST_MAC + PEER_MAC + b"\x88\xb5" + b"runt"  # 18 bytes: padded to 60
    tiny = b"\x01\x02\x03"  # not even an Ethernet header: dropped by the NIC
    oversize = GUEST_MAC + PEER_MAC + b"\x08\x00" + bytes(3000)  # dropped by the NIC
    sent = [runt, tiny, oversize, arp_request()]

    def script(peer: Peer) -> None:
        peer.receive()
        for frame in sent:
            peer.send(frame)
        assert is_arp_reply(peer.receive())
        peer.send(udp_quit())

    rec = record_net(tmp_path / "t", script)
    assert net_events(rec.trace) == [*sent, udp_quit()]
    assert b"frame 1: 60 bytes from 52:54:00:aa:bb:cc: ethertype 0x88b5 ignored" in rec.com1
    assert b"net done: 3 frames received, 2 sent" in rec.com1  # runt, ARP, quit
    com1, end_hash, _ = replay(rec.trace)
    assert (com1, end_hash) == (rec.com1, rec.state_hash)


def test_a_peer_that_vanishes(tmp_path: Path) -> None:
    def script(peer: Peer) -> None:
        peer.receive()
        assert peer.guest is not None
        address = peer.guest
        peer.send(arp_request())
        peer.sock.close()  # gone before the guest answers: the reply is lost
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
            other.sendto(icmp_echo(1, 1, b"anyone?"), address)
            other.sendto(udp_quit(), address)

    rec = record_net(tmp_path / "t", script)
    assert b"net done: 3 frames received, 3 sent" in rec.com1
    com1, end_hash, _ = replay(rec.trace)
    assert (com1, end_hash) == (rec.com1, rec.state_hash)


def test_a_flood_is_bounded_at_the_host_and_the_log_is_complete(tmp_path: Path) -> None:
    flood = [icmp_echo(9, seq, bytes(900)) for seq in range(400)]
    def script(peer: Peer) -> None:
        peer.receive()
        for frame in flood:
            peer.send(frame)
        # The quit datagram may itself be dropped under the flood: repeat it.
        while not peer.finished.wait(0.05):
            try:
                peer.send(udp_quit())
            except OSError:
                return

    rec = record_net(tmp_path / "t", script, queue_limit=16)
    logged = net_events(rec.trace)
    # Nothing the machine took is missing from the log; what the bounded queue dropped
    # (and what the kernel's socket buffer dropped: UDP) never reached it.  The frames
    # that did arrive, arrived in the order sent.
    assert len(logged) == rec.net_inputs.received
    assert rec.net_inputs.dropped > 0
    flood_logged = [f for f in logged if f in flood]
    assert flood_logged == [f for f in flood if f in flood_logged]
    assert flood_logged
    com1, end_hash, _ = replay(rec.trace)
    assert (com1, end_hash) == (rec.com1, rec.state_hash)


@pytest.mark.parametrize("dest", [PEER_MAC, b"\x01\x00\x5e\x00\x00\x01"])
def test_frames_for_others_are_filtered_by_the_nic(tmp_path: Path, dest: bytes) -> None:
    def script(peer: Peer) -> None:
        peer.receive()
        peer.send(dest + PEER_MAC + b"\x08\x00" + bytes(50))
        peer.send(arp_request())
        assert is_arp_reply(peer.receive())
        peer.send(udp_quit())

    rec = record_net(tmp_path / "t", script)
    assert b"net done: 2 frames received, 2 sent" in rec.com1
    assert len(net_events(rec.trace)) == 3

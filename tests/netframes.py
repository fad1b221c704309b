"""Ethernet/ARP/IPv4 frames for the network tests, and a UDP peer on loopback.

The peer plays QEMU's other end of `-netdev socket,udp=...`: one frame per datagram.
It learns the guest's address from the first datagram it receives (the `net` guest
announces itself with a gratuitous ARP).
"""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from tests.conftest import EVENT_TIMEOUT, GUESTS, ROOT

GUEST_MAC = bytes.fromhex("525400123456")
GUEST_IP = bytes([10, 0, 2, 15])
PEER_MAC = bytes.fromhex("525400aabbcc")
PEER_IP = bytes([10, 0, 2, 2])
BROADCAST = b"\xff" * 6
QUIT_PORT = 7777


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f">{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def arp_request(target_ip: bytes = GUEST_IP) -> bytes:
    body = struct.pack(">HHBBH", 1, 0x0800, 6, 4, 1) + PEER_MAC + PEER_IP + bytes(6) + target_ip
    return BROADCAST + PEER_MAC + b"\x08\x06" + body


def ipv4(proto: int, payload: bytes, dst: bytes = GUEST_IP) -> bytes:
    header = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0,
                         PEER_IP, dst)  # fmt: skip
    header = header[:10] + struct.pack(">H", checksum(header)) + header[12:]
    return GUEST_MAC + PEER_MAC + b"\x08\x00" + header + payload


def icmp_echo(ident: int, seq: int, data: bytes) -> bytes:
    head = struct.pack(">BBHHH", 8, 0, 0, ident, seq)
    csum = checksum(head + data)
    return ipv4(1, head[:2] + struct.pack(">H", csum) + head[4:] + data)


def udp_quit() -> bytes:
    return ipv4(17, struct.pack(">HHHH", 5000, QUIT_PORT, 8, 0))


def is_arp_reply(frame: bytes) -> bool:
    return (
        frame[:6] == PEER_MAC
        and frame[12:14] == b"\x08\x06"
        and frame[20:22] == b"\x00\x02"
        and frame[22:28] == GUEST_MAC
        and frame[28:32] == GUEST_IP
        and frame[38:42] == PEER_IP
    )


def echo_reply_of(frame: bytes) -> tuple[int, int, bytes] | None:
    """(id, seq, data) of an ICMP echo reply to the peer with valid checksums, or None."""
    if frame[:6] != PEER_MAC or frame[12:14] != b"\x08\x00":
        return None
    ip = frame[14:]
    total = struct.unpack(">H", ip[2:4])[0]
    if ip[9] != 1 or ip[12:16] != GUEST_IP or ip[16:20] != PEER_IP or checksum(ip[:20]):
        return None
    icmp = ip[20:total]
    if icmp[0] != 0 or checksum(icmp):
        return None
    ident, seq = struct.unpack(">HH", icmp[4:8])
    return ident, seq, icmp[8:]


class Peer:
    """A UDP socket on loopback standing for the rest of the network."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.guest: tuple[str, int] | None = None
        #: set once the recording has ended: a script that keeps talking stops then
        self.finished = threading.Event()

    def receive(self, timeout: float = EVENT_TIMEOUT) -> bytes:
        self.sock.settimeout(timeout)
        data, addr = self.sock.recvfrom(65536)
        self.guest = addr
        return data

    def send(self, frame: bytes) -> None:
        assert self.guest is not None, "the guest has not announced itself yet"
        self.sock.sendto(frame, self.guest)

    def close(self) -> None:
        self.sock.close()


def record_net_cli(
    trace: Path, talk: Callable[[Peer], None], *options: str
) -> subprocess.CompletedProcess[str]:
    """`rdebug record net.elf -o TRACE --nic ne2k_isa --netdev socket,...` as a user
    types it, while `talk` plays the peer; the guest must exit successfully."""
    peer = Peer()
    try:
        with subprocess.Popen(
            [
                sys.executable, "-m", "rdebug", "record", str(GUESTS / "net.elf"),
                "-o", str(trace), "-m", "8", "--nic", "ne2k_isa",
                "--netdev", f"socket,udp=127.0.0.1:{peer.port},localaddr=127.0.0.1:0",
                *options,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        ) as process:  # fmt: skip
            try:
                talk(peer)
                stdout, stderr = process.communicate(timeout=120)
            finally:
                process.kill()
    finally:
        peer.close()
    assert process.returncode == 1, stderr
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)

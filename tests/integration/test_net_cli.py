"""`rdebug record/replay/dump` with a network, as a user types them."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from rdebug.host.netdev import read_pcap
from tests.conftest import GUESTS, ROOT
from tests.netframes import (
    Peer,
    arp_request,
    echo_reply_of,
    icmp_echo,
    is_arp_reply,
    record_net_cli,
    udp_quit,
)


def rdebug(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rdebug", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )


@pytest.fixture(scope="module")
def exchange(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[bytes], str]:
    trace = tmp_path_factory.mktemp("net") / "trace"
    replies: list[bytes] = []

    def talk(peer: Peer) -> None:
        replies.append(peer.receive())  # the guest's gratuitous ARP
        peer.send(arp_request())
        replies.append(peer.receive())
        peer.send(icmp_echo(42, 7, b"over the loopback wire"))
        replies.append(peer.receive())
        peer.send(udp_quit())

    result = record_net_cli(trace, talk)
    return trace, replies, result.stdout


def test_record_answers_arp_and_ping(exchange: tuple[Path, list[bytes], str]) -> None:
    _, replies, stdout = exchange
    assert is_arp_reply(replies[1])
    assert echo_reply_of(replies[2]) == (42, 7, b"over the loopback wire")
    assert "icmp echo request from 10.0.2.2 id 42 seq 7" in stdout
    assert "net done: 3 frames received, 3 sent" in stdout


def test_replay_without_peer_gives_the_same_output_and_frames(
    exchange: tuple[Path, list[bytes], str], tmp_path: Path
) -> None:
    trace, replies, stdout = exchange
    pcap = tmp_path / "out.pcap"
    result = rdebug("replay", str(trace), "--net-output", str(pcap))
    assert result.returncode == 1, result.stderr
    assert result.stdout == stdout
    frames = [frame for _, frame in read_pcap(pcap.read_bytes())]
    assert frames == replies
    stamps = [stamp for stamp, _ in read_pcap(pcap.read_bytes())]
    assert stamps == sorted(stamps) and stamps[0] > 0  # virtual time


def test_dump_shows_the_net_events_with_their_bytes(
    exchange: tuple[Path, list[bytes], str],
) -> None:
    trace, _, _ = exchange
    result = rdebug("dump", str(trace))
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if "ASYNC NET" in line]
    assert len(lines) == 3
    assert "adapter=0" in lines[0]
    assert arp_request().hex(" ") in lines[0]
    assert udp_quit().hex(" ") in lines[2]
    summary = rdebug("dump", str(trace), "--summary")
    assert "ASYNC NET" in summary.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--nic", "rtl8139"], "unknown model 'rtl8139'"),
        (["--nic", "ne2k_isa,irq=16"], "irq 16"),
        (["--nic", "ne2k_isa,iobase=0x301"], "iobase 0x301"),
        (["--nic", "ne2k_isa,mac=01:00:5e:00:00:01"], "unicast"),
        (["--nic", "ne2k_isa,mac=zz"], "mac"),
        (["--nic", "ne2k_isa,speed=10"], "not 'speed=10'"),
        (["--netdev", "socket,udp=127.0.0.1:9,localaddr=127.0.0.1:0"], "no NIC"),
        (["--nic", "ne2k_isa", "--netdev", "user"], "unknown backend 'user'"),
        (["--nic", "ne2k_isa", "--netdev", "socket,udp=127.0.0.1:9"], "localaddr"),
        (["--nic", "ne2k_isa", "--netdev", "socket,udp=nowhere,localaddr=:0"], "HOST:PORT"),
        (["--nic", "ne2k_isa", "--netdev", "socket,udp=h:0,localaddr=:0"], "1..65535"),
    ],
)
def test_bad_network_options(args: list[str], message: str, tmp_path: Path) -> None:
    result = rdebug("record", str(GUESTS / "net.elf"), "-o", str(tmp_path / "t"), *args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "t").exists()


def test_port_in_use_is_one_clear_error(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        result = rdebug(
            "run", str(GUESTS / "net.elf"), "--nic", "ne2k_isa",
            "--netdev", f"socket,udp=127.0.0.1:9,localaddr=127.0.0.1:{port}",
        )  # fmt: skip
    assert result.returncode == 2
    assert f"cannot bind 127.0.0.1:{port}: the port is in use" in result.stderr


def test_net_output_needs_a_nic(tmp_path: Path) -> None:
    trace = tmp_path / "hello"
    recorded = rdebug("record", str(GUESTS / "hello.elf"), "-o", str(trace), "-m", "8")
    assert recorded.returncode == 1, recorded.stderr
    result = rdebug("replay", str(trace), "--net-output", str(tmp_path / "x.pcap"))
    assert result.returncode == 2
    assert "recorded without a NIC" in result.stderr
    assert not (tmp_path / "x.pcap").exists()

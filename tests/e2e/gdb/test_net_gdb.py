"""reverse-continue with a watchpoint on the `net` guest's frame counter lands in the
receive handler: the store that counted the last frame."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.gdb.conftest import attached_gdb, rdebug_gdb_server
from tests.netframes import Peer, arp_request, icmp_echo, record_net_cli, udp_quit


@pytest.fixture(scope="module")
def net_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    trace = tmp_path_factory.mktemp("gdbnet") / "net"

    def talk(peer: Peer) -> None:
        peer.receive()
        peer.send(arp_request())
        peer.receive()
        peer.send(icmp_echo(1, 1, b"x"))
        peer.receive()
        peer.send(udp_quit())

    record_net_cli(trace, talk, "--serial", "null")
    return trace


def test_reverse_watch_frames_received_finds_the_receive_handler(net_trace: Path) -> None:
    with (
        rdebug_gdb_server("replay", str(net_trace)) as address,
        attached_gdb(address, net_trace / "guest") as gdb,
    ):
        gdb.run("break guest_exit")
        text, _ = gdb.run("continue")
        assert "guest_exit" in text
        assert gdb.value("*(int*)&frames_received") == 3
        gdb.run("watch *(int*)&frames_received")
        text, _ = gdb.run("reverse-continue")
        assert "Old value = 3" in text and "New value = 2" in text
        assert gdb.value("*(int*)&frames_received") == 2
        where, _ = gdb.run("info symbol $pc")
        assert where.startswith("handle_frame")
        text, _ = gdb.run("reverse-continue")
        assert "New value = 1" in text
        where, _ = gdb.run("info symbol $pc")
        assert where.startswith("handle_frame")

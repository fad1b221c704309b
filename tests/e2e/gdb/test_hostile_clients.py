"""What a hostile or clumsy client sends cannot hang, bloat or poison the replay gdb
server (issue 17, cases 1-3), against `rdebug replay TRACE --gdb` with a raw client and
a stock gdb.  Timeouts are safety nets (a hang fails); nothing asserts on wall time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rdebug.machine.loader import parse_image
from tests.conftest import ROOT, patched_guest, record_cli
from tests.e2e.gdb.conftest import attached_gdb, rdebug_gdb_process
from tests.rsp_client import RawClient


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def _kib(process: subprocess.Popen[str], field: str) -> int:
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {process.pid}")


def _symbols(trace: Path) -> dict[str, int]:
    return parse_image((trace / "guest").read_bytes(), "guest").symbols


def _reverse_stepi_works(address: str, trace: Path) -> None:
    """A fresh stock gdb attaches (is not refused) and reverse-steps."""
    with attached_gdb(address, trace / "guest") as gdb:
        gdb.run("monitor replay_seek 5000")
        before = gdb.value("$pc")
        _, records = gdb.run("reverse-stepi")
        assert any(r.get("message") == "stopped" for r in records), records
        assert gdb.value("$pc") != before or "icount 4999" in gdb.run("monitor info replay")[0]


@pytest.mark.timeout(300)
def test_a_huge_watch_range_is_answered_and_the_server_stays_usable(timer_trace: Path) -> None:
    """Case 1: ``Z2,100000,ffffffffffffffff`` and ``monitor watch`` of a huge range are
    answered (refused: they do not fit 32 bits), a 4 GiB watch is placed, ``?`` still
    answers, and once the client drops, the next gdb is not refused."""
    with rdebug_gdb_process("replay", str(timer_trace)) as (address, _):
        client = RawClient(_address(address))
        assert client.ask(b"Z2,100000,ffffffffffffffff").startswith(b"E")
        assert client.ask(b"?").startswith(b"T05")
        reply = client.monitor("watch 0x100000 0xffffffffffffff")
        assert b"32-bit" in reply or reply.startswith(b"E"), reply
        assert client.ask(b"?").startswith(b"T05")
        assert client.ask(b"Z2,0,ffffffff") == b"OK"  # all of a 32-bit space: fine
        assert client.ask(b"z2,0,ffffffff") == b"OK"
        assert client.ask(b"Z2,100000,ffffffff").startswith(b"E")  # past 4 GiB
        client.close()  # gone without a word
        _reverse_stepi_works(address, timer_trace)


@pytest.fixture(scope="module")
def big_timer_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The timer guest in 128 MiB: 99999999 bytes from 0 are all RAM."""
    return record_cli("timer", tmp_path_factory.mktemp("big") / "timer", "-m", "128")


@pytest.mark.timeout(300)
def test_monitor_x_of_a_huge_count_is_bounded(big_timer_trace: Path) -> None:
    """Case 2: ``monitor x/99999999xb 0`` replies with a bounded output that says it
    was cut, the server grows by less than 100 MB, and stays usable."""
    with rdebug_gdb_process("replay", str(big_timer_trace)) as (address, server):
        client = RawClient(_address(address))
        assert client.ask(b"?").startswith(b"T05")
        # the replay (guest RAM, first checkpoint) is set up on the first command: a
        # small x first; then the peak before and after (RSS alone may drop meanwhile:
        # pages reclaimed on a busy machine would then count as growth)
        assert client.monitor("x/16xb 0").startswith(b"0x0:")
        before = _kib(server, "VmHWM")
        output = client.monitor("x/99999999xb 0")
        grown = _kib(server, "VmHWM") - before
        assert grown < 100 * 1024, f"grew by {grown} KiB"
        lines = output.decode().splitlines()
        assert lines[0].startswith("0x0:")
        assert "truncated" in lines[-1], lines[-1]
        assert len(output) < 4 << 20
        assert client.ask(b"?").startswith(b"T05")
        client.close()
        _reverse_stepi_works(address, big_timer_trace)


@pytest.fixture(scope="module")
def long_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CPU-bound recording long enough that seeking across it takes a while."""
    folder = tmp_path_factory.mktemp("long")
    guest = folder / "forever.elf"
    guest.write_bytes(patched_guest("dirty", dirty_mib=2, dirty_passes=0, dirty_spin=8))
    trace = folder / "trace"
    result = subprocess.run(
        [
            *(sys.executable, "-m", "rdebug", "record", str(guest), "-m", "8"),
            *("-o", str(trace), "--max-insns", "300000000", "--serial", "null"),
        ],
        capture_output=True,
        timeout=600,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 4, result.stderr  # --max-insns
    return trace


@pytest.mark.timeout(300)
def test_a_long_monitor_command_stops_on_0x03(long_trace: Path) -> None:
    """Long operations started from gdb's monitor are interruptible like ``continue``."""
    with rdebug_gdb_process("replay", str(long_trace)) as (address, _):
        client = RawClient(_address(address))
        client.sock.settimeout(120)
        output = client.monitor("replay_seek 299999999", interrupt=True)
        assert b"interrupted" in output, output
        where = client.monitor("info replay").decode()
        assert "icount 299999999 " not in where, where
        assert client.ask(b"?").startswith(b"T")
        client.close()


@pytest.mark.timeout(300)
def test_a_dropped_connection_leaves_no_breakpoints(timer_trace: Path) -> None:
    """Case 3: a client that set a breakpoint and a watchpoint and vanished leaves
    nothing: the next connection stops only at its own breakpoint.  (The next client is
    raw: a stock gdb resumes silently from a stop at a breakpoint it does not know, so it
    only gets slower, but a stop it never asked for is still a stop.)"""
    symbols = _symbols(timer_trace)
    with rdebug_gdb_process("replay", str(timer_trace)) as (address, _):
        first = RawClient(_address(address))
        assert first.ask(f"Z0,{symbols['isr_dispatch']:x},1".encode()) == b"OK"
        assert first.ask(b"Z2,0,1000") == b"OK"  # a write watch on the first page
        first.close()  # gone without z or D
        second = RawClient(_address(address))
        assert second.ask(f"Z0,{symbols['guest_exit']:x},1".encode()) == b"OK"
        assert second.ask(b"c").startswith(b"T05")
        pc = int.from_bytes(bytes.fromhex(second.ask(b"p8").decode()), "little")
        assert pc == symbols["guest_exit"]
        second.close()


@pytest.mark.timeout(300)
def test_resume_signals_and_addresses_are_refused_with_a_reason(timer_trace: Path) -> None:
    """A replay cannot deliver a signal nor jump: ``c ADDR``, ``C sig``, ``vCont;C``,
    ``S sig;addr`` are refused with a text gdb prints, not silently ignored; a resume at
    the current pc and gdb's plain resumes work."""
    with rdebug_gdb_process("replay", str(timer_trace)) as (address, _):
        client = RawClient(_address(address))
        assert client.ask(b"?").startswith(b"T05")
        pc = int.from_bytes(bytes.fromhex(client.ask(b"p8").decode()), "little")
        for packet, words in [
            (b"c100000", b"cannot resume at 0x100000"),
            (b"C0a", b"cannot deliver signal 10"),
            (b"vCont;C0a", b"cannot deliver signal 10"),
            (b"vCont;C0a:1", b"cannot deliver signal 10"),
            (b"S0a;100000", b"cannot deliver signal 10"),
            (b"s100000", b"cannot resume at 0x100000"),
        ]:
            reply = client.ask(packet)
            assert reply.startswith(b"E.") and words in reply, (packet, reply)
        assert client.ask(f"s{pc:x}".encode()).startswith(b"T05")  # here: fine
        assert client.ask(b"vCont;s:1").startswith(b"T05")
        client.close()
        with attached_gdb(address, timer_trace / "guest") as gdb:
            text, records = gdb.run("signal SIGUSR1")
            said = text + " ".join(str(r.get("payload", "")) for r in records)
            assert "cannot deliver signal" in said, records


@pytest.mark.timeout(300)
def test_gdb_removing_its_breakpoint_leaves_the_monitors_own(timer_trace: Path) -> None:
    """``monitor break X`` and gdb's own breakpoint at X: gdb removes its own at every
    stop and all of them when it leaves; the monitor's stays (listed, and stopping)."""
    exit_addr = _symbols(timer_trace)["guest_exit"]
    with rdebug_gdb_process("replay", str(timer_trace)) as (address, _):
        first = RawClient(_address(address))
        assert first.monitor("break guest_exit").startswith(b"breakpoint 1 at ")
        assert first.ask(f"Z0,{exit_addr:x},1".encode()) == b"OK"
        assert first.ask(f"z0,{exit_addr:x},1".encode()) == b"OK"
        assert first.ask(f"Z0,{exit_addr:x},1".encode()) == b"OK"
        first.close()  # and its Z0 goes with it
        second = RawClient(_address(address))
        assert b"1    breakpoint" in second.monitor("info breakpoints")
        assert second.ask(b"c").startswith(b"T05")
        pc = int.from_bytes(bytes.fromhex(second.ask(b"p8").decode()), "little")
        assert pc == exit_addr
        second.close()

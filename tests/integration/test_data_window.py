"""The IDE data port moved by the native port hooks (machine/datawindow.py).

While a PIO block is under way, the words of every access but the block's last are
moved in C, without the Python hook.  The guest must not be able to tell: the disk guest
(16-bit and 32-bit string I/O, polled and with IRQ14) ends in the same state as with the
reference counter (Python hooks only) and with a port probe watching (which sends every
access to Python), and a snapshot taken in the middle of a sector, with the position
held in C, restores to the same end.
"""

from __future__ import annotations

from pathlib import Path

from rdebug.api import Session
from rdebug.machine.machine import Machine, StopReason
from rdebug.machine.probes import PortAccess
from rdebug.machine.state import MachineState
from rdebug.replay.trace import Trace
from tests.conftest import DISK_IMAGE, Replay, make_machine, record_cli, straight_hash

DATA_PORT = 0x1F0


def _finish(machine: Machine) -> tuple[str, bytes]:
    stop = machine.run()
    assert stop.reason is StopReason.EXIT, stop
    return machine.state_hash(), bytes(machine.cpu.read_physical(0, machine.cpu.ram_size))


def test_the_disk_guest_ends_as_with_python_hooks_only() -> None:
    native, _ = make_machine("disk")
    reference, _ = make_machine("disk", counter="reference")
    try:
        assert _finish(native) == _finish(reference)
        assert native._port_io.native_accesses > 1000  # sectors went through C
        assert reference._port_io.native_accesses == 0
    finally:
        native.close()
        reference.close()


def test_a_port_probe_sees_every_data_access() -> None:
    plain, _ = make_machine("disk")
    probed, _ = make_machine("disk")
    seen: list[PortAccess] = []
    try:
        probed.probe_ports(seen.append)
        assert _finish(probed) == _finish(plain)
        assert probed._port_io.native_accesses == 0
        data = [a for a in seen if a.port == DATA_PORT]
        assert len(data) > 1000
        # every access the native hooks moved (data or register) in the plain run
        # reached the probe
        ide = [a for a in seen if a.port in range(0x1F0, 0x1F8) or a.port == 0x3F6]
        assert len(ide) > plain._port_io.native_accesses
    finally:
        plain.close()
        probed.close()


def _mid_sector(machine: Machine) -> bool:
    ide = machine.board.ide
    assert ide is not None
    window = ide.data_windows()[0]
    return window.is_open and window.take_pos() > 0


def test_a_snapshot_in_the_middle_of_a_sector_restores_to_the_same_end() -> None:
    straight, _ = make_machine("disk")
    try:
        end = _finish(straight)
    finally:
        straight.close()
    machine, _ = make_machine("disk")
    try:
        points = 0
        while points < 6:
            stop = machine.run(machine.icount + 97)
            assert stop.reason is StopReason.TARGET, "the guest ended before six mid-sector stops"
            if not _mid_sector(machine):
                continue
            points += 1
            saved: MachineState = machine.save_state()
            ram = bytes(machine.cpu.read_physical(0, machine.cpu.ram_size))
            icount = machine.icount
            assert _finish(machine) == end
            machine.cpu.write_physical(0, ram)
            machine.load_state(saved)
            assert machine.icount == icount and _mid_sector(machine)
    finally:
        machine.close()


def test_seeks_to_the_middle_of_a_sector_reach_the_state_of_a_straight_replay(
    tmp_path: Path,
) -> None:
    """Backwards and forwards through a recording of the disk guest, to icounts where a
    sector is half moved by the native hooks: the state of a straight replay there."""
    image = tmp_path / "disk.img"
    image.write_bytes(DISK_IMAGE)
    trace = Trace.open(record_cli("disk", tmp_path / "trace", "--drive", f"file={image}"))
    replay = Replay(trace)
    targets: list[int] = []
    try:
        machine = replay.machine
        while len(targets) < 4:
            stop = machine.run(machine.icount + 89)
            assert stop.reason is StopReason.TARGET, "the guest ended before four mid-sector stops"
            if _mid_sector(machine):
                targets.append(machine.icount)
    finally:
        replay.close()
    with Session(trace.path) as session:
        session.seek(session.end_icount)
        for icount in reversed(targets):  # backwards: restores of earlier checkpoints
            session.seek(icount)
            assert session.state_hash() == straight_hash(trace, icount), icount
        end = session.end_icount
        session.seek(end)
        assert session.state_hash() == straight_hash(trace, end)

"""Byte registers served by the native port hooks (machine/portregs.py).

The IDE Command Block and Device Control, and the CRTC's index and cursor registers,
are read and written in C without the Python hook where that changes nothing but the
register.  The guest must not be able to tell: the portregs guest prints what QEMU
prints, and ends in the same state as with the reference counter (Python hooks only) and
with a port probe watching (which sends every access to Python); seeks through a
recording, to icounts in the middle of its register loops, reach the state of a
straight replay.
"""

from __future__ import annotations

from pathlib import Path

from rdebug.api import Session
from rdebug.machine.machine import Machine, StopReason
from rdebug.machine.probes import PortAccess
from rdebug.replay.trace import Trace
from tests.conftest import (
    DISK_IMAGE,
    EXPECTED,
    Capture,
    Replay,
    make_machine,
    record_cli,
    straight_hash,
)

GUEST = "portregs"
#: register accesses of the guest's two 1000-round loops that are bytes (8 a round each)
LOOP_BYTE_ACCESSES = 16_000
TASK_FILE = range(0x1F2, 0x1F6)
CRTC = (0x3D4, 0x3D5)


def _read_back_errors(accesses: list[PortAccess]) -> int:
    """Byte reads of a task-file register or of the CRTC's R0-R15 that did not return
    what the stream of accesses last wrote there (words split into their bytes)."""
    task_file: dict[int, int] = {}
    index = 0
    crtc: dict[int, int] = {}
    errors = 0
    for access in accesses:
        for i in range(access.size):
            port, value = access.port + i, (access.value >> (8 * i)) & 0xFF
            if port in TASK_FILE:
                if access.out:
                    task_file[port] = value
                elif port in task_file:
                    errors += task_file[port] != value
            elif port == CRTC[0] and access.out:
                index = value & 0x1F
            elif port == CRTC[1] and index < 16:  # R0-R15 (R16-R17: light pen)
                if access.out:
                    crtc[index] = value
                elif index in crtc:
                    errors += crtc[index] != value
    return errors


def _finish(machine: Machine, out: Capture) -> tuple[str, bytes, bytes]:
    stop = machine.run()
    assert stop.reason is StopReason.EXIT, stop
    ram = bytes(machine.cpu.read_physical(0, machine.cpu.ram_size))
    return machine.state_hash(), ram, bytes(out.data)


def test_prints_what_qemu_prints_with_the_registers_served_natively() -> None:
    machine, out = make_machine(GUEST)
    try:
        _finish(machine, out)
        assert bytes(out.data) == (EXPECTED / f"{GUEST}.txt").read_bytes()
        assert machine._port_io.native_accesses >= LOOP_BYTE_ACCESSES
    finally:
        machine.close()


def test_ends_as_with_python_hooks_only() -> None:
    native, native_out = make_machine(GUEST)
    reference, reference_out = make_machine(GUEST, counter="reference")
    try:
        assert _finish(native, native_out) == _finish(reference, reference_out)
        assert reference._port_io.native_accesses == 0
    finally:
        native.close()
        reference.close()


def test_a_port_probe_sees_every_register_access() -> None:
    plain, plain_out = make_machine(GUEST)
    probed, probed_out = make_machine(GUEST)
    seen: list[PortAccess] = []
    try:
        probed.probe_ports(seen.append)
        assert _finish(probed, probed_out) == _finish(plain, plain_out)
        assert probed._port_io.native_accesses == 0
        registers = [a for a in seen if a.size == 1 and (a.port in TASK_FILE or a.port in CRTC)]
        assert len(registers) >= LOOP_BYTE_ACCESSES
        assert _read_back_errors(seen) == 0
    finally:
        plain.close()
        probed.close()


def test_seeks_into_the_register_loops_reach_the_state_of_a_straight_replay(
    tmp_path: Path,
) -> None:
    image = tmp_path / "disk.img"
    image.write_bytes(DISK_IMAGE)
    trace = Trace.open(record_cli(GUEST, tmp_path / "trace", "--drive", f"file={image}"))
    replay = Replay(trace)
    try:
        end = replay.machine.run().icount
    finally:
        replay.close()
    targets = [end * k // 9 + k for k in range(1, 9)]
    with Session(trace.path) as session:
        session.seek(session.end_icount)
        for icount in reversed(targets):  # backwards: restores of earlier checkpoints
            session.seek(icount)
            assert session.state_hash() == straight_hash(trace, icount), icount
        for icount in targets[::3]:  # and forwards again
            session.seek(icount)
            assert session.state_hash() == straight_hash(trace, icount), icount

"""The machine's state between runs: what a snapshot keeps of it, and its hash.

`MachineState` is everything of a machine but its RAM (the snapshot layer keeps RAM
pages itself); `state_hash` digests registers, RAM, devices, timers, disks and virtual
time, so two runs can be compared for determinism.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from rdebug.machine.devices.base import State


@dataclass(frozen=True, slots=True)
class MachineState:
    """Everything of a machine but its RAM, at an instruction boundary between runs."""

    cpu: bytes
    devices: dict[str, State]
    icount: int
    bias_ns: int
    halted: bool
    idle_fast_forwards: int
    waited: bool
    irq_check: bool
    branch_boundary: bool
    shadow: bool
    exit_code: int | None
    io_fault_eip: int | None
    #: sectors the guest wrote, per drive index (0 master, 1 slave)
    disks: dict[int, dict[int, bytes]]


def state_hash(
    *,
    registers: Iterable[tuple[str, int]],
    icount: int,
    bias_ns: int,
    halted: bool,
    devices: Mapping[str, State],
    timers: Mapping[str, int],
    disks: Mapping[int, Mapping[int, bytes]],
    ram: bytes | bytearray | memoryview,
) -> str:
    """SHA-256 over registers, RAM, device state, timer deadlines and virtual time."""
    import hashlib  # noqa: PLC0415 - its OpenSSL is 2.5 ms of every start-up

    h = hashlib.sha256()
    for name, value in sorted(registers):
        h.update(f"{name}={value:#x};".encode())
    h.update(f"icount={icount};bias={bias_ns};halted={halted};".encode())
    h.update(_canonical(devices))
    h.update(_canonical(timers))
    for index, written in disks.items():
        h.update(_canonical({str(index): {str(k): v for k, v in written.items()}}))
    h.update(ram)
    return h.hexdigest()


def _canonical(value: Mapping[str, object]) -> bytes:
    return repr(_sorted(value)).encode()


def _sorted(value: object) -> object:
    if isinstance(value, Mapping):
        return [(k, _sorted(value[k])) for k in sorted(value)]
    if isinstance(value, list | tuple):
        return [_sorted(v) for v in value]
    return value

"""The whole machine state as bytes: what a named snapshot stores as its VM state.

    +--------+-------------+----------------+------------------+-----------+-----------+
    | "RDVM" | version u32 | header length  | header (JSON)    | CPU state | RAM       |
    |        |  (big-end.) | u32            | devices, time,   | (unicorn  | (zlib:    |
    |        |             |                | log cursor ...)  | context)  | pages)    |
    +--------+-------------+----------------+------------------+-----------+-----------+

The CPU state and the RAM section are each a u32 length and that many bytes.  RAM holds
only the pages that are not all zero: a u32 page index then the page, zlib-compressed.
JSON cannot hold bytes: a bytes value is written as {"$bytes": "<base64>"}.
`extra` is the caller's (the replay log cursor), plain data as for devices.

Bump VMSTATE_VERSION whenever this layout or what goes into it changes.
"""

from __future__ import annotations

import base64
import json
import struct
import zlib
from dataclasses import dataclass
from typing import Any

from rdebug.errors import SnapshotError
from rdebug.machine.machine import Machine
from rdebug.machine.pages import nonzero_pages
from rdebug.machine.state import MachineState

MAGIC = b"RDVM"
#: Bump when the layout or the contents change (2: the ISA DMA controller's state, and
#: the sound card's on a machine with one).
VMSTATE_VERSION = 2
PAGE = 4096
_ZERO_PAGE = bytes(PAGE)


@dataclass(frozen=True, slots=True)
class VmState:
    """A decoded snapshot: the machine state, its nonzero RAM pages and the caller's extra."""

    machine: MachineState
    pages: dict[int, bytes]  # RAM page index -> its 4096 bytes; the other pages are zero
    memory_mb: int
    extra: Any


def _to_json(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return {"$bytes": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, dict):
        return {str(k): _to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_json(v) for v in value]
    return value


def _from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$bytes"}:
            return base64.b64decode(value["$bytes"])
        return {k: _from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


def encode(machine: Machine, extra: Any) -> bytes:
    """The machine's whole state (between runs) and `extra`, as bytes."""
    state = machine.save_state()
    header = {
        "memory_mb": machine.config.memory_mb,
        "icount_shift": machine.config.icount_shift,
        "icount": state.icount,
        "bias_ns": state.bias_ns,
        "halted": state.halted,
        "idle_fast_forwards": state.idle_fast_forwards,
        "waited": state.waited,
        "irq_check": state.irq_check,
        "branch_boundary": state.branch_boundary,
        "shadow": state.shadow,
        "exit_code": state.exit_code,
        "io_fault_eip": state.io_fault_eip,
        "devices": _to_json(state.devices),
        "disks": {
            str(i): {str(lba): _to_json(data) for lba, data in written.items()}
            for i, written in state.disks.items()
        },
        "extra": _to_json(extra),
    }
    head = json.dumps(header, sort_keys=True).encode()
    ram = machine.cpu.ram
    packer = zlib.compressobj(1)
    chunks = [
        packer.compress(struct.pack(">I", index) + ram[index * PAGE : (index + 1) * PAGE])
        for index in _used_pages(machine)
    ]
    chunks.append(packer.flush())
    ram_blob = b"".join(chunks)
    return b"".join(
        [
            MAGIC,
            struct.pack(">II", VMSTATE_VERSION, len(head)),
            head,
            struct.pack(">I", len(state.cpu)),
            state.cpu,
            struct.pack(">I", len(ram_blob)),
            ram_blob,
        ]
    )


def decode(data: bytes, name: str) -> VmState:
    """Parse what `encode` wrote; every malformation is a `SnapshotError` naming `name`."""
    try:
        if data[:4] != MAGIC:
            raise SnapshotError(f"{name}: not an rdebug machine state")
        version, head_len = struct.unpack_from(">II", data, 4)
        if version != VMSTATE_VERSION:
            raise SnapshotError(
                f"{name}: machine state version {version}, this rdebug reads {VMSTATE_VERSION}"
            )
        pos = 12
        header = json.loads(data[pos : pos + head_len])
        pos += head_len
        (cpu_len,) = struct.unpack_from(">I", data, pos)
        cpu = data[pos + 4 : pos + 4 + cpu_len]
        pos += 4 + cpu_len
        (ram_len,) = struct.unpack_from(">I", data, pos)
        ram_blob = data[pos + 4 : pos + 4 + ram_len]
        if len(cpu) != cpu_len or len(ram_blob) != ram_len:
            raise SnapshotError(f"{name}: the machine state is truncated")
        memory_mb = int(header["memory_mb"])
        npages = (memory_mb << 20) // PAGE
        raw = zlib.decompress(ram_blob)
        if len(raw) % (PAGE + 4):
            raise SnapshotError(f"{name}: the RAM section is malformed")
        pages: dict[int, bytes] = {}
        for off in range(0, len(raw), PAGE + 4):
            (index,) = struct.unpack_from(">I", raw, off)
            if index >= npages:
                raise SnapshotError(f"{name}: a RAM page lies beyond the machine's memory")
            pages[index] = raw[off + 4 : off + 4 + PAGE]
        machine = MachineState(
            cpu=bytes(cpu),
            devices=_from_json(header["devices"]),
            icount=int(header["icount"]),
            bias_ns=int(header["bias_ns"]),
            halted=bool(header["halted"]),
            idle_fast_forwards=int(header["idle_fast_forwards"]),
            waited=bool(header["waited"]),
            irq_check=bool(header["irq_check"]),
            branch_boundary=bool(header["branch_boundary"]),
            shadow=bool(header["shadow"]),
            exit_code=header["exit_code"],
            io_fault_eip=header["io_fault_eip"],
            disks={
                int(i): {int(lba): bytes(_from_json(data)) for lba, data in written.items()}
                for i, written in header.get("disks", {}).items()
            },
        )
        return VmState(machine, pages, memory_mb, _from_json(header["extra"]))
    except SnapshotError:
        raise
    except (KeyError, TypeError, ValueError, struct.error, zlib.error) as exc:
        raise SnapshotError(f"{name}: the machine state is damaged ({exc})") from None


def apply(machine: Machine, state: VmState) -> None:
    """Put `machine` into `state` (RAM, CPU, devices, time).  Only the RAM pages that
    differ are written (as a checkpoint restore does): a few pages, not the whole RAM."""
    if state.memory_mb != machine.config.memory_mb:
        raise SnapshotError(
            f"the snapshot is of a {state.memory_mb} MiB machine, this one has "
            f"{machine.config.memory_mb} MiB"
        )
    have = {device.name for device in machine.devices}
    saved = set(state.machine.devices)
    if have != saved:
        missing = ", ".join(sorted(saved - have)) or "none"
        extra = ", ".join(sorted(have - saved)) or "none"
        raise SnapshotError(
            f"the snapshot is of a machine with other hardware (devices it had and this "
            f"machine lacks: {missing}; devices this machine has and it lacked: {extra})"
        )
    ram = machine.cpu.ram
    changed: dict[int, bytes] = {}
    for index in _used_pages(machine):
        if index not in state.pages:
            changed[index] = _ZERO_PAGE
    for index, data in state.pages.items():
        if bytes(ram[index * PAGE : (index + 1) * PAGE]) != data:
            changed[index] = data
    try:
        machine.load_state(state.machine, rewritten=changed.keys())
    except (KeyError, TypeError, ValueError) as exc:
        raise SnapshotError(f"the snapshot's device state is damaged ({exc})") from None
    for index, data in changed.items():
        ram[index * PAGE : (index + 1) * PAGE] = data


def _used_pages(machine: Machine) -> list[int]:
    """The RAM pages that hold a non-zero byte, in order.  A page outside the ranges ever
    written is zero: only those ranges are read."""
    used: list[int] = []
    for start, end in machine.cpu.written_ranges():
        first = start // PAGE
        used += nonzero_pages(machine.cpu.ram_address, first, -(-end // PAGE) - first)
    return used

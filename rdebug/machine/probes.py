"""Probes: observe what the guest does without stopping it (the query engine's eyes).

A probe reports each event as it happens, with the exact icount of the instruction that
made it, and never changes the run: memory access probes are unicorn memory hooks on the
watched bytes only (inside one, EIP is synced and the counter knows the instruction);
port and interrupt probes are callbacks the I/O hooks and the interrupt delivery call
when set.  Set probes only around the runs that need them: any memory hook sends every
load and store through unicorn's slow path while it exists.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from unicorn import UC_HOOK_MEM_READ, UC_HOOK_MEM_WRITE, UC_MEM_WRITE, Uc

from rdebug.machine.counter import Counter
from rdebug.machine.cpu import Cpu
from rdebug.machine.watchpoints import check_mapped, physical_ranges


@dataclass(frozen=True, slots=True)
class MemoryAccess:
    """One guest access to probed memory, seen just before it happens."""

    icount: int  # of the accessing instruction
    pc: int  # its linear address
    addr: int  # linear address accessed
    size: int
    write: bool
    value: int  # the value written, or read (little-endian, `size` bytes)
    before: bytes  # the memory at [addr, addr+size) before the access


@dataclass(frozen=True, slots=True)
class PortAccess:
    """One guest access to a probed I/O port, with the value read or written."""

    icount: int
    pc: int
    port: int
    size: int
    out: bool
    value: int


@dataclass(frozen=True, slots=True)
class Delivery:
    """An interrupt or exception delivered to the guest at `icount`."""

    icount: int
    vector: int
    source: str  # "external", "exception" or "software"
    error_code: int | None
    pc: int  # linear address of the instruction interrupted (or faulting)


MemorySink = Callable[[MemoryAccess], None]


class MemoryProbes:
    """Memory access probes on one CPU."""

    def __init__(self, cpu: Cpu, counter: Counter) -> None:
        self._cpu = cpu
        self._counter = counter
        self._handles: list[int] = []

    @property
    def active(self) -> bool:
        return bool(self._handles)

    def add(self, addr: int, length: int, write: bool, read: bool, sink: MemorySink) -> None:
        """Report accesses to [addr, addr+length) (linear, mapped as the page tables in
        force now map it; see Watchpoints.add, which refuses the same ranges)."""
        types = (UC_HOOK_MEM_WRITE if write else 0) | (UC_HOOK_MEM_READ if read else 0)
        uc = self._cpu.uc
        pieces = physical_ranges(self._cpu, addr & 0xFFFFFFFF, length)
        check_mapped(self._cpu, addr & 0xFFFFFFFF, length)
        for linear, physical, n in pieces:
            self._handles.append(
                uc.hook_add(
                    types, self._on_access, (sink, linear - physical), physical, physical + n - 1
                )
            )
        self._counter.invalidate()

    def clear(self) -> None:
        for handle in self._handles:
            self._cpu.uc.hook_del(handle)
        if self._handles:
            self._counter.invalidate()
        self._handles = []

    def _on_access(
        self,
        uc: Uc,
        access: int,
        addr: int,
        size: int,
        value: int,
        user: tuple[MemorySink, int],
    ) -> None:
        sink, delta = user
        write = access == UC_MEM_WRITE
        before = bytes(uc.mem_read(addr, size))
        if not write:
            value = int.from_bytes(before, "little")
        value &= (1 << (8 * size)) - 1
        sink(
            MemoryAccess(
                self._counter.current_icount(),
                self._cpu.linear_pc(),
                (addr + delta) & 0xFFFFFFFF,
                size,
                write,
                value,
                before,
            )
        )

"""Watchpoints: stop soon after the guest accesses a watched range of memory.

A watchpoint is a unicorn memory hook on its range.  Watching costs speed: any memory
hook sends every guest load and store through unicorn's slow path, so hooks exist only
while watchpoints are set.  The first watched access asks the counter to stop at the
next block boundary and records a `WatchHit` saying which instructions may have made
the access (the timeline finds which one).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from unicorn import UC_HOOK_MEM_READ, UC_HOOK_MEM_WRITE, Uc

from rdebug.errors import MachineError
from rdebug.machine.counter import Counter
from rdebug.machine.cpu import CR0_PG, Cpu


class WatchKind(enum.Enum):
    WRITE = "write"
    READ = "read"
    ACCESS = "access"


@dataclass(frozen=True, slots=True)
class WatchHit:
    """A watched access made by one of the instructions in [since, the stop's icount)."""

    kind: WatchKind  # the watchpoint's kind
    addr: int  # the accessed (linear) address
    since: int


#: Most physically separate pieces (one memory hook each) one watchpoint may need.
MAX_PIECES = 4096
#: A range of at most this many bytes is refused under paging when no page of it is
#: mapped now (a debugger's watchpoint is a few bytes; a larger range, up to the whole
#: address space, is watched where it is mapped).
SMALL_RANGE = 16 * 4096

_HOOK_TYPES = {
    WatchKind.WRITE: UC_HOOK_MEM_WRITE,
    WatchKind.READ: UC_HOOK_MEM_READ,
    WatchKind.ACCESS: UC_HOOK_MEM_READ | UC_HOOK_MEM_WRITE,
}


class Watchpoints:
    """The watchpoints set on one machine, and the first hit since the last `take_hit`."""

    def __init__(self, cpu: Cpu, counter: Counter) -> None:
        self._cpu = cpu
        self._counter = counter
        self._hooks: dict[tuple[int, int, WatchKind], list[int]] = {}
        #: The first watched access since the last `take_hit`, if any.
        self.hit: WatchHit | None = None

    def add(self, addr: int, length: int, kind: WatchKind) -> None:
        """Watch [addr, addr+length) (linear addresses).

        Unicorn matches memory hooks on *physical* addresses once paging is on, so the
        range is watched where the page tables in force now map it (a kernel's globals:
        the same in every address space); pages not mapped now are watched at their
        linear address, as with paging off.  The cost is one step per page the page
        tables really map (`Cpu.physical_pieces`); `MachineError` for a range that
        leaves the 32-bit space, is empty, or maps to more than `MAX_PIECES` physical
        pieces (a hook each), and, under paging, for a range of at most `SMALL_RANGE`
        bytes that no page maps now (a user address while another process, or a kernel
        thread, runs: its hook would watch whatever RAM sits at that physical address).

        The pieces stay where they were placed until the watchpoint is removed: in a
        guest with several address spaces, the watch follows the physical memory of the
        process that was current when it was set, whichever process then runs.
        """
        key = (addr, length, kind)
        if key in self._hooks:
            return
        pieces = self._ranges(addr, length)
        check_mapped(self._cpu, addr, length)
        uc = self._cpu.uc
        self._hooks[key] = [
            uc.hook_add(
                _HOOK_TYPES[kind],
                self._on_watched,
                (kind, linear - physical),
                physical,
                physical + n - 1,
            )
            for linear, physical, n in pieces
        ]
        self._counter.invalidate()

    def remove(self, addr: int, length: int, kind: WatchKind) -> None:
        handles = self._hooks.pop((addr, length, kind), [])
        for handle in handles:
            self._cpu.uc.hook_del(handle)
        if handles:
            self._counter.invalidate()

    def take_hit(self) -> WatchHit | None:
        """The watched access seen since the last call, if any (and forget it)."""
        hit, self.hit = self.hit, None
        return hit

    def _ranges(self, addr: int, length: int) -> list[tuple[int, int, int]]:
        return physical_ranges(self._cpu, addr, length)

    def _on_watched(
        self,
        uc: Uc,
        access: int,
        addr: int,
        size: int,
        value: int,
        watch: tuple[WatchKind, int],
    ) -> None:
        if self.hit is None:
            kind, delta = watch
            since = self._counter.request_stop_soon()
            self.hit = WatchHit(kind, (addr + delta) & 0xFFFFFFFF, since)


def physical_ranges(cpu: Cpu, addr: int, length: int) -> list[tuple[int, int, int]]:
    """(linear, physical, length) pieces of a linear range, physically contiguous, as
    the page tables in force now map it (unmapped pages: at their linear address);
    `MachineError` past the 32-bit space or beyond `MAX_PIECES` pieces."""
    return cpu.physical_pieces(addr, length, MAX_PIECES)


def check_mapped(cpu: Cpu, addr: int, length: int) -> None:
    """`MachineError` if paging is on and no page of a range of at most `SMALL_RANGE`
    bytes is mapped by the page tables in force (a hook placed now would watch whatever
    RAM sits at the linear address)."""
    if length > SMALL_RANGE or not cpu.read("cr0") & CR0_PG:
        return
    pages = range(addr & ~0xFFF, addr + length, 0x1000)
    if any(cpu.linear_to_physical(page) is not None for page in pages):
        return
    raise MachineError(
        f"cannot watch {addr:#x}+{length:#x}: no page of it is mapped in the address "
        f"space in force (CR3 {cpu.read('cr3'):#x}); memory is watched where the page "
        "tables map it when the watch is placed (a gdb watchpoint: whenever gdb resumes; "
        "a query: at its start), so place it where a process that maps it runs"
    )

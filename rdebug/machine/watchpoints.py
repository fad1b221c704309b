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

from rdebug.machine.counter import Counter
from rdebug.machine.cpu import Cpu


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
        linear address, as with paging off.
        """
        key = (addr & 0xFFFFFFFF, length, kind)
        if key in self._hooks or length <= 0:
            return
        uc = self._cpu.uc
        self._hooks[key] = [
            uc.hook_add(
                _HOOK_TYPES[kind],
                self._on_watched,
                (kind, linear - physical),
                physical,
                physical + n - 1,
            )
            for linear, physical, n in self._ranges(key[0], length)
        ]
        self._counter.invalidate()

    def remove(self, addr: int, length: int, kind: WatchKind) -> None:
        handles = self._hooks.pop((addr & 0xFFFFFFFF, length, kind), [])
        for handle in handles:
            self._cpu.uc.hook_del(handle)
        if handles:
            self._counter.invalidate()

    def take_hit(self) -> WatchHit | None:
        """The watched access seen since the last call, if any (and forget it)."""
        hit, self.hit = self.hit, None
        return hit

    def _ranges(self, addr: int, length: int) -> list[tuple[int, int, int]]:
        """(linear, physical, length) pieces of a linear range, physically contiguous."""
        pieces: list[tuple[int, int, int]] = []
        linear, end = addr, addr + length
        while linear < end:
            n = min(end, (linear | 0xFFF) + 1) - linear
            physical = self._cpu.linear_to_physical(linear)
            if physical is None:
                physical = linear
            if pieces and pieces[-1][1] + pieces[-1][2] == physical:
                first, start, size = pieces[-1]
                pieces[-1] = (first, start, size + n)
            else:
                pieces.append((linear, physical, n))
            linear += n
        return pieces

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

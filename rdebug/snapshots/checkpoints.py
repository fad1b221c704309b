"""In-memory checkpoints of a running machine: CPU and device state, RAM as shared pages.

A checkpoint keeps RAM as a table of page references: pages unchanged since the
checkpoint the machine last came from are shared with it, so a checkpoint costs the
pages the guest dirtied (found by comparing RAM with a shadow copy, in C) plus a table.
Restoring rewrites only the pages that differ.  The store keeps checkpoints within a
memory budget, dropping the ones whose loss costs least: far from the current position
they thin out, near it they stay dense (as rr does).

Knows the machine, nothing of logs or files: what else a checkpoint must carry (the
replay log's cursor) is an opaque `extra`.
"""

from __future__ import annotations

import bisect
import ctypes
import importlib.util
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np

from rdebug.errors import MachineError
from rdebug.machine.machine import Machine, MachineState

PAGE = 4096
#: Default memory budget for checkpoints (bytes of page data and tables).
DEFAULT_BUDGET = 512 << 20

Extra = TypeVar("Extra")


def _page_sync() -> ctypes._FuncPointer:
    spec = importlib.util.find_spec("rdebug.machine._icount")
    if spec is None or spec.origin is None:
        raise MachineError("the native extension is not built: reinstall rdebug")
    fn = ctypes.CDLL(spec.origin).rd_pages_sync
    fn.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p)
    fn.restype = ctypes.c_uint32
    return fn


@dataclass(eq=False)
class Checkpoint(Generic[Extra]):
    """The machine at `icount`: its state, its RAM pages, and the caller's `extra`."""

    icount: int
    machine: MachineState
    extra: Extra
    pages: list[bytes]
    #: bytes of page data this checkpoint added (pages not shared with its parent)
    cost: int = 0
    pinned: bool = False
    children: int = field(default=0, repr=False)


class CheckpointStore(Generic[Extra]):
    """Checkpoints of one machine, ordered by icount, within `budget` bytes."""

    def __init__(self, machine: Machine, budget: int = DEFAULT_BUDGET) -> None:
        self._machine = machine
        self.budget = budget
        ram = machine.cpu.ram
        self._npages = len(ram) // PAGE
        self._ram = np.frombuffer(ram, dtype=np.uint8)
        self._shadow = self._ram.copy()  # RAM as of `self._origin`
        self._dirty = np.zeros(self._npages, dtype=np.uint32)
        self._sync = _page_sync()
        self._zero = bytes(PAGE)
        self._origin_pages: list[bytes] = [self._zero] * self._npages
        self._shadow_valid = False  # the shadow does not describe `_origin_pages` yet
        self._checkpoints: list[Checkpoint[Extra]] = []
        self._keys: list[int] = []
        self.used = 0

    def close(self) -> None:
        """Drop every checkpoint and let go of the machine's RAM."""
        self._checkpoints.clear()
        self._keys.clear()
        self._origin_pages = []
        self._ram = np.zeros(0, dtype=np.uint8)
        self._shadow = np.zeros(0, dtype=np.uint8)
        self.used = 0

    def __len__(self) -> int:
        return len(self._checkpoints)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(list(self._checkpoints))

    def _changed_pages(self) -> np.ndarray:
        """Indexes of the pages changed since the shadow was synced (and sync it)."""
        count = self._sync(
            self._ram.ctypes.data, self._shadow.ctypes.data, self._npages, self._dirty.ctypes.data
        )
        return self._dirty[:count]

    def take(self, extra: Extra, pinned: bool = False) -> Checkpoint[Extra]:
        """A checkpoint of the machine as it is now (between runs)."""
        state = self._machine.save_state()
        if not self._shadow_valid:
            self._shadow[:] = self._ram
            self._shadow_valid = True
            pages = [self._zero] * self._npages
            used = np.flatnonzero(self._shadow.reshape(-1, PAGE).any(axis=1)).tolist()
            for index in used:
                pages[index] = self._shadow[index * PAGE : (index + 1) * PAGE].tobytes()
            cost = len(used) * PAGE
        else:
            pages = list(self._origin_pages)
            changed = self._changed_pages()
            for index in changed.tolist():
                pages[index] = self._shadow[index * PAGE : (index + 1) * PAGE].tobytes()
            cost = len(changed) * PAGE
        cost += 8 * self._npages  # the page table
        checkpoint = Checkpoint(state.icount, state, extra, pages, cost, pinned)
        self._origin_pages = pages
        self._insert(checkpoint)
        return checkpoint

    def restore(self, checkpoint: Checkpoint[Extra]) -> None:
        """Put the machine back at `checkpoint` (RAM, CPU, devices, time)."""
        if self._shadow_valid:
            changed = set(self._changed_pages().tolist())
        else:
            changed = set(range(self._npages))
        origin = self._origin_pages
        target = checkpoint.pages
        changed.update(i for i in range(self._npages) if origin[i] is not target[i])
        for index in changed:
            page = np.frombuffer(target[index], dtype=np.uint8)
            self._ram[index * PAGE : (index + 1) * PAGE] = page
            self._shadow[index * PAGE : (index + 1) * PAGE] = page
        self._shadow_valid = True
        self._origin_pages = target
        self._machine.load_state(checkpoint.machine)

    def at_or_before(self, icount: int) -> Checkpoint[Extra] | None:
        index = bisect.bisect_right(self._keys, icount) - 1
        return self._checkpoints[index] if index >= 0 else None

    def before(self, icount: int) -> Checkpoint[Extra] | None:
        index = bisect.bisect_left(self._keys, icount) - 1
        return self._checkpoints[index] if index >= 0 else None

    def _insert(self, checkpoint: Checkpoint[Extra]) -> None:
        index = bisect.bisect_left(self._keys, checkpoint.icount)
        if index < len(self._keys) and self._keys[index] == checkpoint.icount:
            old = self._checkpoints[index]
            self.used -= old.cost
            checkpoint.pinned = checkpoint.pinned or old.pinned
            self._checkpoints[index] = checkpoint
        else:
            self._keys.insert(index, checkpoint.icount)
            self._checkpoints.insert(index, checkpoint)
        self.used += checkpoint.cost
        self._thin(checkpoint.icount)

    def _thin(self, position: int) -> None:
        """Drop checkpoints until within budget: the one whose gap to its neighbours is
        smallest relative to its distance from `position` goes first."""
        while self.used > self.budget and len(self._checkpoints) > 2:
            best: int | None = None
            best_score = float("inf")
            for i in range(1, len(self._checkpoints) - 1):
                cp = self._checkpoints[i]
                if cp.pinned or cp.icount == position:
                    continue
                gap = self._keys[i + 1] - self._keys[i - 1]
                distance = abs(cp.icount - position) + 1
                score = gap / distance
                if score < best_score:
                    best, best_score = i, score
            if best is None:
                return
            dropped = self._checkpoints.pop(best)
            self._keys.pop(best)
            self.used -= dropped.cost

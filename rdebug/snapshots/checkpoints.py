"""In-memory checkpoints of a running machine: CPU and device state, RAM as shared pages.

A checkpoint keeps RAM as a table of page references: pages unchanged since the
checkpoint the machine last came from are shared with it, so a checkpoint costs the
pages the guest dirtied plus a table.  The dirty pages are known from write faults: the
RAM is write-protected after each checkpoint and a C signal handler notes each page
on its first write (where that is not possible, RAM is compared with a shadow copy).
Restoring rewrites only the pages that differ.  The store keeps checkpoints within a
memory budget, dropping the ones whose loss costs least: far from the current position
they thin out, near it they stay dense (as rr does).

Knows the machine, nothing of logs or files: what else a checkpoint must carry (the
replay log's cursor) is an opaque `extra`.
"""

from __future__ import annotations

import bisect
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np

from rdebug.machine.machine import Machine
from rdebug.machine.pages import PAGE, WriteTracker, sync_shadow
from rdebug.machine.state import MachineState
from rdebug.snapshots import DEFAULT_BUDGET

Extra = TypeVar("Extra")


@dataclass(eq=False)
class Checkpoint(Generic[Extra]):
    """The machine at `icount`: its state, its RAM pages, and the caller's `extra`."""

    icount: int
    machine: MachineState
    extra: Extra
    pages: list[bytes]
    #: id() of each page object: comparing two tables is one vectorised compare
    ids: np.ndarray
    #: bytes of page data this checkpoint added (pages not shared with its parent)
    cost: int = 0
    pinned: bool = False
    children: int = field(default=0, repr=False)


class CheckpointStore(Generic[Extra]):
    """Checkpoints of one machine, ordered by icount, within `budget` bytes."""

    def __init__(
        self, machine: Machine, budget: int = DEFAULT_BUDGET, write_faults: bool = True
    ) -> None:
        """`write_faults=False` compares RAM with a shadow copy instead of tracking writes."""
        self._machine = machine
        self._write_faults = write_faults
        self.budget = budget
        ram = machine.cpu.ram
        self._npages = len(ram) // PAGE
        self._ram = np.frombuffer(ram, dtype=np.uint8)
        self._zero = bytes(PAGE)
        self._origin_pages: list[bytes] = [self._zero] * self._npages
        self._origin_ids = np.full(self._npages, id(self._zero), dtype=np.int64)
        self._known = False  # `_origin_pages` does not describe RAM yet
        # Write-fault tracking, or a shadow copy to compare with where it is refused.
        self._dirty = np.zeros(self._npages, dtype=np.uint8)
        self._tracker: WriteTracker | None = None
        self._shadow = np.zeros(0, dtype=np.uint8)
        self._changed = np.zeros(self._npages, dtype=np.uint32)
        self._checkpoints: list[Checkpoint[Extra]] = []
        self._keys: list[int] = []
        self.used = 0

    @property
    def tracking(self) -> bool:
        """Dirty pages come from write faults (not from comparing all of RAM)."""
        return self._tracker is not None

    def _start_watching(self, rewritten: Iterable[int] = ()) -> None:
        """RAM now equals `_origin_pages`: watch for writes from here.

        `rewritten`: pages the store itself just wrote into RAM (the shadow copy, where
        there is one, already holds every page the guest wrote).
        """
        if self._tracker is None and self._shadow.size == 0:
            if self._write_faults:
                self._tracker = WriteTracker.start(
                    self._ram.ctypes.data, self._npages * PAGE, self._dirty.ctypes.data
                )
                if self._tracker is not None:
                    # a store dropped without close() must not leave its region armed
                    self._finalizer = weakref.finalize(self, self._tracker.stop)
            if self._tracker is None:
                self._shadow = self._ram.copy()
            return
        if self._tracker is not None:
            self._tracker.rearm()
            return
        for index in rewritten:
            self._shadow[index * PAGE : (index + 1) * PAGE] = self._ram[
                index * PAGE : (index + 1) * PAGE
            ]

    def _changed_pages(self) -> list[int]:
        """Pages written since `_start_watching` (as far as `_origin_pages` knows)."""
        if not self._known:
            return list(range(self._npages))
        if self._tracker is not None:
            return np.flatnonzero(self._dirty).tolist()
        count = sync_shadow(
            self._ram.ctypes.data,
            self._shadow.ctypes.data,
            self._npages,
            self._changed.ctypes.data,
        )
        return [int(i) for i in self._changed[:count]]

    def close(self) -> None:
        """Drop every checkpoint and let go of the machine's RAM."""
        if self._tracker is not None:
            self._finalizer()  # stop tracking, once
            self._tracker = None
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

    def take(self, extra: Extra, pinned: bool = False) -> Checkpoint[Extra]:
        """A checkpoint of the machine as it is now (between runs)."""
        state = self._machine.save_state()
        if not self._known:
            pages = [self._zero] * self._npages
            ids = np.full(self._npages, id(self._zero), dtype=np.int64)
            changed = np.flatnonzero(self._ram.reshape(-1, PAGE).any(axis=1)).tolist()
        else:
            pages = list(self._origin_pages)
            ids = self._origin_ids.copy()
            changed = self._changed_pages()
        for index in changed:
            page = self._ram[index * PAGE : (index + 1) * PAGE].tobytes()
            pages[index] = page
            ids[index] = id(page)
        cost = len(changed) * PAGE + 16 * self._npages  # new pages, the tables
        checkpoint = Checkpoint(state.icount, state, extra, pages, ids, cost, pinned)
        self._origin_pages = pages
        self._origin_ids = ids
        self._known = True
        self._start_watching()
        self._insert(checkpoint)
        return checkpoint

    def restore(self, checkpoint: Checkpoint[Extra]) -> None:
        """Put the machine back at `checkpoint` (RAM, CPU, devices, time)."""
        changed = set(self._changed_pages())
        target = checkpoint.pages
        changed.update(np.flatnonzero(self._origin_ids != checkpoint.ids).tolist())
        if self._tracker is not None and changed:
            opened = np.fromiter(changed, dtype=np.uint32, count=len(changed))
            self._tracker.open_pages(opened.ctypes.data, len(opened))
        for index in changed:
            self._ram[index * PAGE : (index + 1) * PAGE] = np.frombuffer(
                target[index], dtype=np.uint8
            )
        self._origin_pages = target
        self._origin_ids = checkpoint.ids
        self._known = True
        self._start_watching(changed)
        self._machine.load_state(checkpoint.machine, changed)

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

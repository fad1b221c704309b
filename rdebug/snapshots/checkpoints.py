"""In-memory checkpoints of a running machine: CPU and device state, RAM as shared pages.

A checkpoint keeps RAM as a table of page references: pages unchanged since the
checkpoint the machine last came from are shared with it, so a checkpoint costs the
pages the guest dirtied plus a table.  The dirty pages are known from write faults: the
RAM is write-protected after each checkpoint and a C signal handler notes each page
on its first write (where that is not possible, RAM is compared with a shadow copy).
Restoring rewrites only the pages that differ.  The store keeps checkpoints within a
memory budget, every page copy counted once however many checkpoints share it, dropping
the ones whose loss costs least: far from the current position they thin out, near it
they stay dense (as rr does).

Knows the machine, nothing of logs or files: what else a checkpoint must carry (the
replay log's cursor) is an opaque `extra`.
"""

from __future__ import annotations

import bisect
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

from rdebug.errors import MachineError
from rdebug.machine.machine import Machine
from rdebug.machine.pages import (
    PAGE,
    FaultKind,
    WriteTracker,
    sync_shadow,
    write_fault_seconds,
)
from rdebug.machine.state import MachineState
from rdebug.snapshots import DEFAULT_BUDGET

Extra = TypeVar("Extra")


@dataclass(eq=False)
class Checkpoint(Generic[Extra]):
    """The machine at `icount`: its state, its RAM pages, and the caller's `extra`.

    `table` names the page of each RAM page frame by its slot in the store's page pool;
    a checkpoint is restorable while the store keeps it.
    """

    icount: int
    machine: MachineState
    extra: Extra
    table: np.ndarray
    #: bytes of page data this checkpoint added (pages not shared with its parent) and
    #: its table
    cost: int = 0
    pinned: bool = False


class CheckpointStore(Generic[Extra]):
    """Checkpoints of one machine, ordered by icount, within `budget` bytes.

    Every page copy lives once in a pool and is counted once however many checkpoints
    share it; a page no checkpoint (nor the table describing RAM now) refers to any more
    is freed.  `used` = live page copies x 4 KiB + one table of 4 bytes per RAM page per
    checkpoint (plus the table of RAM now), and never exceeds `budget` after `take`,
    except for pinned checkpoints: those are kept whatever they cost.  A checkpoint that
    alone would exceed the budget is not kept (`take` returns None).
    """

    def __init__(
        self,
        machine: Machine,
        budget: int = DEFAULT_BUDGET,
        write_faults: bool | FaultKind = True,
    ) -> None:
        """`write_faults=False` compares RAM with a shadow copy instead of tracking writes;
        a `FaultKind` tracks them by that kind of fault only (True: the cheapest the host
        allows), and compares where the host refuses it."""
        self._machine = machine
        self._write_faults = write_faults
        self.budget = budget
        #: pages the guest wrote between the last two checkpoints (`take`; 0 after the
        #: first: RAM was not watched before it)
        self.last_changed = 0
        ram = machine.cpu.ram
        self._npages = len(ram) // PAGE
        self._ram = np.frombuffer(ram, dtype=np.uint8)
        # The page pool: slot 0 is the zero page (never freed); `_refs` counts the tables
        # that name each slot; freed slots are reused.
        self._pool: list[bytes | None] = [bytes(PAGE)]
        self._refs = np.zeros(1024, dtype=np.int64)
        self._free: list[int] = []
        self._live = 0  # page copies in the pool (slot 0 not counted)
        #: the table of what RAM holds, as far as the dirty tracking knows
        self._origin = np.zeros(self._npages, dtype=np.int32)
        self._retain(self._origin)
        self._known = False  # `_origin` does not describe RAM yet
        #: pages written since `_origin` that a refused checkpoint did not take
        self._carry: set[int] = set()
        # Write-fault tracking, or a shadow copy to compare with where it is refused.
        self._dirty = np.zeros(self._npages, dtype=np.uint8)
        self._tracker: WriteTracker | None = None
        self._shadow = np.zeros(0, dtype=np.uint8)
        self._changed = np.zeros(self._npages, dtype=np.uint32)
        self._checkpoints: list[Checkpoint[Extra]] = []
        self._keys: list[int] = []

    @property
    def table_size(self) -> int:
        """Bytes of one page table (one per checkpoint)."""
        return 4 * self._npages

    @property
    def used(self) -> int:
        """Bytes the checkpoints hold: each live page copy once, and the tables."""
        if not self._pool:
            return 0
        return self._live * PAGE + (len(self._checkpoints) + 1) * self.table_size

    @property
    def tracking(self) -> bool:
        """Dirty pages come from write faults (not from comparing all of RAM)."""
        return self._tracker is not None

    @property
    def fault_kind(self) -> FaultKind | None:
        """Who resolves the write faults (None: RAM is compared with a shadow copy)."""
        return None if self._tracker is None else self._tracker.kind

    # -- the page pool ----------------------------------------------------------------------

    def _store_page(self, page: bytes) -> int:
        if self._free:
            slot = self._free.pop()
            self._pool[slot] = page
        else:
            slot = len(self._pool)
            self._pool.append(page)
            if slot >= len(self._refs):
                self._refs = np.concatenate([self._refs, np.zeros_like(self._refs)])
        self._live += 1
        return slot

    # Counting is in place (`ufunc.at`): `np.bincount` of a whole table allocates a fresh
    # megabyte or two each time, and its page faults cost more than the counting.

    def _retain(self, table: np.ndarray) -> None:
        np.add.at(self._refs, table, 1)

    def _release(self, table: np.ndarray) -> None:
        refs = self._refs
        np.subtract.at(refs, table, 1)
        for slot in np.unique(table[refs[table] == 0]).tolist():
            if slot:
                self._pool[slot] = None
                self._free.append(slot)
                self._live -= 1

    def _set_origin(self, table: np.ndarray, changed: Iterable[int] | None = None) -> None:
        """RAM is now described by `table`; `changed`: the only pages where it may differ
        from the table before (None: any), so that only they are counted again."""
        if changed is None:
            self._retain(table)
            self._release(self._origin)
        else:
            pages = np.fromiter(changed, dtype=np.intp)
            self._retain(table[pages])
            self._release(self._origin[pages])
        self._origin = table
        self._carry.clear()
        self._known = True

    # -- dirty tracking ---------------------------------------------------------------------

    def _start_watching(self, rewritten: Iterable[int] = ()) -> None:
        """RAM now equals `_origin`: watch for writes from here.

        `rewritten`: pages the store itself just wrote into RAM (the shadow copy, where
        there is one, already holds every page the guest wrote).
        """
        if self._tracker is None and self._shadow.size == 0:
            if self._write_faults:
                kind = self._write_faults if isinstance(self._write_faults, FaultKind) else None
                self._tracker = WriteTracker.start(
                    self._ram.ctypes.data, self._npages * PAGE, self._dirty.ctypes.data, kind
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

    @property
    def fault_seconds(self) -> float:
        """What each page the guest writes after a checkpoint costs it in write faults
        (0.0 when RAM is compared with a shadow copy instead: `take` pays for that)."""
        return write_fault_seconds(self._tracker.kind) if self._tracker is not None else 0.0

    def _changed_pages(self) -> list[int]:
        """Pages written since `_start_watching` (as far as `_origin` knows)."""
        if not self._known:
            return list(range(self._npages))
        if self._tracker is not None:
            self._tracker.collect()
            changed: list[int] = np.flatnonzero(self._dirty).tolist()
        else:
            count = sync_shadow(
                self._ram.ctypes.data,
                self._shadow.ctypes.data,
                self._npages,
                self._changed.ctypes.data,
            )
            changed = [int(i) for i in self._changed[:count]]
        if self._carry:
            changed = sorted(self._carry.union(changed))
        return changed

    # -- checkpoints ------------------------------------------------------------------------

    def close(self) -> None:
        """Drop every checkpoint and let go of the machine's RAM."""
        if self._tracker is not None:
            self._finalizer()  # stop tracking, once
            self._tracker = None
        self._checkpoints.clear()
        self._keys.clear()
        self._pool = []
        self._free = []
        self._live = 0
        self._ram = np.zeros(0, dtype=np.uint8)
        self._shadow = np.zeros(0, dtype=np.uint8)

    def __len__(self) -> int:
        return len(self._checkpoints)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(list(self._checkpoints))

    def take(self, extra: Extra, pinned: bool = False) -> Checkpoint[Extra] | None:
        """A checkpoint of the machine as it is now (between runs), kept in the store;
        None if it alone would exceed the budget (and is not `pinned`)."""
        if not self._known:
            base = np.zeros(self._npages, dtype=np.int32)
            changed = np.flatnonzero(self._ram.reshape(-1, PAGE).any(axis=1)).tolist()
        else:
            base = self._origin
            changed = self._changed_pages()
        cost = len(changed) * PAGE + self.table_size
        # what it would hold alone: the copies it shares with its parent and its own
        held = np.count_nonzero(base) + int(np.count_nonzero(base[changed] == 0))
        self.last_changed = len(changed) if self._known else 0
        if held * PAGE + self.table_size > self.budget and not pinned:
            # Not kept: RAM is still described by `_origin` plus these pages.
            self._carry.update(changed)
            return None
        state = self._machine.save_state()
        # make room first, so the copies never take the store over its budget
        self._thin(state.icount, cost)
        table = base.copy()
        for index in changed:
            table[index] = self._store_page(self._ram[index * PAGE : (index + 1) * PAGE].tobytes())
        checkpoint = Checkpoint(state.icount, state, extra, table, cost, pinned)
        self._set_origin(table, changed if self._known else None)
        self._start_watching()
        self._insert(checkpoint)
        return checkpoint

    def restore(self, checkpoint: Checkpoint[Extra]) -> None:
        """Put the machine back at `checkpoint` (RAM, CPU, devices, time)."""
        if not any(cp is checkpoint for cp in self._checkpoints):
            raise MachineError(f"the checkpoint at icount {checkpoint.icount} was dropped")
        changed = set(self._changed_pages())
        target = checkpoint.table
        changed.update(np.flatnonzero(self._origin != target).tolist())
        if self._tracker is not None and changed:
            opened = np.fromiter(changed, dtype=np.uint32, count=len(changed))
            self._tracker.open_pages(opened.ctypes.data, len(opened))
        pool = self._pool
        for index in changed:
            page = pool[target[index]]
            assert page is not None  # the checkpoint's table holds it
            self._ram[index * PAGE : (index + 1) * PAGE] = np.frombuffer(page, dtype=np.uint8)
        self._set_origin(target, changed)
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
            checkpoint.pinned = checkpoint.pinned or old.pinned
            self._checkpoints[index] = checkpoint
            self._release(old.table)
        else:
            self._keys.insert(index, checkpoint.icount)
            self._checkpoints.insert(index, checkpoint)
        self._retain(checkpoint.table)
        self._thin(checkpoint.icount)

    def _thin(self, position: int, room: int = 0) -> None:
        """Drop checkpoints until `room` more bytes fit in the budget: the one whose gap
        to its neighbours is smallest relative to its distance from `position` goes
        first; the first and last ones only when no other can go; pinned ones and the
        one at `position` never."""
        while self.used + room > self.budget:
            best: int | None = None
            best_score = float("inf")
            last = len(self._checkpoints) - 1
            for i, cp in enumerate(self._checkpoints):
                if cp.pinned or cp.icount == position:
                    continue
                if 0 < i < last:
                    gap = self._keys[i + 1] - self._keys[i - 1]
                    score = gap / (abs(cp.icount - position) + 1)
                else:
                    score = float("inf")  # an end: its loss costs the most
                if best is None or score < best_score:
                    best, best_score = i, score
            if best is None:
                return
            dropped = self._checkpoints.pop(best)
            self._keys.pop(best)
            self._release(dropped.table)

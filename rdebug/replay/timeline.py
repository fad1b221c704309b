"""The timeline of a replay: exact seeks to any icount, forward and backward.

`seek(icount)` restores the nearest checkpoint at or before the target and replays
forward exactly (or just replays forward, when the machine already stands between that
checkpoint and the target).  Running forward takes checkpoints as it goes, every
`interval` instructions, the interval growing when checkpoints are dear (large RAM) so
that they cost at most about a tenth of the time spent replaying between them: taking
one, and the write fault of each page the guest writes after it (paid in the replay).
A backward seek that restores a checkpoint far before its target also takes one
`near_cursor` instructions before the target, so that reverse steps one after another
do not each replay a whole interval.

Owns the machine, the player and the checkpoint store of one replay, and every way of
moving in time: seeks, steps and continues both ways, restoring a named snapshot
(`load`), and forgetting a late interrupt (`clear_interrupt`).  Speaks of where it stopped
in the `Stop` vocabulary (replay/stops.py); knows nothing of gdb or front ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rdebug.errors import RdebugError, SnapshotError
from rdebug.machine.machine import Machine, StopEvent, StopReason
from rdebug.machine.pages import FaultKind
from rdebug.machine.watchpoints import WatchHit, WatchKind
from rdebug.replay.player import Player, PlayerPosition
from rdebug.replay.stops import Stop, Where, stop_of
from rdebug.snapshots import DEFAULT_BUDGET, vmstate
from rdebug.snapshots.checkpoints import Checkpoint, CheckpointStore

#: Fewest instructions between two automatic checkpoints.
MIN_INTERVAL = 1 << 20
#: Most instructions between two automatic checkpoints.
MAX_INTERVAL = 1 << 26
#: Checkpoints may cost this share of the replay time at most.  (At 0.5, a session's
#: forward replay of xv6's usertests took 1.9x a plain replay's time, with 6,000
#: checkpoints at the smallest interval; at 0.2, 1.45x; once takes and write faults
#: were cheaper, 1.17x at 0.2 and 1.11x at 0.1, with 3,700 and 1,500 checkpoints.)
CHECKPOINT_SHARE = 0.1
#: With a progress callback, the replay reports at least every this many instructions.
PROGRESS_STEP = 1 << 20
#: A backward seek that restores a checkpoint more than twice this far before its
#: target takes one this far before the target on its way: the backward steps and
#: seeks that follow near the cursor (reverse-stepi after reverse-stepi) replay at most
#: about this much, however long the interval between automatic checkpoints has grown.
NEAR_CURSOR = 1 << 18


_HITS = (StopReason.BREAKPOINT, StopReason.WATCHPOINT)


class SeekError(RdebugError):
    """A seek outside the recording."""


class Interrupted(RdebugError):
    """`Machine.interrupt()` (Ctrl-C) stopped a timeline operation midway."""


class Timeline:
    """A replay that can go to any instruction count of its recording."""

    def __init__(
        self,
        machine: Machine,
        player: Player,
        end_icount: int,
        budget: int = DEFAULT_BUDGET,
        min_interval: int = MIN_INTERVAL,
        adaptive: bool = True,
        write_faults: bool | FaultKind = True,
        near_cursor: int = NEAR_CURSOR,
    ) -> None:
        self.machine = machine
        self.near_cursor = near_cursor
        self.player = player
        self.end_icount = end_icount
        self.store: CheckpointStore[PlayerPosition] = CheckpointStore(machine, budget, write_faults)
        self.min_interval = min_interval
        self.interval = min_interval
        self.adaptive = adaptive
        self.last_stop: StopEvent | None = None
        self.breakpoints: set[int] = set()
        self.watchpoints: set[tuple[int, int, WatchKind]] = set()
        #: continue and reverse-continue stop when they reach this icount (replay_break)
        self.replay_break: int | None = None
        #: called with the icount as a long replay goes (a front end's progress bar)
        self.progress: Callable[[int], None] | None = None
        self.store.take(player.position(), pinned=True)

    @property
    def icount(self) -> int:
        return self.machine.icount

    def close(self) -> None:
        self.store.close()

    def checkpoint(self, pinned: bool = False) -> Checkpoint[PlayerPosition] | None:
        """A checkpoint here; None if the store's budget could not take it."""
        started = time.perf_counter()
        checkpoint = self.store.take(self.player.position(), pinned=pinned)
        # what the last one cost: taking it, and the write faults of the pages the guest
        # wrote since (paid inside the replay, they slow it as much)
        faults = self.store.last_changed * self.store.fault_seconds
        self._cost = time.perf_counter() - started + faults
        if checkpoint is None:
            self._refused = self.machine.icount
        return checkpoint

    def restore(self, checkpoint: Checkpoint[PlayerPosition]) -> None:
        self.store.restore(checkpoint)
        self.player.seek(checkpoint.extra)
        self.last_stop = None

    def load(self, state: vmstate.VmState, position: PlayerPosition, name: str) -> None:
        """Go to a machine state saved elsewhere (the named snapshot `name`), whose log
        position is `position`."""
        if state.machine.icount > self.end_icount:
            raise SnapshotError(
                f"snapshot {name!r} is at icount {state.machine.icount}, beyond the end "
                f"of this recording ({self.end_icount})"
            )
        vmstate.apply(self.machine, state)
        self.player.seek(position)
        self.last_stop = None
        self.checkpoint()

    def clear_interrupt(self) -> None:
        """Forget an interrupt that came too late to stop anything: a run of no
        instructions consumes it."""
        self.machine.counter.clear_interrupt()
        self.last_stop = self.machine.run(self.icount)

    def seek(self, target: int) -> StopEvent:
        """Go to exactly icount `target`; returns how the machine stopped there."""
        if not 0 <= target <= self.end_icount:
            raise SeekError(f"icount {target} is outside the recording (0 to {self.end_icount})")
        current = self.machine.icount
        checkpoint = self.store.at_or_before(target)
        assert checkpoint is not None  # icount 0 is pinned
        if not checkpoint.icount <= current <= target:
            self.restore(checkpoint)
            near = target - self.near_cursor
            if target < current and near - checkpoint.icount > self.near_cursor:
                self.forward(near, breakpoints=False)
                last = self.store.at_or_before(near)
                if self.machine.icount == near and (
                    last is None or near - last.icount > self.near_cursor
                ):
                    self.checkpoint()
        stop = self.forward(target, breakpoints=False)
        if self.machine.icount != target:
            raise SeekError(
                f"the replay stopped at icount {self.machine.icount} before reaching "
                f"{target}: {stop.reason.value} {stop.detail}".rstrip()
            )
        return stop

    def forward(self, target: int | None = None, breakpoints: bool = True) -> StopEvent:
        """Replay forward to icount `target` (or any other stop), checkpointing on the way.

        With `breakpoints` false, breakpoint and watchpoint hits do not stop it before
        `target` (seeks pass them).
        """
        target = self.end_icount if target is None else min(target, self.end_icount)
        stop = self.last_stop
        if stop is not None and stop.reason is StopReason.INTERRUPTED:
            # reported by the operation it interrupted; standing on a checkpoint boundary
            # (where an interrupt between two runs lands) it must not end this one too
            stop = None
        while True:
            last = self.store.at_or_before(self.machine.icount)
            base = last.icount if last else 0
            if base < self._refused <= self.machine.icount:
                base = self._refused  # the store refused a checkpoint there: go on
            next_checkpoint = base + self.interval
            if next_checkpoint <= self.machine.icount < target:
                # on (or past) a checkpoint boundary without its checkpoint: a seek or an
                # interrupt ended there.  Take it now, then go on from here.
                self.checkpoint()
                continue
            stop_at = min(target, next_checkpoint)
            if stop_at <= self.machine.icount and stop is not None:
                return stop
            if self.progress is not None:
                self.progress(self.machine.icount)
                stop_at = min(stop_at, self.machine.icount + PROGRESS_STEP)
            started = time.perf_counter()
            before = self.machine.icount
            stop = self.machine.run(stop_at)
            self.last_stop = stop
            if stop.reason is StopReason.INTERRUPTED:
                raise Interrupted(f"interrupted at icount {self.machine.icount}")
            if stop.reason in _HITS and not breakpoints:
                if self.machine.icount >= target:
                    return stop
                continue
            if stop.reason is not StopReason.TARGET or self.machine.icount >= target:
                return stop
            existing = self.store.at_or_before(self.machine.icount)
            if self.machine.icount == next_checkpoint and (
                existing is None or existing.icount != next_checkpoint
            ):
                self.checkpoint()
                self._adapt(self.machine.icount - before, time.perf_counter() - started)

    # -- breakpoints and both directions ---------------------------------------------------

    def add_breakpoint(self, addr: int) -> None:
        self.breakpoints.add(addr)
        self.machine.add_breakpoint(addr)

    def remove_breakpoint(self, addr: int) -> None:
        self.breakpoints.discard(addr)
        self.machine.remove_breakpoint(addr)

    def add_watchpoint(self, addr: int, length: int, kind: WatchKind) -> None:
        self.machine.add_watchpoint(addr, length, kind)  # may refuse the range
        self.watchpoints.add((addr, length, kind))

    def remove_watchpoint(self, addr: int, length: int, kind: WatchKind) -> None:
        self.watchpoints.discard((addr, length, kind))
        self.machine.remove_watchpoint(addr, length, kind)

    def _locate(self, hit: WatchHit, end: int, last: bool) -> tuple[int, WatchHit]:
        """The instruction in [hit.since, end) that made the watched access (the first
        one, or the `last` one), found by replaying that stretch one instruction at a
        time.  Leaves the machine just after it."""
        self.seek(hit.since)
        found: tuple[int, WatchHit] | None = None
        while self.icount < end:
            before = self.icount
            stop = self.forward(before + 1, breakpoints=False)
            if stop.reason is StopReason.WATCHPOINT and stop.watch is not None:
                found = (before, stop.watch)
                if not last:
                    break
            elif self.icount == before:
                break  # no progress (the end of the recording)
        if found is None:  # the access was made by the instruction at `end` itself
            return end, hit
        if self.icount != found[0] + 1:
            self.seek(found[0] + 1)
        return found

    def _stop_of(self, stop: StopEvent) -> Stop:
        return stop_of(stop, self.machine.cpu.linear_pc(), self.end_icount)

    def _interruptible(self, operation: Callable[[], Stop]) -> Stop:
        try:
            return operation()
        except Interrupted:
            return Stop(Where.INTERRUPTED, self.icount, self.machine.cpu.linear_pc())

    def cont(self) -> Stop:
        """Forward to the next breakpoint or watchpoint hit (or the end of the recording).

        A watchpoint stop lands just after the instruction that made the access.
        """
        return self._interruptible(self._cont)

    def _cont(self) -> Stop:
        brk = self.replay_break
        target = brk if brk is not None and brk > self.icount else None
        stop = self.forward(target)
        if target is not None and stop.reason is StopReason.TARGET and self.icount == target:
            return Stop(Where.REPLAY_BREAK, target, self.machine.cpu.linear_pc())
        if stop.reason is StopReason.WATCHPOINT and stop.watch is not None:
            _writer, hit = self._locate(stop.watch, stop.icount, last=False)
            return Stop(
                Where.WATCHPOINT,
                self.icount,
                self.machine.cpu.linear_pc(),
                data_addr=hit.addr,
                watch_kind=hit.kind,
            )
        return self._stop_of(stop)

    def stepi(self, n: int = 1) -> Stop:
        """`n` instructions forward (a breakpoint does not stop a step)."""
        target = min(self.icount + n, self.end_icount)
        return self._interruptible(lambda: self._stop_of(self.seek(target)))

    def reverse_stepi(self, n: int = 1) -> Stop:
        """`n` instructions backward (stopping at the start of the recording)."""
        return self._interruptible(lambda: self._reverse_stepi(n))

    def _reverse_stepi(self, n: int) -> Stop:
        if self.icount == 0:
            return Stop(Where.BEGIN, 0, self.machine.cpu.linear_pc())
        target = max(0, self.icount - n)
        self.seek(target)
        where = Where.BEGIN if target == 0 and n > 0 and self.icount == 0 else Where.TARGET
        return Stop(where, self.icount, self.machine.cpu.linear_pc())

    def reverse_cont(self) -> Stop:
        """Backward to the last hit before here, or the replay_break icount if later."""
        return self._interruptible(self._reverse_cont_or_break)

    def _reverse_cont_or_break(self) -> Stop:
        brk = self.replay_break
        floor = brk if brk is not None and brk < self.icount else 0
        stop = self._reverse_cont(floor)
        if floor and stop.where is Where.BEGIN:
            self.seek(floor)
            return Stop(Where.REPLAY_BREAK, floor, self.machine.cpu.linear_pc())
        return stop

    def _reverse_cont(self, floor: int = 0) -> Stop:
        """Backward to the last breakpoint or watchpoint hit before the current instruction.

        Scans the recording interval by interval from the checkpoints, replaying each
        one forward and remembering its last hit, then goes there.  A breakpoint at the
        current position does not count (gdb expects reverse-continue to leave it).
        A watchpoint stop lands just before the instruction that made the access, so
        gdb shows the writing instruction.
        """
        high = self.icount
        while high > floor:
            checkpoint = self.store.before(high)
            assert checkpoint is not None  # icount 0 is pinned
            low = checkpoint.icount
            self.seek(low)
            last_break: int | None = None
            last_watch: tuple[WatchHit, int] | None = None  # (hit, end of its window)
            if self.machine.cpu.linear_pc() in self.breakpoints:
                last_break = low
            while self.icount < high:
                stop = self.forward(high)
                if self.icount <= high and stop.reason is StopReason.BREAKPOINT:
                    if self.icount < high:
                        last_break = self.icount
                    continue
                if stop.reason is StopReason.WATCHPOINT and stop.watch is not None:
                    last_watch = (stop.watch, min(self.icount, high))
                    continue
                if stop.reason is StopReason.INTERRUPTED:
                    return self._stop_of(stop)
                if stop.reason is not StopReason.TARGET:
                    break
            if last_break is not None and last_break < floor:
                last_break = None  # before the replay_break: that one comes first
            if last_watch is not None and (last_break is None or last_break < last_watch[1]):
                writer, hit = self._locate(last_watch[0], last_watch[1], last=True)
                if writer >= floor and (last_break is None or writer >= last_break):
                    self.seek(writer)
                    return Stop(
                        Where.WATCHPOINT,
                        writer,
                        self.machine.cpu.linear_pc(),
                        data_addr=hit.addr,
                        watch_kind=hit.kind,
                    )
            if last_break is not None:
                self.seek(last_break)
                return Stop(Where.BREAKPOINT, last_break, self.machine.cpu.linear_pc())
            high = low
        if floor:
            return Stop(Where.BEGIN, self.icount, self.machine.cpu.linear_pc())
        self.seek(0)
        return Stop(Where.BEGIN, 0, self.machine.cpu.linear_pc())

    _cost = 0.0
    #: icount of the last checkpoint the store refused (too dear for its budget)
    _refused = -1

    def _adapt(self, instructions: int, seconds: float) -> None:
        """Space checkpoints so that they cost at most CHECKPOINT_SHARE of the time."""
        if not self.adaptive or seconds <= 0 or instructions <= 0:
            return
        speed = instructions / seconds
        wanted = int(speed * self._cost / CHECKPOINT_SHARE)
        self.interval = max(self.min_interval, min(MAX_INTERVAL, wanted))

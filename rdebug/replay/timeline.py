"""The timeline of a replay: exact seeks to any icount, forward and backward.

`seek(icount)` restores the nearest checkpoint at or before the target and replays
forward exactly (or just replays forward, when the machine already stands between that
checkpoint and the target).  Running forward takes checkpoints as it goes, every
`interval` instructions, the interval growing when checkpoints are dear (large RAM) so
that taking them costs at most about half as much time as replaying between them.

Owns the machine, the player and the checkpoint store of one replay; knows nothing of
gdb or front ends.
"""

from __future__ import annotations

import time

from rdebug.errors import RdebugError
from rdebug.machine.machine import Machine, StopEvent, StopReason
from rdebug.replay.player import Player, PlayerPosition
from rdebug.snapshots.checkpoints import DEFAULT_BUDGET, Checkpoint, CheckpointStore

#: Fewest instructions between two automatic checkpoints.
MIN_INTERVAL = 1 << 20
#: Most instructions between two automatic checkpoints.
MAX_INTERVAL = 1 << 26
#: Checkpoints may cost this share of the replay time at most.
CHECKPOINT_SHARE = 0.5


class SeekError(RdebugError):
    """A seek outside the recording."""


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
    ) -> None:
        self.machine = machine
        self.player = player
        self.end_icount = end_icount
        self.store: CheckpointStore[PlayerPosition] = CheckpointStore(machine, budget)
        self.min_interval = min_interval
        self.interval = min_interval
        self.adaptive = adaptive
        self.last_stop: StopEvent | None = None
        self.store.take(player.position(), pinned=True)

    @property
    def icount(self) -> int:
        return self.machine.icount

    def close(self) -> None:
        self.store.close()

    def checkpoint(self, pinned: bool = False) -> Checkpoint[PlayerPosition]:
        started = time.perf_counter()
        checkpoint = self.store.take(self.player.position(), pinned=pinned)
        self._cost = time.perf_counter() - started
        return checkpoint

    def restore(self, checkpoint: Checkpoint[PlayerPosition]) -> None:
        self.store.restore(checkpoint)
        self.player.seek(checkpoint.extra)
        self.last_stop = None

    def restored_elsewhere(self) -> None:
        """The machine and player were put back from outside (a named snapshot)."""
        self.last_stop = None
        self.checkpoint()

    def seek(self, icount: int) -> StopEvent:
        """Go to exactly `icount`; returns how the machine stopped there."""
        if not 0 <= icount <= self.end_icount:
            raise SeekError(f"icount {icount} is outside the recording (0 to {self.end_icount})")
        current = self.machine.icount
        checkpoint = self.store.at_or_before(icount)
        assert checkpoint is not None  # icount 0 is pinned
        if not checkpoint.icount <= current <= icount:
            self.restore(checkpoint)
        stop = self.forward(icount)
        if self.machine.icount != icount:
            raise SeekError(
                f"the replay stopped at icount {self.machine.icount} before reaching "
                f"{icount}: {stop.reason.value} {stop.detail}".rstrip()
            )
        return stop

    def forward(self, until: int | None = None) -> StopEvent:
        """Replay forward to `until` (or any other stop), checkpointing on the way."""
        target = self.end_icount if until is None else min(until, self.end_icount)
        stop = self.last_stop
        while True:
            last = self.store.at_or_before(self.machine.icount)
            next_checkpoint = (last.icount if last else 0) + self.interval
            stop_at = min(target, next_checkpoint)
            if stop_at <= self.machine.icount and stop is not None:
                return stop
            started = time.perf_counter()
            before = self.machine.icount
            stop = self.machine.run(stop_at)
            self.last_stop = stop
            if stop.reason is not StopReason.TARGET or self.machine.icount >= target:
                return stop
            if self.machine.icount == next_checkpoint:
                self.checkpoint()
                self._adapt(self.machine.icount - before, time.perf_counter() - started)

    _cost = 0.0

    def _adapt(self, instructions: int, seconds: float) -> None:
        """Space checkpoints so that they cost at most CHECKPOINT_SHARE of the time."""
        if not self.adaptive or seconds <= 0 or instructions <= 0:
            return
        speed = instructions / seconds
        wanted = int(speed * self._cost / CHECKPOINT_SHARE)
        self.interval = max(self.min_interval, min(MAX_INTERVAL, wanted))

"""The checkpoint budget is a real bound (issue 17, case 5): a guest that dirties more
RAM than the budget, random seeks, and the store never holds more than its budget,
every page copy counted once, while seeks still land on the straight replay's state."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from rdebug.host.sources import LiveInputs
from rdebug.machine.machine import MachineConfig
from rdebug.replay.recording import record
from rdebug.replay.timeline import Timeline
from rdebug.replay.trace import GuestSpec, Trace, sha256
from rdebug.snapshots.checkpoints import PAGE
from tests.conftest import GUESTS, Replay, patched_guest, straight_hash

#: dirties 8 MiB (in a 16 MiB machine) three times over, a page every ~170 instructions
DIRTY = {"dirty_mib": 8, "dirty_passes": 3, "dirty_spin": 32}
BUDGET = 4 << 20
INTERVAL = 100_000  # about 2.3 MiB of new pages per checkpoint


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> Trace:
    data = patched_guest("dirty", **DIRTY)
    spec = GuestSpec("dirty.elf", str(GUESTS / "dirty.elf"), sha256(data))
    folder: Path = tmp_path_factory.mktemp("dirty") / "trace"
    return record(folder, data, spec, MachineConfig(memory_mb=16), LiveInputs()).trace


def _held(line: Timeline) -> int:
    """Bytes of the distinct page copies the store's checkpoints refer to, and tables."""
    store = line.store
    slots: set[int] = set()
    for checkpoint in store:
        slots.update(int(s) for s in set(checkpoint.table.tolist()) if s)
    return len(slots) * PAGE + len(store) * store.table_size


def _check_counts(line: Timeline) -> None:
    """Each page copy's reference count is the number of entries naming it in the
    checkpoints' tables and the table of what RAM holds, and a copy is kept exactly when
    it is named (the store counts changes incrementally: this counts from scratch)."""
    store = line.store
    tables = [checkpoint.table for checkpoint in store] + [store._origin]
    pool = len(store._pool)
    counts = sum(np.bincount(table, minlength=pool) for table in tables)
    assert (store._refs[:pool] == counts).all()
    assert not store._refs[pool:].any()
    kept = {slot for slot, page in enumerate(store._pool) if page is not None}
    assert kept == {0} | set(np.flatnonzero(counts).tolist())
    assert store._live == len(kept) - 1


def test_random_seeks_stay_within_the_budget(trace: Trace) -> None:
    replay = Replay(trace)
    line = Timeline(replay.machine, replay.player, replay.end, BUDGET, INTERVAL, adaptive=False)
    try:
        rng = random.Random(17)
        kept_beyond_zero = 0
        for target in [replay.end] + [rng.randrange(replay.end + 1) for _ in range(12)]:
            line.seek(target)
            assert line.store.used <= BUDGET, (target, line.store.used)
            # the store's own count is no less than what its checkpoints hold
            assert _held(line) <= line.store.used
            _check_counts(line)
            kept_beyond_zero = max(kept_beyond_zero, len(line.store) - 1)
        # a checkpoint that alone fits is kept: the budget is not met by keeping none
        assert kept_beyond_zero >= 1
        for target in (replay.end // 3, replay.end // 7):
            line.seek(target)
            assert replay.machine.state_hash() == straight_hash(trace, target)
    finally:
        line.close()
        replay.close()


def test_a_checkpoint_too_dear_alone_is_not_kept_and_seeks_still_work(trace: Trace) -> None:
    """Once the guest has written 8 MiB, no checkpoint fits a 2 MiB budget but icount 0's
    (pinned): seeks replay from there, and land right."""
    replay = Replay(trace)
    budget = 2 << 20
    line = Timeline(replay.machine, replay.player, replay.end, budget, INTERVAL, adaptive=False)
    try:
        target = replay.end - 12345
        line.seek(target)
        assert line.store.used <= budget
        assert all(cp.icount < replay.end // 3 for cp in line.store)
        assert replay.machine.state_hash() == straight_hash(trace, target)
        line.seek(target // 2)
        assert replay.machine.state_hash() == straight_hash(trace, target // 2)
    finally:
        line.close()
        replay.close()

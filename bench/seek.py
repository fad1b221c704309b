"""Seek latency in a long recording, and the cost of one checkpoint.

1. Records the `crc` guest with its pass count raised so that the recording is
   >= 1e9 instructions (a 256 MiB machine), then opens it with `rdebug.open` (the default
   checkpoint budget), replays it once to the end (which leaves checkpoints behind), and
   times `seek` to random icounts: median and max.
2. On a 256 MiB machine, dirties 1% of the RAM pages after a checkpoint and times the
   next checkpoint, with the bytes it added.

    python bench/seek.py [--seeks 50] [--passes N]
"""

from __future__ import annotations

import argparse
import random
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import rdebug
from rdebug.host.sources import LiveInputs
from rdebug.machine.loader import parse_image
from rdebug.machine.machine import Machine, MachineConfig
from rdebug.machine.pages import PAGE
from rdebug.replay import recording
from rdebug.replay.trace import GuestSpec, sha256
from rdebug.snapshots.checkpoints import CheckpointStore

GUESTS = Path(__file__).resolve().parent.parent / "sample_guests" / "build"


def patched_crc(passes: int) -> bytes:
    """crc.elf with `crc_passes` set to `passes` in the file (so the trace's copy says so)."""
    data = bytearray((GUESTS / "crc.elf").read_bytes())
    addr = parse_image(bytes(data), "crc.elf").symbols["crc_passes"]
    (phoff,) = struct.unpack_from("<I", data, 28)
    phentsize, phnum = struct.unpack_from("<HH", data, 42)
    for i in range(phnum):
        _, offset, vaddr, _, filesz, _, _, _ = struct.unpack_from(
            "<8I", data, phoff + i * phentsize
        )
        if vaddr <= addr < vaddr + filesz:
            struct.pack_into("<I", data, offset + addr - vaddr, passes)
            return bytes(data)
    raise SystemExit("crc_passes is not in a loaded segment")


def record(folder: Path, passes: int) -> int:
    data = patched_crc(passes)
    spec = GuestSpec("crc.elf", str(GUESTS / "crc.elf"), sha256(data))
    config = MachineConfig(memory_mb=256)
    return recording.record(folder, data, spec, config, LiveInputs()).stop.icount


def bench_seeks(folder: Path, seeks: int) -> None:
    with rdebug.open(folder) as session:
        t0 = time.perf_counter()
        session.seek(session.end_icount)
        first = time.perf_counter() - t0
        rng = random.Random(1)
        times = []
        for _ in range(seeks):
            target = rng.randrange(session.end_icount + 1)
            t0 = time.perf_counter()
            session.seek(target)
            times.append(time.perf_counter() - t0)
        store = session._timeline.store
        print(f"recording: {session.end_icount:,} instructions, 256 MiB machine")
        print(
            f"first replay to the end: {first:.2f} s, {len(store)} checkpoints, "
            f"{store.used / 2**20:.0f} MiB"
        )
        print(
            f"seek to a random icount ({seeks} seeks): median "
            f"{statistics.median(times) * 1e3:.1f} ms, max {max(times) * 1e3:.1f} ms"
        )


def bench_checkpoint() -> None:
    machine = Machine(MachineConfig(memory_mb=256), LiveInputs(), [])
    try:
        store: CheckpointStore[None] = CheckpointStore(machine)
        store.take(None)
        ram = np.frombuffer(machine.cpu.ram, dtype=np.uint8)
        pages = len(ram) // PAGE
        rng = np.random.default_rng(1)
        dirty = rng.choice(pages, size=pages // 100, replace=False)
        times = []
        for round_ in range(5):
            for index in dirty:
                ram[index * PAGE] = round_ + 1
            t0 = time.perf_counter()
            checkpoint = store.take(None)
            times.append(time.perf_counter() - t0)
        del ram
        print(
            f"checkpoint of a 256 MiB guest that dirtied 1% of its pages "
            f"({len(dirty) * PAGE / 2**20:.1f} MiB): median "
            f"{statistics.median(times) * 1e3:.1f} ms, {checkpoint.cost / 2**20:.1f} MiB "
            f"({checkpoint.cost / (len(dirty) * PAGE):.2f}x the dirty bytes)"
        )
        store.close()
    finally:
        machine.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeks", type=int, default=50)
    parser.add_argument("--passes", type=int, default=7000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "trace"
        t0 = time.perf_counter()
        icount = record(folder, args.passes)
        print(f"recorded {icount:,} instructions in {time.perf_counter() - t0:.1f} s")
        bench_seeks(folder, args.seeks)
    bench_checkpoint()
    return 0


if __name__ == "__main__":
    sys.exit(main())

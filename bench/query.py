"""Queries over a long recording vs a plain replay of the same span.

Records the `crc` guest with its pass count raised so that the recording is about
`--insns` instructions (default 1e9; 256 MiB machine), then, each on a freshly opened
session (so each replays the whole span from icount 0, taking checkpoints on the way):

- replay: `session.seek(end)`, the plain replay a query is compared with;
- writes: every write to `crc_result` (one variable; memory hooks on its bytes only);
- calls:  every call of `printk` (a breakpoint on its entry and return addresses).

Prints the times, the rows found, and each query's ratio to the replay (median of
`--rounds` interleaved rounds).

    python bench/query.py [--insns 1e9] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import rdebug
from bench.seek import record

#: instructions per crc pass (4 KiB, bitwise): measured on the guest
INSNS_PER_PASS = 145_000


def _timed(trace: Path, work: Callable[[rdebug.Session], int]) -> tuple[float, int]:
    with rdebug.open(trace) as session:
        started = time.perf_counter()
        rows = work(session)
        return time.perf_counter() - started, rows


def _replay(session: rdebug.Session) -> int:
    session.seek(session.end_icount)
    return 0


def _writes(session: rdebug.Session) -> int:
    return sum(1 for _ in session.accesses("crc_result", 4, "write"))


def _calls(session: rdebug.Session) -> int:
    return sum(1 for _ in session.calls("printk", nargs=1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--insns", type=float, default=1e9)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "crc"
        started = time.perf_counter()
        end = record(trace, max(1, int(args.insns / INSNS_PER_PASS)))
        print(f"recorded {end:,} instructions in {time.perf_counter() - started:.1f} s")
        times: dict[str, list[float]] = {"replay": [], "writes": [], "calls": []}
        rows: dict[str, int] = {}
        work = {"replay": _replay, "writes": _writes, "calls": _calls}
        for _ in range(args.rounds):
            for name, operation in work.items():
                seconds, found = _timed(trace, operation)
                times[name].append(seconds)
                rows[name] = found
        replay = statistics.median(times["replay"])
        print(f"plain replay of [0, {end:,}): {replay:.2f} s  ({end / replay / 1e6:.0f} MIPS)")
        for name in ("writes", "calls"):
            median = statistics.median(times[name])
            what = "writes to crc_result" if name == "writes" else "calls of printk"
            print(
                f"{name}-query ({rows[name]} {what}): {median:.2f} s, "
                f"{median / replay:.2f}x the replay  (rounds: "
                + ", ".join(f"{t:.2f}" for t in times[name])
                + ")"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What recording and replaying cost, against a plain run of the same guest, side by side.

Workloads (sample guests, the same inputs for all three modes):

- `crc`: CPU-bound (pass count raised), no input: the cost of being ready to record;
- `echo`: input-heavy: INPUTS serial chunks handed over at spaced instruction counts
  (`ScriptedInputs`), each one a checkpoint, an async event, clock warps and interrupts.

For each: wall time of run (live inputs), record (the same inputs through the
recorder, into a log file) and replay (the player alone), interleaved over several
rounds; the ratios record/run and replay/run from the medians; the log size and what
one input event costs in it.

    python bench/record.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rdebug.host.sources import ScriptedInputs
from rdebug.machine.inputs import ExternalInputs
from rdebug.machine.loader import load_image
from rdebug.machine.machine import Machine, MachineConfig, StopEvent
from rdebug.replay.player import Player
from rdebug.replay.recorder import Recorder

GUESTS = Path(__file__).resolve().parent.parent / "sample_guests" / "build"
CONFIG = MachineConfig(memory_mb=64)


def _machine_run(guest: str, inputs: ExternalInputs, patch: tuple[str, int] | None) -> StopEvent:
    image = load_image(GUESTS / f"{guest}.elf")
    machine = Machine(CONFIG, inputs, [])
    try:
        machine.load(image)
        if patch is not None:
            symbol, value = patch
            machine.cpu.write_physical(image.symbols[symbol], value.to_bytes(4, "little"))
        return machine.run()
    finally:
        machine.close()


def _timed(fn: Callable[[], StopEvent]) -> tuple[float, StopEvent]:
    t0 = time.perf_counter()
    stop = fn()
    return time.perf_counter() - t0, stop


def measure(
    guest: str,
    make_inputs: Callable[[], ExternalInputs],
    patch: tuple[str, int] | None,
    rounds: int,
    folder: Path,
) -> dict[str, object]:
    log = folder / f"{guest}.log"
    times: dict[str, list[float]] = {"run": [], "record": [], "replay": []}
    stops: set[tuple[str, int]] = set()
    for _ in range(rounds):
        dt, stop = _timed(lambda: _machine_run(guest, make_inputs(), patch))
        times["run"].append(dt)
        stops.add((stop.reason.value, stop.icount))

        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        recorder = Recorder(make_inputs(), fd)

        def record(recorder: Recorder = recorder) -> StopEvent:
            stop = _machine_run(guest, recorder, patch)
            recorder.finish(stop.icount)
            return stop

        dt, stop = _timed(record)
        os.close(fd)
        times["record"].append(dt)
        stops.add((stop.reason.value, stop.icount))

        with log.open("rb") as stream:
            dt, stop = _timed(lambda: _machine_run(guest, Player(stream, str(log)), patch))
        times["replay"].append(dt)
        stops.add((stop.reason.value, stop.icount))
    if len(stops) != 1:
        raise SystemExit(f"{guest}: run, record and replay stopped differently: {stops}")
    _reason, icount = stops.pop()
    return {
        "icount": icount,
        "times": {k: statistics.median(v) for k, v in times.items()},
        "log_bytes": log.stat().st_size,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--crc-passes", type=int, default=2000)
    parser.add_argument("--inputs", type=int, default=300)
    args = parser.parse_args(argv)

    chunks = args.inputs

    def echo_inputs() -> ExternalInputs:
        schedule = [(i * 20_000, 0, b"%d," % i) for i in range(chunks)]
        schedule.append((chunks * 20_000, 0, b"q"))
        return ScriptedInputs(schedule)

    print(
        f"{'workload':9} {'icount':>12} {'run s':>8} {'record s':>9} {'replay s':>9} "
        f"{'rec/run':>8} {'rep/run':>8} {'log bytes':>10}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for guest, inputs, patch in (
            ("crc", lambda: ScriptedInputs([]), ("crc_passes", args.crc_passes)),
            ("echo", echo_inputs, None),
        ):
            result = measure(guest, inputs, patch, args.rounds, folder)
            t = result["times"]
            assert isinstance(t, dict)
            print(
                f"{guest:9} {result['icount']:>12,} {t['run']:>8.3f} {t['record']:>9.3f} "
                f"{t['replay']:>9.3f} {t['record'] / t['run']:>8.2f} "
                f"{t['replay'] / t['run']:>8.2f} {result['log_bytes']:>10,}"
            )
    one = 5 + 1 + 8 + 1
    print(
        f"\none serial byte arriving: {one} log bytes (instruction count 5, checkpoint 1, "
        f"async header 8, the byte 1), as in QEMU's format"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

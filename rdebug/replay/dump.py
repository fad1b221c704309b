"""`rdebug dump`: every event of a replay log with its running icount.

Like QEMU's scripts/replay-dump.py: one line per event, the icount at which it happened
(the sum of the EVENT_INSTRUCTION counts before it), its byte offset and its arguments;
or, with `summary`, the number of records of each kind, of all records, and of the
recorded events (those `record` reports and the REPL's `events` lists: every record but
the instruction counts, END and the recorder's input markers).
"""

from __future__ import annotations

from collections import Counter
from typing import BinaryIO, TextIO

from rdebug.errors import FormatError
from rdebug.replay.codec import is_recorded_event
from rdebug.replay.log import End, Instruction, Reader, Truncated, describe, kind_name


def summarize(stream: BinaryIO, name: str) -> tuple[int, int, bool]:
    """(icount at the end, recorded events, whether the log ends with END) of a log; a
    damaged or truncated tail ends it early."""
    icount = events = 0
    try:
        for event in Reader(stream, name):
            if isinstance(event, Instruction):
                icount += event.count
            elif isinstance(event, End):
                return icount, events, True
            events += is_recorded_event(event)
    except FormatError:
        pass
    return icount, events, False


def dump(stream: BinaryIO, name: str, out: TextIO, summary: bool = False) -> str | None:
    """Write the events; return None for a complete log, else how it stops (one line).

    A damaged log raises `FormatError` once what precedes the damage has been written.
    """
    reader = Reader(stream, name)
    counts: Counter[str] = Counter()
    index = 0
    recorded = 0
    ending: str | None = f"{name}: the log has no END event: it stops at icount {{icount}}"
    if not summary:
        out.write(f"{'event':>7} {'byte':>9} {'icount':>14}  what\n")
    try:
        while True:
            offset = reader.offset
            event = reader.read()
            if event is None:
                break
            counts[kind_name(event)] += 1
            recorded += is_recorded_event(event)
            if not summary:
                out.write(f"{index:>7} {offset:>9} {reader.icount:>14}  {describe(event)}\n")
            index += 1
            if isinstance(event, End):
                ending = None
                break
    except Truncated as exc:
        ending = f"{name}: {exc} (the recording stops at icount {{icount}})"
    except FormatError as exc:
        damage: FormatError | None = FormatError(f"{exc} (after icount {reader.icount})")
    else:
        damage = None
    icount = reader.icount
    if summary:
        width = max((len(k) for k in counts), default=5)
        for kind, count in sorted(counts.items()):
            out.write(f"{kind:<{width}}  {count:>10}\n")
        width = max(width, len("recorded events"))
        out.write(f"{'log records':<{width}}  {index:>10}\n")
        out.write(f"{'recorded events':<{width}}  {recorded:>10}\n")
        out.write(f"{'icount':<{width}}  {icount:>10}\n")
    if damage is not None:
        raise damage
    return None if ending is None else ending.format(icount=icount)

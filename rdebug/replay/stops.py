"""Where a run stopped, in the one vocabulary every layer above the machine speaks.

The machine reports a `StopEvent` with its own `StopReason`; the timeline, the Sessions
(replaying and live) and the front ends speak of a `Stop` and its `Where`.  `stop_of` is
the one translation from the first to the second.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from rdebug.machine.machine import StopEvent, StopReason
from rdebug.machine.watchpoints import WatchKind


class Where(enum.Enum):
    """Why an operation stopped where it did."""

    TARGET = "target"  # the requested instruction count
    BREAKPOINT = "breakpoint"
    WATCHPOINT = "watchpoint"  # forward: just after the access; backward: just before it
    REPLAY_BREAK = "replay-break"  # the icount set with replay_break
    BEGIN = "begin"  # the start of the recording (nothing earlier to stop at)
    END = "end"  # the end of the recording
    EXITED = "exited"  # the guest wrote the exit port (see `exit_code`)
    INTERRUPTED = "interrupted"
    HALTED = "halted"  # HLT that nothing can wake
    CRASHED = "crashed"  # a triple fault, or an access the machine cannot emulate
    OTHER = "other"  # anything else (a watched access met by a step): see `cause`


@dataclass(frozen=True, slots=True)
class Stop:
    """Where an operation stopped (`where`, at `icount`, linear pc `addr`) and why."""

    where: Where
    icount: int
    addr: int | None = None  # linear pc
    detail: str = ""
    data_addr: int | None = None  # the watched address that was accessed
    watch_kind: WatchKind | None = None
    exit_code: int | None = None  # EXITED: the value the guest wrote to the exit port
    cause: str = ""  # HALTED, CRASHED, OTHER: the machine's word for it ("shutdown"...)


def stop_of(stop: StopEvent, pc: int, end_icount: int | None = None) -> Stop:
    """The machine's `stop` (at linear pc `pc`) in the Stop vocabulary; with `end_icount`
    (a replay), reaching the end of the recording is Where.END."""
    match stop.reason:
        case StopReason.BREAKPOINT:
            return Stop(Where.BREAKPOINT, stop.icount, pc)
        case StopReason.TARGET:
            if end_icount is not None and stop.icount >= end_icount:
                return Stop(Where.END, stop.icount, pc)
            return Stop(Where.TARGET, stop.icount, pc)
        case StopReason.END_OF_INPUT:
            return Stop(Where.END, stop.icount, pc)
        case StopReason.EXIT:
            return Stop(
                Where.EXITED,
                stop.icount,
                pc,
                f"exit status {stop.exit_code}",
                exit_code=stop.exit_code,
            )
        case StopReason.INTERRUPTED:
            return Stop(Where.INTERRUPTED, stop.icount, pc)
        case StopReason.HALTED:
            return Stop(Where.HALTED, stop.icount, pc, stop.detail, cause=stop.reason.value)
        case StopReason.SHUTDOWN | StopReason.FAULT:
            return Stop(Where.CRASHED, stop.icount, pc, stop.detail, cause=stop.reason.value)
        case _:
            return Stop(Where.OTHER, stop.icount, pc, stop.detail, cause=stop.reason.value)

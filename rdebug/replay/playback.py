"""A straight replay: a recording played once from its start to its end (`rdebug replay`).

What the end of a straight replay means: the machine must stop exactly where the log
ends (anything the log still holds is a divergence), and the log says how the recording
ended (normally, cut by the host, abruptly, or damaged).
"""

from __future__ import annotations

from dataclasses import dataclass

from rdebug.errors import FormatError
from rdebug.machine.machine import Machine, StopReason
from rdebug.replay.player import Ending, Player
from rdebug.replay.stops import Stop, stop_of

#: The stops that must be the end of the log, and how a divergence message words them.
_STOP_WORDS = {
    StopReason.END_OF_INPUT: "stopped there without doing it",
    StopReason.HALTED: "halted for good",
    StopReason.SHUTDOWN: "triple-faulted",
    StopReason.FAULT: "crashed",
}


@dataclass(frozen=True, slots=True)
class Played:
    """How a straight replay ended."""

    stop: Stop  # Where.END: the end of the log; otherwise the guest's own end
    #: False when the log stops abruptly (no END event: the recorder was killed); the
    #: replay went up to its last complete event
    complete: bool = True
    #: how the host stopped the recording ("host signal", "host command"...), if it did
    host_stop: str | None = None


def play(machine: Machine, player: Player) -> Played:
    """Run the machine, fed by `player`, to the end of its log.  `LogDivergence` if the
    machine and the log part ways, `FormatError` if the log is damaged."""
    event = machine.run(None)
    if event.reason in _STOP_WORDS:
        detail = f" ({event.detail})" if event.detail else ""
        player.verify_end(
            event.icount, f"{_STOP_WORDS[event.reason]} at icount {event.icount}{detail}"
        )
    stop = stop_of(event, machine.cpu.linear_pc())
    if event.reason is not StopReason.END_OF_INPUT:
        return Played(stop)
    if player.ending is Ending.TRUNCATED:
        return Played(stop, complete=False)
    if player.ending is Ending.DAMAGED:
        raise FormatError(f"{player.damage}; replayed up to icount {event.icount}")
    host = player.host_stop
    return Played(stop, host_stop=None if host is None else host.name.lower().replace("_", " "))

"""The monitor command language: `monitor CMD` in gdb, and (later) the REPL's commands.

Parsed once into typed commands, run against a `Session`, answered as text.  Knows the
Session only; nothing of RSP or terminals.

    info replay            where the replay stands: icount, share of the recording, the
                           nearest named snapshot
    replay_seek ICOUNT     go to exactly ICOUNT
    replay_break ICOUNT    stop continue / reverse-continue when they reach ICOUNT
    replay_delete_break    forget it
    savevm NAME            keep the machine state as NAME (in the trace)
    loadvm NAME            go back to NAME
    info snapshots         the named snapshots with their icounts
    help [COMMAND]         this text
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import assert_never

from rdebug.api import Session
from rdebug.errors import RdebugError, UsageError


@dataclass(frozen=True, slots=True)
class InfoReplay:
    pass


@dataclass(frozen=True, slots=True)
class ReplaySeek:
    icount: int


@dataclass(frozen=True, slots=True)
class ReplayBreak:
    icount: int


@dataclass(frozen=True, slots=True)
class ReplayDeleteBreak:
    pass


@dataclass(frozen=True, slots=True)
class SaveVm:
    name: str


@dataclass(frozen=True, slots=True)
class LoadVm:
    name: str


@dataclass(frozen=True, slots=True)
class InfoSnapshots:
    pass


@dataclass(frozen=True, slots=True)
class Help:
    topic: str | None = None


Command = (
    InfoReplay
    | ReplaySeek
    | ReplayBreak
    | ReplayDeleteBreak
    | SaveVm
    | LoadVm
    | InfoSnapshots
    | Help
)

HELP: dict[str, str] = {
    "info replay": "info replay -- the current icount, the share of the recording behind "
    "it, and the nearest named snapshot",
    "replay_seek": "replay_seek ICOUNT -- go to exactly that instruction count",
    "replay_break": "replay_break ICOUNT -- stop continue and reverse-continue there",
    "replay_delete_break": "replay_delete_break -- forget the replay_break icount",
    "savevm": "savevm NAME -- keep the machine state as NAME, in the trace",
    "loadvm": "loadvm NAME -- go back to the snapshot NAME",
    "info snapshots": "info snapshots -- the named snapshots and their icounts",
    "help": "help [COMMAND] -- this list, or one command",
}


def _number(text: str, what: str) -> int:
    try:
        value = int(text.replace("_", ""), 0)
    except ValueError:
        raise UsageError(f"{what}: {text!r} is not a number") from None
    if value < 0:
        raise UsageError(f"{what}: must not be negative")
    return value


def parse(line: str) -> Command:
    """One command from one line; a `UsageError` says what is wrong."""
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"cannot parse {line!r}: {exc}") from None
    if not words:
        raise UsageError("no command (try 'help')")
    head, args = words[0], words[1:]
    match head, args:
        case "info", ["replay"]:
            return InfoReplay()
        case "info", ["snapshots"]:
            return InfoSnapshots()
        case "replay_seek", [icount]:
            return ReplaySeek(_number(icount, "replay_seek"))
        case "replay_break", [icount]:
            return ReplayBreak(_number(icount, "replay_break"))
        case "replay_delete_break", []:
            return ReplayDeleteBreak()
        case "savevm", [name]:
            return SaveVm(name)
        case "loadvm", [name]:
            return LoadVm(name)
        case "help", []:
            return Help()
        case "help", topic:
            return Help(" ".join(topic))
    known = head if head in HELP or head == "info" else None
    if known:
        raise UsageError(f"usage: {HELP.get(head, HELP['info replay']).split(' -- ')[0]}")
    raise UsageError(f"unknown command {head!r} (try 'help')")


def run(session: Session, command: Command) -> str:
    """Carry out `command`; the answer as text (one or more lines)."""
    match command:
        case InfoReplay():
            end = session.end_icount
            share = 100.0 * session.icount / end if end else 100.0
            nearest = [s for s in session.snapshots() if (s.icount or 0) <= session.icount]
            near = f"{nearest[-1].name} (icount {nearest[-1].icount})" if nearest else "none"
            brk = session.replay_break
            return (
                f"icount {session.icount} of {end} ({share:.1f}% of the recording)\n"
                f"nearest snapshot at or before: {near}\n"
                f"replay_break: {'none' if brk is None else brk}\n"
            )
        case ReplaySeek(icount):
            session.seek(icount)
            return f"icount {session.icount}\n"
        case ReplayBreak(icount):
            if icount > session.end_icount:
                raise UsageError(
                    f"replay_break: icount {icount} is beyond the recording ({session.end_icount})"
                )
            session.replay_break = icount
            return f"replay_break at icount {icount}\n"
        case ReplayDeleteBreak():
            session.replay_break = None
            return "replay_break deleted\n"
        case SaveVm(name):
            snapshot = session.savevm(name)
            return f"saved {snapshot.name} at icount {snapshot.icount}\n"
        case LoadVm(name):
            session.loadvm(name)
            return f"loaded {name}: icount {session.icount}\n"
        case InfoSnapshots():
            rows = session.snapshots()
            if not rows:
                return "no snapshots\n"
            return "".join(f"{s.name:<24} icount {s.icount}\n" for s in rows)
        case Help(topic):
            if topic is None:
                return "".join(text + "\n" for text in HELP.values())
            if topic not in HELP:
                raise UsageError(f"no help for {topic!r}")
            return HELP[topic] + "\n"
    assert_never(command)


def execute(session: Session, line: str) -> str:
    """Parse and run one line; errors come back as text too (for gdb's `monitor`)."""
    try:
        return run(session, parse(line))
    except RdebugError as exc:
        return f"error: {exc}\n"

"""The command language of rdebug: what the REPL reads and gdb's `monitor CMD` takes.

Each command is a typed value (the `Command` union); `parse` turns one line into one,
`HELP` and `help_text` say what each does, `ALIASES` and `COMMAND_WORDS` are their other
spellings and the words a completer offers.  Carrying them out is the `Debugger`'s
(rdebug/monitor.py); this module knows no Session.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from rdebug.api import EventKind, parse_kind
from rdebug.errors import UsageError

# -- the commands ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InfoReplay:
    pass


@dataclass(frozen=True, slots=True)
class ReplaySeek:
    target: int | None  # the icount to go to; None: the end of the recording


@dataclass(frozen=True, slots=True)
class ReplayBreak:
    target: int  # the icount where continue and rcontinue stop


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


@dataclass(frozen=True, slots=True)
class StepI:
    count: int = 1
    reverse: bool = False


@dataclass(frozen=True, slots=True)
class Continue:
    reverse: bool = False


@dataclass(frozen=True, slots=True)
class Break:
    location: str


@dataclass(frozen=True, slots=True)
class Watch:
    location: str
    length: int = 4
    kind: str = "write"


@dataclass(frozen=True, slots=True)
class Delete:
    number: int | None  # None: all of them


@dataclass(frozen=True, slots=True)
class InfoBreakpoints:
    pass


@dataclass(frozen=True, slots=True)
class Registers:
    pass


@dataclass(frozen=True, slots=True)
class Examine:
    location: str
    count: int = 1
    format: str = "x"  # x d u c s i
    size: int = 4  # 1 2 4 8


@dataclass(frozen=True, slots=True)
class Disassemble:
    location: str | None = None
    count: int = 10


@dataclass(frozen=True, slots=True)
class Events:
    kind: EventKind | None = None
    start: int | None = None
    stop: int | None = None


@dataclass(frozen=True, slots=True)
class GotoEvent:
    index: int


@dataclass(frozen=True, slots=True)
class NextEvent:
    kind: EventKind | None = None
    reverse: bool = False


@dataclass(frozen=True, slots=True)
class ServeGdb:
    """REPL only: serve gdb on this session."""

    port: int = 1234


@dataclass(frozen=True, slots=True)
class Source:
    """REPL only: run the commands of a file."""

    path: str


@dataclass(frozen=True, slots=True)
class Quit:
    """REPL only."""


Command = (
    InfoReplay
    | ReplaySeek
    | ReplayBreak
    | ReplayDeleteBreak
    | SaveVm
    | LoadVm
    | InfoSnapshots
    | Help
    | StepI
    | Continue
    | Break
    | Watch
    | Delete
    | InfoBreakpoints
    | Registers
    | Examine
    | Disassemble
    | Events
    | GotoEvent
    | NextEvent
    | ServeGdb
    | Source
    | Quit
)

#: The commands that move through time (a front end shows progress while they run).
MOVES = (ReplaySeek, StepI, Continue, GotoEvent, NextEvent, LoadVm)
#: The commands only the REPL carries out.
REPL_ONLY = (ServeGdb, Source, Quit)

#: Every command with its usage and what it does; the first word is what `help` takes.
HELP: dict[str, str] = {
    "stepi": "stepi [N] -- N instructions forward (default 1); also si",
    "rstepi": "rstepi [N] -- N instructions backward; also reverse-stepi, rsi",
    "continue": "continue -- forward to the next breakpoint or watchpoint hit, or the end; also c",
    "rcontinue": "rcontinue -- backward to the last breakpoint or watchpoint hit, or the "
    "start; also reverse-continue, rc",
    "seek": "seek ICOUNT|end -- go to exactly that instruction count; also replay_seek",
    "break": "break ADDR|SYMBOL[+OFF] -- stop continue/rcontinue before that instruction; also b",
    "watch": "watch ADDR|SYMBOL [LEN] [read|write|access] -- stop when LEN bytes (default "
    "4) there are written (default), read or accessed",
    "delete": "delete [N] -- forget breakpoint or watchpoint N (all without N)",
    "info breakpoints": "info breakpoints -- the breakpoints and watchpoints, numbered",
    "regs": "regs -- the registers; also info registers",
    "x": "x/FMT ADDR|SYMBOL -- examine memory like gdb: FMT is [COUNT][x|d|u|c|s|i][b|h|w|g], "
    "e.g. x/4xw ticks, x/16xb 0x100000, x/s msg, x/3i $eip",
    "disas": "disas [ADDR|SYMBOL|$REG] [N] -- N instructions (default 10) from there (default eip)",
    "events": "events [KIND] [--from I] [--to J] -- the recorded events with their icounts; "
    "KIND is interrupt, exception, input, clock, checkpoint or shutdown",
    "goto": "goto event N -- go to recorded event N (an interrupt: just before it is taken)",
    "next-event": "next-event [KIND] -- forward to the next recorded event (of KIND)",
    "prev-event": "prev-event [KIND] -- backward to the previous recorded event (of KIND)",
    "savevm": "savevm NAME -- keep the machine state as NAME, in the trace",
    "loadvm": "loadvm NAME -- go back to the snapshot NAME",
    "snapshots": "snapshots -- the named snapshots and their icounts; also info snapshots",
    "info replay": "info replay -- the current icount, the share of the recording behind "
    "it, and the nearest named snapshot",
    "replay_break": "replay_break ICOUNT -- stop continue and rcontinue there",
    "replay_delete_break": "replay_delete_break -- forget the replay_break icount",
    "gdb": "gdb [PORT] -- (REPL) serve gdb on this session until gdb detaches (default "
    "port 1234, 0: any free port); Ctrl-C stops serving",
    "source": "source FILE -- (REPL) run the commands in FILE, one per line (# comments)",
    "help": "help [COMMAND] -- this list, or one command",
    "quit": "quit -- (REPL) leave; also exit, q, Ctrl-D",
}

#: Other spellings of commands, mapped to the name HELP knows them by.
ALIASES: dict[str, str] = {
    "si": "stepi",
    "reverse-stepi": "rstepi",
    "rsi": "rstepi",
    "c": "continue",
    "cont": "continue",
    "reverse-continue": "rcontinue",
    "rc": "rcontinue",
    "replay_seek": "seek",
    "b": "break",
    "d": "delete",
    "disassemble": "disas",
    "exit": "quit",
    "q": "quit",
}

#: The words that start a command, for completion (not the short aliases: too many).
COMMAND_WORDS = sorted(
    {name.split()[0] for name in HELP} | {alias for alias in ALIASES if len(alias) > 4}
)


def _number(text: str, what: str) -> int:
    try:
        value = int(text.replace("_", ""), 0)
    except ValueError:
        raise UsageError(f"{what}: {text!r} is not a number") from None
    if value < 0:
        raise UsageError(f"{what}: must not be negative")
    return value


def _usage(name: str) -> UsageError:
    return UsageError(f"usage: {HELP[name].split(' -- ')[0]}")


_SIZES = {"b": 1, "h": 2, "w": 4, "g": 8}


def _examine(spec: str, args: list[str]) -> Examine:
    """`x/FMT LOCATION`: FMT like gdb's, [COUNT][FORMAT][SIZE] in any order after COUNT."""
    if len(args) != 1:
        raise _usage("x")
    digits = ""
    rest = spec
    while rest and rest[0].isdigit():
        digits, rest = digits + rest[0], rest[1:]
    count = int(digits) if digits else 1
    fmt, size = "x", 4
    for letter in rest:
        if letter in _SIZES:
            size = _SIZES[letter]
        elif letter in "xduocsi":
            fmt = letter
        else:
            raise UsageError(f"x/{spec}: unknown format letter {letter!r} (x d u c s i, b h w g)")
    if fmt == "c" and not set(rest) & set(_SIZES):
        size = 1
    if count == 0:
        raise UsageError(f"x/{spec}: the count must be at least 1")
    return Examine(args[0], count, fmt, size)


def _events(args: list[str]) -> Events:
    kind: EventKind | None = None
    start: int | None = None
    stop: int | None = None
    words = iter(args)
    for word in words:
        if word in ("--from", "--to"):
            value = next(words, None)
            if value is None:
                raise UsageError(f"events: {word} needs an icount")
            if word == "--from":
                start = _number(value, "events --from")
            else:
                stop = _number(value, "events --to")
        elif word.startswith("-"):
            raise _usage("events")
        elif kind is None:
            kind = parse_kind(word)
        else:
            raise _usage("events")
    return Events(kind, start, stop)


def parse(line: str) -> Command:
    """One command from one line; a `UsageError` says what is wrong."""
    try:
        words = shlex.split(line, comments=True)
    except ValueError as exc:
        raise UsageError(f"cannot parse {line!r}: {exc}") from None
    if not words:
        raise UsageError("no command (try 'help')")
    head, args = words[0], words[1:]
    if head == "x" or head.startswith("x/"):
        return _examine(head[2:], args)
    head = ALIASES.get(head, head)
    match head, args:
        case "info", ["replay"]:
            return InfoReplay()
        case "info", ["snapshots"] | ["snap"]:
            return InfoSnapshots()
        case "info", ["breakpoints"] | ["break"] | ["b"] | ["watchpoints"]:
            return InfoBreakpoints()
        case "info", ["registers"] | ["reg"] | ["r"]:
            return Registers()
        case "seek", ["end"]:
            return ReplaySeek(None)
        case "seek", [target]:
            return ReplaySeek(_number(target, "seek"))
        case "replay_break", [target]:
            return ReplayBreak(_number(target, "replay_break"))
        case "replay_delete_break", []:
            return ReplayDeleteBreak()
        case "savevm", [name]:
            return SaveVm(name)
        case "loadvm", [name]:
            return LoadVm(name)
        case "snapshots", []:
            return InfoSnapshots()
        case "stepi", []:
            return StepI()
        case "stepi", [count]:
            return StepI(_number(count, "stepi"))
        case "rstepi", []:
            return StepI(reverse=True)
        case "rstepi", [count]:
            return StepI(_number(count, "rstepi"), reverse=True)
        case "continue", []:
            return Continue()
        case "rcontinue", []:
            return Continue(reverse=True)
        case "break", [location]:
            return Break(location)
        case "watch", [location, *rest] if len(rest) <= 2:
            return _watch(location, rest)
        case "delete", []:
            return Delete(None)
        case "delete", [number]:
            return Delete(_number(number, "delete"))
        case "regs", []:
            return Registers()
        case "disas", []:
            return Disassemble()
        case "disas", [location]:
            return Disassemble(location)
        case "disas", [location, count]:
            return Disassemble(location, _number(count, "disas"))
        case "events", _:
            return _events(args)
        case "goto", ["event", number]:
            return GotoEvent(_number(number, "goto event"))
        case "next-event" | "prev-event", [] | [_]:
            kind = parse_kind(args[0]) if args else None
            return NextEvent(kind, reverse=head == "prev-event")
        case "gdb", []:
            return ServeGdb()
        case "gdb", [port]:
            port_number = _number(port, "gdb")
            if port_number > 65535:
                raise UsageError("gdb: the port must be 0..65535")
            return ServeGdb(port_number)
        case "source", [path]:
            return Source(path)
        case "help", []:
            return Help()
        case "help", topic:
            return Help(" ".join(topic))
        case "quit", []:
            return Quit()
    if head == "info":
        raise UsageError("usage: info replay|breakpoints|registers|snapshots")
    if head in HELP:
        raise _usage(head)
    raise UsageError(f"unknown command {head!r} (try 'help')")


def _watch(location: str, rest: list[str]) -> Watch:
    length, kind = 4, "write"
    for word in rest:
        if word in ("read", "write", "access"):
            kind = word
        else:
            length = _number(word, "watch LEN")
            if length == 0:
                raise UsageError("watch: LEN must be at least 1")
    return Watch(location, length, kind)


def help_text(topic: str | None) -> str:
    """`help` (every command) or `help TOPIC` (one command, by any of its names)."""
    if topic is None:
        return "".join(text + "\n" for text in HELP.values())
    name = ALIASES.get(topic, topic)
    if name.startswith("x/"):
        name = "x"
    if name == "goto event":
        name = "goto"
    if name not in HELP:
        raise UsageError(f"no help for {topic!r} (try 'help')")
    return HELP[name] + "\n"

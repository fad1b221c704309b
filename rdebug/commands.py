"""The command language of rdebug: what the REPL reads and gdb's `monitor CMD` takes.

Each command is a typed value (the `Command` union); `parse` turns one line into one,
`HELP` and `help_text` say what each does, `ALIASES` and `COMMAND_WORDS` are their other
spellings and the words a completer offers.  Carrying them out is the `Debugger`'s
(rdebug/monitor.py); this module knows no Session.
"""

from __future__ import annotations

import shlex
import textwrap
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
    names: tuple[str, ...] = ()  # `info registers eax eip`: those only


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


@dataclass(frozen=True, slots=True)
class Print:
    """`print EXPR` / `p/x EXPR`: a C expression over symbols, registers and memory."""

    expression: str
    format: str | None = None  # x d u o t c; None: as the expression's type says


@dataclass(frozen=True, slots=True)
class InfoLine:
    """The source file and line of the current instruction (DWARF line info)."""


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
    | Print
    | InfoLine
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
    "regs": "regs [REG...] -- the registers (or those named); also info registers [REG...]",
    "print": "print[/FMT] EXPR -- a C expression over symbols, $registers and memory, "
    "e.g. p counter, p/x $eax, p *(int*)0x1000, p &acct; FMT is x d u o t c; also p",
    "info line": "info line -- the source file and line of the current instruction (a guest "
    "built with -g)",
    "x": "x/FMT ADDR|SYMBOL -- examine memory like gdb: FMT is [COUNT][x|d|u|c|s|i][b|h|w|g], "
    "e.g. x/4xw ticks, x/16xb 0x100000, x/s msg, x/3i $eip",
    "disas": "disas [ADDR|SYMBOL|$REG] [N] -- N instructions (default 10) from there (default eip)",
    "events": "events [KIND] [--from I] [--to J] -- the recorded events with their icounts; "
    "KIND is interrupt, exception, input, audio, clock, checkpoint or shutdown",
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
    if head in ("print", "p") or head.startswith(("print/", "p/")):
        return _print(head, args)
    head = ALIASES.get(head, head)
    match head, args:
        case "info", ["replay"]:
            return InfoReplay()
        case "info", ["snapshots"] | ["snap"]:
            return InfoSnapshots()
        case "info", ["breakpoints"] | ["break"] | ["b"] | ["watchpoints"]:
            return InfoBreakpoints()
        case "info", ["registers" | "reg" | "r", *names]:
            return Registers(tuple(names))
        case "info", ["line"]:
            return InfoLine()
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
        case "regs", names:
            return Registers(tuple(names))
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
        raise UsageError("usage: info replay|breakpoints|registers [REG...]|snapshots|line")
    if head in HELP:
        raise _usage(head)
    raise UsageError(f"unknown command {head!r} (try 'help')")


def _print(head: str, args: list[str]) -> Print:
    _, slash, fmt = head.partition("/")
    if slash and fmt not in ("x", "d", "u", "o", "t", "c"):
        raise UsageError(f"{head}: unknown format {fmt!r} (x d u o t c)")
    if not args:
        raise _usage("print")
    return Print(" ".join(args), fmt if slash else None)


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
    """`help` (every command) or `help TOPIC` (one command, by any of its names: its usage,
    a paragraph and an example)."""
    if topic is None:
        return "".join(text + "\n" for text in HELP.values())
    name = ALIASES.get(topic, topic)
    if name.startswith("x/"):
        name = "x"
    if name.startswith(("p/", "print/")) or name == "p":
        name = "print"
    if name in ("goto event", "info registers"):
        name = {"goto event": "goto", "info registers": "regs"}[name]
    if name not in HELP:
        raise UsageError(f"no help for {topic!r} (try 'help')")
    usage, _, summary = HELP[name].partition(" -- ")
    more = DETAILS.get(name)
    if more is None:
        return HELP[name] + "\n"
    paragraph, example = more
    text = textwrap.fill(f"{summary[0].upper()}{summary[1:]}. {paragraph}".strip(), 88)
    return f"{usage}\n\n{text}\n\nExample: {example}\n"


#: A paragraph and an example per command, for `help COMMAND`.
DETAILS: dict[str, tuple[str, str]] = {
    "stepi": (
        "Stops early at the end of the recording. At an interrupt's icount the next "
        "instruction is the handler's first.",
        "stepi 100",
    ),
    "rstepi": (
        "Restores the nearest checkpoint before and replays forward: the state is exactly "
        "the one a straight replay reaches there.",
        "rstepi 3",
    ),
    "continue": (
        "Stops just before a breakpoint's instruction, just after a watched access, at a "
        "replay_break icount, or at the end of the recording. Ctrl-C stops it.",
        "break timer_irq, then continue",
    ),
    "rcontinue": (
        "Finds the last hit before the current instruction by replaying the stretch "
        "behind it; a watchpoint stops just before the instruction that wrote.",
        "watch acct+16, then rcontinue",
    ),
    "seek": (
        "Jumps anywhere in the recording, both ways; the 'end' of a recording is its last "
        "complete event.",
        "seek 40637",
    ),
    "break": (
        "Numbered; 'delete N' removes it. A symbol, symbol+offset or an address.",
        "break deposit+0x1b",
    ),
    "watch": (
        "Numbered, as breakpoints. While one is set the replay checks every access of "
        "the range and runs slower.",
        "watch acct+16 4 write",
    ),
    "delete": ("Numbers as 'info breakpoints' shows them.", "delete 2"),
    "info breakpoints": ("Breakpoints and watchpoints share the numbers.", "info breakpoints"),
    "regs": (
        "General registers, eip with its symbol, eflags with its flags, segments and "
        "control registers; with names, each with its hex and decimal value (any register "
        "of gdb's i386 description, cr0-cr4 too).",
        "info registers eax eip",
    ),
    "print": (
        "A symbol stands for the 4-byte int stored there (&sym for its address); casts "
        "(char, short, int, long long, unsigned, pointers) and * read memory; + - * / % "
        "& | ^ << >> ~ ! == < && || as in C. Each result is numbered $1, $2...",
        "p/x *(unsigned short*)($esp + 4)",
    ),
    "info line": (
        "Read from the guest's DWARF line table; the text is shown when the source file "
        "is where the guest was built.",
        "info line",
    ),
    "x": (
        "COUNT units of SIZE (b h w g) in FORMAT (x d u o c, s for strings, i for "
        "instructions), from an address, a symbol or a $register.",
        "x/8xb $esp",
    ),
    "disas": ("The current instruction is marked =>.", "disas timer_irq 5"),
    "events": (
        "Numbered for 'goto event N'; --from and --to bound the icounts. The kinds Tab "
        "offers are these.",
        "events interrupt --from 20000",
    ),
    "goto": (
        "An interrupt's icount is the instruction before the handler's first.",
        "goto event 4",
    ),
    "next-event": ("From the current icount, forward.", "next-event input"),
    "prev-event": ("From the current icount, backward.", "prev-event interrupt"),
    "savevm": (
        "Kept in the trace's snapshots.qcow2 (qemu-img snapshot -l lists it); reopen the "
        "trace later and loadvm goes straight there.",
        "savevm before-the-bug",
    ),
    "loadvm": ("Only the memory that differs is rewritten.", "loadvm init"),
    "snapshots": ("Their icounts, sizes and dates.", "snapshots"),
    "info replay": ("Also the replay_break, if set.", "info replay"),
    "replay_break": ("As QEMU's replay_break; one at a time.", "replay_break 30000"),
    "replay_delete_break": ("", "replay_delete_break"),
    "gdb": (
        "gdb drives this same session; the REPL's own breakpoints are off meanwhile and "
        "the REPL goes on where gdb left the replay.",
        "gdb 0",
    ),
    "source": ("The first failing command stops the file.", "source commands.txt"),
    "help": ("Any name or alias of a command.", "help rcontinue"),
    "quit": ("Ctrl-D too.", "quit"),
}

#: The event kinds `events`, `next-event` and `prev-event` take: what `help events` lists
#: and Tab offers.
EVENT_KINDS = [kind.value for kind in EventKind if kind is not EventKind.OTHER]

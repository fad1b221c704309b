"""The command language of rdebug: the REPL's commands, and gdb's `monitor CMD`.

Parsed once into typed commands (`parse`), run against a `Debugger` (a `Session` plus the
numbered breakpoints a person refers to), answered as text.  gdb's `monitor` takes any
of them (`monitor info replay` in gdb == `info replay` in the REPL); the few that only
make sense at a terminal (`gdb`, `source`, `quit`) are parsed here too and carried out by
the REPL.  Knows the Session only; nothing of RSP or terminals.  `help` lists them all.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import assert_never

from rdebug.api import Session
from rdebug.errors import RdebugError, UsageError
from rdebug.events import EventKind, RecordedEvent, parse_kind
from rdebug.replay.timeline import Stop, Where

# -- the commands ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InfoReplay:
    pass


@dataclass(frozen=True, slots=True)
class ReplaySeek:
    icount: int | None  # None: the end of the recording


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
        case "seek", [icount]:
            return ReplaySeek(_number(icount, "seek"))
        case "replay_break", [icount]:
            return ReplayBreak(_number(icount, "replay_break"))
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


# -- running them ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Point:
    number: int
    addr: int
    length: int = 0  # 0: a breakpoint
    kind: str = ""


@dataclass
class Debugger:
    """A session and what a person set on it: numbered breakpoints and watchpoints."""

    session: Session
    points: dict[int, _Point] = field(default_factory=dict)
    next_number: int = 1

    def suspend_points(self) -> None:
        """Take the numbered points off the session (while gdb, which has its own, drives
        it: gdb ignores stops it did not ask for); `resume_points` puts them back."""
        for point in self.points.values():
            if point.length:
                self.session.remove_watchpoint(point.addr, point.length, point.kind)
            else:
                self.session.remove_breakpoint(point.addr)

    def resume_points(self) -> None:
        for point in self.points.values():
            if point.length:
                self.session.add_watchpoint(point.addr, point.length, point.kind)
            else:
                self.session.add_breakpoint(point.addr)

    def where(self) -> str:
        """The current icount and instruction, one line."""
        session = self.session
        try:
            insn = str(session.disassemble(None, 1)[0])
        except (RdebugError, IndexError):
            insn = f"{session.registers['eip']:#010x}: (no code here)"
        return f"icount {session.icount}: {insn}"

    def stopped(self, stop: Stop) -> str:
        """What a move did, then where it stands."""
        session = self.session
        match stop.where:
            case Where.BREAKPOINT:
                numbers = [p.number for p in self.points.values() if p.addr == stop.addr]
                what = f"breakpoint {numbers[0]}" if numbers else "breakpoint"
            case Where.WATCHPOINT:
                assert stop.data_addr is not None and stop.watch_kind is not None
                numbers = [
                    p.number
                    for p in self.points.values()
                    if p.length and p.addr <= stop.data_addr < p.addr + p.length
                ]
                name = session.symbol(stop.data_addr)
                at = f"{stop.data_addr:#x}" + (f" <{name}>" if name else "")
                what = (
                    f"watchpoint {numbers[0] if numbers else ''}".rstrip()
                    + f": {stop.watch_kind.value} at {at}"
                )
            case Where.BEGIN:
                what = "the start of the recording"
            case Where.END:
                what = "the end of the recording"
            case Where.EXITED:
                what = f"the guest exited ({stop.detail}): the end of the recording"
            case Where.INTERRUPTED:
                what = "interrupted"
            case Where.REPLAY_BREAK:
                what = "replay_break"
            case Where.OTHER:
                what = stop.detail
            case Where.TARGET:
                what = ""
        return (f"{what}\n" if what else "") + self.where() + "\n"

    def run(self, command: Command) -> str:
        """Carry out `command`; the answer as text (one or more lines)."""
        session = self.session
        match command:
            case InfoReplay():
                return self._info_replay()
            case ReplaySeek(icount):
                session.seek(session.end_icount if icount is None else icount)
                return self.where() + "\n"
            case ReplayBreak(icount):
                if icount > session.end_icount:
                    raise UsageError(
                        f"replay_break: icount {icount} is beyond the recording "
                        f"({session.end_icount})"
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
                return f"loaded {name}: {self.where()}\n"
            case InfoSnapshots():
                rows = session.snapshots()
                if not rows:
                    return "no snapshots\n"
                return "".join(f"{s.name:<24} icount {s.icount}\n" for s in rows)
            case Help(topic):
                return _help(topic)
            case StepI(count, reverse):
                if reverse:
                    return self.stopped(session.reverse_stepi(count))
                return self.stopped(session.stepi(count))
            case Continue(reverse):
                return self.stopped(session.reverse_cont() if reverse else session.cont())
            case Break(location):
                addr = session.add_breakpoint(location)
                number = self._add(_Point(self.next_number, addr))
                return f"breakpoint {number} at {self._at(addr)}\n"
            case Watch(location, length, kind):
                addr = session.add_watchpoint(location, length, kind)
                number = self._add(_Point(self.next_number, addr, length, kind))
                return f"watchpoint {number}: {kind} {length} bytes at {self._at(addr)}\n"
            case Delete(number):
                return self._delete(number)
            case InfoBreakpoints():
                return self._info_breakpoints()
            case Registers():
                return self._registers()
            case Examine():
                return self._examine(command)
            case Disassemble(location, count):
                start = None if location is None else _location(session, location)
                lines = session.disassemble(start, count)
                eip = session.registers["eip"]
                return "".join(f"{'=>' if insn.addr == eip else '  '} {insn}\n" for insn in lines)
            case Events(kind, start, stop):
                return self._events(kind, start, stop)
            case GotoEvent(index):
                event = session.goto_event(index)
                return f"{event}\n{self.where()}\n"
            case NextEvent(kind, reverse):
                return self._next_event(kind, reverse)
            case ServeGdb() | Source() | Quit():
                name = {ServeGdb: "gdb", Source: "source", Quit: "quit"}[type(command)]
                raise UsageError(f"{name}: only in the REPL (rdebug repl TRACE)")
        assert_never(command)

    def execute(self, line: str) -> str:
        """Parse and run one line; errors come back as text too (for gdb's `monitor`)."""
        try:
            return self.run(parse(line))
        except RdebugError as exc:
            return f"error: {exc}\n"

    # -- the longer ones ------------------------------------------------------------------

    def _at(self, addr: int) -> str:
        name = self.session.symbol(addr)
        return f"{addr:#x}" + (f" <{name}>" if name else "")

    def _add(self, point: _Point) -> int:
        self.points[point.number] = point
        self.next_number += 1
        return point.number

    def _delete(self, number: int | None) -> str:
        numbers = list(self.points) if number is None else [number]
        for n in numbers:
            point = self.points.pop(n, None)
            if point is None:
                raise UsageError(f"delete: no breakpoint or watchpoint {n}")
            if point.length:
                self.session.remove_watchpoint(point.addr, point.length, point.kind)
            else:
                self.session.remove_breakpoint(point.addr)
        return f"deleted {', '.join(map(str, numbers)) or 'nothing'}\n"

    def _info_breakpoints(self) -> str:
        if not self.points:
            return "no breakpoints or watchpoints\n"
        rows = ["Num  Type        Address     What\n"]
        for p in self.points.values():
            kind = "breakpoint" if not p.length else f"{p.kind} watch"
            what = self.session.symbol(p.addr) or ""
            size = f" ({p.length} bytes)" if p.length else ""
            rows.append(f"{p.number:<4} {kind:<11} {p.addr:#010x}  {what}{size}\n")
        return "".join(rows)

    def _info_replay(self) -> str:
        session = self.session
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

    def _registers(self) -> str:
        regs = self.session.registers
        lines = []
        general = ["eax", "ebx", "ecx", "edx", "esi", "edi", "ebp", "esp"]
        for i in range(0, len(general), 4):
            lines.append("  ".join(f"{n} {regs[n]:08x}" for n in general[i : i + 4]))
        eip = regs["eip"]
        name = self.session.symbol(eip)
        lines.append(f"eip {eip:08x}" + (f" <{name}>" if name else ""))
        flags = regs["eflags"]
        set_flags = [f for bit, f in _FLAGS if flags >> bit & 1]
        lines.append(f"eflags {flags:08x} [{' '.join(['', *set_flags, ''])}]")
        lines.append("  ".join(f"{n} {regs[n]:04x}" for n in ("cs", "ss", "ds", "es", "fs", "gs")))
        lines.append("  ".join(f"{n} {regs[n]:08x}" for n in ("cr0", "cr2", "cr3", "cr4")))
        return "\n".join(lines) + "\n"

    def _examine(self, command: Examine) -> str:
        session = self.session
        addr = _location(session, command.location)
        if command.format == "i":
            return "".join(f"   {insn}\n" for insn in session.disassemble(addr, command.count))
        if command.format == "s":
            out = []
            for _ in range(command.count):
                data = session.read_memory(addr, 1)
                text = b""
                while data != b"\0" and len(text) < 4096:
                    text += data
                    data = session.read_memory(addr + len(text), 1)
                out.append(f"{self._at(addr)}:\t{text.decode('latin-1')!r}\n")
                addr += len(text) + 1
            return "".join(out)
        size = command.size
        data = session.read_memory(addr, size * command.count)
        values = [int.from_bytes(data[i : i + size], "little") for i in range(0, len(data), size)]
        per_line = {1: 8, 2: 8, 4: 4, 8: 2}[size]
        out = []
        for i in range(0, len(values), per_line):
            cells = [_format(v, command.format, size) for v in values[i : i + per_line]]
            out.append(f"{self._at(addr + i * size)}:\t" + "\t".join(cells) + "\n")
        return "".join(out)

    def _events(self, kind: EventKind | None, start: int | None, stop: int | None) -> str:
        rows = [f"{'event':>7} {'icount':>14}  {'kind':<10}  what\n"]
        shown = 0
        more = 0
        here = self.session.icount
        for event in self.session.events(kind, start, stop):
            if shown >= EVENTS_SHOWN:
                more += 1
                continue
            mark = "=>" if event.icount == here else "  "
            rows.append(
                f"{mark}{event.index:>5} {event.icount:>14}  {event.kind.value:<10}  "
                f"{event.detail}\n"
            )
            shown += 1
        if shown == 0:
            return "no recorded events" + (f" of kind {kind.value}" if kind else "") + "\n"
        if more:
            rows.append(f"... and {more} more (narrow with KIND, --from, --to)\n")
        return "".join(rows)

    def _next_event(self, kind: EventKind | None, reverse: bool) -> str:
        session = self.session
        here = session.icount
        found: RecordedEvent | None = None
        if reverse:
            for event in session.events(kind, None, here):
                found = event
        else:
            found = next(session.events(kind, here + 1, None), None)
        if found is None:
            what = f" {kind.value}" if kind else ""
            way = "before" if reverse else "after"
            raise UsageError(f"no recorded{what} event {way} icount {here}")
        session.goto_event(found)
        return f"{found}\n{self.where()}\n"


#: `events` lists at most this many (narrowing shows the rest).
EVENTS_SHOWN = 200

_FLAGS = [
    (0, "CF"),
    (2, "PF"),
    (4, "AF"),
    (6, "ZF"),
    (7, "SF"),
    (8, "TF"),
    (9, "IF"),
    (10, "DF"),
    (11, "OF"),
]


def _location(session: Session, text: str) -> int:
    """An address: a number, a symbol[+off], or a register as $eax / $eip."""
    if text.startswith("$"):
        try:
            return session.register(text[1:]) & 0xFFFFFFFF
        except (KeyError, ValueError, RdebugError):
            raise UsageError(f"{text!r}: no such register") from None
    return session.address(text)


def _format(value: int, fmt: str, size: int) -> str:
    bits = size * 8
    match fmt:
        case "x":
            return f"0x{value:0{size * 2}x}"
        case "d":
            return str(value - (1 << bits) if value >> (bits - 1) else value)
        case "u":
            return str(value)
        case "o":
            return f"0{value:o}"
        case "c":
            return f"{value & 0xFF} {chr(value & 0xFF)!r}"
    return hex(value)


def _help(topic: str | None) -> str:
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


def run(session: Session, command: Command) -> str:
    """Carry out `command` on `session` (breakpoint numbers last for this call only: a
    front end keeps a `Debugger`)."""
    return Debugger(session).run(command)


def execute(session: Session, line: str) -> str:
    """Parse and run one line; errors come back as text too."""
    return Debugger(session).execute(line)

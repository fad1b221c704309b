"""The debugger behind rdebug's command language: the REPL's commands and gdb's `monitor`.

A `Debugger` is a `Session` plus the numbered breakpoints and watchpoints a person refers
to; it carries out the commands of rdebug/commands.py (parsed once into typed values)
and answers as text.  gdb's `monitor` takes any of them (`monitor info replay` in gdb ==
`info replay` in the REPL); the few that only make sense at a terminal (`gdb`, `source`,
`quit`) are refused here and carried out by the REPL.  Knows the Session only; nothing
of RSP or terminals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import assert_never

from rdebug import expr
from rdebug.api import EventKind, RecordedEvent, Session, Stop, Where
from rdebug.commands import (
    Break,
    Command,
    Continue,
    Delete,
    Disassemble,
    Events,
    Examine,
    GotoEvent,
    Help,
    InfoBreakpoints,
    InfoLine,
    InfoReplay,
    InfoSnapshots,
    LoadVm,
    NextEvent,
    Print,
    Quit,
    Registers,
    ReplayBreak,
    ReplayDeleteBreak,
    ReplaySeek,
    SaveVm,
    ServeGdb,
    Source,
    StepI,
    Watch,
    help_text,
    parse,
)
from rdebug.errors import RdebugError, UsageError

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
    printed: int = 0  # `print` results so far ($1, $2...)

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
            case Where.HALTED | Where.CRASHED | Where.OTHER:
                what = f"{stop.cause} {stop.detail}"
            case Where.TARGET:
                what = ""
        return (f"{what}\n" if what else "") + self.where() + "\n"

    def run(self, command: Command) -> str:
        """Carry out `command`; the answer as text (one or more lines)."""
        session = self.session
        match command:
            case InfoReplay():
                return self._info_replay()
            case ReplaySeek(target):
                session.seek(session.end_icount if target is None else target)
                return self.where() + "\n"
            case ReplayBreak(target):
                if target > session.end_icount:
                    raise UsageError(
                        f"replay_break: icount {target} is beyond the recording "
                        f"({session.end_icount})"
                    )
                session.replay_break = target
                return f"replay_break at icount {target}\n"
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
                return help_text(topic)
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
            case Registers(names) if names:
                return self._named_registers(names)
            case Registers():
                return self._registers()
            case Print(expression, fmt):
                value = expr.evaluate(session, expression)
                self.printed += 1
                return f"${self.printed} = {expr.show(value, fmt, session)}\n"
            case InfoLine():
                return self._info_line()
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

    def _named_registers(self, names: tuple[str, ...]) -> str:
        lines = []
        for name in names:
            try:
                value = self.session.register(name.removeprefix("$"))
            except (KeyError, ValueError, RdebugError):
                raise UsageError(f"info registers: no register {name!r}") from None
            natural = str(value)
            if name.removeprefix("$") in ("eip", "esp", "ebp"):
                symbol = self.session.symbol(value)
                natural = f"{value:#x}" + (f" <{symbol}>" if symbol else "")
            lines.append(f"{name.removeprefix('$'):<15}{value:<#19x}{natural}\n")
        return "".join(lines)

    def _info_line(self) -> str:
        session = self.session
        eip = session.registers["eip"]
        line = session.source_line(eip)
        if line is None:
            return f"no line information for {self._at(eip)} (a guest built without -g?)\n"
        path, number, text = line
        shown = f"\t{text}" if text is not None else ""
        return f"{path}:{number}: {self._at(eip)}\n{number}{shown}\n"

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


def run(session: Session, command: Command) -> str:
    """Carry out `command` on `session` (breakpoint numbers last for this call only: a
    front end keeps a `Debugger`)."""
    return Debugger(session).run(command)


def execute(session: Session, line: str) -> str:
    """Parse and run one line; errors come back as text too."""
    return Debugger(session).execute(line)

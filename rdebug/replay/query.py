"""Queries over a recording: every access to some bytes, every call of a function, every
interrupt, every port access, a value's history, each row at the icount it happened.

A query replays the span it covers ONCE, forward from the nearest checkpoint, with
probes restricted to what it watches (machine/probes.py): memory hooks on the watched
bytes only, a breakpoint on the function's entry and on its pending return addresses,
callbacks in the I/O and interrupt paths.  It runs in chunks and yields each chunk's
rows as soon as they are complete, so a query over a long recording streams.

A query moves the timeline while it runs; between two rows the caller may move it too
(`seek(row.icount)`): the query goes on from where it was, and when it is done (or
closed, or interrupted) the timeline is where the caller last put it.  It takes the
timeline's checkpoints on the way like any replay, and sets no breakpoint, watchpoint or
hook outside its own runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

from rdebug.errors import UsageError
from rdebug.machine.machine import StopReason
from rdebug.machine.probes import Delivery, MemoryAccess, PortAccess

if TYPE_CHECKING:  # a query runs on a Timeline: imported by then (numpy: not at start-up)
    from rdebug.replay.timeline import Timeline

#: A query runs (and yields its rows) at least every this many instructions.
CHUNK = 1 << 22
#: The widest single access (FXSAVE aside): a hook range starts this much lower, so that
#: an access beginning before the watched bytes and overlapping them is seen.
WIDEST_ACCESS = 16
#: The most stack arguments a calls query reads.
MAX_ARGS = 16

Symbolizer = Callable[[int], str | None]


@dataclass(frozen=True, slots=True)
class Access:
    """An instruction's access to the watched bytes (`kind` "read" or "write")."""

    icount: int  # of the accessing instruction: seek(icount) stands just before it
    pc: int  # its linear address
    where: str | None  # its symbol+offset
    addr: int  # the linear address accessed
    size: int
    kind: str
    value: int  # the value written (write) or read (read), little-endian, `size` bytes
    before: int | None  # write: the value of those bytes before it
    #: only guest instructions' accesses are seen, not the interrupt frames the machine
    #: pushes (no device writes guest memory by DMA)
    origin: str = "cpu"


@dataclass(frozen=True, slots=True)
class Call:
    """One call of a function: entry, arguments, and its return if it returned."""

    icount: int  # at the function's first instruction
    function: str
    esp: int  # at entry (pointing at the return address)
    return_address: int
    caller: str | None  # the return address as symbol+offset
    args: tuple[int, ...]  # the first stack arguments (cdecl: [esp+4], [esp+8], ...)
    depth: int  # calls of this function already running (recursion or nesting)
    returned: bool
    return_icount: int | None  # back at the return address, the stack popped
    eax: int | None  # EAX there: the return value


@dataclass(frozen=True, slots=True)
class InterruptRow:
    """An interrupt or exception delivered to the guest."""

    icount: int  # the handler's first instruction runs next after this icount
    vector: int
    source: str  # "external" (an IRQ), "exception" or "software" (INT n)
    error_code: int | None
    pc: int  # linear address interrupted (the faulting instruction for a fault)
    where: str | None


@dataclass(frozen=True, slots=True)
class PortRow:
    """An IN or OUT instruction."""

    icount: int
    pc: int
    where: str | None
    port: int
    size: int
    direction: str  # "in" or "out"
    value: int


@dataclass(frozen=True, slots=True)
class Change:
    """The watched value changed: `previous` before the instruction at `icount`, `value`
    after it."""

    icount: int
    pc: int
    where: str | None
    value: int
    previous: int


R_co = TypeVar("R_co", covariant=True)


class Query(Generic[R_co]):
    """The rows of one query over [start, end), produced lazily as it is iterated.

    `position` is how far the replay has got (a progress bar); `interrupted` says the
    query was stopped (`Session.interrupt()`, Ctrl-C) before `end`: the rows so far were
    all yielded.  A query can be iterated once.
    """

    def __init__(self, timeline: Timeline, start: int | None, end: int | None) -> None:
        self._timeline = timeline
        self.start = 0 if start is None else start
        self.end = timeline.end_icount if end is None else min(end, timeline.end_icount)
        if self.start < 0 or self.start > timeline.end_icount:
            raise UsageError(
                f"icount {self.start} is outside the recording (0 to {timeline.end_icount})"
            )
        if self.end < self.start:
            raise UsageError(f"the span ends ({self.end}) before it starts ({self.start})")
        self.position = self.start
        self.interrupted = False
        self._started = False
        self._left = timeline.icount  # where the query's last move left the timeline

    def __iter__(self) -> Iterator[R_co]:
        if self._started:
            raise UsageError("a query can be iterated only once")
        self._started = True
        return self._scan()

    # -- what each kind of query does -------------------------------------------------

    def _arm(self) -> None:
        """Set the probes up before a run."""

    def _disarm(self) -> None:
        """Take them away after it."""

    def _on_break(self, pc: int) -> None:
        """The run stopped at one of the query's breakpoints (before `pc`)."""

    def _on_start(self, pc: int) -> None:
        """A run is about to start at `pc` (where no breakpoint stops it)."""

    def _ready(self) -> list[R_co]:
        """Rows complete so far (and forget them)."""
        return []

    def _finish(self) -> list[R_co]:
        """Rows still open at the end of the span."""
        return []

    # -- the run ----------------------------------------------------------------------

    def _scan(self) -> Iterator[R_co]:
        timeline = self._timeline
        caller = self._left = timeline.icount
        try:
            if not self._seek(self.start):
                return
            here = self.start
            while here < self.end:
                if timeline.icount != self._left:  # the caller moved between two rows
                    caller = timeline.icount
                    if not self._seek(here):
                        return
                ended = self._run(min(self.end, here + CHUNK))
                here = self.position = timeline.icount
                yield from self._ready()
                if ended or self.interrupted:
                    break
            if timeline.icount != self._left:
                caller = timeline.icount
            if not self.interrupted:
                self.position = self.end
            yield from self._finish()
        finally:
            # back where the caller was, unless the caller moved the session since our
            # last move (then it stays where the caller put it)
            if timeline.icount == self._left and self._left != caller:
                timeline.seek(caller)

    def _seek(self, target: int) -> bool:
        """Go to `target`; False if interrupted on the way."""
        from rdebug.replay.timeline import Interrupted  # noqa: PLC0415 - see the imports

        try:
            self._timeline.seek(target)
        except Interrupted:
            self.interrupted = True
            return False
        finally:
            self._left = self._timeline.icount
        return True

    def _run(self, target: int) -> bool:
        """Replay to `target` with the probes set; True if the recording ended first."""
        from rdebug.replay.timeline import Interrupted  # noqa: PLC0415 - see the imports

        timeline = self._timeline
        self._arm()
        try:
            # a run does not stop at a breakpoint where it starts: look at it here
            self._on_start(timeline.machine.cpu.linear_pc())
            while timeline.icount < target:
                stop = timeline.forward(target, breakpoints=True)
                if stop.reason is StopReason.BREAKPOINT:
                    self._on_break(timeline.machine.cpu.linear_pc())
                elif stop.reason is not StopReason.WATCHPOINT and timeline.icount < target:
                    return True
        except Interrupted:
            self.interrupted = True
        finally:
            self._disarm()
            self._left = timeline.icount
        return False


class Accesses(Query[Access]):
    """Every read and/or write of [addr, addr+length)."""

    def __init__(
        self,
        timeline: Timeline,
        symbolize: Symbolizer,
        addr: int,
        length: int,
        kind: str,
        start: int | None = None,
        end: int | None = None,
    ) -> None:
        super().__init__(timeline, start, end)
        if length <= 0:
            raise UsageError("the length to watch must be positive")
        if kind not in ("write", "read", "access"):
            raise UsageError(f"{kind!r}: an access is write, read or access")
        self.addr = addr & 0xFFFFFFFF
        self.length = length
        self.kind = kind
        self._symbolize = symbolize
        self._rows: list[Access] = []

    def _arm(self) -> None:
        low = max(0, self.addr - WIDEST_ACCESS + 1)
        self._timeline.machine.probes.add(
            low,
            self.addr + self.length - low,
            write=self.kind != "read",
            read=self.kind != "write",
            sink=self._seen,
        )

    def _disarm(self) -> None:
        self._timeline.machine.probes.clear()

    def _seen(self, access: MemoryAccess) -> None:
        if access.addr + access.size <= self.addr or access.addr >= self.addr + self.length:
            return
        if not self.start <= access.icount < self.end:
            return
        self._rows.append(
            Access(
                access.icount,
                access.pc,
                self._symbolize(access.pc),
                access.addr,
                access.size,
                "write" if access.write else "read",
                access.value,
                int.from_bytes(access.before, "little") if access.write else None,
            )
        )

    def _ready(self) -> list[Access]:
        rows, self._rows = self._rows, []
        return rows


class History(Query[Change]):
    """Every change of the value in [addr, addr+length) (little-endian)."""

    def __init__(
        self,
        timeline: Timeline,
        symbolize: Symbolizer,
        addr: int,
        length: int,
        initial: Callable[[], bytes],
        start: int | None = None,
        end: int | None = None,
    ) -> None:
        super().__init__(timeline, start, end)
        self._writes = Accesses(timeline, symbolize, addr, length, "write", start, end)
        self._initial = initial
        self._value: bytearray | None = None
        self.addr = addr & 0xFFFFFFFF
        self.length = length
        #: the value at `start` (known once the query has begun)
        self.initial: int | None = None

    def _arm(self) -> None:
        if self._value is None:
            self._value = bytearray(self._initial())
            self.initial = int.from_bytes(self._value, "little")
        self._writes._arm()

    def _disarm(self) -> None:
        self._writes._disarm()

    def _ready(self) -> list[Change]:
        assert self._value is not None
        rows: list[Change] = []
        for write in self._writes._ready():
            previous = int.from_bytes(self._value, "little")
            data = write.value.to_bytes(write.size, "little")
            for i, byte in enumerate(data):
                at = write.addr + i - self.addr
                if 0 <= at < self.length:
                    self._value[at] = byte
            value = int.from_bytes(self._value, "little")
            if value != previous:
                rows.append(Change(write.icount, write.pc, write.where, value, previous))
        return rows


@dataclass(slots=True)
class _OpenCall:
    icount: int
    esp: int
    return_address: int
    args: tuple[int, ...]
    depth: int
    return_icount: int | None = None
    eax: int | None = None
    done: bool = field(default=False)


class Calls(Query[Call]):
    """Every call of the function at `entry`, matched with its return by stack depth."""

    def __init__(
        self,
        timeline: Timeline,
        symbolize: Symbolizer,
        entry: int,
        name: str,
        nargs: int,
        read_u32: Callable[[int], int | None],
        start: int | None = None,
        end: int | None = None,
    ) -> None:
        super().__init__(timeline, start, end)
        if not 0 <= nargs <= MAX_ARGS:
            raise UsageError(f"a calls query reads 0 to {MAX_ARGS} arguments")
        self.entry = entry & 0xFFFFFFFF
        self.name = name
        self.nargs = nargs
        self._symbolize = symbolize
        self._read_u32 = read_u32
        self._calls: list[_OpenCall] = []  # in entry order, the open ones and those after
        self._armed: set[int] = set()
        self._last_seen: tuple[int, int] | None = None

    def _open(self) -> list[_OpenCall]:
        return [call for call in self._calls if not call.done]

    def _arm(self) -> None:
        machine = self._timeline.machine
        machine.interrupt_probe = self._interrupted_at
        wanted = {self.entry} | {call.return_address for call in self._open()}
        for addr in wanted - self._timeline.breakpoints:
            machine.add_breakpoint(addr)
            self._armed.add(addr)

    def _disarm(self) -> None:
        self._timeline.machine.interrupt_probe = None
        for addr in self._armed - self._timeline.breakpoints:
            self._timeline.machine.remove_breakpoint(addr)
        self._armed.clear()

    def _interrupted_at(self, delivery: Delivery) -> None:
        """An interrupt taken just before the entry or a return address: the call (or
        return) happened at that icount, before the handler ran."""
        self._at(delivery.pc, delivery.icount)

    def _on_break(self, pc: int) -> None:
        self._at(pc, self._timeline.icount)

    def _on_start(self, pc: int) -> None:
        if pc in self._armed or pc in self._timeline.breakpoints:
            self._at(pc, self._timeline.icount)

    def _at(self, pc: int, icount: int) -> None:
        if (icount, pc) == self._last_seen:
            return  # seen already (a run's end and the next one's start, an interrupt there)
        self._last_seen = (icount, pc)
        cpu = self._timeline.machine.cpu
        esp = cpu.read("esp")
        if not self.start <= icount < self.end:
            return
        open_calls = self._open()
        returning = [
            call
            for call in open_calls
            if call.return_address == pc and call.esp < esp <= call.esp + 4 + 0xFFFF
        ]
        if returning:
            call = max(returning, key=lambda c: c.esp - (1 << 32) * c.icount)
            call.done = True
            call.return_icount = icount
            call.eax = cpu.read("eax")
            open_calls.remove(call)
        if pc != self.entry:
            return
        ret = self._read_u32(esp)
        if any(call.esp == esp and call.return_address == ret for call in open_calls):
            return  # back at the entry after an interrupt delivered there: the same call
        args = tuple(
            value if (value := self._read_u32(esp + 4 + 4 * i)) is not None else 0
            for i in range(self.nargs)
        )
        depth = len(open_calls)
        self._calls.append(_OpenCall(icount, esp, 0 if ret is None else ret, args, depth))
        if ret is not None and ret not in self._armed and ret not in self._timeline.breakpoints:
            self._timeline.machine.add_breakpoint(ret)
            self._armed.add(ret)

    def _row(self, call: _OpenCall) -> Call:
        return Call(
            call.icount,
            self.name,
            call.esp,
            call.return_address,
            self._symbolize(call.return_address),
            call.args,
            call.depth,
            call.done,
            call.return_icount,
            call.eax,
        )

    def _ready(self) -> list[Call]:
        rows: list[Call] = []
        while self._calls and self._calls[0].done:
            rows.append(self._row(self._calls.pop(0)))
        return rows

    def _finish(self) -> list[Call]:
        rows = [self._row(call) for call in self._calls]
        self._calls = []
        return rows


class Interrupts(Query[InterruptRow]):
    """Every interrupt or exception delivered, of the sources and vectors asked for."""

    def __init__(
        self,
        timeline: Timeline,
        symbolize: Symbolizer,
        sources: frozenset[str],
        vectors: frozenset[int] | None,
        start: int | None = None,
        end: int | None = None,
    ) -> None:
        super().__init__(timeline, start, end)
        self._symbolize = symbolize
        self.sources = sources
        self.vectors = vectors
        self._rows: list[InterruptRow] = []

    def _arm(self) -> None:
        self._timeline.machine.interrupt_probe = self._seen

    def _disarm(self) -> None:
        self._timeline.machine.interrupt_probe = None

    def _seen(self, delivery: Delivery) -> None:
        if delivery.source not in self.sources:
            return
        if self.vectors is not None and delivery.vector not in self.vectors:
            return
        if not self.start <= delivery.icount < self.end:
            return
        self._rows.append(
            InterruptRow(
                delivery.icount,
                delivery.vector,
                delivery.source,
                delivery.error_code,
                delivery.pc,
                self._symbolize(delivery.pc),
            )
        )

    def _ready(self) -> list[InterruptRow]:
        rows, self._rows = self._rows, []
        return rows


class Ports(Query[PortRow]):
    """Every IN/OUT to a port in [low, high]."""

    def __init__(
        self,
        timeline: Timeline,
        symbolize: Symbolizer,
        low: int,
        high: int,
        direction: str | None,
        start: int | None = None,
        end: int | None = None,
    ) -> None:
        super().__init__(timeline, start, end)
        if not 0 <= low <= high <= 0xFFFF:
            raise UsageError("a port range lies within 0 to 0xffff, low to high")
        if direction not in (None, "in", "out"):
            raise UsageError(f"{direction!r}: a port access is in or out")
        self._symbolize = symbolize
        self.low, self.high, self.direction = low, high, direction
        self._rows: list[PortRow] = []

    def _arm(self) -> None:
        self._timeline.machine.probe_ports(self._seen)

    def _disarm(self) -> None:
        self._timeline.machine.probe_ports(None)

    def _seen(self, access: PortAccess) -> None:
        if not self.low <= access.port <= self.high:
            return
        direction = "out" if access.out else "in"
        if self.direction is not None and direction != self.direction:
            return
        if not self.start <= access.icount < self.end:
            return
        self._rows.append(
            PortRow(
                access.icount,
                access.pc,
                self._symbolize(access.pc),
                access.port,
                access.size,
                direction,
                access.value,
            )
        )

    def _ready(self) -> list[PortRow]:
        rows, self._rows = self._rows, []
        return rows

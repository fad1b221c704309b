"""The front door: one `Session` per opened recording, and every type a front end needs.

The front ends (the command line, the REPL, gdb's stub adapter, the monitor language,
`rdebug.gdb`) and scripts import this module, `rdebug.errors`, `rdebug.gdbstub` and the
host backends (`rdebug.host`), nothing else of rdebug: a replaying `Session` (travel in
a recording, or play it straight through), a `LiveSession` (a guest running live, with
or without gdb), `record`, and the vocabulary they answer in (stops, watchpoint kinds,
events, snapshots, budgets, machine configurations).

    >>> import rdebug
    >>> with rdebug.open(EXAMPLE_TRACE) as session:
    ...     session.end_icount
    ...     session.seek(300)
    ...     session.icount
    ...     eip = session.registers["eip"]
    ...     session.stepi(5).icount
    ...     session.seek(300)               # back again: the same state, exactly
    ...     session.registers["eip"] == eip
    ...     session.read_memory(0x100000, 4).hex()
    424
    300
    305
    True
    '02b0ad1b'

(`EXAMPLE_TRACE` is a recording of the `hello` sample guest, made by the doctest setup.)
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO, TextIO, TypeVar

from rdebug.errors import FormatError, RdebugError, UsageError
from rdebug.live import Guest, LiveSession, Recorded, record
from rdebug.machine.devices.uart import SerialBackend
from rdebug.machine.loader import ImageFormat, symbol_file
from rdebug.machine.machine import Machine, MachineConfig
from rdebug.machine.watchpoints import WatchKind
from rdebug.replay.stops import Stop, Where
from rdebug.replay.trace import DriveSpec, Trace, drive_spec, open_disks
from rdebug.snapshots import DEFAULT_BUDGET

if TYPE_CHECKING:
    from rdebug.machine.devices.ne2000 import FrameSink, NicConfig
    from rdebug.machine.devices.sb16 import AudioSink, Sb16Config
    from rdebug.replay.events import EventKind, RecordedEvent, parse_kind
    from rdebug.replay.playback import Played
    from rdebug.replay.query import (
        Access,
        Accesses,
        Call,
        Calls,
        Change,
        History,
        InterruptRow,
        Interrupts,
        PortRow,
        Ports,
        Query,
    )
    from rdebug.replay.timeline import Timeline
    from rdebug.snapshots.named import NamedSnapshot

# Imported where used, not here: what only a replay needs (the log's reader and player,
# events, queries, named snapshots: `rdebug run` needs none of them, and they take a
# while to load), the NIC and the sound card (a machine without them), capstone
# (disassemble), the timeline and checkpoints (numpy), vmstate.  The names of theirs
# that this module offers come from `__getattr__`, on first use.

#: The names this module offers from modules it does not import up front, by module.
_LAZY_NAMES = {
    "events": ("EventKind", "RecordedEvent", "parse_kind", "read_events", "select"),
    "playback": ("Played", "play"),
    "player": ("Player", "position_from_data", "position_to_data", "recording_end"),
    "query": (
        "Access",
        "Accesses",
        "Call",
        "Calls",
        "Change",
        "History",
        "InterruptRow",
        "Interrupts",
        "PortRow",
        "Ports",
        "Query",
    ),
    "named": ("NamedSnapshot", "SnapshotFile"),
    "ne2000": ("FrameSink", "NicConfig"),
    "sb16": ("AudioSink", "Sb16Config"),
}

if not TYPE_CHECKING:  # mypy sees the imports above, and no attribute of any other name

    def __getattr__(name: str) -> object:
        """One of `_LAZY_NAMES`, its module imported on first use (nothing is imported
        for any other name: the import system asks for `__path__`, for one)."""
        module = next((m for m, names in _LAZY_NAMES.items() if name in names), None)
        # (each import: see the comment above)
        if module == "events":
            from rdebug.replay import events as found  # noqa: PLC0415
        elif module == "playback":
            from rdebug.replay import playback as found  # noqa: PLC0415
        elif module == "player":
            from rdebug.replay import player as found  # noqa: PLC0415
        elif module == "query":
            from rdebug.replay import query as found  # noqa: PLC0415
        elif module == "named":
            from rdebug.snapshots import named as found  # noqa: PLC0415
        elif module == "ne2000":
            from rdebug.machine.devices import ne2000 as found  # noqa: PLC0415
        elif module == "sb16":
            from rdebug.machine.devices import sb16 as found  # noqa: PLC0415
        else:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(found, name)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *(n for names in _LAZY_NAMES.values() for n in names)})


__all__ = [
    "DEFAULT_BUDGET",
    "Access",
    "AudioSink",
    "Call",
    "Change",
    "DriveSpec",
    "EventKind",
    "FrameSink",
    "Guest",
    "ImageFormat",
    "Instruction",
    "InterruptRow",
    "LiveSession",
    "MachineConfig",
    "NamedSnapshot",
    "NicConfig",
    "Played",
    "PortRow",
    "Query",
    "Recorded",
    "RecordedEvent",
    "Sb16Config",
    "SerialBackend",
    "Session",
    "Stop",
    "Trace",
    "TraceSummary",
    "WatchKind",
    "Where",
    "drive_spec",
    "dump_log",
    "open",
    "parse_kind",
    "record",
    "snapshots",
    "summarize",
]

T = TypeVar("T")

#: `symbol()` names an address by a symbol at most this far below it.
SYMBOL_REACH = 0x10000
#: The longest i386 instruction.
MAX_INSN = 15


@dataclass(frozen=True, slots=True)
class Instruction:
    """One disassembled guest instruction."""

    addr: int
    data: bytes
    mnemonic: str
    operands: str  # with "<symbol+off>" after any address that has a symbol
    symbol: str | None  # where it is ("name+off")

    def __str__(self) -> str:
        where = f" <{self.symbol}>" if self.symbol else ""
        return f"{self.addr:#010x}{where}: {self.mnemonic} {self.operands}".rstrip()


class Session:
    """A recording, opened for replay: go anywhere in it and look at the machine.

    COM1's output goes to `serial`, the frames the guest's NIC sends to `net` and the
    samples its sound card plays to `audio` (all dropped by default).  Each byte of
    serial output is shown once, when the replay first passes the instruction that wrote
    it: going back and replaying a stretch again does not repeat it.
    """

    def __init__(
        self,
        trace: Path | str,
        checkpoint_budget: int = DEFAULT_BUDGET,
        *,
        serial: SerialBackend | None = None,
        net: FrameSink | None = None,
        audio: AudioSink | None = None,
    ) -> None:
        from rdebug.replay.player import Player, recording_end  # noqa: PLC0415 - see the imports

        self.trace = Trace.open(Path(trace))
        image = self.trace.loaded_guest()
        try:
            self._log: BinaryIO = self.trace.log_path.open("rb")
        except OSError as exc:
            raise FormatError(f"{self.trace.log_path}: cannot read: {exc.strerror}") from None
        try:
            self._end = recording_end(self._log, str(self.trace.log_path))
            self._log.seek(0)
            self._player = Player(self._log, str(self.trace.log_path), self._end)
            self._start = self._player.position()
            disks = open_disks(self.trace.info.drives, check=True)
            self._machine = Machine(
                self.trace.info.machine_config(),
                self._player,
                [] if serial is None else [_FirstPass(serial, self._exact_icount)],
                disks,
                net,
                audio=audio,
            )
            self._machine.load(image)
            self._image_symbols = image.symbols  # a Linux kernel's: read on first use
            self._read_symbols_ahead = image.read_symbols_ahead  # or from the first move
            self._symbols: dict[str, int] | None = None
            self._symbol_table: list[tuple[int, str]] | None = None
            self._events: list[RecordedEvent] | None = None
        except BaseException:
            self._log.close()
            raise
        self._budget = checkpoint_budget
        self._travel: Timeline | None = None  # made on the first move through time
        self._played = False
        self._closed = False
        self._complete: bool | None = None
        self._lines: list[tuple[int, str, int]] | None = None

    def _exact_icount(self) -> int:
        return self._machine.counter.current_icount()

    @property
    def _timeline(self) -> Timeline:
        if self._travel is None:
            if self._played:
                raise UsageError("this session played its recording straight through")
            from rdebug.replay.timeline import Timeline  # noqa: PLC0415 - see the imports

            # A session that moves will likely want the kernel's symbols: they are read
            # (~0.4 s of CPU, in a thread) while it replays; a straight `play` never does.
            self._read_symbols_ahead()
            self._travel = Timeline(self._machine, self._player, self._end, self._budget)
        return self._travel

    def play(self) -> Played:
        """Replay the recording straight from its start to its end, keeping no
        checkpoints (`rdebug replay`): fast, but the session cannot move afterwards."""
        from rdebug.replay.playback import play  # noqa: PLC0415 - see the imports

        if self._travel is not None or self._played:
            raise UsageError("play: only once, on a session that has not moved")
        self._played = True
        return play(self._machine, self._player)

    # -- where we are ------------------------------------------------------------------

    @property
    def icount(self) -> int:
        """Instructions executed since the start of the recording."""
        return self._machine.icount

    @property
    def complete(self) -> bool:
        """Whether the log ends properly (END): False for a recording cut short (the
        recorder was killed), which replays only up to its last complete event."""
        if self._complete is None:
            from rdebug.replay import dump  # noqa: PLC0415 - see the imports

            with self.trace.log_path.open("rb") as stream:
                self._complete = dump.summarize(stream, str(self.trace.log_path))[2]
        return self._complete

    @property
    def end_icount(self) -> int:
        """The icount at which the recording ends."""
        return self._end

    @property
    def registers(self) -> Mapping[str, int]:
        """Registers by gdb name: eax ... edi, eip, eflags, cs ... gs, cr0 ... cr4."""
        return self._machine.cpu.registers()

    def register(self, name: str) -> int:
        """Any register of gdb's i386 description (eax ... gs, st0-7, fctrl ..., xmm0-7,
        mxcsr) and cr0-cr4, by name."""
        return self._machine.cpu.gdb_register(name)

    def interrupt(self) -> None:
        """Stop a running cont/reverse_cont/seek soon (from any thread)."""
        self._machine.interrupt()

    def clear_interrupt(self) -> None:
        """Forget an `interrupt()` that came too late to stop anything (it would stop the
        next operation at once).  Call it when no operation runs, e.g. once the thread
        that ran the interrupted one has finished."""
        self._timeline.clear_interrupt()

    def read_memory(self, addr: int, length: int) -> bytes:
        """Guest memory at the linear address `addr` (through the guest's page tables)."""
        if length < 0:
            raise UsageError("read_memory: negative length")
        if addr < 0 or addr + length > 1 << 32:
            raise UsageError(f"memory at {addr:#x}+{length:#x} is beyond the 32-bit address space")
        data = self._machine.cpu.read_linear(addr, length)
        if data is None:
            raise RdebugError(f"memory at {addr:#x}+{length:#x} is not mapped")
        return data

    def state_hash(self) -> str:
        """SHA-256 of registers, RAM, devices and virtual time."""
        return self._machine.state_hash()

    # -- moving ---------------------------------------------------------------------------

    def seek(self, target: int) -> None:
        """Go to exactly icount `target` (restore the nearest checkpoint, replay forward)."""
        self._timeline.seek(target)

    def stepi(self, n: int = 1) -> Stop:
        """Execute `n` instructions forward (stopping at the end of the recording)."""
        if n < 0:
            raise UsageError("stepi: n must not be negative")
        return self._timeline.stepi(n)

    # -- breakpoints, both directions --------------------------------------------------------

    def add_breakpoint(self, addr: int | str) -> int:
        """Stop `cont`/`reverse_cont` before the instruction at `addr` (or a symbol)."""
        resolved = self._address(addr)
        self._timeline.add_breakpoint(resolved)
        return resolved

    def remove_breakpoint(self, addr: int | str) -> None:
        self._timeline.remove_breakpoint(self._address(addr))

    def add_watchpoint(self, addr: int | str, length: int = 4, kind: str = "write") -> int:
        """Stop `cont` just after, and `reverse_cont` just before, an instruction that
        accesses [addr, addr+length) ("write", "read" or "access").  Any number of them;
        while one is set the replay runs slower (every access is checked)."""
        resolved = self._address(addr)
        self._timeline.add_watchpoint(resolved, length, self._watch_kind(kind))
        return resolved

    def remove_watchpoint(self, addr: int | str, length: int = 4, kind: str = "write") -> None:
        self._timeline.remove_watchpoint(self._address(addr), length, self._watch_kind(kind))

    def breakpoints(self) -> list[int]:
        """Every breakpoint address set now (by anyone: a script, the REPL, gdb)."""
        return sorted(self._timeline.breakpoints)

    def watchpoints(self) -> list[tuple[int, int, str]]:
        """Every watchpoint set now: (address, length, "write"|"read"|"access")."""
        return sorted((a, n, k.value) for a, n, k in self._timeline.watchpoints)

    @staticmethod
    def _watch_kind(kind: str) -> WatchKind:
        try:
            return WatchKind(kind)
        except ValueError:
            raise UsageError(f"{kind!r}: a watchpoint is write, read or access") from None

    @property
    def replay_break(self) -> int | None:
        """An icount where `cont` and `reverse_cont` stop (QEMU's replay_break)."""
        return self._timeline.replay_break

    @replay_break.setter
    def replay_break(self, target: int | None) -> None:
        self._timeline.replay_break = target

    def cont(self) -> Stop:
        """Forward to the next breakpoint or watchpoint hit, or the end of the recording."""
        return self._timeline.cont()

    def reverse_cont(self) -> Stop:
        """Backward to the last breakpoint or watchpoint hit before here, or the start."""
        return self._timeline.reverse_cont()

    def reverse_stepi(self, n: int = 1) -> Stop:
        """`n` instructions backward."""
        if n < 0:
            raise UsageError("reverse_stepi: n must not be negative")
        return self._timeline.reverse_stepi(n)

    def _address(self, addr: int | str) -> int:
        """A 32-bit linear address; nothing beyond that space is masked into it."""
        if isinstance(addr, int):
            return _in_space(addr, hex(addr))
        text = addr.strip()
        if text in self.symbols:
            return self.symbols[text]
        base, sign, offset = text.replace(" ", "").rpartition("+")
        if not sign:
            base, sign, offset = text.replace(" ", "").rpartition("-")
        if sign and base in self.symbols:
            try:
                delta = int(offset, 0)
            except ValueError:
                raise UsageError(f"{addr!r}: {offset!r} is not a number") from None
            return _in_space(self.symbols[base] + (delta if sign == "+" else -delta), text)
        try:
            return _in_space(int(text, 0), text)
        except ValueError:
            raise UsageError(f"{addr!r}: no such symbol in the guest") from None

    # -- the recorded events ----------------------------------------------------------------

    def events(
        self,
        kind: EventKind | str | None = None,
        start: int | None = None,
        stop: int | None = None,
    ) -> Iterator[RecordedEvent]:
        """The recorded events (interrupts, exceptions, inputs, clock reads, checkpoints,
        shutdown) of `kind` (all if None) with start <= icount < stop, in order.

            >>> import rdebug
            >>> with rdebug.open(EXAMPLE_TRACE) as session:
            ...     for event in session.events():
            ...         print(event)
            #0 icount 424 shutdown: guest shutdown
        """
        from rdebug.replay.events import select  # noqa: PLC0415 - see the imports

        return select(self._recorded_events(), kind, start, stop)

    def event(self, index: int) -> RecordedEvent:
        """The recorded event number `index` (as `events()` numbers them)."""
        events = self._recorded_events()
        if not 0 <= index < len(events):
            raise UsageError(f"no event {index}: the recording has {len(events)} events")
        return events[index]

    def _recorded_events(self) -> list[RecordedEvent]:
        if self._events is None:
            from rdebug.replay.events import read_events  # noqa: PLC0415 - see the imports

            self._events = read_events(self.trace.log_path)
        return self._events

    def goto_event(self, event: RecordedEvent | int) -> RecordedEvent:
        """Go to the icount of a recorded event (or event number): for an interrupt,
        just before it is taken (the next instruction is the handler's first).

            >>> import rdebug
            >>> with rdebug.open(EXAMPLE_TRACE) as session:
            ...     shutdown = next(session.events("shutdown"))
            ...     session.goto_event(shutdown) == shutdown, session.icount
            (True, 424)
        """
        found = self.event(event) if isinstance(event, int) else event
        self.seek(found.icount)
        return found

    # -- symbols and code ---------------------------------------------------------------------

    def symbol(self, addr: int) -> str | None:
        """The guest ELF's symbol at or just below `addr`, as "name" or "name+0xoff".

        >>> import rdebug
        >>> with rdebug.open(EXAMPLE_TRACE) as session:
        ...     session.symbol(session.address("guest_main") + 3)
        'guest_main+0x3'
        """
        addr &= 0xFFFFFFFF
        at = bisect.bisect_right(self._by_addr, (addr, "\U0010ffff")) - 1
        if at < 0:
            return None
        base, name = self._by_addr[at]
        if addr - base > SYMBOL_REACH:
            return None
        return name if addr == base else f"{name}+{addr - base:#x}"

    def source_line(self, addr: int) -> tuple[str, int, str | None] | None:
        """The source file and line of the instruction at `addr` from the guest's DWARF
        line table, with the line's text when the file is where it was built; None
        without line information."""
        if self._lines is None:
            self._lines = _line_table(self.trace.path / "guest")
        at = bisect.bisect_right(self._lines, (addr & 0xFFFFFFFF, "\U0010ffff", 1 << 30)) - 1
        if at < 0:
            return None
        _, path, number = self._lines[at]
        if number == 0:
            return None  # the end of a sequence: no line here
        text = None
        try:
            with Path(path).open(encoding="utf-8", errors="replace") as source:
                for index, content in enumerate(source, 1):
                    if index == number:
                        text = content.rstrip("\n")
                        break
        except OSError:
            pass
        return str(Path(path)), number, text

    @property
    def symbols(self) -> dict[str, int]:
        """The guest's symbols by name (read on first use)."""
        if self._symbols is None:
            self._symbols = dict(self._image_symbols)
        return self._symbols

    @property
    def _by_addr(self) -> list[tuple[int, str]]:
        if self._symbol_table is None:
            self._symbol_table = _symbol_table(self.symbols)
        return self._symbol_table

    def address(self, symbol: str) -> int:
        """The address of a symbol ("name", "name+off") or a number ("0x100000")."""
        return self._address(symbol)

    def load_symbols(self, path: Path | str) -> int:
        """Add the symbols of a System.map or an ELF file (e.g. a Linux `-dbg` package's
        vmlinux), moved as the kernel was in the recording (KASLR); returns how many."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise UsageError(f"{path}: cannot read: {exc.strerror}") from None
        offset = self.trace.info.guest.kernel_offset or 0
        symbols = self.symbols
        for name, addr in symbol_file(data, str(path)).items():
            symbols[name] = (addr + offset) & 0xFFFFFFFF
        self._symbol_table = None
        return len(symbols)

    def disassemble(self, addr: int | str | None = None, count: int = 1) -> list[Instruction]:
        """`count` instructions from `addr` (default: eip), in the CPU's current mode.

        >>> import rdebug
        >>> with rdebug.open(EXAMPLE_TRACE) as session:
        ...     for instruction in session.disassemble("_start", 4)[2:]:
        ...         print(instruction)
        0x0010000e <_start+0x2>: mov esi, eax
        0x00100010 <_start+0x4>: mov esp, 0x105000 <boot_stack_top>
        """
        if count < 0:
            raise UsageError("disassemble: count must not be negative")
        start = self._machine.cpu.linear_pc() if addr is None else self._address(addr)
        code = self._readable(start, count * MAX_INSN)
        if not code and count:
            raise RdebugError(f"memory at {start:#x} is not mapped")
        import capstone  # noqa: PLC0415 - see the imports

        real_mode = not self.register("cr0") & 1
        engine = capstone.Cs(
            capstone.CS_ARCH_X86, capstone.CS_MODE_16 if real_mode else capstone.CS_MODE_32
        )
        out: list[Instruction] = []
        for insn in engine.disasm(code, start, count):
            out.append(
                Instruction(
                    insn.address,
                    bytes(insn.bytes),
                    insn.mnemonic,
                    self._annotate(insn.op_str),
                    self.symbol(insn.address),
                )
            )
        return out

    def _annotate(self, operands: str) -> str:
        """gdb's "<symbol+off>" after the operands, for the first address with a symbol."""
        for match in re.finditer(r"0x[0-9a-f]+", operands):
            value = int(match[0], 16)
            name = self.symbol(value) if value >= 0x1000 else None
            if name is not None:
                return f"{operands} <{name}>"
        return operands

    def _readable(self, addr: int, length: int) -> bytes:
        """Up to `length` bytes at `addr`: those before the first unmapped page."""
        data = b""
        while len(data) < length:
            chunk = min(length - len(data), 4096 - ((addr + len(data)) & 0xFFF))
            part = self._machine.cpu.read_linear(addr + len(data), chunk)
            if part is None:
                break
            data += part
        return data

    # -- queries over the whole recording -------------------------------------------------------

    def accesses(
        self,
        addr: int | str,
        length: int = 4,
        kind: str = "write",
        start: int | None = None,
        end: int | None = None,
    ) -> Accesses:
        """Every `kind` ("write", "read" or "access") of [addr, addr+length) by the CPU
        with start <= icount < end, as `Access` rows (icount, pc, where, size, value,
        before), replayed once and streamed.  See docs/queries.md.

            >>> import rdebug
            >>> with rdebug.open(EXAMPLE_TRACE) as session:
            ...     for write in session.accesses("boot_stack_top-8", 8, end=100):
            ...         print(write.icount, write.where, hex(write.value))
            ...     session.icount  # a query leaves the session where it was
            19 _start+0x3a 0x9000
            20 _start+0x3b 0x2badb002
            0
        """
        from rdebug.replay.query import Accesses  # noqa: PLC0415 - see the imports

        return Accesses(self._timeline, self.symbol, self._address(addr), length, kind, start, end)

    def history(
        self,
        addr: int | str,
        length: int = 4,
        start: int | None = None,
        end: int | None = None,
    ) -> History:
        """Every change of the little-endian value in [addr, addr+length) as `Change`
        rows (icount of the writing instruction, value, previous); `.initial` is the
        value at `start`."""
        resolved = self._address(addr)

        def initial() -> bytes:
            data = self._machine.cpu.read_linear(resolved, length)
            return bytes(length) if data is None else data

        from rdebug.replay.query import History  # noqa: PLC0415 - see the imports

        return History(self._timeline, self.symbol, resolved, length, initial, start, end)

    def calls(
        self,
        function: int | str,
        nargs: int = 4,
        start: int | None = None,
        end: int | None = None,
    ) -> Calls:
        """Every call of `function` entered with start <= icount < end, as `Call` rows:
        the entry icount, the return address and its symbol, the first `nargs` cdecl
        stack arguments, the depth, and the matching return (icount and EAX), matched
        by stack depth; `returned` is false for a call that never returned.

            >>> import rdebug
            >>> with rdebug.open(EXAMPLE_TRACE) as session:
            ...     call = session.first(session.calls("serial_puts", nargs=1))
            ...     call.icount, call.caller, session.read_memory(call.args[0], 5)
            ...     call.return_icount, session.icount
            ...     "".join(chr(out.value) for out in session.io(0x3F8, "out", start=60))
            (65, 'guest_main+0xf', b'Hello')
            (416, 0)
            'Hello from rdebug guest\\n'
        """
        entry = self._address(function)
        name = function if isinstance(function, str) else (self.symbol(entry) or hex(entry))

        def read_u32(addr: int) -> int | None:
            data = self._machine.cpu.read_linear(addr, 4)
            return None if data is None else int.from_bytes(data, "little")

        from rdebug.replay.query import Calls  # noqa: PLC0415 - see the imports

        return Calls(self._timeline, self.symbol, entry, name, nargs, read_u32, start, end)

    def interrupts(
        self,
        vector: int | Iterable[int] | None = None,
        start: int | None = None,
        end: int | None = None,
        *,
        exceptions: bool = False,
    ) -> Interrupts:
        """Every hardware interrupt (IRQ) taken, of `vector` (one or several; all if
        None), as `InterruptRow` rows; with `exceptions`, the exceptions and INT n too."""
        sources = _EXTERNAL | _RAISED if exceptions else _EXTERNAL
        from rdebug.replay.query import Interrupts  # noqa: PLC0415 - see the imports

        return Interrupts(self._timeline, self.symbol, sources, _vectors(vector), start, end)

    def exceptions(
        self,
        vector: int | Iterable[int] | None = None,
        start: int | None = None,
        end: int | None = None,
    ) -> Interrupts:
        """Every exception and software interrupt (INT n) taken, of `vector`."""
        from rdebug.replay.query import Interrupts  # noqa: PLC0415 - see the imports

        return Interrupts(self._timeline, self.symbol, _RAISED, _vectors(vector), start, end)

    def io(
        self,
        ports: int | tuple[int, int] | str,
        direction: str | None = None,
        start: int | None = None,
        end: int | None = None,
    ) -> Ports:
        """Every IN/OUT on `ports` (a port, a (low, high) pair or "0x3f8-0x3ff"),
        `direction` "in", "out" or both (None), as `PortRow` rows."""
        low, high = _port_range(ports)
        from rdebug.replay.query import Ports  # noqa: PLC0415 - see the imports

        return Ports(self._timeline, self.symbol, low, high, direction, start, end)

    def inputs(self, start: int | None = None, end: int | None = None) -> Iterator[RecordedEvent]:
        """The recorded inputs (serial bytes, keys, frames) with start <= icount < end."""
        from rdebug.replay.events import EventKind  # noqa: PLC0415 - see the imports

        return self.events(EventKind.INPUT, start, end)

    @staticmethod
    def first(rows: Iterable[T]) -> T | None:
        """The first row of a query (None if it has none); stops the query there."""
        iterator = iter(rows)
        try:
            return next(iterator, None)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    @staticmethod
    def last(rows: Iterable[T]) -> T | None:
        """The last row of a query (None if it has none): "the last write before N" is
        `session.last(session.accesses(addr, end=N))`."""
        found: T | None = None
        for found in rows:  # noqa: B007
            pass
        return found

    # -- progress -----------------------------------------------------------------------------

    @property
    def progress(self) -> Callable[[int], None] | None:
        """Called with the icount now and then while a long operation replays (from the
        thread running it): a front end's progress display."""
        return self._timeline.progress

    @progress.setter
    def progress(self, callback: Callable[[int], None] | None) -> None:
        self._timeline.progress = callback

    # -- named snapshots --------------------------------------------------------------------

    def savevm(self, name: str) -> NamedSnapshot:
        """Keep the machine state as it is now under `name`, in the trace (persistent)."""
        from rdebug.replay.player import position_to_data  # noqa: PLC0415 - see the imports
        from rdebug.snapshots import vmstate  # noqa: PLC0415 - see the imports
        from rdebug.snapshots.named import SnapshotFile  # noqa: PLC0415 - see the imports

        data = vmstate.encode(self._machine, position_to_data(self._player.position()))
        snapshot = SnapshotFile(self.trace.snapshots_path).save(
            name, data, self.icount, self._machine.now_ns()
        )
        self._timeline.checkpoint(pinned=True)
        return snapshot

    def loadvm(self, name: str) -> None:
        """Return to the snapshot `name` (saved by `savevm`, or "init" at icount 0)."""
        from rdebug.replay.player import position_from_data  # noqa: PLC0415 - see the imports
        from rdebug.snapshots import vmstate  # noqa: PLC0415 - see the imports
        from rdebug.snapshots.named import SnapshotFile  # noqa: PLC0415 - see the imports

        raw = SnapshotFile(self.trace.snapshots_path).load(name)
        state = vmstate.decode(raw, f"{self.trace.snapshots_path}:{name}")
        position = (
            self._start
            if state.extra is None
            else position_from_data(state.extra, f"snapshot {name!r}")
        )
        self._timeline.load(state, position, name)

    def snapshots(self) -> list[NamedSnapshot]:
        """The named snapshots of the trace, oldest first."""
        from rdebug.snapshots.named import SnapshotFile  # noqa: PLC0415 - see the imports

        return SnapshotFile(self.trace.snapshots_path).list()

    # -- life -------------------------------------------------------------------------------

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._travel is not None:
                self._travel.close()
            self._machine.close()
            self._log.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


_EXTERNAL = frozenset({"external"})
_RAISED = frozenset({"exception", "software"})


def _vectors(vector: int | Iterable[int] | None) -> frozenset[int] | None:
    if vector is None:
        return None
    wanted = frozenset({vector}) if isinstance(vector, int) else frozenset(vector)
    if any(not 0 <= v <= 255 for v in wanted):
        raise UsageError("an interrupt vector is 0 to 255")
    return wanted


def _port_range(ports: int | tuple[int, int] | str) -> tuple[int, int]:
    if isinstance(ports, int):
        return ports, ports
    if isinstance(ports, tuple):
        return ports
    low, _, high = ports.replace(" ", "").partition("-")
    try:
        return int(low, 0), int(high or low, 0)
    except ValueError:
        raise UsageError(f"{ports!r}: a port or a range of ports (0x3f8-0x3ff)") from None


class _FirstPass:
    """A serial backend that passes on only what is written further in the recording
    than anything before: output replayed again after going back is not repeated."""

    def __init__(self, out: SerialBackend, where: Callable[[], int]) -> None:
        self._out = out
        self._where = where
        self._shown = -1  # the icount of the last instruction whose output was shown

    def write(self, data: bytes) -> None:
        icount = self._where()
        if icount > self._shown:
            self._shown = icount
            self._out.write(data)


def _line_table(elf_path: Path) -> list[tuple[int, str, int]]:
    """(address, file, line) rows of the ELF's DWARF line table, sorted; line 0 marks
    where a sequence ends.  Empty without DWARF."""
    from elftools.common.exceptions import ELFError  # noqa: PLC0415 - only when asked
    from elftools.elf.elffile import ELFFile  # noqa: PLC0415

    rows: list[tuple[int, str, int]] = []
    try:
        with elf_path.open("rb") as stream:
            elf = ELFFile(stream)
            if not elf.has_dwarf_info():
                return rows
            dwarf = elf.get_dwarf_info()
            for unit in dwarf.iter_CUs():
                program = dwarf.line_program_for_CU(unit)
                if program is None:
                    continue
                top = unit.get_top_DIE()
                comp_dir = top.attributes.get("DW_AT_comp_dir")
                base = comp_dir.value.decode(errors="replace") if comp_dir else ""
                files = program["file_entry"]
                dirs = program["include_directory"]
                for entry in program.get_entries():
                    state = entry.state
                    if state is None:
                        continue
                    if state.end_sequence:
                        rows.append((state.address, "", 0))
                        continue
                    index = state.file - (0 if program.header.version >= 5 else 1)
                    if not 0 <= index < len(files):
                        continue
                    file = files[index]
                    name = file.name.decode(errors="replace")
                    folder = ""
                    dir_index = file.dir_index - (0 if program.header.version >= 5 else 1)
                    if 0 <= dir_index < len(dirs):
                        folder = dirs[dir_index].decode(errors="replace")
                    rows.append((state.address, str(Path(base, folder, name)), state.line))
    except (OSError, ELFError, KeyError, ValueError):
        return []
    rows.sort()
    return rows


def _symbol_table(symbols: Mapping[str, int]) -> list[tuple[int, str]]:
    """(address, name) sorted by address; of the names at one address, the most telling
    first (not "__section" markers or "*_end" labels)."""

    def rank(item: tuple[str, int]) -> tuple[int, bool, bool, str]:
        name, addr = item
        return (addr, name.startswith("_"), name.endswith("_end"), name)

    best: dict[int, str] = {}
    for name, addr in sorted(symbols.items(), key=rank):
        best.setdefault(addr, name)
    return sorted(best.items())


def open(trace: Path | str, checkpoint_budget: int = DEFAULT_BUDGET) -> Session:
    """Open the recording in the trace folder `trace` for replay."""
    return Session(trace, checkpoint_budget)


def snapshots(trace: Path | str) -> list[NamedSnapshot]:
    """The named snapshots of the trace folder `trace`, oldest first (without replaying)."""
    from rdebug.snapshots.named import SnapshotFile  # noqa: PLC0415 - see the imports

    return SnapshotFile(Trace.open(Path(trace)).snapshots_path).list()


@dataclass(frozen=True, slots=True)
class TraceSummary:
    """What `rdebug ls` says of a recording (read from its files, without replaying)."""

    path: Path
    guest: str  # the guest image's name
    instructions: int  # the icount where the recording ends
    events: int  # recorded events (interrupts, inputs, clock reads...: what `events` lists)
    complete: bool  # the log ends with END (the recorder was not killed)
    size: int  # bytes in the trace folder
    mtime: float  # when the log was last written (seconds since the epoch)


def summarize(trace: Path | str) -> TraceSummary:
    """A recording's summary: its guest, length, events, size, date, clean end."""
    from rdebug.replay import dump  # noqa: PLC0415 - see the imports

    opened = Trace.open(Path(trace))
    try:
        stream = opened.log_path.open("rb")
    except OSError as exc:
        raise FormatError(f"{opened.log_path}: cannot read: {exc.strerror}") from None
    with stream:
        icount, events, complete = dump.summarize(stream, str(opened.log_path))
    size = sum(f.stat().st_size for f in opened.path.iterdir() if f.is_file())
    return TraceSummary(
        opened.path,
        opened.info.guest.name,
        icount,
        events,
        complete,
        size,
        opened.log_path.stat().st_mtime,
    )


def dump_log(path: Path, out: TextIO, summary: bool = False) -> str | None:
    """Print the events of a replay log (a trace folder or a log file) to `out`; how the
    log ends abruptly, if it does (None when it ends properly)."""
    from rdebug.replay import dump  # noqa: PLC0415 - see the imports

    log_path = Trace.open(path).log_path if path.is_dir() else path
    try:
        stream = log_path.open("rb")
    except OSError as exc:
        raise UsageError(f"{log_path}: cannot read: {exc.strerror}") from None
    with stream:
        return dump.dump(stream, str(log_path), out, summary=summary)


def _in_space(value: int, text: str) -> int:
    if not 0 <= value <= 0xFFFFFFFF:
        raise UsageError(f"{text}: beyond the 32-bit address space")
    return value

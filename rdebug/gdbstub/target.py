"""The seam between the RSP session and whatever is being debugged.

Owns the `Target` protocol the session drives, its optional capabilities (`Breakpoints`,
`ReverseExecution`), the resume actions it is given and the stop reasons it returns.
Knows nothing about packets, hex, sockets or emulators: a target sees typed calls only,
and the session turns its answers into replies (`rdebug.gdbstub.replies`).

Capabilities are methods returning an object or None, so the session computes
``qSupported`` from what the target can do and never advertises a packet it cannot serve.

Errors: raise `TargetError(errno)` for an operation gdb may see fail (``E<errno>``; the
session goes on).  Any other exception ends the connection.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import Protocol

from rdebug.gdbstub.target_xml import RegisterLayout


class GdbSignal(IntEnum):
    """GDB's own signal numbers (``include/gdb/signals.def``), as stop replies carry them."""

    NONE = 0
    HUP = 1
    INT = 2
    QUIT = 3
    ILL = 4
    TRAP = 5
    ABRT = 6
    EMT = 7
    FPE = 8
    KILL = 9
    BUS = 10
    SEGV = 11
    SYS = 12
    PIPE = 13
    ALRM = 14
    TERM = 15


# -- resume actions (commands: imperatives) -----------------------------------------------


@dataclass(frozen=True, slots=True)
class Continue:
    """Run forward until something stops the target.

    `signal` is the signal gdb asks to deliver (``C``/``vCont;C``), `addr` the address to
    resume at (legacy ``c addr``); both are None when gdb gave none.
    """

    signal: int | None = None
    addr: int | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """Execute one instruction forward (`signal`, `addr` as for `Continue`)."""

    signal: int | None = None
    addr: int | None = None


@dataclass(frozen=True, slots=True)
class ReverseContinue:
    """Run backward until a breakpoint, a watchpoint or the start of the log (``bc``)."""


@dataclass(frozen=True, slots=True)
class ReverseStep:
    """Undo one instruction (``bs``)."""


ForwardResume = Continue | Step
ReverseResume = ReverseContinue | ReverseStep
Resume = ForwardResume | ReverseResume


# -- stop reasons (facts) -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Signalled:
    """The target stopped with `signal` and no more specific reason.

    A finished single step is ``Signalled(GdbSignal.TRAP)``; a stop asked by gdb's
    interrupt is ``Signalled(GdbSignal.INT)``; a guest fault maps to SEGV/ILL/FPE.
    `message`, when a resume ends here, goes to gdb's console first (``O`` packets):
    e.g. why the target could not go on.
    """

    signal: int
    message: str = ""


@dataclass(frozen=True, slots=True)
class SwBreak:
    """A software breakpoint was hit; the pc already points AT the breakpoint address."""


@dataclass(frozen=True, slots=True)
class HwBreak:
    """A hardware breakpoint was hit."""


class WatchKind(Enum):
    """Which access a watchpoint watches; the value is the stop reason's name."""

    WRITE = "watch"
    READ = "rwatch"
    ACCESS = "awatch"


@dataclass(frozen=True, slots=True)
class Watch:
    """A watchpoint of `kind` triggered on the data address `addr`."""

    kind: WatchKind
    addr: int


class LogBoundary(Enum):
    """Which end of the replay log was reached; the value is the ``replaylog`` value."""

    BEGIN = "begin"
    END = "end"


@dataclass(frozen=True, slots=True)
class ReplayLogEnd:
    """Replay cannot go further: the start (running backward) or end of the log.

    `signal` is the stop reply's signal: the manual says a stop reason comes with 05
    (SIGTRAP); rr sends 00 with ``replaylog:begin``.  gdb prints the same for both.
    """

    boundary: LogBoundary
    signal: int = GdbSignal.TRAP


@dataclass(frozen=True, slots=True)
class Exited:
    """The target is gone with exit status `code` (``W``)."""

    code: int


@dataclass(frozen=True, slots=True)
class Terminated:
    """The target is gone, killed by `signal` (``X``)."""

    signal: int


StopReason = Signalled | SwBreak | HwBreak | Watch | ReplayLogEnd | Exited | Terminated


# -- capabilities -------------------------------------------------------------------------


class BreakpointKind(IntEnum):
    """The ``Z``/``z`` packet types (GDB manual, node "Packets", ``Z0``..``Z4``)."""

    SOFTWARE = 0
    HARDWARE = 1
    WRITE_WATCH = 2
    READ_WATCH = 3
    ACCESS_WATCH = 4


class Breakpoints(Protocol):
    """Breakpoints and watchpoints the target places itself.

    gdb may send the same ``Z``/``z`` twice: both calls must be idempotent (manual: "the
    operations should be implemented in an idempotent way").  `length` is the ``kind``
    field: the breakpoint size (1 on x86) or the number of bytes watched.
    """

    def supported_kinds(self) -> frozenset[BreakpointKind]:
        """The kinds this target accepts; ``Z`` of another kind gets an empty reply."""
        ...

    def add_breakpoint(self, kind: BreakpointKind, addr: int, length: int) -> None:
        """Place a breakpoint or watchpoint (raise `TargetError` if it cannot)."""
        ...

    def remove_breakpoint(self, kind: BreakpointKind, addr: int, length: int) -> None:
        """Remove it; removing one that is not there is not an error."""
        ...


class ReverseExecution(Protocol):
    """Running backward, for a target that replays a recording.

    Running backward, a breakpoint at the starting pc must not stop the run at once: gdb
    expects the target to move first, as forward.
    """

    def resume_reverse(self, action: ReverseResume, interrupted: Callable[[], bool]) -> StopReason:
        """Do `action`; return why the target stopped (see `Target.resume`)."""
        ...


class Target(Protocol):
    """What the RSP session drives.  One thread calls it; it never touches the socket."""

    def register_layout(self) -> RegisterLayout:
        """The registers (names, sizes, gdb numbers) and their target description."""
        ...

    def read_registers(self) -> bytes:
        """Every register in layout order, target byte order (``g``)."""
        ...

    def write_registers(self, data: bytes) -> None:
        """Set every register from `data`, laid out as `read_registers` returns them."""
        ...

    def read_register(self, regnum: int) -> bytes:
        """One register's bytes (``p``)."""
        ...

    def write_register(self, regnum: int, value: bytes) -> None:
        """Set one register (``P``); `value` has the register's size."""
        ...

    def read_memory(self, addr: int, length: int) -> bytes:
        """Up to `length` bytes at `addr`.  Fewer if the tail is unreadable; raise
        `TargetError` (e.g. errno 14, EFAULT) if not even the first byte is."""
        ...

    def write_memory(self, addr: int, data: bytes) -> None:
        """Write `data` at `addr`, all of it or raise `TargetError`."""
        ...

    def resume(self, action: ForwardResume, interrupted: Callable[[], bool]) -> StopReason:
        """Run forward as `action` says, until a stop; return its reason.

        Poll `interrupted()` often enough (it is cheap): once it returns True, stop at the
        next instruction boundary and return ``Signalled(GdbSignal.INT)``.
        """
        ...

    def stop_reason(self) -> StopReason:
        """Why the target is stopped now (``?``, asked when gdb connects)."""
        ...

    def exec_file(self) -> str | None:
        """Absolute path of the guest's executable, for gdb to load symbols; None if none."""
        ...

    def monitor(self, command: str, interrupted: Callable[[], bool]) -> str:
        """Run a ``monitor`` command (``qRcmd``); return its output text.

        A long command stops early once `interrupted()` is true (gdb sent 0x03), as a
        resume does, and says so in its output.  The session sends at most
        `MAX_MONITOR_OUTPUT` bytes of it; a command should bound what it builds itself.
        """
        ...

    def breakpoints(self) -> Breakpoints | None:
        """The breakpoint capability, or None: gdb then plants ``int3`` itself with ``M``."""
        ...

    def reverse(self) -> ReverseExecution | None:
        """The reverse execution capability, or None (not replaying)."""
        ...

    def detach(self) -> None:
        """gdb detaches (``D``); the target stays as it is."""
        ...

    def kill(self) -> None:
        """gdb kills the target (``k``)."""
        ...

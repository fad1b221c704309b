"""The only adapter between the two vocabularies: the Sessions served as gdbstub `Target`s.

gdbstub/ speaks RSP and knows nothing of rdebug; the Sessions know nothing of RSP.  This
module maps one onto the other: registers in gdb's i386 layout, memory through the guest
page tables, breakpoints and watchpoints, resume actions (forward and, when replaying,
backward) onto cont/stepi/reverse_cont/reverse_stepi, and the sessions' `Stop`s onto gdb
stop replies (`_reply`, the one mapping: `replaylog:begin`/`end` at the edges of a
recording, where the target stays alive).

`SessionTarget` serves a replaying `Session`: the recording is history, and gdb may not
change it (register and memory writes are refused with EPERM: gdb says "cannot access
memory" / "could not write register").  `LiveTarget` serves a `LiveSession`
(`rdebug run --gdb`): forward only, and the guest may be changed.  `listen` opens the
stub's socket and `attach_hint` tells a person how to attach gdb to it.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable
from pathlib import Path

from rdebug import monitor
from rdebug.api import LiveSession, Session, Stop, Where
from rdebug.errors import RdebugError, UsageError
from rdebug.gdbstub.errors import TargetError
from rdebug.gdbstub.server import GdbServer
from rdebug.gdbstub.target import (
    BreakpointKind,
    Breakpoints,
    Continue,
    Exited,
    ForwardResume,
    GdbSignal,
    LogBoundary,
    ReplayLogEnd,
    ReverseContinue,
    ReverseExecution,
    ReverseResume,
    ReverseStep,
    Signalled,
    Step,
    StopReason,
    SwBreak,
    Target,
    Watch,
)
from rdebug.gdbstub.target import WatchKind as GdbWatchKind
from rdebug.gdbstub.target_xml import RegisterLayout, i386_layout

_WATCH_KINDS = {
    BreakpointKind.WRITE_WATCH: "write",
    BreakpointKind.READ_WATCH: "read",
    BreakpointKind.ACCESS_WATCH: "access",
}
_GDB_WATCH = {"write": GdbWatchKind.WRITE, "read": GdbWatchKind.READ, "access": GdbWatchKind.ACCESS}


def listen(target: Target, host: str, port: int, what: str) -> tuple[GdbServer, tuple[str, int]]:
    """A stub serving `target`, listening on host:port (port 0: any free one), and the
    address it listens at; `what` names the option or command in the error message."""
    server = GdbServer(target, host, port)
    try:
        address = server.listen()
    except OSError as exc:
        server.close()
        hint = " (another server there? port 0 picks a free one)" if port else ""
        raise UsageError(f"{what}: cannot listen: {exc.strerror}{hint}") from None
    return server, address


def attach_hint(address: tuple[str, int], exec_file: object) -> str:
    """The gdb command line that attaches to the stub at `address`, with `exec_file`'s
    symbols."""
    return (
        f"  gdb -ex 'set architecture i386' -ex 'target remote {address[0]}:{address[1]}' "
        f"{exec_file}"
    )


def _reply(stop: Stop, replaying: bool) -> StopReason:
    """The stop reply for `stop`: the one mapping of the Stop vocabulary onto RSP's."""
    match stop.where:
        case Where.BREAKPOINT:
            return SwBreak()
        case Where.WATCHPOINT:
            assert stop.data_addr is not None and stop.watch_kind is not None
            return Watch(_GDB_WATCH[stop.watch_kind.value], stop.data_addr)
        case Where.BEGIN:
            return ReplayLogEnd(LogBoundary.BEGIN)
        case Where.END:
            return ReplayLogEnd(LogBoundary.END)
        case Where.EXITED if replaying:
            return ReplayLogEnd(LogBoundary.END)  # the end of the recording: still alive
        case Where.EXITED:
            return Exited((stop.exit_code or 0) & 0xFF)
        case Where.INTERRUPTED:
            return Signalled(GdbSignal.INT)
        case Where.CRASHED:
            return Signalled(GdbSignal.SEGV)
        case Where.TARGET | Where.REPLAY_BREAK | Where.HALTED | Where.OTHER:
            return Signalled(GdbSignal.TRAP)
    return Signalled(GdbSignal.TRAP)


def _failed(error: RdebugError) -> StopReason:
    """The stop reply for a resume the replay could not carry out (a log that diverges,
    a damaged trace...): SIGABRT where the machine stopped, after the reason on gdb's
    console."""
    return Signalled(GdbSignal.ABRT, message=f"rdebug: the replay cannot go on: {error}\n")


def _check_resume(action: ForwardResume, pc: int, last: StopReason, why: str) -> None:
    """Refuse, with a reason gdb prints, a resume signal or address that cannot be
    honoured (`why`: what runs).  The signal of the last stop passes: gdb hands back
    what it was told, and the guest already met it."""
    signal = action.signal
    if signal and not (isinstance(last, Signalled) and last.signal == signal):
        raise TargetError(
            errno.EINVAL, f"rdebug cannot deliver signal {signal} to the guest: {why}", tell=True
        )
    if action.addr is not None and action.addr != pc:
        raise TargetError(
            errno.EINVAL,
            f"rdebug cannot resume at {action.addr:#x}: {why}, from pc {pc:#x}",
            tell=True,
        )


def _watch_interrupts(
    interrupted: Callable[[], bool], interrupt: Callable[[], None]
) -> Callable[[], None]:
    """Forward gdb's Ctrl-C (`interrupted()` turns true) to `interrupt` while a long
    operation runs; returns the function that stops watching."""
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.02):
            if interrupted():
                interrupt()
                return

    thread = threading.Thread(target=watch, name="gdb-interrupt", daemon=True)
    thread.start()

    def stop() -> None:
        done.set()
        thread.join()

    return stop


class SessionTarget:
    """A replay `Session`, as gdb sees it: one i386 thread that can also run backward."""

    def __init__(self, session: Session, debugger: monitor.Debugger | None = None) -> None:
        self._session = session
        #: what `monitor CMD` runs on (the REPL's own, when the REPL serves gdb)
        self._debugger = monitor.Debugger(session) if debugger is None else debugger
        self._layout = i386_layout(sse=True)
        self._last: StopReason = Signalled(GdbSignal.TRAP)

    # -- registers and memory ----------------------------------------------------------

    def register_layout(self) -> RegisterLayout:
        return self._layout

    def read_register(self, regnum: int) -> bytes:
        register = self._layout.register(regnum)
        value = self._session.register(register.name)
        return (value & ((1 << register.bitsize) - 1)).to_bytes(register.size, "little")

    def read_registers(self) -> bytes:
        return b"".join(self.read_register(n) for n in range(len(self._layout.registers)))

    def write_registers(self, data: bytes) -> None:
        raise _read_only()

    def write_register(self, regnum: int, value: bytes) -> None:
        raise _read_only()

    def read_memory(self, addr: int, length: int) -> bytes:
        data = b""
        while len(data) < length:
            # page by page: return what is readable before the first unmapped page
            chunk = min(length - len(data), 4096 - ((addr + len(data)) & 0xFFF))
            try:
                data += self._session.read_memory(addr + len(data), chunk)
            except RdebugError:
                if not data:
                    raise TargetError(errno.EFAULT) from None
                break
        return data

    def write_memory(self, addr: int, data: bytes) -> None:
        raise _read_only()

    # -- running -------------------------------------------------------------------------

    def resume(self, action: ForwardResume, interrupted: Callable[[], bool]) -> StopReason:
        pc = self._session.register("eip")
        _check_resume(action, pc, self._last, "a replay goes on as recorded")
        stop_watching = _watch_interrupts(interrupted, self._session.interrupt)
        try:
            match action:
                case Continue():
                    stop = self._session.cont()
                case Step():
                    if self._session.icount >= self._session.end_icount:
                        stop = Stop(Where.END, self._session.icount)
                    else:
                        stop = self._session.stepi()
            self._last = _reply(stop, replaying=True)
        except RdebugError as exc:
            self._last = _failed(exc)
        finally:
            stop_watching()
            # an interrupt that came as it ended (gdb leaving) must not stop the next one
            self._session.clear_interrupt()
        return self._last

    def resume_reverse(self, action: ReverseResume, interrupted: Callable[[], bool]) -> StopReason:
        stop_watching = _watch_interrupts(interrupted, self._session.interrupt)
        try:
            match action:
                case ReverseContinue():
                    stop = self._session.reverse_cont()
                case ReverseStep():
                    stop = self._session.reverse_stepi()
            self._last = _reply(stop, replaying=True)
        except RdebugError as exc:
            self._last = _failed(exc)
        finally:
            stop_watching()
            # an interrupt that came as it ended (gdb leaving) must not stop the next one
            self._session.clear_interrupt()
        return self._last

    def stop_reason(self) -> StopReason:
        return self._last

    # -- the rest ------------------------------------------------------------------------

    def exec_file(self) -> str | None:
        return str(Path(self._session.trace.gdb_symbols()).resolve())

    def monitor(self, command: str, interrupted: Callable[[], bool]) -> str:
        # 0x03 stops a long command as it stops a resume
        stop_watching = _watch_interrupts(interrupted, self._session.interrupt)
        try:
            return self._debugger.execute(command)
        finally:
            stop_watching()
            # an interrupt that came as it ended (gdb leaving) must not stop the next one
            self._session.clear_interrupt()

    def breakpoints(self) -> Breakpoints | None:
        return _SessionBreakpoints(self._session, self._debugger)

    def reverse(self) -> ReverseExecution | None:
        return self

    def detach(self) -> None:
        pass

    def kill(self) -> None:
        pass


class _SessionBreakpoints:
    """gdb's ``Z``/``z`` on the session.  A breakpoint or watchpoint the monitor's
    `debugger` also holds (``monitor break``) stays when gdb removes its own there (gdb
    removes and re-inserts its breakpoints around every stop, and all of them when it
    leaves)."""

    def __init__(self, session: Session, debugger: monitor.Debugger) -> None:
        self._session = session
        self._debugger = debugger

    def _held_by_monitor(self, kind: BreakpointKind, addr: int, length: int) -> bool:
        for point in self._debugger.points.values():
            if kind in (BreakpointKind.SOFTWARE, BreakpointKind.HARDWARE):
                if point.length == 0 and point.addr == addr:
                    return True
            elif (point.addr, point.length, point.kind) == (
                addr,
                length,
                _WATCH_KINDS[kind],
            ):
                return True
        return False

    def supported_kinds(self) -> frozenset[BreakpointKind]:
        return frozenset(BreakpointKind)

    def add_breakpoint(self, kind: BreakpointKind, addr: int, length: int) -> None:
        try:
            if kind in (BreakpointKind.SOFTWARE, BreakpointKind.HARDWARE):
                self._session.add_breakpoint(addr)
            else:
                self._session.add_watchpoint(addr, length, _WATCH_KINDS[kind])
        except RdebugError as exc:  # a range the machine cannot watch
            raise TargetError(errno.EINVAL, str(exc)) from None

    def remove_breakpoint(self, kind: BreakpointKind, addr: int, length: int) -> None:
        if self._held_by_monitor(kind, addr, length):
            return
        if kind in (BreakpointKind.SOFTWARE, BreakpointKind.HARDWARE):
            self._session.remove_breakpoint(addr)
        else:
            self._session.remove_watchpoint(addr, length, _WATCH_KINDS[kind])


class LiveTarget:
    """A `LiveSession` (`rdebug run --gdb`): forward only, nothing recorded.

    Breakpoints are the session's; watchpoints are left to gdb (it single-steps and
    compares, as for any target without them).  Unlike a replay, the guest may be
    changed: memory and general registers can be written.
    """

    def __init__(self, session: LiveSession, exec_file: Path | None) -> None:
        self._session = session
        self._exec_file = exec_file
        self._layout = i386_layout(sse=True)
        self._last: StopReason = Signalled(GdbSignal.TRAP)
        #: how the guest ended (exited, powered off), once it has: nothing more to run
        self.ended: Stop | None = None

    def register_layout(self) -> RegisterLayout:
        return self._layout

    def read_register(self, regnum: int) -> bytes:
        register = self._layout.register(regnum)
        value = self._session.register(register.name)
        return (value & ((1 << register.bitsize) - 1)).to_bytes(register.size, "little")

    def read_registers(self) -> bytes:
        return b"".join(self.read_register(n) for n in range(len(self._layout.registers)))

    def write_register(self, regnum: int, value: bytes) -> None:
        name = self._layout.register(regnum).name
        if name not in self._session.writable_registers():
            raise TargetError(errno.EPERM)
        self._session.write_register(name, int.from_bytes(value, "little"))

    def write_registers(self, data: bytes) -> None:
        writable = self._session.writable_registers()
        for regnum, register in enumerate(self._layout.registers):
            if register.name in writable:
                offset = self._layout.offset(regnum)
                self.write_register(regnum, data[offset : offset + register.size])

    def read_memory(self, addr: int, length: int) -> bytes:
        data = self._session.read_memory(addr, length)
        if data is None:
            data = self._session.read_memory(addr, 1)
            if data is None:
                raise TargetError(errno.EFAULT)
        return data

    def write_memory(self, addr: int, data: bytes) -> None:
        if not self._session.write_memory(addr, data):
            raise TargetError(errno.EFAULT)

    def resume(self, action: ForwardResume, interrupted: Callable[[], bool]) -> StopReason:
        if action.addr is not None and "eip" in self._session.writable_registers():
            self._session.write_register("eip", action.addr & 0xFFFFFFFF)  # c ADDR: honoured
        pc = self._session.register("eip")
        _check_resume(action, pc, self._last, "the guest runs on")
        stop_watching = _watch_interrupts(interrupted, self._session.interrupt)
        try:
            target = self._session.icount + 1 if isinstance(action, Step) else None
            stop = self._session.run(target)
        finally:
            stop_watching()
        if stop.where is Where.EXITED:
            self.ended = stop
        self._last = _reply(stop, replaying=False)
        return self._last

    def stop_reason(self) -> StopReason:
        return self._last

    def exec_file(self) -> str | None:
        return None if self._exec_file is None else str(self._exec_file.resolve())

    def monitor(self, command: str, interrupted: Callable[[], bool]) -> str:
        if command.strip() == "info replay":
            return f"live run (not replaying): icount {self._session.icount}\n"
        return "error: this is a live run: monitor commands act on replays\n"

    def breakpoints(self) -> Breakpoints | None:
        return self

    def supported_kinds(self) -> frozenset[BreakpointKind]:
        return frozenset({BreakpointKind.SOFTWARE, BreakpointKind.HARDWARE})

    def add_breakpoint(self, kind: BreakpointKind, addr: int, length: int) -> None:
        self._session.add_breakpoint(addr)

    def remove_breakpoint(self, kind: BreakpointKind, addr: int, length: int) -> None:
        self._session.remove_breakpoint(addr)

    def reverse(self) -> ReverseExecution | None:
        return None

    def detach(self) -> None:
        pass

    def kill(self) -> None:
        pass


def _read_only() -> TargetError:
    """What a replay answers to G, P and M/X: gdb prints the text (``E.`` reply)."""
    return TargetError(
        errno.EPERM, "the recording is read-only: a replay cannot change it", tell=True
    )

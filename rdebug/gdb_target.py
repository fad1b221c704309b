"""The only adapter between the two vocabularies: a `Session` served as a gdbstub `Target`.

gdbstub/ speaks RSP and knows nothing of rdebug; the Session knows nothing of RSP.  This
module maps one onto the other: registers in gdb's i386 layout, memory through the guest
page tables, breakpoints and watchpoints onto the timeline's, resume actions (forward
and, when replaying, backward) onto cont/stepi/reverse_cont/reverse_stepi, and the
timeline's stops onto gdb stop reasons (`replaylog:begin`/`end` at the edges of the
recording: the target stays alive there).

The recording is history: gdb may not change it.  Register and memory writes are
refused with EPERM (gdb says "cannot access memory" / "could not write register").
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable
from pathlib import Path

from rdebug import monitor
from rdebug.api import Session
from rdebug.errors import RdebugError
from rdebug.gdbstub.errors import TargetError
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
    Watch,
)
from rdebug.gdbstub.target import WatchKind as GdbWatchKind
from rdebug.gdbstub.target_xml import RegisterLayout, i386_layout
from rdebug.machine.cpu import register_ids
from rdebug.machine.machine import Machine, StopEvent
from rdebug.machine.machine import StopReason as StopReason_
from rdebug.replay.timeline import Stop, Where

_WATCH_KINDS = {
    BreakpointKind.WRITE_WATCH: "write",
    BreakpointKind.READ_WATCH: "read",
    BreakpointKind.ACCESS_WATCH: "access",
}
_GDB_WATCH = {"write": GdbWatchKind.WRITE, "read": GdbWatchKind.READ, "access": GdbWatchKind.ACCESS}


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
        raise TargetError(errno.EPERM)

    def write_register(self, regnum: int, value: bytes) -> None:
        raise TargetError(errno.EPERM)

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
        raise TargetError(errno.EPERM)

    # -- running -------------------------------------------------------------------------

    def _watch_interrupts(self, interrupted: Callable[[], bool]) -> Callable[[], None]:
        """Forward gdb's Ctrl-C to the session while a long operation runs."""
        done = threading.Event()

        def watch() -> None:
            while not done.wait(0.02):
                if interrupted():
                    self._session.interrupt()
                    return

        thread = threading.Thread(target=watch, name="gdb-interrupt", daemon=True)
        thread.start()

        def stop() -> None:
            done.set()
            thread.join()

        return stop

    def resume(self, action: ForwardResume, interrupted: Callable[[], bool]) -> StopReason:
        stop_watching = self._watch_interrupts(interrupted)
        try:
            match action:
                case Continue():
                    stop = self._session.cont()
                case Step():
                    if self._session.icount >= self._session.end_icount:
                        stop = Stop(Where.END, self._session.icount)
                    else:
                        stop = self._session.stepi()
        except RdebugError:
            stop = Stop(Where.INTERRUPTED, self._session.icount)
        finally:
            stop_watching()
        self._last = self._reason(stop, stepping=isinstance(action, Step))
        return self._last

    def resume_reverse(self, action: ReverseResume, interrupted: Callable[[], bool]) -> StopReason:
        stop_watching = self._watch_interrupts(interrupted)
        try:
            match action:
                case ReverseContinue():
                    stop = self._session.reverse_cont()
                case ReverseStep():
                    stop = self._session.reverse_stepi()
        except RdebugError:
            stop = Stop(Where.INTERRUPTED, self._session.icount)
        finally:
            stop_watching()
        self._last = self._reason(stop, stepping=isinstance(action, ReverseStep))
        return self._last

    def _reason(self, stop: Stop, stepping: bool) -> StopReason:
        match stop.where:
            case Where.BREAKPOINT:
                return SwBreak()
            case Where.WATCHPOINT:
                assert stop.data_addr is not None and stop.watch_kind is not None
                return Watch(_GDB_WATCH[stop.watch_kind.value], stop.data_addr)
            case Where.BEGIN:
                return ReplayLogEnd(LogBoundary.BEGIN)
            case Where.END | Where.EXITED:
                return ReplayLogEnd(LogBoundary.END)
            case Where.INTERRUPTED:
                return Signalled(GdbSignal.INT)
            case Where.TARGET | Where.REPLAY_BREAK | Where.OTHER:
                return Signalled(GdbSignal.TRAP)
        return Signalled(GdbSignal.TRAP)

    def stop_reason(self) -> StopReason:
        return self._last

    # -- the rest ------------------------------------------------------------------------

    def exec_file(self) -> str | None:
        return str(Path(self._session.trace.path / "guest").resolve())

    def monitor(self, command: str, interrupted: Callable[[], bool]) -> str:
        stop_watching = self._watch_interrupts(interrupted)  # 0x03 stops a long command
        try:
            return self._debugger.execute(command)
        finally:
            stop_watching()

    def breakpoints(self) -> Breakpoints | None:
        return _SessionBreakpoints(self._session)

    def reverse(self) -> ReverseExecution | None:
        return self

    def detach(self) -> None:
        pass

    def kill(self) -> None:
        pass


class _SessionBreakpoints:
    def __init__(self, session: Session) -> None:
        self._session = session

    def supported_kinds(self) -> frozenset[BreakpointKind]:
        return frozenset(BreakpointKind)

    def add_breakpoint(self, kind: BreakpointKind, addr: int, length: int) -> None:
        if kind in (BreakpointKind.SOFTWARE, BreakpointKind.HARDWARE):
            self._session.add_breakpoint(addr)
        else:
            self._session.add_watchpoint(addr, length, _WATCH_KINDS[kind])

    def remove_breakpoint(self, kind: BreakpointKind, addr: int, length: int) -> None:
        if kind in (BreakpointKind.SOFTWARE, BreakpointKind.HARDWARE):
            self._session.remove_breakpoint(addr)
        else:
            self._session.remove_watchpoint(addr, length, _WATCH_KINDS[kind])


class LiveTarget:
    """A machine running live (`rdebug run --gdb`): forward only, nothing recorded.

    Breakpoints are the machine's; watchpoints are left to gdb (it single-steps and
    compares, as for any target without them).  Unlike a replay, the guest may be
    changed: memory and general registers can be written.
    """

    def __init__(self, machine: Machine, exec_file: Path | None) -> None:
        self._machine = machine
        self._exec_file = exec_file
        self._layout = i386_layout(sse=True)
        self._last: StopReason = Signalled(GdbSignal.TRAP)
        self._breakpoints: set[int] = set()

    def register_layout(self) -> RegisterLayout:
        return self._layout

    def read_register(self, regnum: int) -> bytes:
        register = self._layout.register(regnum)
        value = self._machine.cpu.gdb_register(register.name)
        return (value & ((1 << register.bitsize) - 1)).to_bytes(register.size, "little")

    def read_registers(self) -> bytes:
        return b"".join(self.read_register(n) for n in range(len(self._layout.registers)))

    def write_register(self, regnum: int, value: bytes) -> None:
        name = self._layout.register(regnum).name
        if name not in register_ids():
            raise TargetError(errno.EPERM)
        self._machine.cpu.write(name, int.from_bytes(value, "little"))
        self._machine.counter.invalidate()

    def write_registers(self, data: bytes) -> None:
        for regnum, register in enumerate(self._layout.registers):
            if register.name in register_ids():
                offset = self._layout.offset(regnum)
                self.write_register(regnum, data[offset : offset + register.size])

    def read_memory(self, addr: int, length: int) -> bytes:
        data = self._machine.cpu.read_linear(addr, length)
        if data is None:
            data = self._machine.cpu.read_linear(addr, 1)
            if data is None:
                raise TargetError(errno.EFAULT)
        return data

    def write_memory(self, addr: int, data: bytes) -> None:
        if not self._machine.cpu.write_linear(addr, data):
            raise TargetError(errno.EFAULT)
        self._machine.counter.invalidate()

    def resume(self, action: ForwardResume, interrupted: Callable[[], bool]) -> StopReason:
        done = threading.Event()

        def watch() -> None:
            while not done.wait(0.02):
                if interrupted():
                    self._machine.interrupt()
                    return

        watcher = threading.Thread(target=watch, name="gdb-interrupt", daemon=True)
        watcher.start()
        try:
            until = self._machine.icount + 1 if isinstance(action, Step) else None
            stop = self._machine.run(until)
        finally:
            done.set()
            watcher.join()
        self._last = self._live_reason(stop)
        return self._last

    @staticmethod
    def _live_reason(stop: StopEvent) -> StopReason:
        match stop.reason:
            case StopReason_.BREAKPOINT:
                return SwBreak()
            case StopReason_.EXIT:
                return Exited((stop.exit_code or 0) & 0xFF)
            case StopReason_.INTERRUPTED:
                return Signalled(GdbSignal.INT)
            case StopReason_.SHUTDOWN | StopReason_.FAULT:
                return Signalled(GdbSignal.SEGV)
            case _:
                return Signalled(GdbSignal.TRAP)

    def stop_reason(self) -> StopReason:
        return self._last

    def exec_file(self) -> str | None:
        return None if self._exec_file is None else str(self._exec_file.resolve())

    def monitor(self, command: str, interrupted: Callable[[], bool]) -> str:
        if command.strip() == "info replay":
            return f"live run (not replaying): icount {self._machine.icount}\n"
        return "error: this is a live run: monitor commands act on replays\n"

    def breakpoints(self) -> Breakpoints | None:
        return self

    def supported_kinds(self) -> frozenset[BreakpointKind]:
        return frozenset({BreakpointKind.SOFTWARE, BreakpointKind.HARDWARE})

    def add_breakpoint(self, kind: BreakpointKind, addr: int, length: int) -> None:
        self._machine.add_breakpoint(addr)

    def remove_breakpoint(self, kind: BreakpointKind, addr: int, length: int) -> None:
        self._machine.remove_breakpoint(addr)

    def reverse(self) -> ReverseExecution | None:
        return None

    def detach(self) -> None:
        pass

    def kill(self) -> None:
        pass

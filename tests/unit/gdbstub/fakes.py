"""`FakeTarget`: a `Target` made of a register file, a bytearray of memory, a breakpoint
set and a scripted resume, for driving the gdbstub without an emulator."""

from __future__ import annotations

import struct
import time
from collections import deque
from collections.abc import Callable

from rdebug.gdbstub import (
    BreakpointKind,
    Continue,
    ForwardResume,
    GdbSignal,
    LogBoundary,
    RegisterLayout,
    ReplayLogEnd,
    Resume,
    ReverseContinue,
    ReverseResume,
    ReverseStep,
    Signalled,
    Step,
    StopReason,
    SwBreak,
    TargetError,
    i386_layout,
)
from tests.conftest import EVENT_TIMEOUT

EFAULT = 14

#: Something the scripted resume returns, or a callable computing it from `interrupted`.
Scripted = StopReason | Callable[[Callable[[], bool]], StopReason]


def wait_for_interrupt(interrupted: Callable[[], bool]) -> StopReason:
    """A run that only ends when gdb interrupts it (bounded, so a broken test fails)."""
    deadline = time.monotonic() + EVENT_TIMEOUT
    while not interrupted():
        if time.monotonic() > deadline:
            raise AssertionError("the target was never interrupted")
        time.sleep(0.001)
    return Signalled(GdbSignal.INT)


class FakeBreakpoints:
    """The breakpoint capability: a set of (kind, addr, length)."""

    def __init__(self, kinds: frozenset[BreakpointKind]) -> None:
        self.kinds = kinds
        self.placed: set[tuple[BreakpointKind, int, int]] = set()

    def supported_kinds(self) -> frozenset[BreakpointKind]:
        return self.kinds

    def add_breakpoint(self, kind: BreakpointKind, addr: int, length: int) -> None:
        if addr == 0xDEAD:
            raise TargetError(EFAULT)
        self.placed.add((kind, addr, length))

    def remove_breakpoint(self, kind: BreakpointKind, addr: int, length: int) -> None:
        self.placed.discard((kind, addr, length))


class FakeReverse:
    """The reverse capability, delegating to the target's history."""

    def __init__(self, target: FakeTarget) -> None:
        self._target = target

    def resume_reverse(self, action: ReverseResume, interrupted: Callable[[], bool]) -> StopReason:
        return self._target.run(action, interrupted)


class FakeTarget:
    """Registers, memory at [`memory_base`, +len), breakpoints, a pc history, a script.

    Without a script, a step moves eip on by one byte (SIGTRAP), a continue stops at the
    next software breakpoint (or the end of memory, `replaylog:end`), a reverse step moves
    eip back by one unless it is at the start (`replaylog:begin`), a reverse continue goes
    back to the last breakpoint or the start.  `script` overrides the next resumes in turn.
    """

    def __init__(
        self,
        *,
        layout: RegisterLayout | None = None,
        memory_base: int = 0x1000,
        memory: bytes = bytes(range(256)) * 16,
        eip: int = 0x1000,
        reverse: bool = True,
        breakpoints: frozenset[BreakpointKind] | None = frozenset(BreakpointKind),
        exec_file: str | None = None,
    ) -> None:
        self.layout = layout or i386_layout()
        self.regs = bytearray(self.layout.g_size)
        self.memory_base = memory_base
        self.memory = bytearray(memory)
        self.start_eip = eip
        self.eip = eip
        self._reverse = FakeReverse(self) if reverse else None
        self.bps = FakeBreakpoints(breakpoints) if breakpoints is not None else None
        self._exec_file = exec_file
        self.script: deque[Scripted] = deque()
        self.resumes: list[Resume] = []
        self.monitor_commands: list[str] = []
        self.detached = False
        self.killed = False
        self.last_stop: StopReason = Signalled(GdbSignal.TRAP)

    # -- eip lives in the register file ---------------------------------------------------

    @property
    def eip(self) -> int:
        off = self.layout.offset(self.layout.regnum("eip"))
        value: int = struct.unpack_from("<I", self.regs, off)[0]
        return value

    @eip.setter
    def eip(self, value: int) -> None:
        struct.pack_into("<I", self.regs, self.layout.offset(self.layout.regnum("eip")), value)

    # -- Target -------------------------------------------------------------------------

    def register_layout(self) -> RegisterLayout:
        return self.layout

    def read_registers(self) -> bytes:
        return bytes(self.regs)

    def write_registers(self, data: bytes) -> None:
        self.regs[:] = data

    def read_register(self, regnum: int) -> bytes:
        off = self.layout.offset(regnum)
        return bytes(self.regs[off : off + self.layout.register(regnum).size])

    def write_register(self, regnum: int, value: bytes) -> None:
        off = self.layout.offset(regnum)
        self.regs[off : off + len(value)] = value

    def read_memory(self, addr: int, length: int) -> bytes:
        start = addr - self.memory_base
        if not 0 <= start < len(self.memory):
            raise TargetError(EFAULT)
        return bytes(self.memory[start : start + length])

    def write_memory(self, addr: int, data: bytes) -> None:
        start = addr - self.memory_base
        if start < 0 or start + len(data) > len(self.memory):
            raise TargetError(EFAULT)
        self.memory[start : start + len(data)] = data

    def resume(self, action: ForwardResume, interrupted: Callable[[], bool]) -> StopReason:
        return self.run(action, interrupted)

    def stop_reason(self) -> StopReason:
        return self.last_stop

    def exec_file(self) -> str | None:
        return self._exec_file

    def monitor(self, command: str) -> str:
        self.monitor_commands.append(command)
        if command == "crash":
            raise RuntimeError("the fake target crashed")
        if command == "fail":
            raise TargetError(5)
        if command.startswith("echo "):
            return command[5:]
        return ""

    def breakpoints(self) -> FakeBreakpoints | None:
        return self.bps

    def reverse(self) -> FakeReverse | None:
        return self._reverse

    def detach(self) -> None:
        self.detached = True

    def kill(self) -> None:
        self.killed = True

    # -- the model ----------------------------------------------------------------------

    def run(self, action: Resume, interrupted: Callable[[], bool]) -> StopReason:
        self.resumes.append(action)
        if self.script:
            item = self.script.popleft()
            reason = item(interrupted) if callable(item) else item
        else:
            reason = self._model(action)
        self.last_stop = reason
        return reason

    def _sw_breaks(self) -> set[int]:
        if self.bps is None:
            return set()
        return {a for k, a, _ in self.bps.placed if k is BreakpointKind.SOFTWARE}

    def _model(self, action: Resume) -> StopReason:
        end = self.memory_base + len(self.memory)
        match action:
            case Step():
                self.eip += 1
                return Signalled(GdbSignal.TRAP)
            case Continue():
                breaks = self._sw_breaks()
                pc = self.eip + 1
                while pc < end and pc not in breaks:
                    pc += 1
                self.eip = min(pc, end)
                return SwBreak() if pc in breaks else ReplayLogEnd(LogBoundary.END)
            case ReverseStep():
                if self.eip <= self.start_eip:
                    return ReplayLogEnd(LogBoundary.BEGIN)
                self.eip -= 1
                return Signalled(GdbSignal.TRAP)
            case ReverseContinue():
                breaks = self._sw_breaks()
                pc = self.eip - 1
                while pc > self.start_eip and pc not in breaks:
                    pc -= 1
                self.eip = max(pc, self.start_eip)
                return SwBreak() if pc in breaks else ReplayLogEnd(LogBoundary.BEGIN)

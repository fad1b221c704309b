"""The reference instruction counter: the test oracle for `NativeCounter`.

It counts with one Python callback per instruction: slow, simple, obviously right.
Tests give it to a `Machine` (`Machine(..., counter=ReferenceCounter)`) and compare
every stop with the native counter's.  It is not part of the runtime package.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable

import capstone
from unicorn import UC_HOOK_CODE, Uc

from rdebug.errors import MachineError
from rdebug.machine.countdown import Countdown
from rdebug.machine.counter import NO_TARGET, NO_UNTIL, StopCause
from rdebug.machine.cpu import EFLAGS_IF, Cpu
from tests.oracle.block_decoder import is_hlt, opens_shadow, transfers_control


class _Stop(enum.Enum):
    """A stop on its way (the reference counter's own names for _icount.c's)."""

    TARGET = 1
    IRQ_WINDOW = 2
    BREAKPOINT = 3
    REQUESTED = 5
    DEADLINE = 6


class ReferenceCounter:
    """Counts one Python callback per instruction: slow, simple, the yardstick in tests."""

    def __init__(self, cpu: Cpu) -> None:
        self._cpu = cpu
        self._uc = cpu.uc
        self._cs32 = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_32)
        self._cs16 = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_16)
        self._kinds: dict[bytes, tuple[bool, bool, bool]] = {}
        self.icount = 0
        self.irq_check = False
        self._target = NO_TARGET
        self._soft_target = NO_TARGET
        self._breakpoints: set[int] = set()
        self._stop: _Stop | None = None  # a stop on its way
        self._requested_icount = 0
        self._requested_canonical = False
        self._last_addr: int | None = None  # the instruction whose hook ran last
        self._prev_shadow = False  # ... opened an interrupt shadow
        self._prev_branch = True  # ... transferred control (reset counts as one)
        self._halting = False  # ... was HLT
        self._shadow_after_stop = False
        self._canonical = True
        self._skip_bp: int | None = None
        self._resumes_elsewhere = False  # an interrupt was delivered since the last stop
        self._interrupted = False
        self._in_special = False
        self._stop_next = False
        self._countdown: Countdown | None = None
        self._hook = self._uc.hook_add(UC_HOOK_CODE, self._on_insn)

    def close(self) -> None:
        self._uc.hook_del(self._hook)

    def _kind(self, insn: bytes) -> tuple[bool, bool, bool]:
        """(opens a shadow, is HLT, transfers control) of one instruction."""
        kind = self._kinds.get(insn)
        if kind is None:
            # The class of an instruction does not depend on the code size, only its length
            # does, and `insn` is exactly one instruction as the engine decoded it.
            decoded = list(self._cs32.disasm_lite(insn, 0, 1)) or list(
                self._cs16.disasm_lite(insn, 0, 1)
            )
            mnemonic = decoded[0][2] if decoded else ""
            kind = (opens_shadow(insn), is_hlt(insn), transfers_control(mnemonic))
            self._kinds[insn] = kind
        return kind

    def _on_insn(self, uc: Uc, addr: int, size: int, _user: object) -> None:
        if self._stop is not None:
            return
        if self._stop_next:
            self._stop_next = False
            self._stop = _Stop.REQUESTED
            self._uc.emu_stop()
            return
        if self.irq_check and not self._prev_shadow and self._cpu.read("eflags") & EFLAGS_IF:
            self._halt_here(_Stop.IRQ_WINDOW)
            return
        if self.icount >= self._soft_target and self._prev_branch:
            self._halt_here(_Stop.DEADLINE)
            return
        if self.icount >= self._target or self._interrupted:
            self._halt_here(_Stop.TARGET)
            return
        if addr in self._breakpoints and addr != self._skip_bp:
            self._halt_here(_Stop.BREAKPOINT)
            return
        self._skip_bp = None
        if self._prev_branch and self._countdown is not None and self._countdown.armed:
            self._countdown.publish_at(self.icount)  # a branch boundary
        self.icount += 1
        self._last_addr = addr
        insn = self._cpu.read_linear(addr, size) or b""
        self._prev_shadow, self._halting, self._prev_branch = self._kind(insn)

    def _halt_here(self, reason: _Stop) -> None:
        self._stop = reason
        self._shadow_after_stop = self._prev_shadow
        self._canonical = self._prev_branch
        self._uc.emu_stop()

    def begin_special(self) -> int:
        assert self._last_addr is not None
        self._in_special = True
        return self._last_addr  # the instruction whose hook ran last is the one executing

    def end_special(self) -> None:
        self._in_special = False

    def current_icount(self) -> int:
        if self._in_special:
            return self.icount - 1
        if self._last_addr is not None and self._cpu.linear_pc() == self._last_addr:
            return self.icount - 1  # inside the instruction whose hook ran last
        return self.icount

    def exception_taken(self, faulting: bool) -> None:
        if faulting and self._last_addr is not None and (self._cpu.linear_pc() == self._last_addr):
            self.icount -= 1  # the faulting instruction did not complete
        self._last_addr = None
        self._prev_shadow = False
        self._prev_branch = True
        self._halting = False

    def control_transferred(self) -> None:
        self._resumes_elsewhere = True
        self._prev_shadow = False
        self._prev_branch = True
        self._shadow_after_stop = False
        self._canonical = True

    def request_stop_after_current(self, pc: int | None = None) -> None:
        del pc  # EIP is exact here: a code hook on every instruction syncs it
        # Stop when the next instruction starts (never uc_emu_stop inside an I/O:
        # unicorn would run a string I/O iteration again).
        self._requested_icount = self.icount
        self._requested_canonical = self._prev_branch
        self._stop_next = True

    def request_stop_before_current(self) -> None:
        self._requested_icount = self.current_icount()
        self._requested_canonical = self._prev_branch
        self._stop = _Stop.REQUESTED
        self._uc.emu_stop()

    def request_stop_soon(self) -> int:
        self.request_stop_after_current()
        return self.icount - 1  # exactly the instruction whose hook ran last

    def in_shadow(self) -> bool:
        return self._shadow_after_stop

    def at_branch_boundary(self) -> bool:
        return self._canonical

    def previous_instruction(self, linear_pc: int) -> int | None:
        if self._last_addr is None or self._last_addr == linear_pc:
            return None
        return self._last_addr

    def restore_position(self, icount: int, branch_boundary: bool, shadow: bool) -> None:
        self.icount = icount
        self._canonical = branch_boundary
        self._shadow_after_stop = shadow
        self._last_addr = None
        self._resumes_elsewhere = False

    def interrupt(self) -> None:
        self._interrupted = True

    def clear_interrupt(self) -> None:
        self._interrupted = False

    def execute(self, target: int, soft_target: int = NO_TARGET) -> StopCause:
        if target < self.icount:
            raise MachineError(f"target {target} is in the past (icount {self.icount})")
        if self._interrupted:
            self._interrupted = False
            return StopCause.INTERRUPTED
        self._target = target
        self._soft_target = soft_target
        self._stop = None
        self._stop_next = False
        self._halting = False
        self._prev_shadow = self._shadow_after_stop
        self._prev_branch = self._canonical
        # a breakpoint where the last stop was is stepped over, not one in a handler
        self._skip_bp = None if self._resumes_elsewhere else self._cpu.linear_pc()
        self._resumes_elsewhere = False
        self._cpu.clear_exception_state()
        self._cpu.emu_start(self._cpu.eip, NO_UNTIL)
        stop, self._stop = self._stop, None
        self._last_addr = None
        if stop is _Stop.TARGET:
            if self._interrupted:
                self._interrupted = False
                return StopCause.INTERRUPTED
            return StopCause.TARGET
        if stop is _Stop.DEADLINE:
            return StopCause.DEADLINE
        if stop is _Stop.IRQ_WINDOW:
            self._shadow_after_stop = False
            return StopCause.IRQ_WINDOW
        if stop is _Stop.BREAKPOINT:
            return StopCause.BREAKPOINT
        self._shadow_after_stop = False
        if stop is _Stop.REQUESTED:
            self.icount = self._requested_icount
            self._canonical = self._requested_canonical
            return StopCause.REQUESTED
        if self._halting:
            self._canonical = True
            return StopCause.HALTED
        raise MachineError(f"the engine stopped for no known reason at eip {self._cpu.eip:#x}")

    def add_breakpoint(self, addr: int) -> None:
        self._breakpoints.add(addr)

    def remove_breakpoint(self, addr: int) -> None:
        self._breakpoints.discard(addr)

    def at_block_start(self) -> bool:
        return False  # EIP is exact: a code hook on every instruction syncs it

    def executing(self, pc: int | Callable[[], int | None] | None) -> None:
        del pc  # EIP is exact: a code hook on every instruction syncs it

    def attach_countdown(self, countdown: Countdown) -> None:
        self._countdown = countdown

    def memory_rewritten(self, pages: Iterable[int]) -> None:
        del pages
        self.invalidate()

    def invalidate(self) -> None:
        self._uc.ctl_flush_tb()

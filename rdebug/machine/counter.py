"""Exact instruction counting: what a counter does, and why it stops.

`icount` is the number of guest instructions started since reset (each iteration of a
`rep` instruction counts as one, as in QEMU's icount).  A counter runs the engine from the
current EIP until one of these stops, always at an exact instruction boundary:

- TARGET: icount reached the (hard) target given to `execute`;
- DEADLINE: icount passed the soft target and the CPU is at a *branch boundary*: the
  previous instruction transferred control (a jump, call, return, INT, IRET, loop, HLT,
  or an interrupt delivered by the machine).  Such positions depend only on the
  instructions executed, never on how unicorn cut its translation blocks, so stopping
  there is deterministic and costs no partial-block execution (device timers use it);
- IRQ_WINDOW: `irq_check` is set and an interrupt can be taken (IF=1, no STI/MOV SS shadow);
- BREAKPOINT: a breakpoint address is about to execute;
- REQUESTED: a hook called `request_stop_after_current` (the stop lands after the
  instruction that made the request) or `request_stop_before_current`;
- HALTED: the guest executed HLT (EIP is just past it).

`NativeCounter` (machine/native_counter.py) does this at raw unicorn speed with the C
hooks in `_icount.c`; the machine takes its counter by injection, so tests can give it
the reference counter (tests/oracle/reference_counter.py), which does the same slowly
and obviously with a Python hook on every instruction, and compare every stop.
Blocks are decoded by machine/blocks.py.  Knows nothing of devices, logs or gdb.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from typing import Protocol

from rdebug.machine.countdown import Countdown
from rdebug.machine.cpu import Cpu

#: `until` address that a 32-bit guest can never reach.
NO_UNTIL = 1 << 40
#: "No target": an icount no run reaches.
NO_TARGET = (1 << 64) - 1


class StopCause(enum.Enum):
    TARGET = "target"
    DEADLINE = "deadline"
    IRQ_WINDOW = "irq-window"
    BREAKPOINT = "breakpoint"
    REQUESTED = "requested"
    HALTED = "halted"
    INTERRUPTED = "interrupted"


class Counter(Protocol):
    """What the run loop needs of an instruction counter."""

    icount: int
    irq_check: bool

    def execute(self, target: int, soft_target: int = NO_TARGET) -> StopCause:
        """Run from EIP until a stop; afterwards `icount` is exact."""
        ...

    def at_branch_boundary(self) -> bool:
        """After a stop: the previous instruction transferred control (see DEADLINE)."""
        ...

    def control_transferred(self) -> None:
        """The machine delivered an interrupt: now at a branch boundary, outside shadows."""
        ...

    def current_icount(self) -> int:
        """Instructions completed before the one executing now (valid inside hooks too)."""
        ...

    def at_block_start(self) -> bool:
        """Inside a memory hook: EIP is the first instruction of the block running (where
        unicorn leaves it when it cannot tell the instruction: EIP may be stale)."""
        ...

    def executing(self, pc: int | Callable[[], int | None] | None) -> None:
        """Inside a memory hook: the linear address of the instruction executing (None:
        back to EIP), for `current_icount` (unicorn may leave EIP at the block start);
        or a function that finds it (None if it cannot), called once if ever needed."""
        ...

    def begin_special(self) -> int:
        """First thing in an I/O or RDTSC hook: the linear address of that instruction.

        Until `end_special`, `current_icount` is the position of that instruction and
        `request_stop_after_current` stops right after it.
        """
        ...

    def end_special(self) -> None: ...

    def exception_taken(self, faulting: bool) -> None:
        """Inside an interrupt hook: fix icount at the exception (fault or trap)."""
        ...

    def request_stop_after_current(self, pc: int | None = None) -> None:
        """From an I/O or instruction hook: stop once the current instruction is done.

        `pc`: the linear address of that instruction when the caller knows it better
        than EIP (a memory hook: unicorn may leave EIP at the block's start there)."""
        ...

    def request_stop_before_current(self) -> None:
        """From an exception hook: stop before the instruction at EIP."""
        ...

    def request_stop_soon(self) -> int:
        """From a memory hook (which does not know its instruction): stop at the next
        block boundary.  Returns the icount of the first instruction that may have made
        the access (the access lies in [that, the icount of the stop))."""
        ...

    def in_shadow(self) -> bool:
        """After a stop: the next instruction is in an interrupt shadow."""
        ...

    def previous_instruction(self, linear_pc: int) -> int | None:
        """Inside a hook: the instruction completed just before `linear_pc`, if known."""
        ...

    def interrupt(self) -> None:
        """Any thread: make the running (or next) `execute` stop soon (INTERRUPTED)."""
        ...

    def clear_interrupt(self) -> None: ...

    def restore_position(self, icount: int, branch_boundary: bool, shadow: bool) -> None:
        """Put the counter at a saved position (after the CPU state was restored)."""
        ...

    def memory_rewritten(self, pages: Iterable[int]) -> None:
        """These physical RAM pages were rewritten behind the engine's back: drop the
        translations of any code in them (all of them, if any code is there)."""
        ...

    def add_breakpoint(self, addr: int) -> None: ...

    def remove_breakpoint(self, addr: int) -> None: ...

    def attach_countdown(self, countdown: Countdown) -> None:
        """Publish `countdown` at every branch boundary while it is armed (for the
        machine's life; see machine/countdown.py)."""
        ...

    def invalidate(self) -> None:
        """Memory or registers changed behind the counter's back (a load, a restore, a
        register write): flush translations and forget what it knew of the position."""
        ...

    def close(self) -> None: ...


#: Makes the counter of a CPU (the machine builds the CPU, then its counter).
CounterFactory = Callable[[Cpu], Counter]

"""The native instruction counter: exact counting at raw unicorn speed.

A C UC_HOOK_BLOCK callback (`rd_block_hook` in _icount.c) adds each block's instruction
count from a table keyed by block, and stops the engine at the stops machine/counter.py
describes; a block it has not seen yet is decoded here (machine/blocks.py) through a
ctypes callback.  Instructions after a mid-block I/O instruction, and breakpoints, get a
C code hook on their one address (`rd_code_hook`).  The ctypes side of _icount.c is
machine/icount_binding.py.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterable

from unicorn import UC_HOOK_CODE, UC_HOOK_EDGE_GENERATED, UcError
from unicorn import x86_const as X
from unicorn.unicorn_py3 import unicorn as _ucpy

from rdebug.errors import MachineError
from rdebug.machine.blocks import Block, BlockDecoder
from rdebug.machine.countdown import Countdown
from rdebug.machine.counter import NO_TARGET, NO_UNTIL, StopCause
from rdebug.machine.cpu import Cpu
from rdebug.machine.icount_binding import (
    INFO_BRANCH,
    INFO_RETRANSLATE,
    INFO_SHADOW,
    MISS_FN,
    NO_ADDR,
    RD_STOP_BREAKPOINT,
    RD_STOP_DEADLINE,
    RD_STOP_IRQ_WINDOW,
    RD_STOP_NONE,
    RD_STOP_REQUESTED,
    RD_STOP_RETRANSLATE,
    RD_STOP_TARGET,
    BlockCodeInfo,
    CounterState,
    block_info,
    fn_address,
    hook_del,
    load_library,
)
from rdebug.machine.lapiccore import LapicCore
from rdebug.machine.ticker import NativeTicker
from rdebug.machine.vtlb import hook_add_native


class NativeCounter:
    """Counts at raw unicorn speed: a C block hook and a per-block instruction table."""

    def __init__(self, cpu: Cpu) -> None:
        self._cpu = cpu
        self._uc = cpu.uc
        self._decoder = BlockDecoder()
        self._lib = load_library()
        self._blocks: dict[tuple[int, int], Block] = {}
        self._miss_error: BaseException | None = None
        self._miss_fn = MISS_FN(self._miss)
        st = CounterState()
        st.target = NO_TARGET
        st.soft_target = NO_TARGET
        st.stop_at = NO_TARGET
        st.bp_skip_addr = NO_ADDR
        st.boundary = NO_ADDR
        st.eflags_regid = X.UC_X86_REG_EFLAGS
        st.uc = ctypes.cast(self._uc._uch, ctypes.c_void_p).value
        st.emu_stop = ctypes.cast(_ucpy.uclib.uc_emu_stop, ctypes.c_void_p).value
        st.reg_read = ctypes.cast(_ucpy.uclib.uc_reg_read, ctypes.c_void_p).value
        st.miss = self._miss_fn
        st.ram = cpu.ram_address
        st.ram_size = cpu.ram_size
        st.cr0_regid = X.UC_X86_REG_CR0
        st.cr3_regid = X.UC_X86_REG_CR3
        st.cr4_regid = X.UC_X86_REG_CR4
        self._st = st
        self._st_addr = ctypes.addressof(st)
        self._lib.rd_space_changed(self._st_addr)  # a first epoch: no cache entry matches
        self._code_info = BlockCodeInfo()
        self._code_info_addr = ctypes.addressof(self._code_info)
        self._code_buffer = ctypes.create_string_buffer(4096)
        self._shadow_after_stop = False
        self._block_hook = hook_add_native(
            self._uc, 8, fn_address(self._lib, "rd_block_hook"), self._st_addr, 1, 0
        )
        # every block unicorn translates anew is checked against its code (_icount.c)
        self._translated_hook = hook_add_native(
            self._uc,
            UC_HOOK_EDGE_GENERATED,
            fn_address(self._lib, "rd_translated_hook"),
            self._st_addr,
            1,
            0,
        )
        self._code_fn = fn_address(self._lib, "rd_code_hook")
        self._code_hooks: dict[int, int] = {}
        #: code hooks that stay when no breakpoint is left there (blocks.py)
        self._kept_hooks: set[int] = set()
        #: physical pages holding code this counter has decoded (since the last flush)
        self._code_pages: set[int] = set()
        self._breakpoints: set[int] = set()
        self._requested_icount: int | None = None
        self._requested_canonical = False
        self._interrupted = False
        self._canonical = True  # reset is a branch boundary
        #: inside an I/O or RDTSC hook: (icount of it, its index, its block)
        self._special: tuple[int, int, Block] | None = None
        #: cs.base + eip where the last stop left the CPU, when the block hook told us; a
        #: breakpoint there is stepped over when the run resumes (NO_ADDR: none is)
        self._pc_hint: int | None = None
        self._countdown: Countdown | None = None
        self._lapic: LapicCore | None = None
        self._ticker: NativeTicker | None = None
        #: the instruction executing now, when a memory hook knows it better than EIP
        self._pc: int | Callable[[], int | None] | None = None

    # icount / irq_check live in the C struct
    @property
    def icount(self) -> int:
        return int(self._st.icount)

    @icount.setter
    def icount(self, value: int) -> None:
        self._st.icount = value
        self._pc_hint = None
        self._st.block_addr = NO_ADDR
        self._st.block_size = 0
        self._st.block_info = 0

    @property
    def irq_check(self) -> bool:
        return bool(self._st.irq_check)

    @irq_check.setter
    def irq_check(self, value: bool) -> None:
        self._st.irq_check = int(value)
        self._st.if_clear = 0
        self._st.limit = 0  # the hook's fast path must see it

    @property
    def state_address(self) -> int:
        """Address of the counter's C struct (for the native interrupt hook, _intr.c)."""
        return self._st_addr

    @property
    def blocks_translated(self) -> int:
        return int(self._st.blocks_seen)

    def close(self) -> None:
        self._lib.rd_counter_free(self._st_addr)
        self._decoder.close()

    def read_block(self, addr: int, size: int) -> tuple[bytes, int, bool, tuple[int, ...]]:
        """The code of the block at linear `addr` (`size` bytes), the CS base and default
        size it runs under, and the physical pages it lies in."""
        cs_base, code32, pages = self._read_block(addr, size)
        return self._code_buffer.raw[:size], cs_base, code32, pages

    def _read_block(self, addr: int, size: int) -> tuple[int, bool, tuple[int, ...]]:
        """`read_block`, the code left in `_code_buffer`."""
        if size > len(self._code_buffer):
            self._code_buffer = ctypes.create_string_buffer(size)
        info = self._code_info
        status = self._lib.rd_block_code(
            self._st_addr,
            addr,
            size,
            X.UC_X86_REG_CS,
            X.UC_X86_REG_GDTR,
            X.UC_X86_REG_LDTR,
            self._code_buffer,
            self._code_info_addr,
        )
        if status == -2:
            raise MachineError("PAE paging is not supported")
        if status != 0:
            raise MachineError(f"cannot read the code of the block at {addr:#x}")
        pages = tuple(page >> 12 for page in (info.page_first, info.page_last) if page != NO_ADDR)
        return info.cs_base, bool(info.code32), pages

    def _miss(self, addr: int, size: int) -> int:
        """Called from C for a block not yet in the table.  Must never raise."""
        try:
            cs_base, code32, pages = self._read_block(addr, size)
            code = ctypes.addressof(self._code_buffer)
            block = self._decoder.decode_at(addr, code, size, cs_base, code32)
        except BaseException as exc:
            self._miss_error = exc
            return INFO_RETRANSLATE
        old = self._blocks.get((addr, size))
        self._blocks[(addr, size)] = block
        if block.specials or (old is not None and old.specials):
            # for the native RDTSC hook (cpuid.py); without an entry it asks Python
            specials = block.specials
            index = (ctypes.c_uint16 * max(len(specials), 1))(*specials)
            self._lib.rd_specials_set(self._st_addr, addr, size, index, len(specials))
        self._code_pages.update(pages)
        info = block_info(block)
        if any(a not in self._code_hooks for a in block.hooked):
            info |= INFO_RETRANSLATE
        return info

    def _current_block(self) -> Block | None:
        st = self._st
        if st.block_addr == NO_ADDR:
            return None
        return self._blocks.get((int(st.block_addr), int(st.block_size)))

    def begin_special(self) -> int:
        st = self._st
        block = self._current_block()
        if block is None or st.special_seen >= len(block.specials):
            raise MachineError(
                f"an I/O or RDTSC instruction the block decoder did not see, in the block "
                f"at {st.block_addr:#x}"
            )
        index = block.specials[st.special_seen]
        st.special_seen += 1
        self._special = (int(st.block_base) + index, index, block)
        return int(block.addr + block.offsets[index])

    def end_special(self) -> None:
        self._special = None

    def current_icount(self) -> int:
        if self._special is not None:
            return self._special[0]
        st = self._st
        block = self._current_block()
        if block is None:
            return int(st.icount)
        if callable(self._pc):
            self._pc = self._pc()  # the instruction asked for: found now, once
        linear = self._pc if self._pc is not None else (block.cs_base + self._cpu.eip)
        linear &= 0xFFFFFFFF
        if not block.addr <= linear <= block.addr + block.size:
            return int(st.icount)  # between blocks (e.g. fetching the next one faulted)
        return int(st.block_base) + block.index(linear)

    def at_block_start(self) -> bool:
        block = self._current_block()
        return block is not None and (block.cs_base + self._cpu.eip) & 0xFFFFFFFF == block.addr

    def executing(self, pc: int | Callable[[], int | None] | None) -> None:
        self._pc = pc

    def exception_taken(self, faulting: bool) -> None:
        del faulting  # EIP already tells: at the faulting instruction, or after the trap
        self._st.icount = self.current_icount()
        self._st.block_info = INFO_BRANCH  # the handler's first block follows a transfer
        self._st.if_clear = 0  # and the gate may have loaded another EFLAGS
        self._st.limit = 0

    def control_transferred(self) -> None:
        self._st.block_info = INFO_BRANCH
        self._st.if_clear = 0
        self._st.limit = 0
        self._canonical = True
        self._shadow_after_stop = False
        # The run resumes in the handler, not where the last stop was: a breakpoint on
        # its first instruction is a hit, not one to step over (NO_ADDR skips none).
        self._pc_hint = NO_ADDR

    def request_stop_after_current(self, pc: int | None = None) -> None:
        block = self._current_block()
        st = self._st
        if self._special is not None:
            # Never uc_emu_stop here: inside a (rep) string I/O instruction it makes
            # unicorn run the I/O again.  Stop at the next hooked instruction (every
            # instruction after a mid-block I/O has a code hook), or at the next block.
            position, index, block = self._special
            self._requested_icount = position + 1
            self._requested_canonical = index + 1 >= len(block.offsets) and block.branch
            if self._requested_icount >= int(st.icount):
                st.stop_at = min(int(st.stop_at), self._requested_icount)
                st.limit = 0  # the hook's fast path must see it
            else:
                st.stop_pending = 1
            return
        if block is None:
            self._requested_icount = int(st.icount)
            self._requested_canonical = bool(st.block_info & INFO_BRANCH)
        else:
            if pc is None:
                pc = (block.cs_base + self._cpu.eip) & 0xFFFFFFFF
            index = block.index(pc) + 1
            count = len(block.offsets)
            self._requested_icount = int(st.block_base) + min(index, count)
            self._requested_canonical = index >= count and block.branch
        st.stop_reason = RD_STOP_REQUESTED
        st.limit = 0
        self._uc.emu_stop()

    def request_stop_before_current(self) -> None:
        self._requested_icount = self.current_icount()
        self._requested_canonical = bool(self._st.block_info & INFO_BRANCH)
        self._st.stop_reason = RD_STOP_REQUESTED
        self._st.limit = 0
        self._uc.emu_stop()

    def request_stop_soon(self) -> int:
        st = self._st
        block = self._current_block()
        self._requested_icount = int(st.icount)
        self._requested_canonical = block is not None and block.branch
        st.stop_at = min(int(st.stop_at), int(st.icount))
        st.limit = 0  # the hook's fast path must see it
        return int(st.block_base) if block is not None else int(st.icount)

    def in_shadow(self) -> bool:
        return self._shadow_after_stop

    def at_branch_boundary(self) -> bool:
        return self._canonical

    def previous_instruction(self, linear_pc: int) -> int | None:
        block = self._current_block()
        if block is None or not block.addr < linear_pc <= block.addr + block.size:
            return None
        index = block.index(linear_pc)
        return block.addr + block.offsets[index - 1] if index > 0 else None

    def restore_position(self, icount: int, branch_boundary: bool, shadow: bool) -> None:
        self.icount = icount
        self._canonical = branch_boundary
        self._shadow_after_stop = shadow
        self._requested_icount = None
        self._st.boundary = NO_ADDR  # no branch boundary since the restored position
        if self._countdown is not None:
            self._countdown.restored()
        # The restored CR3 and page tables may map other code at the blocks' addresses.
        self._lib.rd_space_changed(self._st_addr)

    def interrupt(self) -> None:
        self._interrupted = True
        self._st.target = 0  # the next block entry stops (an aligned store: thread-safe)
        self._st.limit = 0  # (through the hook's full path)

    def clear_interrupt(self) -> None:
        self._interrupted = False

    def _stopped(
        self, cause: StopCause, canonical: bool, shadow: bool = False, pc: int | None = None
    ) -> StopCause:
        self._canonical = canonical
        self._shadow_after_stop = shadow
        self._pc_hint = pc
        return cause

    def execute(self, target: int, soft_target: int = NO_TARGET) -> StopCause:
        st = self._st
        if target < st.icount:
            raise MachineError(f"target {target} is in the past (icount {st.icount})")
        st.target = target
        st.soft_target = soft_target
        st.limit = 0  # the first block entry takes the hook's full path
        if self._interrupted:
            self._interrupted = False
            return self._stopped(StopCause.INTERRUPTED, self._canonical, self._shadow_after_stop)
        st.stop_reason = RD_STOP_NONE
        st.stop_at = NO_TARGET
        st.stop_pending = 0
        # What the first block entry needs to know of the position it starts from.
        st.block_info = (INFO_BRANCH if self._canonical else 0) | (
            INFO_SHADOW if self._shadow_after_stop else 0
        )
        st.block_addr = NO_ADDR
        st.if_clear = 0  # EFLAGS may have been written since the last run
        self._requested_icount = None
        begin, until = self._cpu.eip, NO_UNTIL
        if self._breakpoints:
            hint, self._pc_hint = self._pc_hint, None
            st.bp_skip_addr = self._cpu.linear_pc() if hint is None else hint
            st.bp_skip_blocks = 1
        else:
            st.bp_skip_addr = NO_ADDR
        while True:
            self._cpu.clear_exception_state()
            try:
                self._cpu.emu_start(begin, until)
            except UcError:
                self._settle_after_error()
                raise
            if self._miss_error is not None:
                err, self._miss_error = self._miss_error, None
                raise MachineError(f"block decoding failed: {err}") from err
            reason = int(st.stop_reason)
            at_entry_branch = bool(st.block_info & INFO_BRANCH)
            at_entry_shadow = bool(st.block_info & INFO_SHADOW)
            if reason == RD_STOP_RETRANSLATE:
                self._add_block_hooks(int(st.stop_addr), int(st.stop_size))
                begin, until = self._cpu.eip, NO_UNTIL
                st.stop_reason = RD_STOP_NONE
                continue
            entry_pc = int(st.stop_addr)
            if reason == RD_STOP_DEADLINE:
                return self._stopped(StopCause.DEADLINE, True, at_entry_shadow, entry_pc)
            if reason == RD_STOP_TARGET:
                if self._interrupted:
                    self._interrupted = False
                    return self._stopped(
                        StopCause.INTERRUPTED, at_entry_branch, at_entry_shadow, entry_pc
                    )
                remaining = target - int(st.icount)
                if remaining == 0:
                    return self._stopped(
                        StopCause.TARGET, at_entry_branch, at_entry_shadow, entry_pc
                    )
                # The target lies inside the next block: run exactly `remaining` of its
                # instructions by stopping the engine at the address of the next one.
                block = self._blocks[(int(st.stop_addr), int(st.stop_size))]
                begin = self._cpu.eip
                until = block.addr + block.offsets[remaining]  # linear, like the engine's pc
                st.stop_reason = RD_STOP_NONE
                continue
            if reason == RD_STOP_IRQ_WINDOW:
                return self._stopped(StopCause.IRQ_WINDOW, at_entry_branch, pc=entry_pc)
            if reason == RD_STOP_BREAKPOINT:
                current = self._current_block()
                assert current is not None
                index = current.index(int(st.stop_addr))
                st.icount = int(st.block_base) + index
                first = index == 0
                return self._stopped(
                    StopCause.BREAKPOINT,
                    first and bool(st.prev_info & INFO_BRANCH),
                    first and bool(st.prev_info & INFO_SHADOW),
                    entry_pc,
                )
            if reason == RD_STOP_REQUESTED:
                assert self._requested_icount is not None
                st.icount = self._requested_icount
                return self._stopped(StopCause.REQUESTED, self._requested_canonical)
            # The engine returned by itself: HLT, or the `until` of a partial block.
            current = self._current_block()
            linear = self._cpu.linear_pc()
            if until != NO_UNTIL and linear == until and st.icount == target:
                return self._stopped(StopCause.TARGET, False)
            if current is not None and current.halts and linear == current.addr + current.size:
                return self._stopped(StopCause.HALTED, True)
            if until != NO_UNTIL:
                begin, until = self._cpu.eip, NO_UNTIL
                continue
            raise MachineError(f"the engine stopped for no known reason at eip {self._cpu.eip:#x}")

    def _settle_after_error(self) -> None:
        self._st.icount = self.current_icount()

    def _add_block_hooks(self, addr: int, size: int) -> None:
        block = self._blocks.get((addr, size))
        if block is None:
            raise MachineError(f"no decoded block at {addr:#x}")
        for a in block.hooked:
            self._kept_hooks.add(a)
            self._ensure_code_hook(a)
        self._lib.rd_block_set(self._st_addr, addr, size, block_info(block))
        self._uc.ctl_remove_cache(addr, addr + size)

    def _ensure_code_hook(self, addr: int) -> None:
        if addr in self._code_hooks:
            return
        self._code_hooks[addr] = hook_add_native(
            self._uc, UC_HOOK_CODE, self._code_fn, self._st_addr, addr, addr
        )
        self._uc.ctl_remove_cache(addr, addr + 1)

    def add_breakpoint(self, addr: int) -> None:
        if addr in self._breakpoints:
            return
        self._breakpoints.add(addr)
        if self._lib.rd_bp_add(self._st_addr, addr) < 0:
            raise MemoryError("breakpoint table")
        self._ensure_code_hook(addr)

    def remove_breakpoint(self, addr: int) -> None:
        if addr not in self._breakpoints:
            return
        self._breakpoints.discard(addr)
        self._lib.rd_bp_remove(self._st_addr, addr)
        if addr not in self._kept_hooks:
            hook_del(self._uc, self._code_hooks.pop(addr))
            self._uc.ctl_remove_cache(addr, addr + 1)

    def memory_rewritten(self, pages: Iterable[int]) -> None:
        if self._code_pages.isdisjoint(pages):
            self._pc_hint = None
            self._st.block_addr = NO_ADDR
            return
        self.invalidate()

    def attach_countdown(self, countdown: Countdown) -> None:
        if self._countdown is not None and self._countdown is not countdown:
            raise MachineError("the native counter publishes one countdown only")
        self._countdown = countdown  # the C struct lives as long as this reference
        self._st.countdown = countdown.address
        countdown.attach_publisher(self._st_addr + CounterState.limit.offset)

    @property
    def boundary_address(self) -> int:
        """Where the hook keeps the icount of the last branch boundary (a uint64), for a
        countdown published lazily (machine/countdown.py)."""
        return self._st_addr + CounterState.boundary.offset

    def attach_lapic(self, core: LapicCore) -> None:
        """Take the local APIC's periodic timer expiries and deliver its interrupts at IRQ
        windows in the block hook (_lapic.c); the machine leaves that timer out of the
        soft target it gives `execute`."""
        self._lapic = core  # the C struct lives as long as this reference
        self._st.lapic = core.address
        core.state.limit = self._st_addr + CounterState.limit.offset  # zeroed at its changes

    def attach_ticker(self, ticker: NativeTicker) -> None:
        """Take the PIT's idle expiries in the block hook while the machine wires the
        ticker for a run (machine/ticker.py)."""
        self._ticker = ticker  # the C struct lives as long as this reference
        self._st.ticker = ticker.address

    def invalidate(self) -> None:
        self._pc_hint = None
        self._code_pages.clear()
        self._uc.ctl_flush_tb()
        self._lib.rd_blocks_clear(self._st_addr)
        self._blocks.clear()
        self._st.block_addr = NO_ADDR

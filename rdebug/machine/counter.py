"""Exact instruction counting: the native counter, the reference counter, and block decoding.

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

`NativeCounter` does this at raw unicorn speed with the C hooks in `_icount.c`;
`ReferenceCounter` does the same, slowly and obviously, with a Python hook on every
instruction.  Tests run every sample guest under both and compare every stop.
Knows nothing of devices, logs or gdb.
"""

from __future__ import annotations

import bisect
import ctypes
import enum
import importlib.util
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import capstone
from unicorn import UC_HOOK_CODE, Uc, UcError
from unicorn import x86_const as X
from unicorn.unicorn_py3 import unicorn as _ucpy

from rdebug.errors import MachineError
from rdebug.machine.cpu import EFLAGS_IF, Cpu

log = logging.getLogger(__name__)

#: `until` address that a 32-bit guest can never reach.
NO_UNTIL = 1 << 40
NO_TARGET = (1 << 64) - 1
_NO_ADDR = (1 << 64) - 1

# Block info word shared with _icount.c (RD_INFO_*).
_INFO_COUNT_MASK = 0x00FFFFFF
_INFO_SHADOW = 0x01000000
_INFO_RETRANSLATE = 0x02000000
_INFO_BRANCH = 0x04000000
_INFO_MMU = 0x08000000


class StopCause(enum.Enum):
    TARGET = "target"
    DEADLINE = "deadline"
    IRQ_WINDOW = "irq-window"
    BREAKPOINT = "breakpoint"
    REQUESTED = "requested"
    HALTED = "halted"
    INTERRUPTED = "interrupted"


# _icount.c's enum rd_stop
_RD_STOP_NONE = 0
_RD_STOP_TARGET = 1
_RD_STOP_IRQ_WINDOW = 2
_RD_STOP_BREAKPOINT = 3
_RD_STOP_RETRANSLATE = 4
_RD_STOP_REQUESTED = 5
_RD_STOP_DEADLINE = 6


@dataclass(frozen=True, slots=True)
class Block:
    """What the counters need to know of one translation block."""

    addr: int
    #: Offset of each instruction from `addr`.
    offsets: tuple[int, ...]
    size: int
    #: The last instruction opens an STI / MOV SS / POP SS interrupt shadow.
    shadow: bool
    #: The last instruction is HLT.
    halts: bool
    #: The last instruction transfers control (see `transfers_control`).
    branch: bool
    #: Addresses of instructions that follow an I/O instruction inside the block.
    after_io: tuple[int, ...]
    #: CS base the block was decoded under (linear address = cs_base + eip).
    cs_base: int
    #: Indexes of the block's I/O and RDTSC instructions, in order (their hooks do not
    #: see a synced EIP: the counter tells them apart by their order in the block).
    specials: tuple[int, ...]
    #: Writes CR0/CR3/CR4 or runs INVLPG: the mappings of linear addresses may change.
    mmu: bool = False

    def index(self, linear: int) -> int:
        """How many of the block's instructions lie before `linear` (inside or at end)."""
        return bisect.bisect_left(self.offsets, linear - self.addr)


_IO_MNEMONICS = frozenset({"in", "out", "insb", "insw", "insd", "outsb", "outsw", "outsd"})
_SPECIAL_MNEMONICS = _IO_MNEMONICS | {"rdtsc", "rdtscp"}
_PREFIXES = frozenset({0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65, 0x66, 0x67, 0xF0, 0xF2, 0xF3})


def opens_shadow(insn: bytes) -> bool:
    """True for STI, POP SS and MOV SS,r/m: the next instruction runs before any IRQ."""
    i = 0
    while i < len(insn) and insn[i] in _PREFIXES:
        i += 1
    if i >= len(insn):
        return False
    op = insn[i]
    if op in (0xFB, 0x17):
        return True
    return op == 0x8E and i + 1 < len(insn) and (insn[i + 1] >> 3) & 7 == 2


#: Instructions after which QEMU always ends a translation block: control transfers.
_BRANCH_MNEMONICS = frozenset(
    {
        "call",
        "lcall",
        "ret",
        "retf",
        "iret",
        "iretd",
        "iretw",
        "int",
        "int3",
        "into",
        "int1",
        "loop",
        "loope",
        "loopne",
        "hlt",
        "sysenter",
        "sysexit",
        "ljmp",
    }
)


def transfers_control(mnemonic: str) -> bool:
    """Jumps (all `j*`), calls, returns, INT/IRET, LOOP*, HLT: the branch boundaries."""
    last = mnemonic.rsplit(maxsplit=1)[-1] if mnemonic else ""
    return last.startswith("j") or last in _BRANCH_MNEMONICS


def is_hlt(insn: bytes) -> bool:
    i = 0
    while i < len(insn) and insn[i] in _PREFIXES:
        i += 1
    return i < len(insn) and insn[i] == 0xF4


class BlockDecoder:
    """Decodes translation blocks with capstone, in the CPU's current code size."""

    def __init__(self, cpu: Cpu) -> None:
        self._cpu = cpu
        self._cs32 = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_32)
        self._cs16 = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_16)

    def decode(self, addr: int, size: int) -> Block:
        code = self._cpu.read_linear(addr, size)
        if code is None:
            raise MachineError(f"cannot read the code of the block at {addr:#x}")
        cs = self._cs32 if self._cpu.code_is_32bit() else self._cs16
        cs_base = self._cpu.cs_base()
        offsets: list[int] = []
        after_io: list[int] = []
        specials: list[int] = []
        last = b""
        branch = False
        mmu = False
        pos = 0
        for _addr, length, mnemonic, ops in cs.disasm_lite(code, addr):
            name = mnemonic.rsplit(maxsplit=1)[-1]
            if name == "invlpg" or (name == "mov" and ops.startswith("cr")):
                mmu = True
            if name in _SPECIAL_MNEMONICS:
                specials.append(len(offsets))
            offsets.append(pos)
            last = code[pos : pos + length]
            branch = transfers_control(mnemonic)
            pos += length
            if name in _IO_MNEMONICS and pos < size:
                after_io.append(addr + pos)
        if pos < size:
            # capstone stopped at bytes it cannot decode: the engine raises #UD there,
            # so that instruction starts (and faults) as the block's last.
            offsets.append(pos)
            last = code[pos:]
            branch = False
        return Block(
            addr=addr,
            offsets=tuple(offsets),
            size=size,
            shadow=opens_shadow(last),
            halts=is_hlt(last),
            branch=branch,
            after_io=tuple(after_io),
            cs_base=cs_base,
            specials=tuple(specials),
            mmu=mmu,
        )


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

    def request_stop_after_current(self) -> None:
        """From an I/O or instruction hook: stop once the current instruction is done."""
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

    def invalidate(self) -> None:
        """Memory or registers changed behind the counter's back (a load, a restore, a
        register write): flush translations and forget what it knew of the position."""
        ...

    def close(self) -> None: ...


# -- the native counter -----------------------------------------------------------------

_MISS_FN = ctypes.CFUNCTYPE(ctypes.c_uint32, ctypes.c_uint64, ctypes.c_uint32)


class _Block(ctypes.Structure):
    """Mirror of struct rd_block."""

    _fields_ = (
        ("addr", ctypes.c_uint64),
        ("size", ctypes.c_uint32),
        ("info", ctypes.c_uint32),
        ("hash", ctypes.c_uint64),
        ("epoch", ctypes.c_uint64),
    )


class _State(ctypes.Structure):
    """Mirror of struct rd_counter in _icount.c."""

    _fields_ = (
        ("icount", ctypes.c_uint64),
        ("target", ctypes.c_uint64),
        ("soft_target", ctypes.c_uint64),
        ("block_base", ctypes.c_uint64),
        ("block_addr", ctypes.c_uint64),
        ("block_size", ctypes.c_uint32),
        ("block_info", ctypes.c_uint32),
        ("stop_reason", ctypes.c_uint32),
        ("irq_check", ctypes.c_uint32),
        ("stop_addr", ctypes.c_uint64),
        ("stop_size", ctypes.c_uint32),
        ("stop_info", ctypes.c_uint32),
        ("bp_skip_addr", ctypes.c_uint64),
        ("bp_skip_blocks", ctypes.c_uint32),
        ("eflags_regid", ctypes.c_int32),
        ("prev_info", ctypes.c_uint32),
        ("special_seen", ctypes.c_uint32),
        ("uc", ctypes.c_void_p),
        ("emu_stop", ctypes.c_void_p),
        ("reg_read", ctypes.c_void_p),
        ("miss", _MISS_FN),
        ("blocks", ctypes.c_void_p),
        ("blocks_mask", ctypes.c_uint32),
        ("blocks_used", ctypes.c_uint32),
        ("bps", ctypes.c_void_p),
        ("bps_mask", ctypes.c_uint32),
        ("bps_used", ctypes.c_uint32),
        ("blocks_seen", ctypes.c_uint64),
        ("stop_at", ctypes.c_uint64),
        ("stop_pending", ctypes.c_uint32),
        ("_pad2", ctypes.c_uint32),
        ("epoch", ctypes.c_uint64),
        ("ram", ctypes.c_void_p),
        ("ram_size", ctypes.c_uint64),
        ("cr0_regid", ctypes.c_int32),
        ("cr3_regid", ctypes.c_int32),
        ("cr4_regid", ctypes.c_int32),
        ("_pad3", ctypes.c_uint32),
        ("revalidations", ctypes.c_uint64),
        ("recent", _Block * 256),
    )


def _native_library() -> ctypes.CDLL:
    spec = importlib.util.find_spec("rdebug.machine._icount")
    if spec is None or spec.origin is None:
        raise MachineError(
            "the native instruction counter is not built: reinstall rdebug (pip install .)"
        )
    lib = ctypes.CDLL(spec.origin)
    lib.rd_block_set.argtypes = (ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint32, ctypes.c_uint32)
    lib.rd_block_set.restype = ctypes.c_int
    lib.rd_blocks_clear.argtypes = (ctypes.c_void_p,)
    lib.rd_blocks_clear.restype = None
    lib.rd_space_changed.argtypes = (ctypes.c_void_p,)
    lib.rd_space_changed.restype = None
    lib.rd_bp_add.argtypes = (ctypes.c_void_p, ctypes.c_uint64)
    lib.rd_bp_add.restype = ctypes.c_int
    lib.rd_bp_remove.argtypes = (ctypes.c_void_p, ctypes.c_uint64)
    lib.rd_bp_remove.restype = ctypes.c_int
    lib.rd_counter_free.argtypes = (ctypes.c_void_p,)
    lib.rd_counter_free.restype = None
    return lib


def _fn_address(lib: ctypes.CDLL, name: str) -> int:
    addr = ctypes.cast(getattr(lib, name), ctypes.c_void_p).value
    assert addr is not None
    return addr


def _hook_add_native(uc: Uc, htype: int, fn: int, user: int, begin: int, end: int) -> int:
    handle = ctypes.c_size_t()
    status = _ucpy.uclib.uc_hook_add(
        uc._uch,
        ctypes.byref(handle),
        htype,
        ctypes.c_void_p(fn),
        ctypes.c_void_p(user),
        ctypes.c_uint64(begin),
        ctypes.c_uint64(end),
    )
    if status != 0:
        raise UcError(status)
    return int(handle.value)


def _hook_del(uc: Uc, handle: int) -> None:
    status = _ucpy.uclib.uc_hook_del(uc._uch, ctypes.c_size_t(handle))
    if status != 0:
        raise UcError(status)


def _block_info(block: Block) -> int:
    """The info word _icount.c keeps for `block` (RD_INFO_*)."""
    info = len(block.offsets)
    if block.shadow:
        info |= _INFO_SHADOW
    if block.branch:
        info |= _INFO_BRANCH
    if block.mmu:
        info |= _INFO_MMU
    return info


class NativeCounter:
    """Counts at raw unicorn speed: a C block hook and a per-block instruction table."""

    def __init__(self, cpu: Cpu) -> None:
        self._cpu = cpu
        self._uc = cpu.uc
        self._decoder = BlockDecoder(cpu)
        self._lib = _native_library()
        self._blocks: dict[tuple[int, int], Block] = {}
        self._miss_error: BaseException | None = None
        self._miss_fn = _MISS_FN(self._miss)
        st = _State()
        for slot in st.recent:
            slot.info = 0xFFFFFFFF  # RD_INFO_EMPTY
        st.target = NO_TARGET
        st.soft_target = NO_TARGET
        st.stop_at = NO_TARGET
        st.bp_skip_addr = _NO_ADDR
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
        self._shadow_after_stop = False
        self._block_hook = _hook_add_native(
            self._uc, 8, _fn_address(self._lib, "rd_block_hook"), self._st_addr, 1, 0
        )
        self._code_fn = _fn_address(self._lib, "rd_code_hook")
        self._code_hooks: dict[int, int] = {}
        self._after_io: set[int] = set()
        #: physical pages holding code this counter has decoded (since the last flush)
        self._code_pages: set[int] = set()
        self._breakpoints: set[int] = set()
        self._requested_icount: int | None = None
        self._requested_canonical = False
        self._interrupted = False
        self._canonical = True  # reset is a branch boundary
        #: inside an I/O or RDTSC hook: (icount of it, its index, its block)
        self._special: tuple[int, int, Block] | None = None
        #: cs.base + eip where the last stop left the CPU, when the block hook told us
        self._pc_hint: int | None = None

    # icount / irq_check live in the C struct
    @property
    def icount(self) -> int:
        return int(self._st.icount)

    @icount.setter
    def icount(self, value: int) -> None:
        self._st.icount = value
        self._pc_hint = None
        self._st.block_addr = _NO_ADDR
        self._st.block_size = 0
        self._st.block_info = 0

    @property
    def irq_check(self) -> bool:
        return bool(self._st.irq_check)

    @irq_check.setter
    def irq_check(self, value: bool) -> None:
        self._st.irq_check = int(value)

    @property
    def blocks_translated(self) -> int:
        return int(self._st.blocks_seen)

    def close(self) -> None:
        self._lib.rd_counter_free(self._st_addr)

    def _miss(self, addr: int, size: int) -> int:
        """Called from C for a block not yet in the table.  Must never raise."""
        try:
            block = self._decoder.decode(addr, size)
        except BaseException as exc:
            self._miss_error = exc
            return _INFO_RETRANSLATE
        self._blocks[(addr, size)] = block
        for linear in (addr, addr + max(size, 1) - 1):
            physical = self._cpu.linear_to_physical(linear)
            if physical is not None:
                self._code_pages.add(physical >> 12)
        info = _block_info(block)
        if any(a not in self._code_hooks for a in block.after_io):
            info |= _INFO_RETRANSLATE
        return info

    def _current_block(self) -> Block | None:
        st = self._st
        if st.block_addr == _NO_ADDR:
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
        linear = (block.cs_base + self._cpu.eip) & 0xFFFFFFFF
        if not block.addr <= linear <= block.addr + block.size:
            return int(st.icount)  # between blocks (e.g. fetching the next one faulted)
        return int(st.block_base) + block.index(linear)

    def exception_taken(self, faulting: bool) -> None:
        del faulting  # EIP already tells: at the faulting instruction, or after the trap
        self._st.icount = self.current_icount()
        self._st.block_info = _INFO_BRANCH  # the handler's first block follows a transfer

    def control_transferred(self) -> None:
        self._st.block_info = _INFO_BRANCH
        self._canonical = True
        self._shadow_after_stop = False
        self._pc_hint = None

    def request_stop_after_current(self) -> None:
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
            else:
                st.stop_pending = 1
            return
        if block is None:
            self._requested_icount = int(st.icount)
            self._requested_canonical = bool(st.block_info & _INFO_BRANCH)
        else:
            index = block.index((block.cs_base + self._cpu.eip) & 0xFFFFFFFF) + 1
            count = len(block.offsets)
            self._requested_icount = int(st.block_base) + min(index, count)
            self._requested_canonical = index >= count and block.branch
        st.stop_reason = _RD_STOP_REQUESTED
        self._uc.emu_stop()

    def request_stop_before_current(self) -> None:
        self._requested_icount = self.current_icount()
        self._requested_canonical = bool(self._st.block_info & _INFO_BRANCH)
        self._st.stop_reason = _RD_STOP_REQUESTED
        self._uc.emu_stop()

    def request_stop_soon(self) -> int:
        st = self._st
        block = self._current_block()
        self._requested_icount = int(st.icount)
        self._requested_canonical = block is not None and block.branch
        st.stop_at = min(int(st.stop_at), int(st.icount))
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
        # The restored CR3 and page tables may map other code at the blocks' addresses.
        self._lib.rd_space_changed(self._st_addr)

    def interrupt(self) -> None:
        self._interrupted = True
        self._st.target = 0  # the next block entry stops (an aligned store: thread-safe)

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
        if self._interrupted:
            self._interrupted = False
            return self._stopped(StopCause.INTERRUPTED, self._canonical, self._shadow_after_stop)
        st.stop_reason = _RD_STOP_NONE
        st.stop_at = NO_TARGET
        st.stop_pending = 0
        # What the first block entry needs to know of the position it starts from.
        st.block_info = (_INFO_BRANCH if self._canonical else 0) | (
            _INFO_SHADOW if self._shadow_after_stop else 0
        )
        st.block_addr = _NO_ADDR
        self._requested_icount = None
        begin, until = self._cpu.eip, NO_UNTIL
        if self._breakpoints:
            hint, self._pc_hint = self._pc_hint, None
            st.bp_skip_addr = self._cpu.linear_pc() if hint is None else hint
            st.bp_skip_blocks = 1
        else:
            st.bp_skip_addr = _NO_ADDR
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
            at_entry_branch = bool(st.block_info & _INFO_BRANCH)
            at_entry_shadow = bool(st.block_info & _INFO_SHADOW)
            if reason == _RD_STOP_RETRANSLATE:
                self._add_io_hooks(int(st.stop_addr), int(st.stop_size))
                begin, until = self._cpu.eip, NO_UNTIL
                st.stop_reason = _RD_STOP_NONE
                continue
            entry_pc = int(st.stop_addr)
            if reason == _RD_STOP_DEADLINE:
                return self._stopped(StopCause.DEADLINE, True, at_entry_shadow, entry_pc)
            if reason == _RD_STOP_TARGET:
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
                st.stop_reason = _RD_STOP_NONE
                continue
            if reason == _RD_STOP_IRQ_WINDOW:
                return self._stopped(StopCause.IRQ_WINDOW, at_entry_branch, pc=entry_pc)
            if reason == _RD_STOP_BREAKPOINT:
                current = self._current_block()
                assert current is not None
                index = current.index(int(st.stop_addr))
                st.icount = int(st.block_base) + index
                first = index == 0
                return self._stopped(
                    StopCause.BREAKPOINT,
                    first and bool(st.prev_info & _INFO_BRANCH),
                    first and bool(st.prev_info & _INFO_SHADOW),
                    entry_pc,
                )
            if reason == _RD_STOP_REQUESTED:
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

    def _add_io_hooks(self, addr: int, size: int) -> None:
        block = self._blocks.get((addr, size))
        if block is None:
            raise MachineError(f"no decoded block at {addr:#x}")
        for a in block.after_io:
            self._after_io.add(a)
            self._ensure_code_hook(a)
        self._lib.rd_block_set(self._st_addr, addr, size, _block_info(block))
        self._uc.ctl_remove_cache(addr, addr + size)

    def _ensure_code_hook(self, addr: int) -> None:
        if addr in self._code_hooks:
            return
        self._code_hooks[addr] = _hook_add_native(
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
        if addr not in self._after_io:
            _hook_del(self._uc, self._code_hooks.pop(addr))
            self._uc.ctl_remove_cache(addr, addr + 1)

    def memory_rewritten(self, pages: Iterable[int]) -> None:
        if self._code_pages.isdisjoint(pages):
            self._pc_hint = None
            self._st.block_addr = _NO_ADDR
            return
        self.invalidate()

    def invalidate(self) -> None:
        self._pc_hint = None
        self._code_pages.clear()
        self._uc.ctl_flush_tb()
        self._lib.rd_blocks_clear(self._st_addr)
        self._blocks.clear()
        self._st.block_addr = _NO_ADDR


# -- the reference counter --------------------------------------------------------------


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
        self._stop: int | None = None  # _RD_STOP_* of a stop on its way
        self._requested_icount = 0
        self._requested_canonical = False
        self._last_addr: int | None = None  # the instruction whose hook ran last
        self._prev_shadow = False  # ... opened an interrupt shadow
        self._prev_branch = True  # ... transferred control (reset counts as one)
        self._halting = False  # ... was HLT
        self._shadow_after_stop = False
        self._canonical = True
        self._skip_bp: int | None = None
        self._interrupted = False
        self._in_special = False
        self._stop_next = False
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
            self._stop = _RD_STOP_REQUESTED
            self._uc.emu_stop()
            return
        if self.irq_check and not self._prev_shadow and self._cpu.read("eflags") & EFLAGS_IF:
            self._halt_here(_RD_STOP_IRQ_WINDOW)
            return
        if self.icount >= self._soft_target and self._prev_branch:
            self._halt_here(_RD_STOP_DEADLINE)
            return
        if self.icount >= self._target or self._interrupted:
            self._halt_here(_RD_STOP_TARGET)
            return
        if addr in self._breakpoints and addr != self._skip_bp:
            self._halt_here(_RD_STOP_BREAKPOINT)
            return
        self._skip_bp = None
        self.icount += 1
        self._last_addr = addr
        insn = self._cpu.read_linear(addr, size) or b""
        self._prev_shadow, self._halting, self._prev_branch = self._kind(insn)

    def _halt_here(self, reason: int) -> None:
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
        self._prev_shadow = False
        self._prev_branch = True
        self._shadow_after_stop = False
        self._canonical = True

    def request_stop_after_current(self) -> None:
        # Stop when the next instruction starts (never uc_emu_stop inside an I/O:
        # unicorn would run a string I/O iteration again).
        self._requested_icount = self.icount
        self._requested_canonical = self._prev_branch
        self._stop_next = True

    def request_stop_before_current(self) -> None:
        self._requested_icount = self.current_icount()
        self._requested_canonical = self._prev_branch
        self._stop = _RD_STOP_REQUESTED
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
        self._skip_bp = self._cpu.linear_pc()
        self._cpu.clear_exception_state()
        self._cpu.emu_start(self._cpu.eip, NO_UNTIL)
        stop, self._stop = self._stop, None
        self._last_addr = None
        if stop == _RD_STOP_TARGET:
            if self._interrupted:
                self._interrupted = False
                return StopCause.INTERRUPTED
            return StopCause.TARGET
        if stop == _RD_STOP_DEADLINE:
            return StopCause.DEADLINE
        if stop == _RD_STOP_IRQ_WINDOW:
            self._shadow_after_stop = False
            return StopCause.IRQ_WINDOW
        if stop == _RD_STOP_BREAKPOINT:
            return StopCause.BREAKPOINT
        self._shadow_after_stop = False
        if stop == _RD_STOP_REQUESTED:
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

    def memory_rewritten(self, pages: Iterable[int]) -> None:
        del pages
        self.invalidate()

    def invalidate(self) -> None:
        self._uc.ctl_flush_tb()


CounterFactory = Callable[[Cpu], Counter]

__all__ = [
    "NO_TARGET",
    "Block",
    "BlockDecoder",
    "Counter",
    "CounterFactory",
    "NativeCounter",
    "ReferenceCounter",
    "StopCause",
    "is_hlt",
    "opens_shadow",
    "transfers_control",
]

"""The ctypes binding of the native counter (_icount.c): its structs, entry points, codes.

`CounterState` mirrors `struct rd_counter` (its size is checked against the library's
when it loads) and `RecentSlot` `struct rd_recent`; the INFO_* bits are the per-block
info word and RD_STOP_* the `enum rd_stop` of _icount.c (change both sides together).
Hooks are registered through unicorn's C entry point, which takes a C function pointer
and its user data without unicorn headers.
"""

from __future__ import annotations

import ctypes

from unicorn import Uc, UcError
from unicorn.unicorn_py3 import unicorn as _ucpy

from rdebug.errors import MachineError
from rdebug.machine.blocks import Block
from rdebug.machine.native import extension, function_address

NO_ADDR = (1 << 64) - 1

# Block info word shared with _icount.c (RD_INFO_*).
INFO_COUNT_MASK = 0x00FFFFFF
INFO_SHADOW = 0x01000000
INFO_RETRANSLATE = 0x02000000
INFO_BRANCH = 0x04000000
INFO_MMU = 0x08000000
INFO_SETS_IF = 0x10000000


# _icount.c's enum rd_stop
RD_STOP_NONE = 0
RD_STOP_TARGET = 1
RD_STOP_IRQ_WINDOW = 2
RD_STOP_BREAKPOINT = 3
RD_STOP_RETRANSLATE = 4
RD_STOP_REQUESTED = 5
RD_STOP_DEADLINE = 6

MISS_FN = ctypes.CFUNCTYPE(ctypes.c_uint32, ctypes.c_uint64, ctypes.c_uint32)


#: RD_RECENT_SIZE: entries of the direct-mapped cache in front of the block table
RECENT_SIZE = 2048


class RecentSlot(ctypes.Structure):
    """Mirror of struct rd_recent."""

    _fields_ = (
        ("addr", ctypes.c_uint64),
        ("size", ctypes.c_uint32),
        ("info", ctypes.c_uint32),
    )


class CounterState(ctypes.Structure):
    """Mirror of struct rd_counter in _icount.c."""

    _fields_ = (
        ("icount", ctypes.c_uint64),
        ("target", ctypes.c_uint64),
        ("soft_target", ctypes.c_uint64),
        ("limit", ctypes.c_uint64),
        ("prev_mask", ctypes.c_uint32),
        ("publish", ctypes.c_uint32),
        ("boundary", ctypes.c_uint64),
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
        ("miss", MISS_FN),
        ("blocks", ctypes.c_void_p),
        ("blocks_mask", ctypes.c_uint32),
        ("blocks_used", ctypes.c_uint32),
        ("bps", ctypes.c_void_p),
        ("bps_mask", ctypes.c_uint32),
        ("bps_used", ctypes.c_uint32),
        ("blocks_seen", ctypes.c_uint64),
        ("stop_at", ctypes.c_uint64),
        ("stop_pending", ctypes.c_uint32),
        ("if_clear", ctypes.c_uint32),
        ("epoch", ctypes.c_uint64),
        ("ram", ctypes.c_void_p),
        ("ram_size", ctypes.c_uint64),
        ("cr0_regid", ctypes.c_int32),
        ("cr3_regid", ctypes.c_int32),
        ("cr4_regid", ctypes.c_int32),
        ("_pad3", ctypes.c_uint32),
        ("revalidations", ctypes.c_uint64),
        ("recent_tag", ctypes.c_uint64),
        ("recent", RecentSlot * RECENT_SIZE),
        ("countdown", ctypes.c_void_p),  # struct rd_countdown * (machine/countdown.py)
        ("specials", ctypes.c_void_p),
        ("specials_mask", ctypes.c_uint32),
        ("specials_used", ctypes.c_uint32),
        ("lapic", ctypes.c_void_p),  # struct rd_lapic * (machine/lapiccore.py)
        ("ticker", ctypes.c_void_p),  # struct rd_ticker * (machine/ticker.py)
    )


class BlockCodeInfo(ctypes.Structure):
    """Mirror of struct rd_block_code: what `rd_block_code` tells of a block."""

    _fields_ = (
        ("cs_base", ctypes.c_uint64),
        ("page_first", ctypes.c_uint64),
        ("page_last", ctypes.c_uint64),
        ("code32", ctypes.c_uint32),
        ("_pad", ctypes.c_uint32),
    )


def load_library() -> ctypes.CDLL:
    lib = extension()
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
    lib.rd_block_code.argtypes = (
        ctypes.c_void_p,
        ctypes.c_uint64,
        ctypes.c_uint32,
        ctypes.c_int32,
        ctypes.c_int32,
        ctypes.c_int32,
        ctypes.c_void_p,
        ctypes.c_void_p,
    )
    lib.rd_block_code.restype = ctypes.c_int
    lib.rd_specials_set.argtypes = (
        ctypes.c_void_p,
        ctypes.c_uint64,
        ctypes.c_uint32,
        ctypes.c_void_p,
        ctypes.c_uint32,
    )
    lib.rd_specials_set.restype = ctypes.c_int
    lib.rd_counter_free.argtypes = (ctypes.c_void_p,)
    lib.rd_counter_free.restype = None
    lib.rd_counter_size.argtypes = ()
    lib.rd_counter_size.restype = ctypes.c_size_t
    if lib.rd_counter_size() != ctypes.sizeof(CounterState):
        raise MachineError(
            f"rdebug's native counter does not match its binding (struct rd_counter: "
            f"{lib.rd_counter_size()} bytes, CounterState {ctypes.sizeof(CounterState)}): "
            "reinstall rdebug (in a source tree: python3 setup.py build_ext --inplace)"
        )
    return lib


fn_address = function_address


def hook_del(uc: Uc, handle: int) -> None:
    status = _ucpy.uclib.uc_hook_del(uc._uch, ctypes.c_size_t(handle))
    if status != 0:
        raise UcError(status)


def block_info(block: Block) -> int:
    """The info word _icount.c keeps for `block` (RD_INFO_*)."""
    info = len(block.offsets)
    if block.shadow:
        info |= INFO_SHADOW
    if block.branch:
        info |= INFO_BRANCH
    if block.mmu:
        info |= INFO_MMU
    if block.sets_if:
        info |= INFO_SETS_IF
    return info

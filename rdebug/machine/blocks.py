"""Block decoding: what the instruction counters need to know of a translation block.

Unicorn translates guest code in blocks and tells a block hook only a block's address
and size; `BlockDecoder` decodes the block's instructions (in the CPU's current code
size) into a `Block`: where each instruction starts, whether the block ends in a control
transfer (a *branch boundary*), an STI/MOV SS shadow or HLT, and where its I/O and
RDTSC instructions are.  The decoding is C (_decode.c, which states the rules) over
capstone's C library: the library the capstone package ships, opened without importing
the package's Python binding (that import loads every architecture capstone has, ~30 ms
of each process).  Knows nothing of the engine's hooks.
"""

from __future__ import annotations

import bisect
import ctypes
import functools
import os
import sys
import weakref
from dataclasses import dataclass

from rdebug.errors import MachineError
from rdebug.machine.native import extension


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
    #: Where the engine must sync its lazily computed flags (see `_FLAG_READERS`): the
    #: block's first instruction and each flag-reading instruction after it, or nothing.
    flag_syncs: tuple[int, ...] = ()
    #: Holds an instruction that can set EFLAGS.IF (STI, POPF, IRET, a far transfer or
    #: INT n that may switch tasks, SYSENTER/SYSEXIT): while an IRQ waits for IF, the
    #: counter reads EFLAGS again only after such a block (see _icount.c).
    sets_if: bool = False

    @property
    def hooked(self) -> tuple[int, ...]:
        """Addresses the counter keeps a code hook on (`after_io` and `flag_syncs`)."""
        return (*self.after_io, *self.flag_syncs)

    def index(self, linear: int) -> int:
        """How many of the block's instructions lie before `linear` (inside or at end)."""
        return bisect.bisect_left(self.offsets, linear - self.addr)


#: `struct rd_decoded`'s flags (_decode.c)
_SHADOW = 1
_HALTS = 2
_BRANCH = 4
_MMU = 8
_SETS_IF = 16


class _Decoded(ctypes.Structure):
    """Mirror of struct rd_decoded in _decode.c."""

    _fields_ = (
        ("count", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("specials", ctypes.c_uint32),
        ("after_io", ctypes.c_uint32),
        ("flag_syncs", ctypes.c_uint32),
        ("length", ctypes.c_uint32),
        ("mnemonic", ctypes.c_char * 32),  # CS_MNEMONIC_SIZE
    )


#: capstone's C library as its Python binding names it on each system.
_CAPSTONE_NAMES = ("libcapstone.so", "libcapstone.so.5", "libcapstone.dylib", "capstone.dll")


@functools.cache
def capstone_library() -> str:
    """The file of capstone's C library, found where capstone's binding looks first
    (LIBCAPSTONE_PATH, then the lib folder of the capstone package on `sys.path`)
    without importing the binding; elsewhere (a system-wide library) the binding says."""
    folders = [os.environ.get("LIBCAPSTONE_PATH") or ""]
    folders += [os.path.join(entry or os.curdir, "capstone", "lib") for entry in sys.path]
    for folder in filter(None, folders):
        for name in _CAPSTONE_NAMES:
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                return path
    try:
        import capstone  # noqa: PLC0415 - only for a library outside the package
    except ImportError as exc:
        raise MachineError(f"capstone is not installed: {exc}") from None
    return str(capstone._cs._name)


@functools.cache
def _library() -> ctypes.CDLL:
    lib = extension()
    lib.rd_decoder_open.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t)
    lib.rd_decoder_open.restype = ctypes.c_void_p
    lib.rd_decoder_close.argtypes = (ctypes.c_void_p,)
    lib.rd_decoder_close.restype = None
    lib.rd_decode.argtypes = (
        ctypes.c_void_p,
        ctypes.c_uint64,
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_void_p,
    )
    lib.rd_decode.restype = ctypes.c_int
    lib.rd_decode_one.argtypes = (
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_void_p,
    )
    lib.rd_decode_one.restype = ctypes.c_int
    return lib


class BlockDecoder:
    """Decodes translation blocks in C (_decode.c) with capstone's library."""

    def __init__(self) -> None:
        self._lib = _library()
        error = ctypes.create_string_buffer(512)
        handle = self._lib.rd_decoder_open(capstone_library().encode(), error, len(error))
        if not handle:
            reason = error.value.decode("utf-8", "replace")
            raise MachineError(f"cannot decode code with capstone's library: {reason}")
        self._handle: int = handle
        self._closed = weakref.finalize(self, self._lib.rd_decoder_close, handle)
        self._out = _Decoded()
        self._out_addr = ctypes.addressof(self._out)
        self._room = 0
        self._grow(64)  # grown to the largest block seen

    def _grow(self, size: int) -> None:
        """Room in the arrays rd_decode fills for a block of `size` bytes."""
        if size <= self._room:
            return
        self._room = size
        self._offsets = (ctypes.c_uint16 * (size + 1))()
        self._specials = (ctypes.c_uint16 * (size + 1))()
        self._after_io = (ctypes.c_uint64 * (size + 1))()
        self._flag_syncs = (ctypes.c_uint64 * (size + 1))()

    def close(self) -> None:
        self._closed()

    def decode_at(self, addr: int, code: int, size: int, cs_base: int, code32: bool) -> Block:
        """The block whose `size` bytes at host address `code` (the native counter's
        buffer: no copy into Python) were read at linear `addr` under a CS of that base
        and default size."""
        self._grow(size)
        status = self._lib.rd_decode(
            self._handle,
            addr,
            code,
            size,
            int(code32),
            self._out_addr,
            self._offsets,
            self._specials,
            self._after_io,
            self._flag_syncs,
        )
        if status != 0:
            raise MachineError(f"cannot decode the block of {size} bytes at {addr:#x}")
        out = self._out
        flags = out.flags
        return Block(
            addr=addr,
            offsets=tuple(self._offsets[: out.count]),
            size=size,
            shadow=bool(flags & _SHADOW),
            halts=bool(flags & _HALTS),
            branch=bool(flags & _BRANCH),
            after_io=tuple(self._after_io[: out.after_io]),
            cs_base=cs_base,
            specials=tuple(self._specials[: out.specials]),
            mmu=bool(flags & _MMU),
            flag_syncs=tuple(self._flag_syncs[: out.flag_syncs]),
            sets_if=bool(flags & _SETS_IF),
        )

    def first_instruction(self, code: bytes, code32: bool) -> tuple[int, str] | None:
        """(length, mnemonic) of the instruction `code` starts with; None if capstone
        decodes none there."""
        self._lib.rd_decode_one(self._handle, code, len(code), int(code32), self._out_addr)
        out = self._out
        if out.length == 0:
            return None
        return int(out.length), out.mnemonic.decode("ascii", "replace")

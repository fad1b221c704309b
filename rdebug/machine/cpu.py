"""The i386 CPU on unicorn: the engine, RAM as a host buffer, registers, address translation.

Owns the unicorn engine and the guest RAM.  Knows nothing of devices, time or logs: the
run loop (machine.py) and the counters drive the engine; this module only gives typed,
checked access to it.  One 32-bit-mode engine serves real and protected mode (real mode
is CR0.PE clear; a 16-bit-mode engine misreads `emu_start`'s begin address).
"""

from __future__ import annotations

import ctypes
import errno
import functools
import mmap
import os
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from unicorn import UC_ARCH_X86, UC_HOOK_INTR, UC_MODE_32, UC_PROT_ALL, UC_PROT_READ, Uc, UcError
from unicorn import x86_const as X
from unicorn.unicorn_py3 import unicorn as _ucpy

from rdebug.errors import MachineError
from rdebug.machine.intr import Cr2Hook
from rdebug.machine.vtlb import VirtualTlb

PAGE_SIZE = 4096

#: gdb's i386 core register order (org.gnu.gdb.i386.core), then the system registers.
GENERAL_REGISTERS: tuple[tuple[str, int], ...] = (
    ("eax", X.UC_X86_REG_EAX),
    ("ecx", X.UC_X86_REG_ECX),
    ("edx", X.UC_X86_REG_EDX),
    ("ebx", X.UC_X86_REG_EBX),
    ("esp", X.UC_X86_REG_ESP),
    ("ebp", X.UC_X86_REG_EBP),
    ("esi", X.UC_X86_REG_ESI),
    ("edi", X.UC_X86_REG_EDI),
    ("eip", X.UC_X86_REG_EIP),
    ("eflags", X.UC_X86_REG_EFLAGS),
    ("cs", X.UC_X86_REG_CS),
    ("ss", X.UC_X86_REG_SS),
    ("ds", X.UC_X86_REG_DS),
    ("es", X.UC_X86_REG_ES),
    ("fs", X.UC_X86_REG_FS),
    ("gs", X.UC_X86_REG_GS),
)
CONTROL_REGISTERS: tuple[tuple[str, int], ...] = (
    ("cr0", X.UC_X86_REG_CR0),
    ("cr2", X.UC_X86_REG_CR2),
    ("cr3", X.UC_X86_REG_CR3),
    ("cr4", X.UC_X86_REG_CR4),
)
TABLE_REGISTERS: tuple[tuple[str, int], ...] = (
    ("gdtr", X.UC_X86_REG_GDTR),
    ("idtr", X.UC_X86_REG_IDTR),
    ("ldtr", X.UC_X86_REG_LDTR),
    ("tr", X.UC_X86_REG_TR),
)
_REG_IDS: dict[str, int] = dict(GENERAL_REGISTERS + CONTROL_REGISTERS)
_TABLE_IDS: dict[str, int] = dict(TABLE_REGISTERS)
_GENERAL_IDS = tuple(regid for _, regid in GENERAL_REGISTERS)
_SEGMENT_NAMES = frozenset({"cs", "ss", "ds", "es", "fs", "gs"})

CR0_PE = 1 << 0
CR0_WP = 1 << 16
CR0_PG = 1 << 31
CR4_PSE = 1 << 4
CR4_PAE = 1 << 5
EFLAGS_IF = 1 << 9
EFLAGS_TF = 1 << 8
EFLAGS_VM = 1 << 17
EFLAGS_RESERVED = 1 << 1

#: The field unicorn keeps for "an exception is being delivered" (turns the 2nd #GP into a
#: #DF) and the error code of the exception: both only in the raw context blob, at offsets
#: that differ between builds, so they are found at start-up (see `_calibrate`).
_CALIBRATION_CODE = bytes.fromhex(
    "66b82b00"  # mov ax, 0x2b
    "8ed8"  # mov ds, ax        -> #GP(0x28): selector beyond the GDT limit, RPL dropped
    "66b83300"  # mov ax, 0x33
    "8ed8"  # mov ds, ax        -> #GP(0x30)
    "f4"  # hlt
)


@dataclass(frozen=True, slots=True)
class TableRegister:
    """GDTR/IDTR (base, limit) or LDTR/TR (selector, base, limit, flags)."""

    selector: int
    base: int
    limit: int
    flags: int


@dataclass(frozen=True, slots=True)
class _BlobLayout:
    """Where this unicorn build keeps the exception fields in its context blob."""

    old_exception: int
    error_code: int
    header: int  # bytes of the context before the CPU state


def _calibrate() -> _BlobLayout:
    """Find the exception bookkeeping fields in this unicorn build's context blob."""
    uc = Uc(UC_ARCH_X86, UC_MODE_32)
    uc.mem_map(0, 0x10000)
    uc.mem_write(0x1000, _CALIBRATION_CODE)
    blank = bytes(uc.context_save())
    blobs: list[tuple[int, bytes]] = []

    def on_intr(uc: Uc, intno: int, _user: object) -> None:
        ctx = uc.context_save()
        blobs.append((intno, bytes(ctx)))
        if len(blobs) == 1:
            # Reset every field that became 13 (the vector) with this exception, so that
            # the second #GP is not folded into a #DF; check below that it worked.
            raw = bytearray(bytes(ctx))
            for off in _int32_offsets(blank, raw, 13):
                raw[off : off + 4] = struct.pack("<i", -1)
            ctypes.memmove(ctx.context, bytes(raw), len(raw))
            uc.context_restore(ctx)
        uc.reg_write(X.UC_X86_REG_EIP, uc.reg_read(X.UC_X86_REG_EIP) + 2)

    uc.hook_add(UC_HOOK_INTR, on_intr)
    uc.emu_start(0x1000, 0x1000 + len(_CALIBRATION_CODE))
    if len(blobs) != 2 or blobs[0][0] != 13 or blobs[1][0] != 13:
        raise MachineError(
            f"cannot calibrate this unicorn build: exceptions {blobs and [b[0] for b in blobs]}"
        )
    old = _int32_offsets(blank, blobs[0][1], 13)
    first = set(_int32_offsets(blank, blobs[0][1], 0x28))
    second = set(_int32_offsets(blank, blobs[1][1], 0x30))
    errs = sorted(first & second)
    if len(old) != 1 or len(errs) != 1:
        raise MachineError(f"cannot calibrate this unicorn build: {old} {errs}")
    return _BlobLayout(old_exception=old[0], error_code=errs[0], header=_context_header_size(uc))


def _int32_offsets(before: bytes, after: bytes | bytearray, value: int) -> list[int]:
    """The aligned 32-bit fields that hold `value` in `after` and not in `before`."""
    want = struct.pack("<i", value)
    end = min(len(before), len(after))
    offsets: list[int] = []
    off = after.find(want, 0, end)
    while off >= 0:
        if off % 4 == 0 and before[off : off + 4] != want:
            offsets.append(off)
        off = after.find(want, off + 1, end)
    return offsets


def _context_header_size(uc: Uc) -> int:
    """Where the CPU state starts in a saved context (its first field is EAX); `uc` is a
    scratch engine (its EAX is overwritten), the calibration's: each new engine costs
    ~1 ms of set-up on its first use."""
    marker = 0x5EEDF00D
    uc.reg_write(X.UC_X86_REG_EAX, marker)
    offset = bytes(uc.context_save()).find(struct.pack("<I", marker))
    if offset < 0 or offset % 8:
        raise MachineError("cannot find the CPU state in this unicorn build's context")
    return offset


@functools.cache
def _blob_layout() -> _BlobLayout:
    """The calibrated layout, computed once per process."""
    return _calibrate()


class _MmrStruct(ctypes.Structure):
    """unicorn's uc_x86_mmr (GDTR, IDTR, LDTR, TR) as its C API passes it."""

    _fields_ = (
        ("selector", ctypes.c_uint16),
        ("base", ctypes.c_uint64),
        ("limit", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
    )


_Arr = ctypes.Array[Any]  # ctypes arrays of one register batch


class _Registers:
    """Register reads and writes through unicorn's C entry points.

    The binding's `reg_read` and `reg_write` cost ~5 us a call (they pick a value class
    per register); the interrupt, I/O and page-walk paths read dozens of registers per
    event, and every RDTSC writes two (a Linux boot runs half a million), so a kernel
    spent most of its Python time there.  This is ~3x cheaper; errors fall back to the
    binding, which raises its own.
    """

    def __init__(self, uc: Uc) -> None:
        self._uc = uc
        self._handle = uc._uch
        self._fn = _ucpy.uclib.uc_reg_read
        self._write_fn = _ucpy.uclib.uc_reg_write
        self._value = ctypes.c_uint64()
        self._value_ref = ctypes.byref(self._value)
        self._written = ctypes.c_uint64()
        self._written_ref = ctypes.byref(self._written)
        self._mmr = _MmrStruct()
        self._mmr_ref = ctypes.byref(self._mmr)
        self._mmr_address = ctypes.addressof(self._mmr)
        self._batch_fn = _ucpy.uclib.uc_reg_read_batch
        self._batches: dict[tuple[int, ...], tuple[_Arr, _Arr, _Arr]] = {}

    def batch(self, regids: tuple[int, ...]) -> list[int]:
        """Registers of at most 64 bits each (as `scalar` reads them), in one C call; the
        ids, values and value pointers of each list of registers are built once."""
        arrays = self._batches.get(regids)
        if arrays is None:
            ids = (ctypes.c_int * len(regids))(*regids)
            values = (ctypes.c_uint64 * len(regids))()
            slots = (ctypes.c_void_p * len(regids))(
                *(ctypes.addressof(values) + 8 * i for i in range(len(regids)))
            )
            arrays = self._batches[regids] = (ids, values, slots)
        ids, values, slots = arrays
        ctypes.memset(values, 0, ctypes.sizeof(values))  # narrow registers fill low bytes
        if self._batch_fn(self._handle, ids, slots, len(regids)):
            return [self.scalar(regid) for regid in regids]
        return list(values)

    def scalar(self, regid: int) -> int:
        """A register of at most 64 bits (general, segment selector, control, flags)."""
        self._value.value = 0  # 32- and 16-bit registers fill only the low bytes
        if self._fn(self._handle, regid, self._value_ref):
            return int(self._uc.reg_read(regid))
        return self._value.value

    def write_scalar(self, regid: int, value: int) -> None:
        """Write a register of at most 64 bits (as `scalar` reads them)."""
        self._written.value = value
        if self._write_fn(self._handle, regid, self._written_ref):
            self._uc.reg_write(regid, value)

    def table(self, regid: int) -> tuple[int, int, int, int]:
        """(selector, base, limit, flags) of GDTR, IDTR, LDTR or TR."""
        mmr = self._mmr
        ctypes.memset(self._mmr_address, 0, ctypes.sizeof(mmr))  # GDTR/IDTR fill no selector
        if self._fn(self._handle, regid, self._mmr_ref):
            selector, base, limit, flags = self._uc.reg_read(regid)
            return int(selector), int(base), int(limit), int(flags)
        return mmr.selector, mmr.base, mmr.limit, mmr.flags


class Cpu:
    """One unicorn engine with `memory_mb` MiB of RAM mapped from a host buffer at 0."""

    def __init__(self, memory_mb: int) -> None:
        if not 1 <= memory_mb <= 3072:
            raise MachineError(f"memory size {memory_mb} MiB is out of range (1..3072)")
        self.uc = Uc(UC_ARCH_X86, UC_MODE_32)
        self._regs = _Registers(self.uc)
        self.ram_size = memory_mb << 20
        # RAM is a memfd, not anonymous memory, so that `written_ranges` can ask the
        # kernel which pages were ever written (SEEK_DATA) instead of reading them all:
        # the first read of 256 MiB never touched costs ~0.5 s of page faults here
        self._ram_fd = -1
        try:
            self._ram_fd = os.memfd_create("rdebug-ram", os.MFD_CLOEXEC)
            os.ftruncate(self._ram_fd, self.ram_size)
            self._ram_map = mmap.mmap(self._ram_fd, self.ram_size)
        except (AttributeError, OSError):  # no memfd here: anonymous memory
            if self._ram_fd >= 0:
                os.close(self._ram_fd)
            self._ram_fd = -1
            self._ram_map = mmap.mmap(-1, self.ram_size)
        self.ram = memoryview(self._ram_map)
        self._ram_ptr = ctypes.c_char.from_buffer(self._ram_map)
        self.uc.mem_map_ptr(0, self.ram_size, UC_PROT_ALL, ctypes.addressof(self._ram_ptr))
        #: rdebug's own page walk (unicorn's virtual-TLB mode): see machine/vtlb.py
        self.vtlb = VirtualTlb(self.uc, ctypes.addressof(self._ram_ptr), self.ram_size)
        self._layout = _blob_layout()
        self._context_header = self._layout.header
        self._scratch = self.uc.context_save()
        self._scratch_addr = ctypes.cast(self._scratch.context, ctypes.c_void_p).value or 0
        self._register_pages: list[ctypes.c_char] = []
        self._cr2 = Cr2Hook(self.uc)  # CR2 of the guest's page faults (native: no Python call)

    def emu_start(self, begin: int, until: int) -> None:
        """Run the engine from `begin` (EIP) until the linear address `until`.

        When `emu_start` returns, unicorn translates `until` through the guest's page
        tables (to drop a translation ending there); an unmapped `until` (a kernel leaves
        the top page unmapped) makes that walk fail like a page fault and sets CR2, which
        a page-fault handler run after the engine restarted would then read.  CR2 is put
        back to what the guest's own page faults left (or what it was before the run).
        Not covered: a guest's MOV to CR2 in the same run (no OS does it).
        """
        before = self._regs.scalar(X.UC_X86_REG_CR2)
        self._cr2.take()
        try:
            self.uc.emu_start(begin, until)
        finally:
            fault_cr2 = self._cr2.take()
            cr2 = before if fault_cr2 is None else fault_cr2
            if self._regs.scalar(X.UC_X86_REG_CR2) != cr2:
                self.uc.reg_write(X.UC_X86_REG_CR2, cr2)

    def map_register_page(self, base: int, page: mmap.mmap) -> None:
        """Map a device's 4 KiB register page read-only at physical `base` (above RAM).

        Guest reads are plain memory reads; guest writes fault into the machine's
        UC_HOOK_MEM_WRITE_PROT hook.  The page is not RAM: not in `ram`, not in RAM dumps.
        """
        if base < self.ram_size or base % PAGE_SIZE or len(page) != PAGE_SIZE:
            raise MachineError(f"cannot map a register page at {base:#x}")
        ptr = ctypes.c_char.from_buffer(page)
        self._register_pages.append(ptr)
        self.uc.mem_map_ptr(base, PAGE_SIZE, UC_PROT_READ, ctypes.addressof(ptr))

    def close(self) -> None:
        """Release the engine and the RAM buffer."""
        self._register_pages.clear()
        del self._ram_ptr
        self.ram.release()
        self.uc = None
        self.vtlb.close()  # its hook's state lives until the engine is gone
        self._ram_map.close()
        if self._ram_fd >= 0:
            os.close(self._ram_fd)
            self._ram_fd = -1

    def written_ranges(self) -> list[tuple[int, int]]:
        """[start, end) byte ranges of RAM outside which every byte is zero because no
        one ever wrote there (the ranges may hold zeros too).  Without a memfd: all RAM."""
        if self._ram_fd < 0:
            return [(0, self.ram_size)]
        ranges: list[tuple[int, int]] = []
        offset = 0
        try:
            while offset < self.ram_size:
                start = os.lseek(self._ram_fd, offset, os.SEEK_DATA)
                end = min(os.lseek(self._ram_fd, start, os.SEEK_HOLE), self.ram_size)
                ranges.append((start, end))
                offset = end
        except OSError as error:
            if error.errno != errno.ENXIO:  # ENXIO: no data past offset
                return [(0, self.ram_size)]
        return ranges

    @property
    def ram_address(self) -> int:
        """Host address of guest-physical 0 (the RAM buffer the engine runs on)."""
        return ctypes.addressof(self._ram_ptr)

    # -- registers ---------------------------------------------------------------------

    def read(self, name: str) -> int:
        return self._regs.scalar(_REG_IDS[name])

    def write(self, name: str, value: int) -> None:
        if name not in _SEGMENT_NAMES:
            self._regs.write_scalar(_REG_IDS[name], value)
            return
        # A protected-mode segment load reads (and marks accessed) its descriptor
        # through the engine's TLB: a supervisor access of rdebug's, not of the guest.
        self.vtlb.host_access(True)
        try:
            self.uc.reg_write(_REG_IDS[name], value)
        finally:
            self.vtlb.host_access(False)

    @property
    def eip(self) -> int:
        return self._regs.scalar(X.UC_X86_REG_EIP)

    @eip.setter
    def eip(self, value: int) -> None:
        self._regs.write_scalar(X.UC_X86_REG_EIP, value & 0xFFFFFFFF)

    def general_registers(self) -> dict[str, int]:
        """eax ... gs by gdb name, in gdb's order."""
        values = self._regs.batch(_GENERAL_IDS)
        return {name: v for (name, _), v in zip(GENERAL_REGISTERS, values, strict=True)}

    def registers(self) -> dict[str, int]:
        """General and control registers by name."""
        regs = self.general_registers()
        for name, regid in CONTROL_REGISTERS:
            regs[name] = int(self.uc.reg_read(regid))
        return regs

    def gdb_register(self, name: str) -> int:
        """Any register of gdb's i386 description by name (general, x87, SSE) as an int;
        the x87 pointer registers unicorn does not keep read as 0."""
        if name in _REG_IDS:
            return self._regs.scalar(_REG_IDS[name])
        if name.startswith("st") and name[2:].isdigit():
            mantissa, exponent = self.uc.reg_read(X.UC_X86_REG_FP0 + int(name[2:]))
            return int(mantissa) | (int(exponent) << 64)
        if name.startswith("xmm") and name[3:].isdigit():
            return int(self.uc.reg_read(X.UC_X86_REG_XMM0 + int(name[3:])))
        simple = {
            "fctrl": X.UC_X86_REG_FPCW,
            "fstat": X.UC_X86_REG_FPSW,
            "ftag": X.UC_X86_REG_FPTAG,
            "mxcsr": X.UC_X86_REG_MXCSR,
        }
        if name in simple:
            return int(self.uc.reg_read(simple[name]))
        if name in ("fiseg", "fioff", "foseg", "fooff", "fop"):
            return 0
        raise MachineError(f"no register named {name!r}")

    def table_register(self, name: str) -> TableRegister:
        selector, base, limit, flags = self._regs.table(_TABLE_IDS[name])
        return TableRegister(selector, base, limit, flags)

    def set_table_register(self, name: str, value: TableRegister) -> None:
        regid = dict(TABLE_REGISTERS)[name]
        self.uc.reg_write(regid, (value.selector, value.base, value.limit, value.flags))

    def real_mode(self) -> bool:
        """Real or virtual-8086 mode: segments are selector << 4."""
        if not self.read("cr0") & CR0_PE:
            return True
        return bool(self.read("eflags") & EFLAGS_VM)

    def segment_descriptor(self, selector: int) -> tuple[int, int, int] | None:
        """(base, limit, access+flags bits 8-23 of the high word) from the GDT/LDT."""
        table = self.table_register("ldtr" if selector & 4 else "gdtr")
        index = selector & 0xFFF8
        if index + 7 > table.limit:
            return None
        raw = self.read_linear(table.base + index, 8)
        if raw is None:
            return None
        lo, hi = struct.unpack("<II", raw)
        base = (lo >> 16) | ((hi & 0xFF) << 16) | (hi & 0xFF000000)
        limit = (lo & 0xFFFF) | (hi & 0x000F0000)
        if hi & (1 << 23):
            limit = (limit << 12) | 0xFFF
        return base, limit, (hi >> 8) & 0xFFFF

    def cs_base(self) -> int:
        return self.code_segment()[0]

    def code_segment(self) -> tuple[int, bool]:
        """(CS's base, whether code is 32-bit), from one read of CS's descriptor."""
        cs = self.read("cs")
        if self.real_mode():
            return cs << 4, False
        desc = self.segment_descriptor(cs)
        if desc is None:
            return 0, True
        return desc[0], bool(desc[2] & (1 << 14))

    def linear_pc(self) -> int:
        """cs.base + eip: the address unicorn's hooks and `until` speak of."""
        return (self.cs_base() + self.eip) & 0xFFFFFFFF

    def code_is_32bit(self) -> bool:
        return self.code_segment()[1]

    def cpl(self) -> int:
        """Current privilege level (real mode: 0)."""
        if not self.read("cr0") & CR0_PE:
            return 0
        return self.read("cs") & 3

    def system_state(self) -> Iterator[tuple[str, int]]:
        """Every register value that belongs in a state hash, by name."""
        yield from self.registers().items()
        for name, _ in TABLE_REGISTERS:
            t = self.table_register(name)
            yield f"{name}.selector", t.selector
            yield f"{name}.base", t.base
            yield f"{name}.limit", t.limit
        for i in range(8):
            yield f"xmm{i}", int(self.uc.reg_read(X.UC_X86_REG_XMM0 + i))

    # -- exception bookkeeping (raw context blob) ----------------------------------------

    def _context_field(self, offset: int) -> ctypes.c_int32:
        """A view of one int32 in the scratch context, freshly saved from the engine."""
        self.uc.context_update(self._scratch)
        return ctypes.c_int32.from_address(self._scratch_addr + offset)

    def take_exception_error_code(self) -> int:
        """Inside an interrupt hook: the pending exception's error code.

        Also clears unicorn's in-flight exception marker, so the next fault is delivered
        as itself and not folded into a #DF (the machine delivers faults, not unicorn).
        """
        code = self._context_field(self._layout.error_code).value
        self.clear_exception_state(saved=True)
        return code & 0xFFFFFFFF

    def clear_exception_state(self, saved: bool = False) -> None:
        """Forget unicorn's in-flight exception marker before the engine runs again.

        Unicorn's own address translations outside guest instructions (e.g. for the
        `until` address of `emu_start`, which may be unmapped for ring 3) go through the
        fault path and leave the marker set; two of them turn the guest's next real fault
        into a silent triple fault.  `saved`: the scratch context is already current.
        """
        if saved:
            marker = ctypes.c_int32.from_address(self._scratch_addr + self._layout.old_exception)
        else:
            marker = self._context_field(self._layout.old_exception)
        if marker.value != -1:
            marker.value = -1
            self.uc.context_restore(self._scratch)

    # -- memory ----------------------------------------------------------------------------

    def linear_to_physical(self, addr: int) -> int | None:
        """Walk the guest page tables (no permission checks); None when not present."""
        addr &= 0xFFFFFFFF
        cr0 = self._regs.scalar(X.UC_X86_REG_CR0)
        if not cr0 & CR0_PG:
            return addr
        cr4 = self._regs.scalar(X.UC_X86_REG_CR4)
        if cr4 & CR4_PAE:
            raise MachineError("PAE paging is not supported")
        cr3 = self._regs.scalar(X.UC_X86_REG_CR3)
        pde = self._phys_u32((cr3 & 0xFFFFF000) + ((addr >> 22) << 2))
        if pde is None or not pde & 1:
            return None
        if pde & 0x80 and cr4 & CR4_PSE:
            return (pde & 0xFFC00000) | (addr & 0x3FFFFF)
        pte = self._phys_u32((pde & 0xFFFFF000) + (((addr >> 12) & 0x3FF) << 2))
        if pte is None or not pte & 1:
            return None
        return (pte & 0xFFFFF000) | (addr & 0xFFF)

    def physical_pieces(
        self, addr: int, length: int, max_pieces: int
    ) -> list[tuple[int, int, int]]:
        """(linear, physical, length) pieces of the linear range [addr, addr+length),
        each physically contiguous, where the page tables in force map it; a page not
        mapped now is given at its linear address (as with paging off).

        Costs one step per page directory entry and per page actually mapped through a
        page table (a range over unmapped directories or 4 MiB pages costs nothing per
        page).  `MachineError` if the range leaves the 32-bit space or would need more
        than `max_pieces` pieces.
        """
        end = addr + length
        if length <= 0:
            raise MachineError(f"range {addr:#x}+{length:#x} is empty")
        if addr < 0 or end > 1 << 32:
            raise MachineError(
                f"range {addr:#x}+{length:#x} is not within the 32-bit address space"
            )
        pieces: list[tuple[int, int, int]] = []

        def emit(linear: int, physical: int, n: int) -> None:
            if pieces and pieces[-1][1] + pieces[-1][2] == physical:
                first, start, size = pieces[-1]
                pieces[-1] = (first, start, size + n)
                return
            if len(pieces) == max_pieces:
                raise MachineError(
                    f"range {addr:#x}+{length:#x} maps to more than {max_pieces} separate "
                    "physical pieces: watch a smaller range"
                )
            pieces.append((linear, physical, n))

        cr0 = self._regs.scalar(X.UC_X86_REG_CR0)
        if not cr0 & CR0_PG:
            return [(addr, addr, length)]
        cr4 = self._regs.scalar(X.UC_X86_REG_CR4)
        if cr4 & CR4_PAE:
            raise MachineError("PAE paging is not supported")
        directory = self._regs.scalar(X.UC_X86_REG_CR3) & 0xFFFFF000
        linear = addr
        while linear < end:
            chunk_end = min(end, (linear | 0x3FFFFF) + 1)  # this directory entry's 4 MiB
            pde = self._phys_u32(directory + ((linear >> 22) << 2))
            if pde is None or not pde & 1:
                emit(linear, linear, chunk_end - linear)
            elif pde & 0x80 and cr4 & CR4_PSE:
                emit(linear, (pde & 0xFFC00000) | (linear & 0x3FFFFF), chunk_end - linear)
            else:
                table = pde & 0xFFFFF000
                first = (linear >> 12) & 0x3FF
                count = ((chunk_end - 1) >> 12 & 0x3FF) - first + 1
                if table + 4 * (first + count) > self.ram_size:
                    entries: tuple[int, ...] = (0,) * count  # the table is not RAM
                else:
                    entries = struct.unpack_from(f"<{count}I", self.ram, table + 4 * first)
                for pte in entries:
                    n = min(chunk_end, (linear | 0xFFF) + 1) - linear
                    if pte & 1:
                        emit(linear, (pte & 0xFFFFF000) | (linear & 0xFFF), n)
                    else:
                        emit(linear, linear, n)
                    linear += n
            linear = chunk_end
        return pieces

    def _phys_u32(self, paddr: int) -> int | None:
        if paddr + 4 > self.ram_size:
            return None
        return int.from_bytes(self.ram[paddr : paddr + 4], "little")

    def read_physical(self, paddr: int, length: int) -> bytes:
        if paddr < 0 or paddr + length > self.ram_size:
            raise MachineError(f"physical range {paddr:#x}+{length:#x} is outside RAM")
        return bytes(self.ram[paddr : paddr + length])

    def write_physical(self, paddr: int, data: bytes) -> None:
        if paddr < 0 or paddr + len(data) > self.ram_size:
            raise MachineError(f"physical range {paddr:#x}+{len(data):#x} is outside RAM")
        self.ram[paddr : paddr + len(data)] = data

    def _linear_chunks(self, addr: int, length: int) -> Iterator[tuple[int | None, int, int]]:
        """(physical address or None, offset in the request, length) per page piece."""
        done = 0
        while done < length:
            lin = (addr + done) & 0xFFFFFFFF
            piece = min(length - done, PAGE_SIZE - (lin & (PAGE_SIZE - 1)))
            phys = self.linear_to_physical(lin)
            if phys is not None and phys + piece > self.ram_size:
                phys = None
            yield phys, done, piece
            done += piece

    def read_linear(self, addr: int, length: int) -> bytes | None:
        """Bytes at a linear address through the page tables; None if any page is absent."""
        out = bytearray()
        for phys, _, piece in self._linear_chunks(addr, length):
            if phys is None:
                return None
            out += self.ram[phys : phys + piece]
        return bytes(out)

    def write_linear(self, addr: int, data: bytes) -> bool:
        """Write at a linear address; False (nothing written) if any page is absent."""
        chunks = list(self._linear_chunks(addr, len(data)))
        if any(phys is None for phys, _, _ in chunks):
            return False
        for phys, off, piece in chunks:
            assert phys is not None
            self.ram[phys : phys + piece] = data[off : off + piece]
        return True

    def save_context(self) -> bytes:
        """The whole CPU state (registers, hidden segment state, control registers, FPU,
        SSE, MSRs) as unicorn keeps it: the engine's context without its header, which
        holds pointers of this process."""
        return bytes(self.uc.context_save())[self._context_header :]

    def restore_context(self, data: bytes) -> None:
        """Put back what `save_context` returned (the same unicorn build)."""
        ctx = self.uc.context_save()
        if len(bytes(ctx)) - self._context_header != len(data):
            raise MachineError(
                f"CPU state of {len(data)} bytes does not fit this unicorn build "
                f"({len(bytes(ctx)) - self._context_header} bytes)"
            )
        ctypes.memmove(self._context_data(ctx), data, len(data))
        self.uc.context_restore(ctx)
        # Translations of the old address space must go: reloading CR3 flushes the TLB.
        self.uc.reg_write(X.UC_X86_REG_CR3, self.uc.reg_read(X.UC_X86_REG_CR3))

    def _context_data(self, ctx: object) -> int:
        base = ctypes.cast(ctx.context, ctypes.c_void_p).value  # type: ignore[attr-defined]
        return (base or 0) + self._context_header


def register_ids() -> Mapping[str, int]:
    """Unicorn register ids by gdb name (general and control registers)."""
    return dict(_REG_IDS)


__all__ = ["Cpu", "MachineError", "TableRegister", "UcError", "register_ids"]

"""The guest's memory path: unicorn's virtual-TLB mode with rdebug's own page walk in C.

Unicorn 2.1.4 sends every store through its slow path for as long as the store's TLB
entry is executable, and its own i386 MMU makes every entry executable.  In virtual-TLB
mode unicorn asks a TLB-fill hook instead: `_vtlb.c` walks the guest's page tables (i386
two-level paging and 4 MiB PSE pages, U/S and R/W against the CPL and CR0.WP, Accessed
and Dirty bits as the CPU sets them) and grants EXEC only on instruction fetches and on
pages code was fetched from, so stores to data stay on TCG's inline fast path.

A refused fill stops the engine with UC_ERR_EXCEPTION at the faulting instruction;
`take_fault` then says which page fault to raise (error code, and the exact address,
read from the engine where unicorn leaves it).  Knows nothing of devices, time or logs.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import struct
from dataclasses import dataclass

from unicorn import (
    UC_ARCH_X86,
    UC_HOOK_INSN,
    UC_HOOK_TLB_FILL,
    UC_MODE_32,
    UC_TLB_VIRTUAL,
    Uc,
    UcError,
)
from unicorn import unicorn_const as UC
from unicorn import x86_const as X
from unicorn.unicorn_py3 import unicorn as _ucpy

from rdebug.errors import MachineError
from rdebug.machine.native import extension

_FAULT_NONE = 0
_FAULT_PAGE = 1
_FAULT_PAE = 2


class _State(ctypes.Structure):
    """Mirror of struct rd_vtlb in _vtlb.c."""

    _fields_ = (
        ("uc", ctypes.c_void_p),
        ("reg_read", ctypes.c_void_p),
        ("ctl", ctypes.c_void_p),
        ("ram", ctypes.c_void_p),
        ("ram_size", ctypes.c_uint64),
        ("code_pages", ctypes.c_void_p),
        ("flush_ctl", ctypes.c_int32),
        ("cr0_regid", ctypes.c_int32),
        ("cr3_regid", ctypes.c_int32),
        ("cr4_regid", ctypes.c_int32),
        ("cs_regid", ctypes.c_int32),
        ("eip_regid", ctypes.c_int32),
        ("gdtr_regid", ctypes.c_int32),
        ("ldtr_regid", ctypes.c_int32),
        ("tr_regid", ctypes.c_int32),
        ("fault", ctypes.c_uint32),
        ("fault_error", ctypes.c_uint32),
        ("host", ctypes.c_uint32),
        ("fault_page", ctypes.c_uint64),
        ("fills", ctypes.c_uint64),
        ("refused", ctypes.c_uint64),
        ("code_flushes", ctypes.c_uint64),
        ("refused_host", ctypes.c_uint64),
        ("reg_write", ctypes.c_void_p),
        ("ss_regid", ctypes.c_int32),
        ("esp_regid", ctypes.c_int32),
        ("eflags_regid", ctypes.c_int32),
        ("idtr_regid", ctypes.c_int32),
        ("delivered", ctypes.c_uint64),
        ("countdown_page", ctypes.c_uint64),
        ("countdown_alias", ctypes.c_uint64),
    )


@dataclass(frozen=True, slots=True)
class PageFault:
    """A #PF to raise at the instruction the engine stopped on."""

    address: int  # CR2
    error_code: int


#: Guest-physical address of the countdown page's read alias: above any address a guest's
#: page tables reach (32 bits, 40 with PSE-36).
COUNTDOWN_ALIAS = 1 << 44


def _library() -> ctypes.CDLL:
    lib = extension()  # the page walk is built into the counter's extension
    lib.rd_deliver.argtypes = (
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_uint32,
        ctypes.c_uint32,
        ctypes.c_uint32,
    )
    lib.rd_deliver.restype = ctypes.c_int
    lib.rd_vtlb_flush.argtypes = (ctypes.c_void_p,)
    lib.rd_vtlb_flush.restype = None
    return lib


def hook_add_native(
    uc: Uc, htype: int, fn: int, user: int, begin: int = 1, end: int = 0, insn: int | None = None
) -> int:
    """A hook of type `htype` whose callback is the C function at `fn`, called with `user`
    (a UC_HOOK_INSN hook names its instruction, `insn`: the binding takes only Python
    callables, and refuses some instructions)."""
    handle = ctypes.c_size_t()
    extra = () if insn is None else (ctypes.c_int(insn),)
    status = _ucpy.uclib.uc_hook_add(
        uc._uch,
        ctypes.byref(handle),
        htype,
        ctypes.c_void_p(fn),
        ctypes.c_void_p(user),
        ctypes.c_uint64(begin),
        ctypes.c_uint64(end),
        *extra,
    )
    if status != 0:
        raise UcError(status)
    return int(handle.value)


def hook_insn_native(uc: Uc, fn: int, user: int, insn: int) -> int:
    """The C function at `fn` as the UC_HOOK_INSN hook of instruction `insn`."""
    return hook_add_native(uc, UC_HOOK_INSN, fn, user, insn=insn)


@functools.cache
def _invalid_addr_offset() -> int:
    """Where this unicorn build keeps the address of a refused fill in its engine struct.

    Found once per process as the cpu.py blob offsets are: two faults at known addresses
    in one scratch engine (a new engine costs ~1 ms of set-up), then the one 64-bit field
    holding each address in turn.
    """
    libc = ctypes.CDLL(None)
    usable = libc.malloc_usable_size
    usable.restype = ctypes.c_size_t
    usable.argtypes = (ctypes.c_void_p,)
    uc = Uc(UC_ARCH_X86, UC_MODE_32)
    uc.mem_map(0, 0x10000)
    uc.ctl_set_tlb_mode(UC_TLB_VIRTUAL)

    def fill(uc: Uc, page: int, _type: int, entry: object, _user: object) -> bool:
        if page in (0x5000, 0x7000):
            return False
        entry.paddr = page  # type: ignore[attr-defined]
        entry.perms = UC.UC_PROT_ALL  # type: ignore[attr-defined]
        return True

    uc.hook_add(UC_HOOK_TLB_FILL, fill)
    base = ctypes.cast(uc._uch, ctypes.c_void_p).value or 0
    found: list[set[int]] = []
    for code_addr, addr in ((0x1000, 0x5ABC), (0x2000, 0x7D31)):
        code = bytes.fromhex("8b1d") + struct.pack("<I", addr) + b"\xf4"  # mov ebx, [addr]; hlt
        uc.mem_write(code_addr, code)
        with contextlib.suppress(UcError):  # the refused fill, as intended
            uc.emu_start(code_addr, code_addr + len(code))
        raw = ctypes.string_at(base, usable(base))
        want = struct.pack("<Q", addr)
        offsets: set[int] = set()
        off = raw.find(want)
        while off >= 0:
            if off % 8 == 0:
                offsets.add(off)
            off = raw.find(want, off + 1)
        found.append(offsets)
    offsets = found[0] & found[1]
    if len(offsets) != 1:
        raise MachineError(f"cannot calibrate this unicorn build's fault address: {offsets}")
    return offsets.pop()


class VirtualTlb:
    """Switches `uc` to the virtual-TLB mode with the native page walk over `ram`."""

    def __init__(self, uc: Uc, ram_address: int, ram_size: int) -> None:
        self._uc: Uc | None = uc
        self._lib = _library()
        self._offset = _invalid_addr_offset()
        self._code_pages = (ctypes.c_uint8 * ((ram_size // 4096 + 7) // 8))()
        st = _State()
        st.uc = ctypes.cast(uc._uch, ctypes.c_void_p).value
        st.reg_read = ctypes.cast(_ucpy.uclib.uc_reg_read, ctypes.c_void_p).value
        st.ctl = ctypes.cast(_ucpy.uclib.uc_ctl, ctypes.c_void_p).value
        st.ram = ram_address
        st.ram_size = ram_size
        st.code_pages = ctypes.addressof(self._code_pages)
        st.flush_ctl = UC.UC_CTL_TLB_FLUSH | (UC.UC_CTL_IO_WRITE << 30)
        st.cr0_regid = X.UC_X86_REG_CR0
        st.cr3_regid = X.UC_X86_REG_CR3
        st.cr4_regid = X.UC_X86_REG_CR4
        st.cs_regid = X.UC_X86_REG_CS
        st.eip_regid = X.UC_X86_REG_EIP
        st.gdtr_regid = X.UC_X86_REG_GDTR
        st.ldtr_regid = X.UC_X86_REG_LDTR
        st.tr_regid = X.UC_X86_REG_TR
        st.reg_write = ctypes.cast(_ucpy.uclib.uc_reg_write, ctypes.c_void_p).value
        st.ss_regid = X.UC_X86_REG_SS
        st.esp_regid = X.UC_X86_REG_ESP
        st.eflags_regid = X.UC_X86_REG_EFLAGS
        st.idtr_regid = X.UC_X86_REG_IDTR
        self._st = st
        self._st_addr = ctypes.addressof(st)
        uc.ctl_set_tlb_mode(UC_TLB_VIRTUAL)
        fn = ctypes.cast(self._lib.rd_tlb_fill, ctypes.c_void_p).value
        assert fn is not None
        self._hook = hook_add_native(uc, UC_HOOK_TLB_FILL, fn, self._st_addr)
        self._deliver = self._lib.rd_deliver

    @property
    def state_address(self) -> int:
        """Address of the page walk's C struct (for the native interrupt hook, _intr.c)."""
        return self._st_addr

    @property
    def fills(self) -> int:
        """TLB fills the page walk answered (statistics)."""
        return int(self._st.fills)

    @property
    def delivered(self) -> int:
        """Interrupts delivered natively (statistics)."""
        return int(self._st.delivered)

    def take_fault(self) -> PageFault | None:
        """After the engine stopped with UC_ERR_EXCEPTION: the page fault it stopped for
        (None: it stopped for something else)."""
        st = self._st
        fault, st.fault = int(st.fault), _FAULT_NONE
        if fault == _FAULT_NONE:
            return None
        if fault == _FAULT_PAE:
            raise MachineError("PAE paging is not supported")
        assert self._uc is not None
        base = ctypes.cast(self._uc._uch, ctypes.c_void_p).value or 0
        address = ctypes.c_uint64.from_address(base + self._offset).value & 0xFFFFFFFF
        if address >> 12 != int(st.fault_page) >> 12:
            address = int(st.fault_page)  # not the access unicorn reported: the page
        return PageFault(address, int(st.fault_error))

    def deliver(self, vector: int, software: bool, error_code: int | None) -> bool:
        """Deliver through a 32-bit gate of the IDT in protected mode, natively; False
        (nothing changed) when the case is not the common one: interrupts.py does it."""
        code = 0 if error_code is None else error_code & 0xFFFFFFFF
        return not self._deliver(
            self._st_addr, vector, int(software), int(error_code is not None), code
        )

    def read_through_countdown(self, page: int, countdown: int) -> None:
        """Send every guest read of guest-physical page `page` to the countdown at
        address `countdown` (struct rd_countdown, machine/countdown.py), which brings the
        page up to date first: an MMIO alias of the page, out of the guest's reach,
        that read fills of the page map instead."""
        assert self._uc is not None
        lib = self._lib
        read = ctypes.cast(lib.rd_countdown_mmio_read, ctypes.c_void_p)
        write = ctypes.cast(lib.rd_countdown_mmio_write, ctypes.c_void_p)
        handle = ctypes.c_void_p(ctypes.cast(self._uc._uch, ctypes.c_void_p).value)
        err = _ucpy.uclib.uc_mmio_map(
            handle,
            COUNTDOWN_ALIAS,
            0x1000,
            read,
            ctypes.c_void_p(countdown),
            write,
            ctypes.c_void_p(countdown),
        )
        if err != UC.UC_ERR_OK:
            raise MachineError(f"cannot map the countdown's read alias: unicorn error {err}")
        self._st.countdown_page = page & ~0xFFF
        self._st.countdown_alias = COUNTDOWN_ALIAS
        self._uc.ctl_flush_tb()
        self._lib.rd_vtlb_flush(self._st_addr)  # no entry read the page itself any more

    def countdown_reads_through_alias(self, on: bool) -> None:
        """Whether guest reads of the countdown's page (`read_through_countdown`) go
        through its alias or read the page itself; every TLB entry is dropped."""
        assert self._st.countdown_page or not on
        self._st.countdown_alias = COUNTDOWN_ALIAS if on else 0
        self._lib.rd_vtlb_flush(self._st_addr)

    def host_access(self, on: bool) -> None:
        """Around engine calls that access guest memory outside guest execution (loading
        a segment descriptor): supervisor accesses, never refused."""
        self._st.host += 1 if on else -1

    def clear_fault(self) -> None:
        self._st.fault = _FAULT_NONE

    def close(self) -> None:
        """Drop this object's reference to the engine (the machine is closing).  The
        hook's state stays with this object, which the engine no longer outlives."""
        self._uc = None

"""CPUID and RDTSC: what the CPU says it is, and its time-stamp counter in virtual time.

Both instructions would otherwise answer from the host (unhooked, unicorn's RDTSC reads
the host's TSC): here CPUID describes one fixed CPU and the TSC is a 1 GHz counter of
virtual nanoseconds, so every run of a guest reads the same values.
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Callable

from unicorn import UC_HOOK_INSN, Uc
from unicorn import x86_const as X
from unicorn.unicorn_py3 import unicorn as _ucpy

from rdebug.machine.counter import Counter
from rdebug.machine.cpu import Cpu
from rdebug.machine.icount_binding import fn_address
from rdebug.machine.native import extension
from rdebug.machine.native_counter import NativeCounter
from rdebug.machine.vtlb import hook_insn_native

_INSN_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)


class TscState(ctypes.Structure):
    """Mirror of struct rd_tsc in _icount.c (the native RDTSC/RDTSCP hooks)."""

    _fields_ = (
        ("counter", ctypes.c_void_p),
        ("reg_write", ctypes.c_void_p),
        ("fallback_rdtsc", ctypes.c_void_p),
        ("fallback_rdtscp", ctypes.c_void_p),
        ("bias_ns", ctypes.c_int64),
        ("icount_shift", ctypes.c_uint32),
        ("eax_regid", ctypes.c_int32),
        ("edx_regid", ctypes.c_int32),
        ("ecx_regid", ctypes.c_int32),
        ("native", ctypes.c_uint64),
    )


def cpuid(leaf: int) -> tuple[int, int, int, int]:
    """The CPU rdebug presents: a family-6 Intel-compatible i686 with SSE2."""
    if leaf == 0:
        vendor = b"GenuineIntel"
        ebx, edx, ecx = struct.unpack("<III", vendor)
        return 1, ebx, ecx, edx
    if leaf == 1:
        # family 6, model 3, stepping 3; FPU VME DE PSE TSC MSR CX8 APIC SEP CMOV MMX FXSR
        # SSE SSE2
        features = 0
        for bit in (0, 1, 2, 3, 4, 5, 8, 9, 11, 15, 23, 24, 25, 26):
            features |= 1 << bit
        return 0x00000633, 0x00010000, 0, features
    if leaf == 0x80000000:
        return 0x80000000, 0, 0, 0
    return 0, 0, 0, 0


class CpuidTsc:
    """The CPUID, RDTSC and RDTSCP hooks of one CPU (installed for its lifetime).

    `now_ns` is the machine's virtual clock; it is read with the counter positioned on
    the reading instruction (a hook runs mid-block).  With the native counter, RDTSC and
    RDTSCP are answered in C (`rd_rdtsc_hook` in _icount.c: the same value, from the
    block's start and the instruction's index in it), which calls the Python hooks here
    only for a block it does not know; the machine then gives it the clock before each
    run (`set_clock`).
    """

    def __init__(self, cpu: Cpu, counter: Counter, now_ns: Callable[[], int]) -> None:
        self._cpu = cpu
        self._counter = counter
        self._now_ns = now_ns
        uc = cpu.uc
        uc.hook_add(UC_HOOK_INSN, self._on_cpuid, None, 1, 0, X.UC_X86_INS_CPUID)
        # The binding refuses RDTSC/RDTSCP hooks: register them through its C entry point
        # (and keep the ctypes callbacks alive as long as the hooks).
        self._tsc_fn = _INSN_FN(self._on_rdtsc)
        self._tscp_fn = _INSN_FN(self._on_rdtscp)
        self._native: TscState | None = None
        if isinstance(counter, NativeCounter):
            native = self._native = TscState()
            native.counter = counter.state_address
            native.reg_write = ctypes.cast(_ucpy.uclib.uc_reg_write, ctypes.c_void_p).value
            native.fallback_rdtsc = ctypes.cast(self._tsc_fn, ctypes.c_void_p).value
            native.fallback_rdtscp = ctypes.cast(self._tscp_fn, ctypes.c_void_p).value
            native.eax_regid = X.UC_X86_REG_EAX
            native.edx_regid = X.UC_X86_REG_EDX
            native.ecx_regid = X.UC_X86_REG_ECX
            lib = extension()
            user = ctypes.addressof(native)
            self._hooks = [
                hook_insn_native(uc, fn_address(lib, "rd_rdtsc_hook"), user, X.UC_X86_INS_RDTSC),
                hook_insn_native(uc, fn_address(lib, "rd_rdtscp_hook"), user, X.UC_X86_INS_RDTSCP),
            ]
        else:
            self._hooks = [
                hook_insn_native(uc, _address(self._tsc_fn), 0, X.UC_X86_INS_RDTSC),
                hook_insn_native(uc, _address(self._tscp_fn), 0, X.UC_X86_INS_RDTSCP),
            ]

    def set_clock(self, icount_shift: int, bias_ns: int) -> None:
        """Virtual time is (icount << icount_shift) + bias_ns (set before each run)."""
        if self._native is not None:
            self._native.icount_shift = icount_shift
            self._native.bias_ns = bias_ns

    @property
    def native_reads(self) -> int:
        """RDTSC/RDTSCP answered by the native hook (statistics)."""
        return 0 if self._native is None else int(self._native.native)

    def _on_cpuid(self, uc: Uc, _user: object) -> int:
        leaf = self._cpu.read("eax")
        eax, ebx, ecx, edx = cpuid(leaf)
        for name, value in (("eax", eax), ("ebx", ebx), ("ecx", ecx), ("edx", edx)):
            self._cpu.write(name, value)
        return 1

    def _on_rdtsc(self, _uc: int, _user: int) -> int:
        self._write_tsc()
        return 1

    def _on_rdtscp(self, _uc: int, _user: int) -> int:
        self._write_tsc()
        self._cpu.write("ecx", 0)
        return 1

    def _write_tsc(self) -> None:
        """A 1 GHz time-stamp counter in virtual time."""
        self._counter.begin_special()
        try:
            tsc = self._now_ns()
        finally:
            self._counter.end_special()
        self._cpu.write("eax", tsc & 0xFFFFFFFF)
        self._cpu.write("edx", (tsc >> 32) & 0xFFFFFFFF)


def _address(fn: ctypes._FuncPointer) -> int:
    return ctypes.cast(fn, ctypes.c_void_p).value or 0

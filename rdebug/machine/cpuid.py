"""CPUID and RDTSC: what the CPU says it is, and its time-stamp counter in virtual time.

Both instructions would otherwise answer from the host (unhooked, unicorn's RDTSC reads
the host's TSC): here CPUID describes one fixed CPU and the TSC is a 1 GHz counter of
virtual nanoseconds, so every run of a guest reads the same values.
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Callable

from unicorn import UC_HOOK_INSN, Uc, UcError
from unicorn import x86_const as X
from unicorn.unicorn_py3 import unicorn as _ucpy

from rdebug.machine.counter import Counter
from rdebug.machine.cpu import Cpu

_INSN_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)


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
    the reading instruction (a hook runs mid-block).
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
        self._hooks = [
            _hook_insn_ctypes(uc, self._tsc_fn, X.UC_X86_INS_RDTSC),
            _hook_insn_ctypes(uc, self._tscp_fn, X.UC_X86_INS_RDTSCP),
        ]

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


def _hook_insn_ctypes(uc: Uc, fn: ctypes._FuncPointer, insn: int) -> int:
    handle = ctypes.c_size_t()
    status = _ucpy.uclib.uc_hook_add(
        uc._uch,
        ctypes.byref(handle),
        UC_HOOK_INSN,
        ctypes.cast(fn, ctypes.c_void_p),
        ctypes.c_void_p(0),
        ctypes.c_uint64(1),
        ctypes.c_uint64(0),
        ctypes.c_int(insn),
    )
    if status != 0:
        raise UcError(status)
    return int(handle.value)

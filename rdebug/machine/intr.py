"""Native interrupt hooks (_intr.c): system calls without a Python round trip.

`NativeInterrupts` is the machine's UC_HOOK_INTR: an `INT n` (n >= 32) that ends the
block the native counter runs, delivered through a 32-bit gate in protected mode, is
taken in C exactly as the machine's Python hook takes it (the counter's trap position,
`rd_deliver`), and its icount kept for the machine to pass on to its inputs (`take_syncs`)
before they see anything later; every other interrupt and exception goes to the Python
hook it was given.  `Cr2Hook` keeps CR2 when a page fault is raised (for cpu.py).
Knows nothing of devices, time or logs.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

from unicorn import UC_HOOK_INTR, Uc
from unicorn import x86_const as X
from unicorn.unicorn_py3 import unicorn as _ucpy

from rdebug.machine.native import extension, function_address
from rdebug.machine.vtlb import hook_add_native

#: Interrupts taken natively kept before the Python side must take one (and empty the
#: list): software interrupts here, and the local APIC's (_lapic.c, which stops the
#: engine for Python when the list is full).
SYNC_CAPACITY = 4096
#: Set in a `take_syncs` entry of an external interrupt (the local APIC's): the rest is
#: its icount.  Clear: a software interrupt's icount.
SYNC_EXTERNAL = 1 << 63

FALLBACK_FN = ctypes.CFUNCTYPE(None, ctypes.c_uint32)


class _IntrState(ctypes.Structure):
    """Mirror of struct rd_intr in _intr.c."""

    _fields_ = (
        ("counter", ctypes.c_void_p),
        ("vtlb", ctypes.c_void_p),
        ("fallback", ctypes.c_void_p),
        ("syncs", ctypes.c_void_p),
        ("count", ctypes.c_uint32),
        ("capacity", ctypes.c_uint32),
        ("native", ctypes.c_uint32),
        ("_pad", ctypes.c_uint32),
        ("handled", ctypes.c_uint64),
    )


class _Cr2State(ctypes.Structure):
    """Mirror of struct rd_cr2 in _intr.c."""

    _fields_ = (
        ("reg_read", ctypes.c_void_p),
        ("cr2_regid", ctypes.c_int32),
        ("seen", ctypes.c_uint32),
        ("cr2", ctypes.c_uint64),
    )


def _hook_add(uc: Uc, fn: int, user: int) -> int:
    """A native UC_HOOK_INTR (fn called with `user`)."""
    return hook_add_native(uc, UC_HOOK_INTR, fn, user, 1, 0)


class NativeInterrupts:
    """The UC_HOOK_INTR of a machine with the native counter and page walk.

    `counter_state` and `vtlb_state` are the addresses of their C structs; `fallback(intno)`
    is the Python hook, called for everything not taken natively.  An exception it raises
    stops the engine and is raised again by `Uc.emu_start`, as the binding's own hooks do.
    """

    #: whether a new machine takes system calls in C (tests turn it off to compare)
    default_native = True

    def __init__(
        self, uc: Uc, counter_state: int, vtlb_state: int, fallback: Callable[[int], None]
    ) -> None:
        self._uc = uc
        self._fallback = fallback
        self._fallback_fn = FALLBACK_FN(self._on_fallback)
        self._syncs = (ctypes.c_uint64 * SYNC_CAPACITY)()
        st = _IntrState()
        st.counter = counter_state
        st.vtlb = vtlb_state
        st.fallback = ctypes.cast(self._fallback_fn, ctypes.c_void_p).value
        st.syncs = ctypes.addressof(self._syncs)
        st.capacity = SYNC_CAPACITY
        st.native = int(self.default_native)
        self._st = st
        self._hook = _hook_add(
            uc, function_address(extension(), "rd_intr_hook"), ctypes.addressof(st)
        )

    @property
    def native(self) -> bool:
        """Whether software interrupts are taken in C (off: every one goes to Python)."""
        return bool(self._st.native)

    @native.setter
    def native(self, on: bool) -> None:
        self._st.native = int(on)

    @property
    def handled(self) -> int:
        """Software interrupts taken natively (statistics)."""
        return int(self._st.handled)

    @property
    def state_address(self) -> int:
        """Address of the hook's C struct (where the LAPIC's native deliveries are logged)."""
        return ctypes.addressof(self._st)

    @property
    def waiting(self) -> int:
        """Interrupts taken natively and not yet handed over by `take_syncs`."""
        return int(self._st.count)

    def take_syncs(self) -> list[int]:
        """The interrupts taken natively since the last call, in order: icounts of
        software interrupts, and of the LAPIC's with `SYNC_EXTERNAL` set."""
        st = self._st
        count = int(st.count)
        if not count:
            return []
        st.count = 0
        return self._syncs[:count]

    def _on_fallback(self, intno: int) -> None:
        try:
            self._fallback(intno)
        except BaseException as exc:  # raised again by emu_start, as the binding does
            if self._uc._hook_exception is None:
                self._uc._hook_exception = exc
            self._uc.emu_stop()


class Cr2Hook:
    """Keeps CR2 whenever the engine raises a page fault (a native UC_HOOK_INTR)."""

    def __init__(self, uc: Uc) -> None:
        st = _Cr2State()
        st.reg_read = ctypes.cast(_ucpy.uclib.uc_reg_read, ctypes.c_void_p).value
        st.cr2_regid = X.UC_X86_REG_CR2
        self._st = st
        _hook_add(uc, function_address(extension(), "rd_cr2_hook"), ctypes.addressof(st))

    def take(self) -> int | None:
        """CR2 as the last page fault since the previous call left it, if there was one."""
        st = self._st
        if not st.seen:
            return None
        st.seen = 0
        return int(st.cr2)

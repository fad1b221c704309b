"""The local APIC's interrupt state in C (`struct rd_lapic`, _lapic.h and _lapic.c).

The APIC's IRR, ISR and TMR live in the C struct, and every change to them goes through
the C functions here (accept, acknowledge, EOI), so that the device (devices/lapic.py)
and the native counter, which takes the timer's expiries and delivers the APIC's
interrupts at IRQ windows without a Python round trip, share one implementation of the
priority logic.  The device copies the other registers the native paths read (TPR, SVR,
the timer's and LINT0's LVT entries) and the timer's schedule into the struct whenever
it changes them; the machine wires the struct to the counter and the interrupt hooks,
and reads back the timer's next deadline after each run.

`LapicState` mirrors `struct rd_lapic` (change both sides together).  Devices use this
module: it loads only the extension (no engine).
"""

from __future__ import annotations

import ctypes
import functools
import mmap

from rdebug.machine.countdown import Countdown
from rdebug.machine.native import extension, function_address

#: `deadline_ns` of a timer that is not armed (INT64_MAX).
NO_DEADLINE = (1 << 63) - 1

_Words = ctypes.c_uint32 * 8


class LapicState(ctypes.Structure):
    """Mirror of struct rd_lapic in _lapic.h."""

    _fields_ = (
        ("irr", _Words),
        ("isr", _Words),
        ("tmr", _Words),
        ("shown", _Words * 3),
        ("page", ctypes.c_void_p),
        ("tpr", ctypes.c_uint32),
        ("svr", ctypes.c_uint32),
        ("lvt_timer", ctypes.c_uint32),
        ("lvt_lint0", ctypes.c_uint32),
        ("int_out", ctypes.c_uint32),
        ("wired", ctypes.c_uint32),
        ("deadline_ns", ctypes.c_int64),
        ("start_ns", ctypes.c_int64),
        ("period_ns", ctypes.c_int64),
        ("bias_ns", ctypes.c_int64),
        ("icount_shift", ctypes.c_uint32),
        ("_pad", ctypes.c_uint32),
        ("deadline_icount", ctypes.c_uint64),
        ("countdown", ctypes.c_void_p),
        ("intr", ctypes.c_void_p),
        ("vtlb", ctypes.c_void_p),
        ("expiries", ctypes.c_uint64),
        ("delivered", ctypes.c_uint64),
        ("limit", ctypes.c_void_p),
    )


class LapicStoreState(ctypes.Structure):
    """Mirror of struct rd_lapic_store in _lapic.c."""

    _fields_ = (
        ("lapic", ctypes.c_void_p),
        ("eoi_addr", ctypes.c_uint64),
        ("fallback", ctypes.c_void_p),
        ("eois", ctypes.c_uint64),
    )


#: The EOI register's offset in the register page.
EOI_OFFSET = 0x0B0


@functools.cache
def _library() -> ctypes.CDLL:
    lib = extension()
    p = ctypes.c_void_p
    for name, args, res in (
        ("rd_lapic_accept", (p, ctypes.c_uint32, ctypes.c_uint32), ctypes.c_int),
        ("rd_lapic_acknowledge", (p,), ctypes.c_int),
        ("rd_lapic_eoi", (p,), ctypes.c_int),
        ("rd_lapic_update", (p,), ctypes.c_int),
        ("rd_lapic_ppr", (p,), ctypes.c_uint32),
        ("rd_lapic_publish", (p,), None),
        ("rd_lapic_shown", (p,), None),
        ("rd_lapic_set_timer", (p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64), None),
        ("rd_lapic_set_clock", (p, ctypes.c_uint32, ctypes.c_int64), None),
    ):
        fn = getattr(lib, name)
        fn.argtypes = args
        fn.restype = res
    return lib


class Bitmap:
    """IRR, ISR or TMR (the struct field of the attribute's name) as an int, bit v for
    vector v: an attribute of `LapicCore`, or of an object holding one as `core`."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def _words(self, holder: object) -> ctypes.Array[ctypes.c_uint32]:
        # the device's own attribute is `core`: a getattr, since `holder` is any object
        core = holder if isinstance(holder, LapicCore) else getattr(holder, "core")  # noqa: B009
        words: ctypes.Array[ctypes.c_uint32] = getattr(core.state, self._name)
        return words

    def __get__(self, holder: object, owner: type | None = None) -> int:
        return int.from_bytes(bytes(self._words(holder)), "little")

    def __set__(self, holder: object, value: int) -> None:
        data = (value & ((1 << 256) - 1)).to_bytes(32, "little")
        ctypes.memmove(self._words(holder), data, 32)


class LapicCore:
    """The interrupt state of one local APIC whose register page is `page`."""

    def __init__(self, page: mmap.mmap, countdown: Countdown) -> None:
        self._lib = _library()
        self._page_ptr = ctypes.c_char.from_buffer(page)  # keeps the page mapped
        self._countdown = countdown  # the C struct lives as long as this reference
        st = LapicState()
        st.page = ctypes.addressof(self._page_ptr)
        st.countdown = countdown.address
        st.deadline_ns = NO_DEADLINE
        st.deadline_icount = (1 << 64) - 1
        self.state = st
        self.address = ctypes.addressof(st)
        self._store = LapicStoreState()
        self._store.lapic = self.address

    # -- the registers C keeps -------------------------------------------------------------

    irr = Bitmap()
    isr = Bitmap()
    tmr = Bitmap()

    def word(self, bitmap: int, index: int) -> int:
        """Word `index` (0-7) of ISR (`bitmap` 0), TMR (1) or IRR (2)."""
        st = self.state
        return int((st.isr, st.tmr, st.irr)[bitmap][index])

    @property
    def int_out(self) -> bool:
        """A requested vector's priority class is above the processor priority class."""
        return bool(self.state.int_out)

    def copy_registers(self, tpr: int, svr: int, lvt_timer: int, lvt_lint0: int) -> None:
        """The device's registers the C side reads (after any of them changed)."""
        st = self.state
        st.tpr = tpr
        st.svr = svr
        st.lvt_timer = lvt_timer
        st.lvt_lint0 = lvt_lint0

    # -- the priority logic (_lapic.c) -----------------------------------------------------

    def accept(self, vector: int, level: bool) -> bool:
        """Request `vector` (>= 16; software-enabled APIC); whether INTR rose."""
        return bool(self._lib.rd_lapic_accept(self.address, vector, int(level)))

    def acknowledge(self) -> int | None:
        """Move the highest requested vector into service: it, or None if none is
        deliverable."""
        vector = self._lib.rd_lapic_acknowledge(self.address)
        return None if vector < 0 else int(vector)

    def eoi(self) -> bool:
        """The highest vector in service leaves it; whether INTR rose."""
        return bool(self._lib.rd_lapic_eoi(self.address))

    def update(self) -> bool:
        """INTR again after a TPR or SVR change; whether it rose."""
        return bool(self._lib.rd_lapic_update(self.address))

    def ppr(self) -> int:
        return int(self._lib.rd_lapic_ppr(self.address))

    def publish(self) -> None:
        """ISR, TMR, IRR (the words that changed) and PPR into the register page."""
        self._lib.rd_lapic_publish(self.address)

    def page_written(self) -> None:
        """The device wrote the whole page: ISR, TMR and IRR in it are current."""
        self._lib.rd_lapic_shown(self.address)

    # -- the timer -------------------------------------------------------------------------

    def set_timer(self, deadline_ns: int | None, start_ns: int, period_ns: int) -> None:
        """The next expiry (None: none), the periodic schedule's origin and period (0:
        one-shot)."""
        self._lib.rd_lapic_set_timer(
            self.address, NO_DEADLINE if deadline_ns is None else deadline_ns, start_ns, period_ns
        )

    @property
    def deadline_ns(self) -> int | None:
        """The next expiry as the C side has it (it moves at every native expiry)."""
        deadline = int(self.state.deadline_ns)
        return None if deadline == NO_DEADLINE else deadline

    # -- the machine's side ----------------------------------------------------------------

    def set_clock(self, icount_shift: int, bias_ns: int) -> None:
        """Virtual time is (icount << icount_shift) + bias_ns (set before each run)."""
        st = self.state
        if st.icount_shift != icount_shift or st.bias_ns != bias_ns:
            self._lib.rd_lapic_set_clock(self.address, icount_shift, bias_ns)

    def wire(self, intr_address: int, vtlb_address: int) -> None:
        """Let the native counter take the timer's expiries and deliver (the native
        interrupt hook's and the page walk's C structs)."""
        self.state.intr = intr_address
        self.state.vtlb = vtlb_address

    @property
    def wired(self) -> bool:
        return bool(self.state.wired)

    @wired.setter
    def wired(self, on: bool) -> None:
        if on and not (self.state.intr and self.state.vtlb):
            raise ValueError("the APIC's native paths are not wired")
        self.state.wired = int(on)

    def store_hook(self, base: int, fallback: int) -> tuple[int, int]:
        """The register page's C store hook (`rd_lapic_store_hook`: EOIs that let no other
        interrupt in, while wired) for the page at guest-physical `base`, passing the
        other stores to the C function at `fallback`: (its address, its user data)."""
        self._store.eoi_addr = base + EOI_OFFSET
        self._store.fallback = fallback
        return function_address(self._lib, "rd_lapic_store_hook"), ctypes.addressof(self._store)

    @property
    def eois(self) -> int:
        """EOIs taken by the C store hook (statistics)."""
        return int(self._store.eois)

    @property
    def expiries(self) -> int:
        """Timer expiries taken natively (statistics)."""
        return int(self.state.expiries)

    @property
    def delivered(self) -> int:
        """Interrupts delivered natively (statistics)."""
        return int(self.state.delivered)

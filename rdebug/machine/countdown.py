"""A device down-counter the guest reads with no memory hook: `struct rd_countdown`.

The LAPIC timer's current count moves with time, and a guest reads it from the
register page (a plain memory read, no callback).  So the counter publishes it: while a
`Countdown` is armed, the native counter's block hook (`rd_block_hook` in _icount.c)
writes the count into the page at every branch boundary (the first instruction after a
jump, call, return, INT, IRET, loop, HLT, or an interrupt or exception delivery), and the
device writes it itself whenever a register store reloads or rescales it.  A read thus
returns the count at the last branch boundary or reload at or before it: a pure
function of the instructions executed, the same in a straight run, a recording, its
replay, and after any seek or restore (the published value is part of the device's
saved state).  The reference counter (tests/oracle) publishes at the same positions
through `publish_at`.

The native counter publishes lazily (`publish_lazily`): its hook only keeps the icount
of the last branch boundary, every guest read of the page goes through an MMIO alias
(the page walk maps read fills there, machine/vtlb.py) whose callback first writes the
count at that boundary into the page (`catch_up`, unless the page already holds it or a
later one), and the machine catches up after each run and whenever `published` is read.
The page then holds, whenever anything reads it, what publishing at every boundary would
have left there; publishing at every boundary cost a tenth of a kernel's run that
reads the page seldom.  `PublicationChoice` goes back to publishing at every boundary
for a guest that reads the page often (an alias read costs more than ~30 publications).

`CountdownState` mirrors `struct rd_countdown` (change both sides together).  Devices
use this module, so it loads _icount's two countdown functions itself (it must not
import the counter's binding, which knows the engine).
"""

from __future__ import annotations

import ctypes
import functools
import mmap
from collections.abc import Callable

from rdebug.machine.native import extension


class CountdownState(ctypes.Structure):
    """Mirror of struct rd_countdown in _icount.c."""

    _fields_ = (
        ("armed", ctypes.c_uint32),
        ("periodic", ctypes.c_uint32),
        ("initial", ctypes.c_uint32),
        ("divide_shift", ctypes.c_uint32),
        ("icount_shift", ctypes.c_uint32),
        ("published", ctypes.c_uint32),
        ("bias_ns", ctypes.c_int64),
        ("start_ns", ctypes.c_int64),
        ("page", ctypes.c_void_p),
        ("offset", ctypes.c_uint64),
        ("publications", ctypes.c_uint64),
        ("period_start_ns", ctypes.c_int64),
        ("fast_from", ctypes.c_uint64),
        ("fast_span", ctypes.c_uint64),
        ("fast_off", ctypes.c_int64),
        ("lazy", ctypes.c_uint32),
        ("_pad_lazy", ctypes.c_uint32),
        ("published_at", ctypes.c_uint64),
        ("boundary", ctypes.c_void_p),
        ("reads", ctypes.c_uint64),
    )


_U32 = 0xFFFFFFFF
#: `published_at` / the counter's `boundary`: no branch boundary (RD_NONE)
_NONE = (1 << 64) - 1


@functools.cache
def _library() -> ctypes.CDLL:
    lib = extension()
    lib.rd_countdown_value.argtypes = (ctypes.c_void_p, ctypes.c_uint64)
    lib.rd_countdown_value.restype = ctypes.c_uint32
    lib.rd_countdown_publish.argtypes = (ctypes.c_void_p, ctypes.c_uint64)
    lib.rd_countdown_publish.restype = ctypes.c_uint32
    for name in ("rd_countdown_catch_up", "rd_countdown_written"):
        getattr(lib, name).argtypes = (ctypes.c_void_p,)
        getattr(lib, name).restype = None
    return lib


class Countdown:
    """The count at `offset` in host page `page`: what the guest reads there."""

    def __init__(self, page: mmap.mmap, offset: int) -> None:
        if not 0 <= offset <= len(page) - 4 or offset % 4:
            raise ValueError(f"countdown offset {offset:#x} outside its page")
        self._lib = _library()
        self._page_ptr = ctypes.c_char.from_buffer(page)  # keeps the page mapped
        self._page = page
        self.state = CountdownState()
        self.state.page = ctypes.addressof(self._page_ptr)
        self.state.offset = offset
        self.state.published_at = _NONE
        self.address = ctypes.addressof(self.state)
        self._offset = offset
        self._limit: ctypes.c_uint64 | None = None

    def attach_publisher(self, limit_address: int) -> None:
        """The counter whose block hook publishes this countdown keeps the limit of its
        fast path (a uint64) at `limit_address`: zeroed at every change of `armed` or
        `lazy`, so that its next block entry looks at them again."""
        self._limit = ctypes.c_uint64.from_address(limit_address)

    def _publication_changed(self) -> None:
        if self._limit is not None:
            self._limit.value = 0

    # -- the device's side -----------------------------------------------------------------

    def arm(self, start_ns: int, initial: int, divisor: int, periodic: bool) -> None:
        """Count down from `initial` (non-zero) at `start_ns`, one per `divisor` ns (a
        power of two)."""
        if initial <= 0 or divisor <= 0 or divisor & (divisor - 1):
            raise ValueError(f"countdown of {initial} every {divisor} ns")
        st = self.state
        st.start_ns = start_ns
        st.period_start_ns = start_ns
        st.initial = initial & _U32
        st.divide_shift = divisor.bit_length() - 1
        st.periodic = int(periodic)
        st.fast_span = 0  # the C side's linear stretch is of the old countdown
        st.armed = 1
        self._publication_changed()

    def disarm(self) -> None:
        """Stop publishing (the count no longer moves)."""
        self.state.armed = 0
        self.state.fast_span = 0
        self._publication_changed()

    @property
    def armed(self) -> bool:
        return bool(self.state.armed)

    def write(self, value: int) -> None:
        """Put `value` in the page now (the count at a register store, or a restored one)."""
        value &= _U32
        self.state.published = value
        self._page[self._offset : self._offset + 4] = value.to_bytes(4, "little")
        self._lib.rd_countdown_written(self.address)

    @property
    def published(self) -> int:
        """What the guest reads in the page now (the page brought up to date first)."""
        if self.state.lazy:
            self.catch_up()
        return int(self.state.published)

    # -- the machine's side ----------------------------------------------------------------

    def set_clock(self, icount_shift: int, bias_ns: int) -> None:
        """Virtual time is (icount << icount_shift) + bias_ns (set before each run)."""
        st = self.state
        if st.icount_shift != icount_shift or st.bias_ns != bias_ns:
            st.icount_shift = icount_shift
            st.bias_ns = bias_ns
            st.fast_span = 0

    def publish_lazily(self, boundary_address: int) -> None:
        """Publish only when the page is read: the guest's reads go through an alias
        that brings it up to date first (machine/vtlb.py), and the machine calls
        `catch_up` before it or a device reads it; the counter keeps the icount of the
        last branch boundary at `boundary_address`."""
        st = self.state
        st.boundary = boundary_address
        st.lazy = 1
        self._publication_changed()

    @property
    def page(self) -> mmap.mmap:
        """The host page the count is in."""
        return self._page

    def publish_eagerly(self) -> None:
        """Publish at every branch boundary again (the page brought up to date first);
        `publish_lazily` goes back."""
        self.catch_up()
        self.state.lazy = 0
        self._publication_changed()

    @property
    def lazy(self) -> bool:
        return bool(self.state.lazy)

    def catch_up(self) -> None:
        """Bring the page up to date: the count at the last branch boundary, as the
        counter would have published it there (before anything else reads the page)."""
        self._lib.rd_countdown_catch_up(self.address)

    def restored(self) -> None:
        """The machine moved to a restored position: the page holds its count."""
        self.state.published_at = _NONE

    def publish_at(self, icount: int) -> int:
        """Write the count at `icount` into the page (a branch boundary); return it."""
        return int(self._lib.rd_countdown_publish(self.address, icount))

    def value_at(self, icount: int) -> int:
        """The count at `icount` (nothing written)."""
        return int(self._lib.rd_countdown_value(self.address, icount))

    @property
    def publications(self) -> int:
        """How many times the counter published (statistics)."""
        return int(self.state.publications)

    @property
    def reads(self) -> int:
        """Guest reads of the page through the alias so far (statistics)."""
        return int(self.state.reads)


class PublicationChoice:
    """Lazy or eager publication of a countdown, whichever costs the guest less, chosen
    again at the engine's stops.

    A guest read through the alias is an MMIO callback (about 45 ns here); publishing at a
    branch boundary is a few instructions of the block hook.  A guest that reads the
    page often runs faster with the count published at every boundary: xv6 reads the
    LAPIC's ID at every lock, one read per ~74 instructions (eager: 1.5e9 of its
    instructions ~9% faster).  One that reads it seldom runs faster with the alias: the
    minikernel reads it once per ~78,000 instructions (lazy: a tenth faster).  So:
    after a window of at least `WINDOW` instructions through the alias, eager when there
    was more than one read per `READ_SPACING` instructions; after `RESAMPLE`
    instructions of eager publication (when reads cannot be counted), back to the alias
    for a window.  Nothing the guest sees depends on it: whenever anything reads the
    page, it holds the count at the last branch boundary either way.
    """

    READ_SPACING = 256
    WINDOW = 1 << 20
    RESAMPLE = 1 << 28

    def __init__(
        self,
        countdown: Countdown,
        boundary_address: int,
        reads_through_alias: Callable[[bool], None],
    ) -> None:
        """Guest reads of `countdown`'s page already go through its alias (the page
        walk's `read_through_countdown`); `reads_through_alias` turns that off and on."""
        self._countdown = countdown
        self._boundary = boundary_address
        self._through_alias = reads_through_alias
        self._since = 0  # icount of the last choice (or of the start)
        self._reads = countdown.reads  # reads counted at that point
        countdown.publish_lazily(boundary_address)

    @property
    def eager(self) -> bool:
        return not self._countdown.lazy

    def stopped(self, icount: int) -> None:
        """The engine stopped at `icount` (the page brought up to date)."""
        window = icount - self._since
        if window < 0:  # the machine moved back (a restore): start a window here
            self._restart(icount)
            return
        if self.eager:
            if window >= self.RESAMPLE:
                self._countdown.publish_lazily(self._boundary)
                self._through_alias(True)
                self._restart(icount)
        elif window >= self.WINDOW:
            if (self._countdown.reads - self._reads) * self.READ_SPACING > window:
                self._countdown.publish_eagerly()
                self._through_alias(False)
            self._restart(icount)

    def _restart(self, icount: int) -> None:
        self._since = icount
        self._reads = self._countdown.reads

"""Which pages of the guest RAM changed: write-fault tracking and shadow comparison.

The snapshot layer keeps RAM as shared 4 KiB pages and needs to know which pages the
guest wrote since a checkpoint.  `WriteTracker` write-protects a RAM buffer and learns
of each page's first write: from the kernel, which resolves the fault itself (a
userfaultfd in asynchronous write-protect mode, read back with PAGEMAP_SCAN: Linux 6.7
and later, where the process may use userfaultfd), or else from a SIGSEGV handler in the
_pages extension; where neither is allowed, `sync_shadow` compares RAM with a shadow
copy.  Addresses are host addresses of buffers the caller owns (e.g.
`numpy.ndarray.ctypes.data`), which must outlive their use here.  Knows nothing of
snapshots.
"""

from __future__ import annotations

import ctypes
import enum
import functools
import mmap
import time

from rdebug.errors import MachineError

PAGE = 4096


@functools.cache
def _library() -> ctypes.CDLL:
    try:
        from rdebug.machine import _pages  # noqa: PLC0415  (lazily: only to find its file)
    except ImportError:
        raise MachineError("the native extension is not built: reinstall rdebug") from None
    lib = ctypes.CDLL(_pages.__file__)
    lib.rd_pages_sync.argtypes = (
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_void_p,
    )
    lib.rd_pages_sync.restype = ctypes.c_uint32
    lib.rd_pages_nonzero.argtypes = (ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p)
    lib.rd_pages_nonzero.restype = ctypes.c_uint32
    lib.rd_track.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_int)
    lib.rd_track.restype = ctypes.c_int
    lib.rd_track_kernel.argtypes = (ctypes.c_int,)
    lib.rd_track_kernel.restype = ctypes.c_int
    lib.rd_collect.argtypes = (ctypes.c_int,)
    lib.rd_collect.restype = ctypes.c_int
    lib.rd_rearm_dirty.argtypes = (ctypes.c_int,)
    lib.rd_rearm_dirty.restype = ctypes.c_int
    lib.rd_open_pages.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_uint32)
    lib.rd_open_pages.restype = ctypes.c_int
    lib.rd_untrack.argtypes = (ctypes.c_int,)
    lib.rd_untrack.restype = None
    return lib


def sync_shadow(ram: int, shadow: int, npages: int, out: int) -> int:
    """Copy each of `npages` pages of `ram` that differs from `shadow` into `shadow` and
    write its index into the uint32 array `out`; returns how many did."""
    return int(_library().rd_pages_sync(ram, shadow, npages, out))


def nonzero_pages(ram: int, first: int, count: int) -> list[int]:
    """The indexes, from `first` on, of the `count` pages at host address `ram` (page
    `first`) that hold a non-zero byte."""
    if count <= 0:
        return []
    out = (ctypes.c_uint32 * count)()
    found = _library().rd_pages_nonzero(ram + first * PAGE, count, out)
    return [first + index for index in out[:found]]


class FaultKind(enum.Enum):
    """Who resolves the write faults of a `WriteTracker`."""

    #: the kernel (userfaultfd's asynchronous write-protection): ~1 us a fault
    KERNEL = "kernel"
    #: rdebug's SIGSEGV handler (mprotect): 6-18 us a fault on the machines measured
    SIGNAL = "signal"


class WriteTracker:
    """Write-fault tracking of one buffer of whole pages: `dirty` (one byte per page, at
    host address `dirty`) gets 1 for each page written since the last `rearm`, as of
    the last `collect`."""

    def __init__(self, slot: int) -> None:
        self._slot = slot
        self.kind = FaultKind.KERNEL if _library().rd_track_kernel(slot) else FaultKind.SIGNAL

    @classmethod
    def start(
        cls, base: int, size: int, dirty: int, kind: FaultKind | None = None
    ) -> WriteTracker | None:
        """Write-protect [base, base+size) and track it, by faults of `kind` (None: the
        kernel's where it offers them, else signals); None if the host refuses."""
        lib = _library()
        slot = int(lib.rd_track(base, size, dirty, int(kind is not FaultKind.SIGNAL)))
        if slot < 0:
            return None
        tracker = cls(slot)
        if kind is not None and tracker.kind is not kind:
            tracker.stop()
            return None
        return tracker

    def collect(self) -> None:
        """Bring `dirty` up to date (the kernel's faults are read from the page tables;
        the signal handler marks pages as they are written)."""
        if _library().rd_collect(self._slot) != 0:
            raise MachineError("cannot read which guest RAM pages were written")

    def rearm(self) -> None:
        """Forget the pages written so far and write-protect them again."""
        if _library().rd_rearm_dirty(self._slot) != 0:
            raise MachineError("cannot write-protect the guest RAM")

    def open_pages(self, pages: int, count: int) -> None:
        """Make the `count` pages listed (uint32 indexes at `pages`) writable, counted
        as written, before the host rewrites them."""
        if _library().rd_open_pages(self._slot, pages, count) != 0:
            raise MachineError("cannot make guest RAM pages writable")

    def stop(self) -> None:
        """Stop tracking and make the whole buffer writable (at most once is useful)."""
        _library().rd_untrack(self._slot)


#: Pages written to measure one write fault (`write_fault_seconds`).
_PROBE_PAGES = 64


@functools.cache
def write_fault_seconds(kind: FaultKind | None = None) -> float:
    """What one write fault of `kind` costs here (None: the kind `WriteTracker.start`
    picks): the least per page of three rounds of first writes to a tracked scratch
    buffer (a kernel-resolved fault ~1 us; the signal, the handler and the mprotect tens
    of microseconds in some virtual machines); 0.0 where the host refuses to
    write-protect.  Measured once per process and kind."""
    scratch = mmap.mmap(-1, _PROBE_PAGES * PAGE)
    dirty = (ctypes.c_uint8 * _PROBE_PAGES)()
    view = ctypes.c_char.from_buffer(scratch)
    base = ctypes.addressof(view)
    try:
        tracker = WriteTracker.start(base, _PROBE_PAGES * PAGE, ctypes.addressof(dirty), kind)
        if tracker is None:
            return 0.0
        try:
            best = float("inf")
            for _ in range(3):
                started = time.perf_counter()
                for index in range(_PROBE_PAGES):
                    ctypes.memset(base + index * PAGE, 1, 1)
                best = min(best, (time.perf_counter() - started) / _PROBE_PAGES)
                tracker.collect()
                if sum(dirty) != _PROBE_PAGES:
                    raise MachineError("write-fault tracking missed pages of its probe")
                tracker.rearm()
            return best
        finally:
            tracker.stop()
    finally:
        del view  # the buffer cannot close while exported
        scratch.close()

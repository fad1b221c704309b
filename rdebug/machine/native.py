"""The native extension as ctypes sees it: one loader and one address lookup for the
modules that call into `_icount` (the counter, the page walk, interrupts, the LAPIC's
countdown, the block decoder).  No engine here: devices use it too."""

from __future__ import annotations

import ctypes
import functools

from rdebug.errors import MachineError


@functools.cache
def extension() -> ctypes.CDLL:
    """The `_icount` extension's library (the counter, the page walk, `_intr.c`...).
    Each caller sets the argument types of the functions it calls."""
    try:
        from rdebug.machine import _icount  # noqa: PLC0415  (lazily: only to find its file)
    except ImportError:
        raise MachineError(
            "the native extension is not built: reinstall rdebug (pip install .)"
        ) from None
    return ctypes.CDLL(_icount.__file__)


def function_address(lib: ctypes.CDLL, name: str) -> int:
    """The address of the C function `name` (to hand to unicorn as a hook)."""
    address = ctypes.cast(getattr(lib, name), ctypes.c_void_p).value
    assert address is not None
    return address


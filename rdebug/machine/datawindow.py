"""A device's data port in the middle of a PIO block, moved by the native port hooks.

A disk controller's sector goes through its data port a word or a dword at a time (an
IDE sector by REP OUTSD is 128 OUTs).  While a block is under way the device keeps a
`DataWindow` open on its block buffer: the native IN/OUT hooks (`rd_in_hook` and
`rd_out_hook` in _icount.c, installed by ioports.py with the native counter) then move
the bytes of every access that does not complete the block without calling Python, and
advance `pos`.  The access that completes it, and every other one, reaches the device
as usual; the device takes `pos` back (`take_pos`) before anything else it does.  No
engine here: devices use it.
"""

from __future__ import annotations

import ctypes


class WindowState(ctypes.Structure):
    """Mirror of struct rd_pio_window in _icount.c."""

    _fields_ = (
        ("active", ctypes.c_uint32),
        ("port", ctypes.c_uint32),
        ("out", ctypes.c_uint32),
        ("pos", ctypes.c_uint32),
        ("end", ctypes.c_uint32),
        ("_pad", ctypes.c_uint32),
        ("buf", ctypes.c_void_p),
    )


class DataWindow:
    """The data port `port` of one device, open on a block buffer or closed."""

    def __init__(self, port: int) -> None:
        self.state = WindowState()
        self.state.port = port
        self.address = ctypes.addressof(self.state)
        self._buffer: bytearray | None = None
        self._pinned: ctypes.Array[ctypes.c_char] | None = None  # keeps `buf` valid

    @property
    def is_open(self) -> bool:
        return bool(self.state.active)

    def open(self, buffer: bytearray, pos: int, end: int, out: bool) -> None:
        """Let the native hooks move bytes `pos`..`end` of `buffer` (OUTs fill it when
        `out`, INs read it otherwise); `buffer` must not be resized meanwhile."""
        if not 0 <= pos <= end <= len(buffer):
            raise ValueError(f"data window {pos}..{end} outside a {len(buffer)}-byte buffer")
        st = self.state
        if buffer is not self._buffer:
            self._pinned = (ctypes.c_char * len(buffer)).from_buffer(buffer)
            self._buffer = buffer
            st.buf = ctypes.addressof(self._pinned)
        st.pos = pos
        st.end = end
        st.out = int(out)
        st.active = 1

    def close(self) -> None:
        self.state.active = 0

    def take_pos(self) -> int:
        """Where the block stands (the native hooks may have moved it since `open`)."""
        return int(self.state.pos)

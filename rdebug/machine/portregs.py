"""A device's byte registers behind I/O ports, read and written by the native port hooks.

Most port accesses a kernel makes do nothing but store a byte or read one back: xv6
programs an IDE transfer with seven OUTs, five of them to task-file registers that only
hold a value until the command comes, and moves its console cursor with six accesses to
the CRT controller's index and data ports.  A Python call each was most of the Python
time of an xv6 recording.  A device lets the native IN/OUT hooks (`rd_in_hook` and
`rd_out_hook` in _icount.c, installed by ioports.py with the native counter) serve such
a register itself: it keeps the register's value in `RegisterBytes` (a ctypes byte array
the C side reads and writes too, exposed to the device's code as an attribute by
`ByteAttribute` or as a buffer by `RegisterBytes.view`) and describes each port with a
`PortRegister`:

- READ: an IN of one byte returns the register;
- WRITE: an OUT of one byte stores `value & wmask` in it;
- SAME: an OUT of one byte is served only when `value & wmask` is the register's value
  already (a write whose only effect would be to store it; any other goes to Python);
- an indexed register is a file of registers selected by another byte (the CRTC's data
  port behind its index): `valid` has bit i set for each register i served here.

Every other access (a wider one, an index outside `valid`, an instruction the counter
cannot place, anything ring 3 does) reaches the device's `io_read`/`io_write` as usual,
which must then behave as the native hooks would have on those registers: they read and
write the same bytes.  A register served here may change nothing but itself: no IRQ
line, no timer, no output.  No engine here: devices use it.
"""

from __future__ import annotations

import ctypes
import enum
from typing import Any, overload


class Access(enum.IntFlag):
    """What the native hooks may do with a port register (RD_REG_* in _icount.c)."""

    READ = 1
    WRITE = 2
    SAME = 4  # WRITE only when the write would leave the register as it is


class RegisterState(ctypes.Structure):
    """Mirror of struct rd_pio_reg in _icount.c."""

    _fields_ = (
        ("port", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("wmask", ctypes.c_uint32),
        ("valid", ctypes.c_uint32),
        ("cell", ctypes.c_void_p),
        ("index", ctypes.c_void_p),
    )


class RegisterBytes:
    """`size` bytes of a device's registers, shared with the native port hooks."""

    def __init__(self, size: int) -> None:
        self._cells = (ctypes.c_uint8 * size)()
        #: the bytes as a writable buffer (its length never changes)
        self.view = memoryview(self._cells).cast("B")

    def __len__(self) -> int:
        return len(self._cells)

    def __getitem__(self, offset: int) -> int:
        return int(self._cells[offset])

    def __setitem__(self, offset: int, value: int) -> None:
        self._cells[offset] = value

    def address(self, offset: int = 0) -> int:
        if not 0 <= offset < len(self._cells):
            raise IndexError(f"register byte {offset} of {len(self._cells)}")
        return ctypes.addressof(self._cells) + offset

    def load(self, data: bytes, offset: int = 0) -> None:
        """Copy `data` in at `offset` (it must fit)."""
        if not 0 <= offset <= offset + len(data) <= len(self._cells):
            raise ValueError(f"{len(data)} bytes at {offset} in {len(self._cells)}")
        self.view[offset : offset + len(data)] = data


class ByteAttribute:
    """A device attribute kept in byte `offset` of the device's `registers` (a
    `RegisterBytes`), so that Python and the native hooks see one value.  Setting a
    value outside 0..255 raises TypeError (a malformed saved state, say)."""

    def __init__(self, offset: int) -> None:
        self.offset = offset

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> ByteAttribute: ...

    @overload
    def __get__(self, obj: object, owner: type | None = None) -> int: ...

    def __get__(self, obj: Any, owner: type | None = None) -> ByteAttribute | int:
        if obj is None:
            return self
        return int(obj.registers[self.offset])

    def __set__(self, obj: Any, value: int) -> None:
        if not isinstance(value, int) or not 0 <= value <= 0xFF:
            raise TypeError(f"{self.name}: {value!r} is not a byte")
        obj.registers[self.offset] = value


class PortRegister:
    """Port `port`'s register: byte `offset` of `cells`, or with `index` (the offset in
    `cells` of the byte that selects it) the file that starts there."""

    def __init__(
        self,
        port: int,
        cells: RegisterBytes,
        offset: int,
        access: Access,
        *,
        wmask: int = 0xFF,
        index: int | None = None,
        valid: int = 0,
    ) -> None:
        if not 0 <= port <= 0xFFFF:
            raise ValueError(f"port {port:#x} out of range")
        if index is not None and not valid:
            raise ValueError("an indexed register serves at least one index")
        self.port = port
        self.state = RegisterState()
        st = self.state
        st.port = port
        st.flags = int(access)
        st.wmask = wmask & 0xFF
        st.valid = valid & 0xFFFFFFFF
        st.cell = cells.address(offset)
        if index is not None:
            cells.address(offset + max(valid.bit_length() - 1, 0))  # the file fits
            st.index = cells.address(index)
        self._cells = cells  # keeps the cells alive while the hooks point at them
        self.address = ctypes.addressof(st)

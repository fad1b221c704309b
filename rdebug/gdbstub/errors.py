"""The gdbstub's error tree, in the tiers the session acts on.

- `PacketError`: the peer sent a malformed packet.  The session replies ``E16`` (EINVAL)
  and goes on.
- `TargetError`: the target refused an operation with an errno (unreadable memory, a
  breakpoint it cannot place).  The session replies ``E<errno>`` and goes on; with
  ``tell=True`` it replies ``E.<message>`` instead, which gdb prints (for a refusal the
  user must understand, such as a resume a replay cannot honour).
- Anything else raised by a target is a bug: the server logs it and closes that
  connection, and keeps listening.

gdbstub imports nothing from the rest of rdebug, so this tree is its own; the adapter
(`rdebug.gdb_target`) turns rdebug's errors into `TargetError` where the gdb session should
survive them.
"""

from __future__ import annotations

import errno as _errno


class GdbStubError(Exception):
    """Base of every error the gdbstub package raises on purpose."""


class PacketError(GdbStubError):
    """A packet that does not parse (bad hex, a missing field, a wrong length)."""

    #: The errno the reply carries (`E16`).
    errno: int = _errno.EINVAL


class TargetError(GdbStubError):
    """The target cannot do what was asked; `errno` goes to gdb as ``E<errno>``.

    >>> TargetError(14).errno
    14
    """

    def __init__(self, errno: int, message: str = "", *, tell: bool = False) -> None:
        if not 0 <= errno <= 0xFF:
            raise ValueError(f"errno {errno} does not fit the two hex digits of an E reply")
        super().__init__(message or f"target error (errno {errno})")
        self.errno = errno
        #: reply with the message as text (``E.<message>``) rather than the errno
        self.tell = tell and bool(message)

"""The one error tree of rdebug.  Every error a user can cause is an `RdebugError`.

The CLI turns any `RdebugError` into one line on stderr and a non-zero exit status;
anything else escaping is a bug in rdebug.
"""

from __future__ import annotations


class RdebugError(Exception):
    """Base of every error rdebug reports to a user."""


class UsageError(RdebugError):
    """A wrong option or argument."""


class GuestImageError(RdebugError):
    """The guest image cannot be loaded (missing, not ELF, not i386, malformed)."""


class MachineError(RdebugError):
    """The emulated machine cannot do what was asked (bad configuration, unsupported mode)."""


class GuestFault(RdebugError):
    """The guest did something the machine cannot continue from (e.g. a triple fault)."""


class FormatError(RdebugError):
    """A file rdebug reads is malformed."""


class LogDivergence(RdebugError):
    """Replay reached an event the log does not have, or missed one the log has."""

    def __init__(self, icount: int, expected: str, actual: str) -> None:
        super().__init__(
            f"replay diverged from the recording at icount {icount}: the log expects "
            f"{expected}, the machine {actual}"
        )
        self.icount = icount
        self.expected = expected
        self.actual = actual


class SnapshotError(RdebugError):
    """A snapshot or overlay file is missing, damaged or inconsistent."""

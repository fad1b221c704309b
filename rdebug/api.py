"""The scripting API: one `Session` per opened recording, driven by every front end.

    >>> import rdebug
    >>> with rdebug.open(EXAMPLE_TRACE) as session:
    ...     session.end_icount
    ...     session.seek(300)
    ...     session.icount
    ...     eip = session.registers["eip"]
    ...     session.stepi(5)
    ...     session.seek(300)               # back again: the same state, exactly
    ...     session.registers["eip"] == eip
    ...     session.read_memory(0x100000, 4).hex()
    424
    300
    True
    '02b0ad1b'

(`EXAMPLE_TRACE` is a recording of the `hello` sample guest, made by the doctest setup.)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from rdebug.errors import RdebugError, UsageError
from rdebug.machine.machine import Machine
from rdebug.replay.player import Player, recording_end
from rdebug.replay.timeline import Timeline
from rdebug.replay.trace import Trace, load_guest
from rdebug.snapshots.checkpoints import DEFAULT_BUDGET


class Session:
    """A recording, opened for replay: go anywhere in it and look at the machine."""

    def __init__(self, trace: Path | str, checkpoint_budget: int = DEFAULT_BUDGET) -> None:
        self.trace = Trace.open(Path(trace))
        image = load_guest(self.trace.info.guest, self.trace.guest_image())
        self._log: BinaryIO = self.trace.log_path.open("rb")
        try:
            end = recording_end(self._log, str(self.trace.log_path))
            self._log.seek(0)
            self._player = Player(self._log, str(self.trace.log_path))
            self._machine = Machine(self.trace.info.machine_config(), self._player, [])
            self._machine.load(image)
            self.symbols = dict(image.symbols)
            self._timeline = Timeline(self._machine, self._player, end, checkpoint_budget)
        except BaseException:
            self._log.close()
            raise
        self._closed = False

    # -- where we are ------------------------------------------------------------------

    @property
    def icount(self) -> int:
        """Instructions executed since the start of the recording."""
        return self._machine.icount

    @property
    def end_icount(self) -> int:
        """The icount at which the recording ends."""
        return self._timeline.end_icount

    @property
    def registers(self) -> Mapping[str, int]:
        """Registers by gdb name: eax ... edi, eip, eflags, cs ... gs, cr0 ... cr4."""
        return self._machine.cpu.registers()

    def read_memory(self, addr: int, length: int) -> bytes:
        """Guest memory at the linear address `addr` (through the guest's page tables)."""
        if length < 0:
            raise UsageError("read_memory: negative length")
        data = self._machine.cpu.read_linear(addr, length)
        if data is None:
            raise RdebugError(f"memory at {addr:#x}+{length:#x} is not mapped")
        return data

    def state_hash(self) -> str:
        """SHA-256 of registers, RAM, devices and virtual time."""
        return self._machine.state_hash()

    # -- moving ---------------------------------------------------------------------------

    def seek(self, icount: int) -> None:
        """Go to exactly `icount` (restore the nearest checkpoint, replay forward)."""
        self._timeline.seek(icount)

    def stepi(self, n: int = 1) -> None:
        """Execute `n` instructions forward (stopping at the end of the recording)."""
        if n < 0:
            raise UsageError("stepi: n must not be negative")
        self._timeline.seek(min(self.icount + n, self.end_icount))

    # -- life -------------------------------------------------------------------------------

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._timeline.close()
            self._machine.close()
            self._log.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open(trace: Path | str, checkpoint_budget: int = DEFAULT_BUDGET) -> Session:
    """Open the recording in the trace folder `trace` for replay."""
    return Session(trace, checkpoint_budget)

"""Guest disks: a read-only base image with the guest's writes kept beside it.

The user's disk image is never written: `OverlayDisk` serves reads from the sectors the
guest wrote (kept in memory, part of the machine state, so checkpoints and snapshots
carry them) and otherwise from the base image.  Knows nothing of file formats: a base
is anything with a size and `read` (snapshots/images.py opens raw and qcow2 files).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from rdebug.errors import MachineError

SECTOR = 512


class DiskImage(Protocol):
    """A read-only disk image."""

    @property
    def size(self) -> int: ...

    def read(self, offset: int, length: int) -> bytes: ...


class OverlayDisk:
    """A `BlockDevice` for the IDE controller: `base` plus the guest's own writes."""

    def __init__(self, base: DiskImage) -> None:
        self.base = base
        self._written: dict[int, bytes] = {}

    @property
    def sector_count(self) -> int:
        return self.base.size // SECTOR

    def _check(self, lba: int, count: int) -> None:
        if lba < 0 or count < 0 or lba + count > self.sector_count:
            raise MachineError(f"sectors {lba}+{count} are beyond the disk")

    def read_sectors(self, lba: int, count: int) -> bytes:
        self._check(lba, count)
        if not any(lba + i in self._written for i in range(count)):
            return self.base.read(lba * SECTOR, count * SECTOR)
        return b"".join(
            self._written.get(lba + i) or self.base.read((lba + i) * SECTOR, SECTOR)
            for i in range(count)
        )

    def write_sectors(self, lba: int, data: bytes) -> None:
        if len(data) % SECTOR:
            raise MachineError("a disk write must be whole sectors")
        count = len(data) // SECTOR
        self._check(lba, count)
        for i in range(count):
            self._written[lba + i] = bytes(data[i * SECTOR : (i + 1) * SECTOR])

    @property
    def written(self) -> Mapping[int, bytes]:
        """The sectors the guest wrote (LBA -> contents)."""
        return self._written

    def save_state(self) -> dict[int, bytes]:
        return dict(self._written)

    def load_state(self, written: Mapping[int, bytes]) -> None:
        self._written = dict(written)

"""Named snapshots of a trace: machine states kept as qcow2 internal snapshots.

The trace's `snapshots.qcow2` holds one internal snapshot per name, its machine state
(snapshots/vmstate.py) in the snapshot's VM state area, its icount in the snapshot
table's icount field, its virtual clock in the VM clock field; `qemu-img snapshot -l`
lists them.  Knows nothing of replay logs: the log cursor travels inside the state.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rdebug.errors import SnapshotError

if TYPE_CHECKING:
    from rdebug.snapshots.qcow2 import Qcow2Image


#: Longest snapshot name (characters).
MAX_NAME = 128


def check_name(name: str) -> None:
    """Refuse a name that would not read back as one table cell or one word: empty,
    a number, too long, with a control character (a newline), '/', '\\' or '..'."""
    if not name or name.isdigit():
        raise SnapshotError(f"{name!r}: a snapshot name must not be empty or a number")
    if len(name) > MAX_NAME:
        raise SnapshotError(f"{name[:20]!r}...: a snapshot name has at most {MAX_NAME} characters")
    if any(not c.isprintable() or c.isspace() for c in name):
        raise SnapshotError(
            f"{name!r}: a snapshot name must not contain spaces or control characters"
        )
    if "/" in name or "\\" in name or ".." in name:
        raise SnapshotError(f"{name!r}: a snapshot name must not contain '/', '\\' or '..'")


@dataclass(frozen=True, slots=True)
class NamedSnapshot:
    """One named snapshot of a trace, as its qcow2 snapshot table lists it."""

    name: str
    icount: int | None
    vm_state_size: int
    date_sec: int


class SnapshotFile:
    """The named snapshots of one trace (the qcow2 file is created on first use)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _open(self, writable: bool) -> Qcow2Image:
        from rdebug.snapshots.qcow2 import Qcow2Image  # noqa: PLC0415 - only when used

        if not self.path.exists():
            if not writable:
                raise SnapshotError(f"{self.path}: the trace has no snapshot file")
            return Qcow2Image.create(self.path, size=0)
        return Qcow2Image.open(self.path, writable=writable)

    def list(self) -> list[NamedSnapshot]:
        if not self.path.exists():
            return []
        with self._open(writable=False) as image:
            return [
                NamedSnapshot(s.name, s.icount, s.vm_state_size, s.date_sec)
                for s in image.snapshots()
            ]

    def save(self, name: str, vmstate: bytes, icount: int, vm_clock_ns: int) -> NamedSnapshot:
        check_name(name)
        with self._open(writable=True) as image:
            if any(s.name == name for s in image.snapshots()):
                image.delete_snapshot(name)  # savevm NAME replaces NAME, as in QEMU
            info = image.create_snapshot(name, vmstate, icount=icount, vm_clock_nsec=vm_clock_ns)
            image.flush()
        return NamedSnapshot(info.name, info.icount, info.vm_state_size, info.date_sec)

    def load(self, name: str) -> bytes:
        with self._open(writable=False) as image:
            names = {s.name for s in image.snapshots()}
            if name not in names:
                known = ", ".join(sorted(names)) or "none"
                raise SnapshotError(f"no snapshot named {name!r} (there are: {known})")
            return image.read_vmstate(name)

"""The snapshot table (qcow2.txt "Snapshots"): one entry per internal snapshot, with
the extra data rdebug keeps in it (the large VM state size, the disk size, the icount).

    entry    +------------------------+--------------------------+-----+------+-----+
             | fixed part (40 bytes): | extra data: vm_state_size| id  | name | pad |
             | L1 table offset, size, | (u64), disk_size (u64),  |     |      | to 8|
             | id/name lengths, date, | icount (i64, -1 = none), |     |      |     |
             | VM clock, extra length | then any unknown bytes   |     |      |     |
             +------------------------+--------------------------+-----+------+-----+

The whole table is rewritten to new clusters on every change, then the header points at
it, then the old table's clusters are freed: the file is consistent at each step.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from rdebug.errors import SnapshotError
from rdebug.snapshots.qcow2.file import ImageFile, ceil_div
from rdebug.snapshots.qcow2.header import MAX_L1_BYTES, OFF_SNAPSHOTS, Geometry
from rdebug.snapshots.qcow2.refcount import Refcounts

# Snapshot table entry: fixed part, then the extra data this package knows
# (vm_state_size_large, disk_size, icount), then id, name, padding to 8.
SNAPSHOT = struct.Struct(">QIHHIIQII")
SNAPSHOT_EXTRA = struct.Struct(">QQq")
NO_ICOUNT = -1
MAX_SNAPSHOTS = 65536
MAX_SNAPSHOT_TABLE_BYTES = 64 << 20


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """One internal snapshot, as listed by ``qemu-img snapshot -l``."""

    id: str
    name: str
    vm_state_size: int
    date_sec: int
    date_nsec: int
    vm_clock_nsec: int
    icount: int | None
    disk_size: int


@dataclass(frozen=True, slots=True)
class SnapshotEntry:
    """A snapshot table entry: what users see plus where its L1 table lives."""

    info: SnapshotInfo
    l1_table_offset: int
    l1_size: int
    extra_tail: bytes  # extra data past the fields this package knows, kept as found


def encode_name(image: Path, name: str) -> bytes:
    """A snapshot name or id as stored, or why it cannot be."""
    if not isinstance(name, str) or not name:
        raise SnapshotError(f"{image}: a snapshot needs a non-empty name")
    raw = name.encode("utf-8", "surrogateescape")
    if len(raw) > 0xFFFF:
        raise SnapshotError(f"{image}: snapshot name longer than 65535 bytes")
    return raw


def encode_entry(snap: SnapshotEntry) -> bytes:
    info = snap.info
    snap_id = info.id.encode("utf-8", "surrogateescape")
    name = info.name.encode("utf-8", "surrogateescape")
    icount = NO_ICOUNT if info.icount is None else info.icount
    extra = SNAPSHOT_EXTRA.pack(info.vm_state_size, info.disk_size, icount) + snap.extra_tail
    fixed = SNAPSHOT.pack(
        snap.l1_table_offset,
        snap.l1_size,
        len(snap_id),
        len(name),
        info.date_sec,
        info.date_nsec,
        info.vm_clock_nsec,
        min(info.vm_state_size, 0xFFFF_FFFF),
        len(extra),
    )
    entry = fixed + extra + snap_id + name
    return entry.ljust(ceil_div(len(entry), 8) * 8, b"\0")


class SnapshotTable:
    """The image's snapshot table, in memory and in the file."""

    def __init__(self, file: ImageFile, geometry: Geometry, refcounts: Refcounts) -> None:
        self._file = file
        self._geometry = geometry
        self._refcounts = refcounts
        self.entries: list[SnapshotEntry] = []
        self._offset = 0
        self._bytes = 0

    def load(self, count: int, offset: int, file_size: int, disk_size: int) -> None:
        """Read and check `count` entries at `offset` (`disk_size`: the active disk's,
        for entries that do not record theirs)."""
        self._offset = offset
        self._bytes = 0
        if count == 0:
            self.entries = []
            return
        file, geometry = self._file, self._geometry
        if count > MAX_SNAPSHOTS:
            raise file.damaged(f"nb_snapshots {count}")
        file.check_table("snapshot table", offset, 1, file_size, geometry.cluster_size)
        entries: list[SnapshotEntry] = []
        pos = offset
        for _ in range(count):
            fixed = file.pread(pos, SNAPSHOT.size)
            if len(fixed) < SNAPSHOT.size:
                raise file.damaged("snapshot table runs past the end of the file")
            (l1_offset, l1_size, id_len, name_len, sec, nsec, clock, vm32, extra_len) = (
                SNAPSHOT.unpack(fixed)
            )
            var_len = extra_len + id_len + name_len
            if pos + SNAPSHOT.size + var_len - offset > MAX_SNAPSHOT_TABLE_BYTES:
                raise file.damaged("snapshot table too large")
            var = file.pread(pos + SNAPSHOT.size, var_len)
            if len(var) < var_len:
                raise file.damaged("snapshot table runs past the end of the file")
            extra = var[:extra_len]
            snap_id = var[extra_len : extra_len + id_len].decode("utf-8", "surrogateescape")
            name = var[extra_len + id_len :].decode("utf-8", "surrogateescape")
            vm_size, snap_disk_size, icount = vm32, disk_size, NO_ICOUNT
            if extra_len >= 8:
                (vm_size,) = struct.unpack_from(">Q", extra, 0)
            if extra_len >= 16:
                (snap_disk_size,) = struct.unpack_from(">Q", extra, 8)
            if extra_len >= 24:
                (icount,) = struct.unpack_from(">q", extra, 16)
            if (
                l1_size * 8 > MAX_L1_BYTES
                or geometry.l1_entries_for(snap_disk_size) * 8 > MAX_L1_BYTES
            ):
                raise file.damaged(f"snapshot {snap_id!r} has l1_size {l1_size}")
            file.check_table(
                f"snapshot {snap_id!r} L1 table",
                l1_offset,
                8 * l1_size,
                file_size,
                geometry.cluster_size,
            )
            vm_end = geometry.vm_state_offset(snap_disk_size) + vm_size
            if vm_size and vm_end > l1_size * geometry.l1_coverage:
                raise file.damaged(f"snapshot {snap_id!r} VM state beyond its L1 table")
            info = SnapshotInfo(
                id=snap_id,
                name=name,
                vm_state_size=vm_size,
                date_sec=sec,
                date_nsec=nsec,
                vm_clock_nsec=clock,
                icount=None if icount < 0 else icount,
                disk_size=snap_disk_size,
            )
            entries.append(SnapshotEntry(info, l1_offset, l1_size, extra[24:]))
            pos += ceil_div(SNAPSHOT.size + var_len, 8) * 8
        self._bytes = pos - offset
        self.entries = entries

    def find(self, name_or_id: str) -> SnapshotEntry:
        """The snapshot with that id, else the first with that name."""
        for snap in self.entries:
            if snap.info.id == name_or_id:
                return snap
        for snap in self.entries:
            if snap.info.name == name_or_id:
                return snap
        raise SnapshotError(f"{self._file.path}: no snapshot with id or name {name_or_id!r}")

    def next_id(self) -> str:
        """The id a new snapshot gets: one past the largest numeric id."""
        numeric = [int(s.info.id) for s in self.entries if s.info.id.isdigit()]
        return str(max(numeric, default=0) + 1)

    def write(self, entries: list[SnapshotEntry]) -> None:
        """Replace the table with `entries` (new clusters, then the header, then free)."""
        cluster = self._geometry.cluster_size
        blob = b"".join(encode_entry(snap) for snap in entries)
        offset = 0
        if blob:
            clusters = ceil_div(len(blob), cluster)
            offset = self._refcounts.allocate_contiguous(clusters)
            self._file.pwrite(offset, blob.ljust(clusters * cluster, b"\0"))
        self._file.pwrite(OFF_SNAPSHOTS, struct.pack(">IQ", len(entries), offset))
        old = self._geometry.table_clusters(self._offset, self._bytes)
        self.entries = entries
        self._offset, self._bytes = offset, len(blob)
        self._refcounts.adjust(old, -1)

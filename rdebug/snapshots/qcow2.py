"""qcow2 version 3 images: an overlay disk over a raw or qcow2 backing file, with internal
snapshots that carry a VM state blob and the icount they were taken at.

Owns every byte of the image file (layout from QEMU's docs/interop/qcow2.txt); knows
nothing of machines, replay logs or what a VM state blob means.  All numbers big-endian.

    file     +--------+-------------+--------------+---------+----------+-----------+
             | header | refcount    | refcount     | L1      | L2 tables, data and  |
             | (clus- | table       | blocks       | table   | snapshot tables, in  |
             | ter 0) | (contiguous)| (a cluster   | (conti- | allocation order     |
             |        |             |  each)       | guous)  |                      |
             +--------+-------------+--------------+---------+----------------------+

    guest offset -> host offset         host offset -> refcount
      L1[off >> (cluster_bits + l2_bits)]   refcount_table[cluster // block_entries]
        -> L2 table (one cluster)             -> refcount block (one cluster)
        -> L2[(off >> cluster_bits) % l2_entries]  -> block[cluster % block_entries]
        -> data cluster

Refcount rule this module keeps (the one ``qemu-img check`` verifies): an L2 table counts
one reference per L1 table (active or snapshot) that points at it, a data cluster one per
L1 table that reaches it through any L2 table.  Bit 63 ("COPIED") of an entry of the
active L1 table and of the L2 tables it reaches is set exactly when that refcount is 1;
only such clusters are written in place, anything else is copied on write.

The VM state of a snapshot is stored like disk content at guest offsets past the virtual
disk, from the first L1 entry that describes no disk cluster (``vm_state_offset``).

Not supported: compressed clusters (refused when met), encryption, external data files,
extended L2 entries, non-zlib compression types, subcluster allocation, bitmaps (their
auto-clear bit is cleared on a writable open, as the spec asks), writing to version 2
images or to images with refcounts narrower than 8 bits, resizing.
"""

from __future__ import annotations

import heapq
import os
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

from rdebug.errors import SnapshotError

MAGIC = b"QFI\xfb"
#: The version this module writes.  Version 2 images are opened read-only.
VERSION = 3

# Header, qcow2.txt "Header" (bytes 0-71 in every version, 72-103 from version 3 on).
# Bump nothing here: this is QEMU's format, not ours; a new field is a new constant.
_HEADER_V2 = struct.Struct(">4sIQIIQIIQQIIQ")
_HEADER_V3 = struct.Struct(">QQQII")
_HEADER_V3_LENGTH = _HEADER_V2.size + _HEADER_V3.size  # 104
_OFF_SIZE = 24  # u64 size
_OFF_L1 = 36  # u32 l1_size, u64 l1_table_offset
_OFF_REFCOUNT_TABLE = 48  # u64 refcount_table_offset, u32 refcount_table_clusters
_OFF_SNAPSHOTS = 60  # u32 nb_snapshots, u64 snapshots_offset
_OFF_AUTOCLEAR = 88  # u64 autoclear_features

# incompatible_features bits
_INCOMPAT_DIRTY = 1 << 0
_INCOMPAT_CORRUPT = 1 << 1
_INCOMPAT_DATA_FILE = 1 << 2
_INCOMPAT_COMPRESSION = 1 << 3
_INCOMPAT_EXTL2 = 1 << 4

# Header extensions, qcow2.txt "Header extensions"
_EXT_END = 0x00000000
_EXT_BACKING_FORMAT = 0xE2792ACA
_EXT_HEADER = struct.Struct(">II")

# Table entries, qcow2.txt "Cluster mapping" and "Host cluster management"
_OFFSET_MASK = 0x00FF_FFFF_FFFF_FE00  # bits 9-55 of L1 and L2 entries
_REFTABLE_MASK = 0xFFFF_FFFF_FFFF_FE00  # bits 9-63 of refcount table entries
_COPIED = 1 << 63
_COMPRESSED = 1 << 62
_ZERO = 1 << 0  # standard cluster descriptor: reads as zeros (version 3)
_NOT_COPIED = ~_COPIED & 0xFFFF_FFFF_FFFF_FFFF

# Snapshot table entry, qcow2.txt "Snapshots": fixed part, then the extra data this module
# knows (vm_state_size_large, disk_size, icount), then id, name, padding to 8.
_SNAPSHOT = struct.Struct(">QIHHIIQII")
_SNAPSHOT_EXTRA = struct.Struct(">QQq")
_NO_ICOUNT = -1

# QEMU's implementation limits, used here to refuse absurd (damaged) values.
_MIN_CLUSTER_BITS = 9
_MAX_CLUSTER_BITS = 21
_MAX_L1_BYTES = 32 << 20
_MAX_REFTABLE_BYTES = 8 << 20
_MAX_SNAPSHOTS = 65536
_MAX_SNAPSHOT_TABLE_BYTES = 64 << 20
_MAX_BACKING_NAME = 1023
_MAX_BACKING_DEPTH = 32
_L2_CACHE_TABLES = 1024
_CREATE_REFCOUNT_ORDER = 4
_REFCOUNT_CHARS = {3: "B", 4: "H", 5: "I", 6: "Q"}


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
class _Snapshot:
    """A snapshot table entry: what users see plus where its L1 table lives."""

    info: SnapshotInfo
    l1_table_offset: int
    l1_size: int
    extra_tail: bytes  # extra data past the fields this module knows, kept as found


class _Backing(Protocol):
    @property
    def size(self) -> int: ...
    def read(self, offset: int, length: int) -> bytes: ...
    def close(self) -> None: ...


class _RawBacking:
    """A raw backing file, read-only."""

    def __init__(self, path: Path) -> None:
        self._path = path
        try:
            self._fd = os.open(path, os.O_RDONLY)
            self._size = os.fstat(self._fd).st_size
        except OSError as exc:
            raise SnapshotError(f"{path}: cannot open backing file: {exc.strerror}") from exc

    @property
    def size(self) -> int:
        return self._size

    def read(self, offset: int, length: int) -> bytes:
        try:
            data = os.pread(self._fd, length, offset)
        except OSError as exc:
            raise SnapshotError(f"{self._path}: read failed: {exc.strerror}") from exc
        return data if len(data) == length else data.ljust(length, b"\0")

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


class Qcow2Image:
    """An open qcow2 image: a virtual disk of ``size`` bytes and its internal snapshots.

    Metadata is cached in memory and written through at once, so the file is consistent
    for ``qemu-img`` after every call; ``flush`` only makes it durable.

    >>> import pathlib, tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = pathlib.Path(tmp) / "disk.qcow2"
    ...     with Qcow2Image.create(path, size=1 << 20) as disk:
    ...         disk.write(512, b"hello")
    ...         boot = disk.create_snapshot("boot", b"cpu state", icount=1000)
    ...         disk.write(512, b"HELLO")
    ...         vmstate = disk.revert_to_snapshot("boot")
    ...         disk.read(512, 5), vmstate, boot.id, boot.icount
    (b'hello', b'cpu state', '1', 1000)
    """

    _path: Path
    _fd: int
    _writable: bool
    _version: int
    _size: int
    _cluster_bits: int
    _cluster_size: int
    _l2_bits: int
    _l2_entries: int
    _zero_cluster: bytes
    _refcount_order: int
    _rb_entries: int
    _l1: list[int]
    _l1_offset: int
    _l1_clusters: int
    _rt: list[int]
    _rt_offset: int
    _rt_clusters: int
    _snapshots: list[_Snapshot]
    _snapshots_offset: int
    _snapshots_bytes: int

    # ------------------------------------------------------------------ creating, opening

    @classmethod
    def create(
        cls,
        path: Path,
        size: int | None = None,
        backing: Path | None = None,
        backing_format: str | None = None,
        cluster_bits: int = 16,
    ) -> Qcow2Image:
        """Create a new image at ``path`` (which must not exist) and open it writable.

        ``size`` defaults to the backing file's virtual size, rounded up to 512 bytes.  A
        relative ``backing`` path is relative to the image's directory, as in QEMU.
        """
        path = Path(path)
        if not _MIN_CLUSTER_BITS <= cluster_bits <= _MAX_CLUSTER_BITS:
            raise SnapshotError(
                f"{path}: cluster_bits must be between {_MIN_CLUSTER_BITS} and "
                f"{_MAX_CLUSTER_BITS}, not {cluster_bits}"
            )
        backing_name = b""
        if backing is not None:
            if backing_format not in ("raw", "qcow2"):
                raise SnapshotError(
                    f"{path}: backing_format must be 'raw' or 'qcow2', not {backing_format!r}"
                )
            parent = _open_backing(path, Path(backing), backing_format, ())
            try:
                backing_size = parent.size
            finally:
                parent.close()
            if size is None:
                size = _ceil_div(backing_size, 512) * 512
            backing_name = os.fsencode(backing)
            if len(backing_name) > _MAX_BACKING_NAME:
                raise SnapshotError(f"{path}: backing file name longer than 1023 bytes")
        elif backing_format is not None:
            raise SnapshotError(f"{path}: backing_format given without a backing file")
        if size is None:
            raise SnapshotError(f"{path}: a size is needed when there is no backing file")
        if size < 0 or size % 512:
            raise SnapshotError(f"{path}: size {size} is not a multiple of 512")
        layout = _initial_layout(size, cluster_bits, backing_name, backing_format)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError as exc:
            raise SnapshotError(f"{path} already exists") from exc
        except OSError as exc:
            raise SnapshotError(f"{path}: cannot create: {exc.strerror}") from exc
        try:
            os.pwrite(fd, layout, 0)
        except OSError as exc:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise SnapshotError(f"{path}: cannot write: {exc.strerror}") from exc
        os.close(fd)
        return cls.open(path, writable=True)

    @classmethod
    def open(cls, path: Path, writable: bool = False) -> Qcow2Image:
        """Open an existing image; its backing chain is opened read-only."""
        return cls._open(Path(path), writable, ())

    @classmethod
    def _open(cls, path: Path, writable: bool, chain: tuple[Path, ...]) -> Qcow2Image:
        try:
            fd = os.open(path, os.O_RDWR if writable else os.O_RDONLY)
        except FileNotFoundError as exc:
            raise SnapshotError(f"{path}: no such file") from exc
        except OSError as exc:
            raise SnapshotError(f"{path}: cannot open: {exc.strerror}") from exc
        image = cls(path, fd, writable)
        try:
            image._load(chain)
        except BaseException:
            image.close()
            raise
        return image

    def __init__(self, path: Path, fd: int, writable: bool) -> None:
        """Not for callers: use `open` or `create`."""
        self._path = path
        self._fd = fd
        self._writable = writable
        self._backing: _Backing | None = None
        self._backing_name: Path | None = None
        self._backing_format: str | None = None
        self._l2_cache: dict[int, list[int]] = {}
        self._rb_cache: dict[int, list[int]] = {}
        self._free: list[int] = []  # heap of cluster indices whose refcount fell to 0
        self._next_free = 0  # first cluster index past everything allocated

    # ------------------------------------------------------------------ public API

    @property
    def path(self) -> Path:
        return self._path

    @property
    def size(self) -> int:
        """The virtual disk size in bytes."""
        return self._size

    @property
    def backing(self) -> Path | None:
        """The backing file name as stored in the image (relative to its directory)."""
        return self._backing_name

    @property
    def backing_format(self) -> str | None:
        return self._backing_format

    @property
    def cluster_size(self) -> int:
        return self._cluster_size

    def read(self, offset: int, length: int) -> bytes:
        """Read guest bytes; unallocated clusters come from the backing file or are zero."""
        self._require_open()
        self._check_range(offset, length)
        return self._read_mapped(self._l1, offset, length, from_backing=True)

    def write(self, offset: int, data: bytes) -> None:
        """Write guest bytes, allocating (and copying on write) clusters as needed."""
        self._require_writable()
        self._check_range(offset, len(data))
        view = memoryview(data)
        pos, end, done = offset, offset + len(data), 0
        while pos < end:
            in_cluster = pos & (self._cluster_size - 1)
            n = min(self._cluster_size - in_cluster, end - pos)
            self._write_in_cluster(pos >> self._cluster_bits, in_cluster, view[done : done + n])
            pos += n
            done += n

    def snapshots(self) -> list[SnapshotInfo]:
        """The snapshots in table order."""
        return [snap.info for snap in self._snapshots]

    def create_snapshot(
        self,
        name: str,
        vmstate: bytes,
        *,
        icount: int | None = None,
        vm_clock_nsec: int = 0,
        date_ns: int | None = None,
    ) -> SnapshotInfo:
        """Snapshot the active disk and store ``vmstate`` with it (QEMU's savevm)."""
        self._require_writable()
        _encode_name(self._path, name)
        if any(snap.info.name == name for snap in self._snapshots):
            raise SnapshotError(f"{self._path}: a snapshot named {name!r} already exists")
        if len(self._snapshots) >= _MAX_SNAPSHOTS:
            raise SnapshotError(f"{self._path}: too many snapshots")
        if icount is not None and not 0 <= icount < 1 << 63:
            raise SnapshotError(f"{self._path}: icount {icount} out of range")
        if not 0 <= vm_clock_nsec < 1 << 64:
            raise SnapshotError(f"{self._path}: vm_clock_nsec {vm_clock_nsec} out of range")
        if date_ns is None:
            date_ns = time.time_ns()
        date_sec, date_nsec = divmod(date_ns, 1_000_000_000)
        if not 0 <= date_sec < 1 << 32:
            raise SnapshotError(f"{self._path}: date {date_ns} ns out of range")
        numeric = [int(s.info.id) for s in self._snapshots if s.info.id.isdigit()]
        snap_id = str(max(numeric, default=0) + 1)
        _encode_name(self._path, snap_id)

        disk_l1 = self._l1[: self._l1_entries_for(self._size)]
        shared = self._reachable(disk_l1)  # refuses compressed clusters before any change
        vm_l1 = self._store_vmstate(vmstate)
        self._adjust_refcounts(shared, +1)
        snap_l1 = [entry & _NOT_COPIED for entry in disk_l1] + vm_l1
        l1_offset = self._write_new_table(snap_l1)
        self._fix_copied_flags()
        info = SnapshotInfo(
            id=snap_id,
            name=name,
            vm_state_size=len(vmstate),
            date_sec=date_sec,
            date_nsec=date_nsec,
            vm_clock_nsec=vm_clock_nsec,
            icount=icount,
            disk_size=self._size,
        )
        self._write_snapshot_table(
            [*self._snapshots, _Snapshot(info, l1_offset, len(snap_l1), b"")]
        )
        return info

    def read_vmstate(self, name_or_id: str) -> bytes:
        """The VM state stored with a snapshot; the disk is left as it is."""
        return self._read_vmstate(self._find(name_or_id))

    def revert_to_snapshot(self, name_or_id: str) -> bytes:
        """Make the active disk the snapshot's disk (``qemu-img snapshot -a``); return
        the snapshot's VM state.  The snapshot itself stays."""
        self._require_writable()
        snap = self._find(name_or_id)
        n_disk = self._l1_entries_for(snap.info.disk_size)
        snap_l1 = self._read_l1_table(snap.l1_table_offset, min(snap.l1_size, n_disk))
        new_l1 = [entry & _NOT_COPIED for entry in snap_l1]
        new_l1 += [0] * (max(n_disk, len(self._l1)) - len(new_l1))
        gained = self._reachable(new_l1)
        lost = self._reachable(self._l1)
        # net changes only; gains first, so nothing still used is ever freed, even briefly
        delta: dict[int, int] = {}
        for offset in gained:
            delta[offset] = delta.get(offset, 0) + 1
        for offset in lost:
            delta[offset] = delta.get(offset, 0) - 1
        self._adjust_refcounts([o for o, d in delta.items() if d > 0 for _ in range(d)], +1)
        self._write_active_l1(new_l1)
        self._adjust_refcounts([o for o, d in delta.items() if d < 0 for _ in range(-d)], -1)
        if snap.info.disk_size != self._size:
            self._size = snap.info.disk_size
            self._pwrite(_OFF_SIZE, struct.pack(">Q", self._size))
        self._fix_copied_flags()
        return self._read_vmstate(snap)

    def delete_snapshot(self, name_or_id: str) -> None:
        """Remove a snapshot; clusters nothing else uses are freed."""
        self._require_writable()
        snap = self._find(name_or_id)
        snap_l1 = self._read_l1_table(snap.l1_table_offset, snap.l1_size)
        self._write_snapshot_table([s for s in self._snapshots if s is not snap])
        released = self._reachable(snap_l1)
        released += self._table_clusters(snap.l1_table_offset, 8 * snap.l1_size)
        self._adjust_refcounts(released, -1)
        self._fix_copied_flags()

    def flush(self) -> None:
        """Make everything written so far durable (fsync)."""
        self._require_open()
        if self._writable:
            try:
                os.fsync(self._fd)
            except OSError as exc:
                raise SnapshotError(f"{self._path}: flush failed: {exc.strerror}") from exc

    def close(self) -> None:
        """Close the image and its backing chain.  Closing twice is harmless."""
        if self._backing is not None:
            self._backing.close()
            self._backing = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Qcow2Image({str(self._path)!r}, size={self._size})"

    # ------------------------------------------------------------------ loading

    def _damaged(self, what: str) -> SnapshotError:
        return SnapshotError(f"{self._path}: damaged qcow2 image: {what}")

    def _unsupported(self, what: str) -> SnapshotError:
        return SnapshotError(f"{self._path}: unsupported qcow2 image: {what}")

    def _load(self, chain: tuple[Path, ...]) -> None:
        file_size = os.fstat(self._fd).st_size
        head = self._pread(0, _HEADER_V3_LENGTH)
        if len(head) < 4 or head[:4] != MAGIC:
            raise SnapshotError(f"{self._path}: not a qcow2 image (bad magic)")
        if len(head) < _HEADER_V2.size:
            raise self._damaged(f"header truncated to {len(head)} bytes")
        (
            _magic,
            version,
            backing_offset,
            backing_length,
            cluster_bits,
            size,
            crypt_method,
            l1_size,
            l1_offset,
            rt_offset,
            rt_clusters,
            nb_snapshots,
            snapshots_offset,
        ) = _HEADER_V2.unpack_from(head)
        if version == 3:
            if len(head) < _HEADER_V3_LENGTH:
                raise self._damaged(f"header truncated to {len(head)} bytes")
            incompatible, _compatible, autoclear, refcount_order, header_length = (
                _HEADER_V3.unpack_from(head, _HEADER_V2.size)
            )
        elif version == 2:
            if self._writable:
                raise self._unsupported("version 2 images can only be opened read-only")
            incompatible, autoclear, refcount_order = 0, 0, 4
            header_length = _HEADER_V2.size
        else:
            raise self._unsupported(f"version {version} (only versions 2 and 3 are known)")
        if not _MIN_CLUSTER_BITS <= cluster_bits <= _MAX_CLUSTER_BITS:
            raise self._unsupported(f"cluster_bits {cluster_bits}")
        cluster = 1 << cluster_bits
        self._cluster_bits = cluster_bits
        self._cluster_size = cluster
        self._l2_bits = cluster_bits - 3
        self._l2_entries = cluster // 8
        self._zero_cluster = bytes(cluster)
        if crypt_method:
            raise self._unsupported("encryption")
        known = (
            _INCOMPAT_DIRTY
            | _INCOMPAT_CORRUPT
            | _INCOMPAT_DATA_FILE
            | _INCOMPAT_COMPRESSION
            | _INCOMPAT_EXTL2
        )
        if incompatible & ~known:
            raise self._unsupported(f"unknown incompatible features {incompatible & ~known:#x}")
        if incompatible & _INCOMPAT_DATA_FILE:
            raise self._unsupported("external data file")
        if incompatible & _INCOMPAT_COMPRESSION:
            raise self._unsupported("non-zlib compression type")
        if incompatible & _INCOMPAT_EXTL2:
            raise self._unsupported("extended L2 entries")
        if self._writable and incompatible & _INCOMPAT_CORRUPT:
            raise SnapshotError(f"{self._path}: marked corrupt; it can only be opened read-only")
        if self._writable and incompatible & _INCOMPAT_DIRTY:
            raise SnapshotError(
                f"{self._path}: refcounts are dirty (run 'qemu-img check -r all' first); "
                "it can only be opened read-only"
            )
        if refcount_order > 6:
            raise self._damaged(f"refcount_order {refcount_order}")
        if self._writable and refcount_order not in _REFCOUNT_CHARS:
            raise self._unsupported(f"{1 << refcount_order}-bit refcounts for writing")
        if header_length < _HEADER_V2.size or header_length % 8 or header_length > cluster:
            raise self._damaged(f"header_length {header_length}")
        if file_size < header_length:
            raise self._damaged(f"header truncated to {file_size} bytes")
        self._version = version
        self._size = size
        self._refcount_order = refcount_order
        self._rb_entries = (cluster * 8) >> refcount_order

        self._load_extensions(header_length, backing_offset, cluster)
        if backing_offset:
            if backing_length > _MAX_BACKING_NAME:
                raise self._damaged(f"backing file name of {backing_length} bytes")
            if backing_offset > cluster or backing_offset + backing_length > file_size:
                raise self._damaged("backing file name beyond the header cluster")
            name = self._pread(backing_offset, backing_length)
            self._backing_name = Path(os.fsdecode(name))

        # active L1 table
        if l1_size * 8 > _MAX_L1_BYTES:
            raise self._damaged(f"l1_size {l1_size}")
        if l1_size < self._l1_entries_for(size):
            raise self._damaged(f"l1_size {l1_size} too small for a {size}-byte disk")
        self._check_table("L1 table", l1_offset, l1_size * 8, file_size)
        self._l1_offset = l1_offset
        self._l1_clusters = _ceil_div(l1_size * 8, cluster)
        self._l1 = self._read_l1_table(l1_offset, l1_size)

        # refcount table
        if rt_clusters == 0 or rt_clusters * cluster > _MAX_REFTABLE_BYTES:
            raise self._damaged(f"refcount_table_clusters {rt_clusters}")
        self._check_table("refcount table", rt_offset, rt_clusters * cluster, file_size)
        raw = self._pread(rt_offset, rt_clusters * cluster)
        self._rt = [e & _REFTABLE_MASK for e in struct.unpack(f">{len(raw) // 8}Q", raw)]
        for block in self._rt:
            if block and (block % cluster or block + cluster > file_size):
                raise self._damaged(f"refcount block at {block:#x} beyond the end of the file")
        self._rt_offset = rt_offset
        self._rt_clusters = rt_clusters

        # snapshot table
        self._snapshots_offset = snapshots_offset
        self._snapshots_bytes = 0
        self._snapshots = self._load_snapshots(nb_snapshots, snapshots_offset, file_size)

        if self._backing_name is not None:
            fmt = self._backing_format
            self._backing = _open_backing(
                self._path, self._backing_name, fmt, (*chain, self._path.resolve())
            )
            if fmt is None:
                self._backing_format = "qcow2" if isinstance(self._backing, Qcow2Image) else "raw"

        if self._writable:
            if autoclear:  # bitmaps and anything newer: we do not keep them up to date
                self._pwrite(_OFF_AUTOCLEAR, struct.pack(">Q", 0))
            self._scan_free_clusters(file_size)

    def _load_extensions(self, header_length: int, backing_offset: int, cluster: int) -> None:
        end = min(cluster, backing_offset) if backing_offset else cluster
        area = self._pread(header_length, max(0, end - header_length))
        pos = 0
        while pos + _EXT_HEADER.size <= len(area):
            kind, length = _EXT_HEADER.unpack_from(area, pos)
            if kind == _EXT_END:
                return
            data = area[pos + 8 : pos + 8 + length]
            if len(data) != length:
                raise self._damaged(f"header extension {kind:#010x} overruns the header")
            if kind == _EXT_BACKING_FORMAT:
                fmt = data.decode("ascii", "replace")
                if fmt not in ("raw", "qcow2"):
                    raise self._unsupported(f"backing file format {fmt!r}")
                self._backing_format = fmt
            pos += 8 + _ceil_div(length, 8) * 8

    def _check_table(self, what: str, offset: int, length: int, file_size: int) -> None:
        if offset % self._cluster_size:
            raise self._damaged(f"{what} offset {offset:#x} is not cluster-aligned")
        if length and (offset == 0 or offset + length > file_size):
            raise self._damaged(f"{what} at {offset:#x} lies beyond the end of the file")

    def _load_snapshots(self, count: int, offset: int, file_size: int) -> list[_Snapshot]:
        if count == 0:
            return []
        if count > _MAX_SNAPSHOTS:
            raise self._damaged(f"nb_snapshots {count}")
        self._check_table("snapshot table", offset, 1, file_size)
        snapshots: list[_Snapshot] = []
        pos = offset
        for _ in range(count):
            fixed = self._pread(pos, _SNAPSHOT.size)
            if len(fixed) < _SNAPSHOT.size:
                raise self._damaged("snapshot table runs past the end of the file")
            (l1_offset, l1_size, id_len, name_len, sec, nsec, clock, vm32, extra_len) = (
                _SNAPSHOT.unpack(fixed)
            )
            var_len = extra_len + id_len + name_len
            if pos + _SNAPSHOT.size + var_len - offset > _MAX_SNAPSHOT_TABLE_BYTES:
                raise self._damaged("snapshot table too large")
            var = self._pread(pos + _SNAPSHOT.size, var_len)
            if len(var) < var_len:
                raise self._damaged("snapshot table runs past the end of the file")
            extra = var[:extra_len]
            snap_id = var[extra_len : extra_len + id_len].decode("utf-8", "surrogateescape")
            name = var[extra_len + id_len :].decode("utf-8", "surrogateescape")
            vm_size, disk_size, icount = vm32, self._size, _NO_ICOUNT
            if extra_len >= 8:
                (vm_size,) = struct.unpack_from(">Q", extra, 0)
            if extra_len >= 16:
                (disk_size,) = struct.unpack_from(">Q", extra, 8)
            if extra_len >= 24:
                (icount,) = struct.unpack_from(">q", extra, 16)
            if l1_size * 8 > _MAX_L1_BYTES or self._l1_entries_for(disk_size) * 8 > _MAX_L1_BYTES:
                raise self._damaged(f"snapshot {snap_id!r} has l1_size {l1_size}")
            self._check_table(f"snapshot {snap_id!r} L1 table", l1_offset, 8 * l1_size, file_size)
            coverage = self._cluster_size << self._l2_bits
            if vm_size and self._vm_state_offset(disk_size) + vm_size > l1_size * coverage:
                raise self._damaged(f"snapshot {snap_id!r} VM state beyond its L1 table")
            info = SnapshotInfo(
                id=snap_id,
                name=name,
                vm_state_size=vm_size,
                date_sec=sec,
                date_nsec=nsec,
                vm_clock_nsec=clock,
                icount=None if icount < 0 else icount,
                disk_size=disk_size,
            )
            snapshots.append(_Snapshot(info, l1_offset, l1_size, extra[24:]))
            pos += _ceil_div(_SNAPSHOT.size + var_len, 8) * 8
        self._snapshots_bytes = pos - offset
        return snapshots

    # ------------------------------------------------------------------ low-level I/O

    def _pread(self, offset: int, length: int) -> bytes:
        self._require_open()
        try:
            return os.pread(self._fd, length, offset)
        except OSError as exc:
            raise SnapshotError(f"{self._path}: read failed: {exc.strerror}") from exc

    def _pwrite(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        self._require_open()
        view = memoryview(data)
        try:
            while view:
                written = os.pwrite(self._fd, view, offset)
                view = view[written:]
                offset += written
        except OSError as exc:
            raise SnapshotError(f"{self._path}: write failed: {exc.strerror}") from exc

    def _require_open(self) -> None:
        if self._fd < 0:
            raise SnapshotError(f"{self._path}: image is closed")

    def _require_writable(self) -> None:
        self._require_open()
        if not self._writable:
            raise SnapshotError(f"{self._path}: image is open read-only")

    def _check_range(self, offset: int, length: int) -> None:
        if offset < 0 or length < 0 or offset + length > self._size:
            raise SnapshotError(
                f"{self._path}: range {offset:#x}+{length:#x} is outside the {self._size}-byte disk"
            )

    # ------------------------------------------------------------------ mapping

    def _l1_entries_for(self, disk_size: int) -> int:
        return _ceil_div(disk_size, self._cluster_size << self._l2_bits)

    def _vm_state_offset(self, disk_size: int) -> int:
        """Where the VM state starts: the first guest offset no disk L1 entry covers."""
        return self._l1_entries_for(disk_size) * (self._cluster_size << self._l2_bits)

    def _read_l1_table(self, offset: int, count: int) -> list[int]:
        if count == 0:
            return []
        raw = self._pread(offset, 8 * count)
        if len(raw) != 8 * count:
            raise self._damaged(f"L1 table at {offset:#x} lies beyond the end of the file")
        table = list(struct.unpack(f">{count}Q", raw))
        for entry in table:
            if (entry & _OFFSET_MASK) % self._cluster_size:
                raise self._damaged(f"L1 entry {entry:#x} is not cluster-aligned")
        return table

    def _l2_table(self, offset: int) -> list[int]:
        table = self._l2_cache.get(offset)
        if table is not None:
            return table
        if offset % self._cluster_size:
            raise self._damaged(f"L2 table offset {offset:#x} is not cluster-aligned")
        raw = self._pread(offset, self._cluster_size)
        if len(raw) != self._cluster_size:
            raise self._damaged(f"L2 table at {offset:#x} lies beyond the end of the file")
        table = list(struct.unpack(f">{self._l2_entries}Q", raw))
        if len(self._l2_cache) >= _L2_CACHE_TABLES:
            del self._l2_cache[next(iter(self._l2_cache))]
        self._l2_cache[offset] = table
        return table

    def _l2_entry(self, l1: list[int], cluster_index: int) -> int:
        l1_index = cluster_index >> self._l2_bits
        if l1_index >= len(l1):
            return 0
        l2_offset = l1[l1_index] & _OFFSET_MASK
        if not l2_offset:
            return 0
        entry = self._l2_table(l2_offset)[cluster_index & (self._l2_entries - 1)]
        if entry & _COMPRESSED:
            raise self._unsupported("compressed clusters")
        if (entry & _OFFSET_MASK) % self._cluster_size:
            raise self._damaged(f"L2 entry {entry:#x} is not cluster-aligned")
        return entry

    def _read_mapped(self, l1: list[int], offset: int, length: int, from_backing: bool) -> bytes:
        cluster = self._cluster_size
        pieces: list[bytes] = []
        pos, end = offset, offset + length
        while pos < end:
            in_cluster = pos & (cluster - 1)
            n = min(cluster - in_cluster, end - pos)
            entry = self._l2_entry(l1, pos >> self._cluster_bits)
            host = entry & _OFFSET_MASK
            if entry & _ZERO:
                pieces.append(self._zero_cluster[:n])
            elif host:
                data = self._pread(host + in_cluster, n)
                pieces.append(data if len(data) == n else data.ljust(n, b"\0"))
            elif from_backing:
                pieces.append(self._read_backing(pos, n))
            else:
                pieces.append(self._zero_cluster[:n])
            pos += n
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def _read_backing(self, offset: int, length: int) -> bytes:
        if self._backing is None:
            return bytes(length)
        available = max(0, min(length, self._backing.size - offset))
        data = self._backing.read(offset, available) if available else b""
        return data if available == length else data + bytes(length - available)

    def _read_vmstate(self, snap: _Snapshot) -> bytes:
        if snap.info.vm_state_size == 0:
            return b""
        l1 = self._read_l1_table(snap.l1_table_offset, snap.l1_size)
        start = self._vm_state_offset(snap.info.disk_size)
        return self._read_mapped(l1, start, snap.info.vm_state_size, from_backing=False)

    def _find(self, name_or_id: str) -> _Snapshot:
        for snap in self._snapshots:
            if snap.info.id == name_or_id:
                return snap
        for snap in self._snapshots:
            if snap.info.name == name_or_id:
                return snap
        raise SnapshotError(f"{self._path}: no snapshot with id or name {name_or_id!r}")

    # ------------------------------------------------------------------ writing

    def _write_in_cluster(self, cluster_index: int, in_cluster: int, piece: memoryview) -> None:
        l2_offset = self._l2_for_write(cluster_index >> self._l2_bits)
        l2_index = cluster_index & (self._l2_entries - 1)
        entry = self._l2_table(l2_offset)[l2_index]
        if entry & _COMPRESSED:
            raise self._unsupported("compressed clusters")
        host = entry & _OFFSET_MASK
        if host and not entry & _ZERO:
            if not entry & _COPIED and self._refcount(host) == 1:
                entry = host | _COPIED
                self._set_l2_entry(l2_offset, l2_index, entry)
            if entry & _COPIED:
                self._pwrite(host + in_cluster, piece)
                return
        if len(piece) == self._cluster_size:
            content: bytes | bytearray | memoryview = piece
        else:
            # copy on write: the cluster as the guest sees it now, patched
            start = cluster_index << self._cluster_bits
            if entry & _ZERO:
                content = bytearray(self._cluster_size)
            elif host:
                content = bytearray(self._pread(host, self._cluster_size))
                content.extend(bytes(self._cluster_size - len(content)))
            else:
                content = bytearray(self._read_backing(start, self._cluster_size))
            content[in_cluster : in_cluster + len(piece)] = piece
        new = self._allocate_cluster()
        self._pwrite(new, content)
        self._set_l2_entry(l2_offset, l2_index, new | _COPIED)
        if host:
            self._adjust_refcounts([host], -1)

    def _l2_for_write(self, l1_index: int) -> int:
        """The offset of an L2 table the active disk owns alone, for ``l1_index``."""
        entry = self._l1[l1_index]
        old = entry & _OFFSET_MASK
        if old:
            if not entry & _COPIED and self._refcount(old) == 1:
                entry = old | _COPIED
                self._set_l1_entry(l1_index, entry)
            if entry & _COPIED:
                return old
            # shared with a snapshot: every cluster it reaches is reached twice or more
            table = [e & _NOT_COPIED for e in self._l2_table(old)]
        else:
            table = [0] * self._l2_entries
        new = self._allocate_cluster()
        self._pwrite(new, struct.pack(f">{self._l2_entries}Q", *table))
        self._l2_cache[new] = table
        self._set_l1_entry(l1_index, new | _COPIED)
        if old:
            self._adjust_refcounts([old], -1)
        return new

    def _set_l1_entry(self, index: int, entry: int) -> None:
        self._l1[index] = entry
        self._pwrite(self._l1_offset + 8 * index, struct.pack(">Q", entry))

    def _set_l2_entry(self, l2_offset: int, index: int, entry: int) -> None:
        self._l2_table(l2_offset)[index] = entry
        self._pwrite(l2_offset + 8 * index, struct.pack(">Q", entry))

    def _write_active_l1(self, entries: list[int]) -> None:
        """Replace the active L1 table, in place when it fits."""
        raw = struct.pack(f">{len(entries)}Q", *entries)
        if self._l1_offset and _ceil_div(len(raw), self._cluster_size) <= self._l1_clusters:
            self._pwrite(self._l1_offset, raw)
            if len(entries) != len(self._l1):
                self._pwrite(_OFF_L1, struct.pack(">I", len(entries)))
            self._l1 = list(entries)
            return
        old_offset, old_clusters = self._l1_offset, self._l1_clusters
        offset = self._write_new_table(entries)
        self._pwrite(_OFF_L1, struct.pack(">IQ", len(entries), offset))
        self._l1, self._l1_offset = list(entries), offset
        self._l1_clusters = _ceil_div(len(raw), self._cluster_size)
        if old_offset:
            first = old_offset // self._cluster_size
            self._adjust_refcounts(
                [c * self._cluster_size for c in range(first, first + old_clusters)], -1
            )

    def _write_new_table(self, entries: list[int]) -> int:
        """Write a table of u64 entries to freshly allocated clusters; 0 when empty."""
        if not entries:
            return 0
        raw = struct.pack(f">{len(entries)}Q", *entries)
        clusters = _ceil_div(len(raw), self._cluster_size)
        offset = self._allocate_contiguous(clusters)
        self._pwrite(offset, raw.ljust(clusters * self._cluster_size, b"\0"))
        return offset

    def _table_clusters(self, offset: int, length: int) -> list[int]:
        if not length:
            return []
        first = offset // self._cluster_size
        last = _ceil_div(offset + length, self._cluster_size)
        return [c * self._cluster_size for c in range(first, last)]

    def _store_vmstate(self, vmstate: bytes) -> list[int]:
        """Write a VM state into new clusters; return the L1 entries describing it."""
        cluster = self._cluster_size
        coverage = cluster << self._l2_bits
        data = bytes(vmstate)
        entries: list[int] = []
        for start in range(0, len(data), coverage):
            table = [0] * self._l2_entries
            for index, pos in enumerate(range(start, min(start + coverage, len(data)), cluster)):
                piece = data[pos : pos + cluster]
                if piece == self._zero_cluster[: len(piece)]:
                    continue  # left unallocated: reads as zeros
                table[index] = host = self._allocate_cluster()
                self._pwrite(host, piece.ljust(cluster, b"\0"))
            if any(table):
                l2_offset = self._allocate_cluster()
                self._pwrite(l2_offset, struct.pack(f">{self._l2_entries}Q", *table))
                entries.append(l2_offset)
            else:
                entries.append(0)
        return entries

    def _write_snapshot_table(self, snapshots: list[_Snapshot]) -> None:
        blob = b"".join(_encode_snapshot(snap) for snap in snapshots)
        offset = 0
        if blob:
            clusters = _ceil_div(len(blob), self._cluster_size)
            offset = self._allocate_contiguous(clusters)
            self._pwrite(offset, blob.ljust(clusters * self._cluster_size, b"\0"))
        self._pwrite(_OFF_SNAPSHOTS, struct.pack(">IQ", len(snapshots), offset))
        old = self._table_clusters(self._snapshots_offset, self._snapshots_bytes)
        self._snapshots = snapshots
        self._snapshots_offset, self._snapshots_bytes = offset, len(blob)
        self._adjust_refcounts(old, -1)

    def _reachable(self, l1: list[int]) -> list[int]:
        """Every L2 table and data cluster an L1 table references (one entry per reference)."""
        found: list[int] = []
        for l1_entry in l1:
            l2_offset = l1_entry & _OFFSET_MASK
            if not l2_offset:
                continue
            found.append(l2_offset)
            table = self._l2_table(l2_offset)
            if any(entry & _COMPRESSED for entry in table):
                raise self._unsupported("compressed clusters")
            found += [host for entry in table if (host := entry & _OFFSET_MASK)]
        return found

    def _fix_copied_flags(self) -> None:
        """Set bit 63 in the active L1 table and its L2 tables exactly where refcount is 1."""
        for index, l1_entry in enumerate(self._l1):
            l2_offset = l1_entry & _OFFSET_MASK
            if not l2_offset:
                continue
            wanted = l2_offset | (_COPIED if self._refcount(l2_offset) == 1 else 0)
            if wanted != l1_entry:
                self._set_l1_entry(index, wanted)
            table = self._l2_table(l2_offset)
            fixed = [e if e == 0 else self._with_copied_flag(e) for e in table]
            if fixed != table:
                self._pwrite(l2_offset, struct.pack(f">{self._l2_entries}Q", *fixed))
                table[:] = fixed

    def _with_copied_flag(self, entry: int) -> int:
        host = entry & _OFFSET_MASK
        entry &= _NOT_COPIED
        if host and self._refcount(host) == 1:
            entry |= _COPIED
        return entry

    # ------------------------------------------------------------------ refcounts

    def _refblock(self, block_index: int) -> list[int] | None:
        if block_index >= len(self._rt) or not self._rt[block_index]:
            return None
        block = self._rb_cache.get(block_index)
        if block is None:
            raw = self._pread(self._rt[block_index], self._cluster_size)
            if len(raw) != self._cluster_size:
                raise self._damaged("refcount block beyond the end of the file")
            char = _REFCOUNT_CHARS[self._refcount_order]
            block = list(struct.unpack(f">{self._rb_entries}{char}", raw))
            self._rb_cache[block_index] = block
        return block

    def _refcount(self, host_offset: int) -> int:
        cluster_index = host_offset >> self._cluster_bits
        block = self._refblock(cluster_index // self._rb_entries)
        return 0 if block is None else block[cluster_index % self._rb_entries]

    def _scan_free_clusters(self, file_size: int) -> None:
        """Find the end of the allocated area and the free clusters before it."""
        used_end = 0
        for block_index in range(len(self._rt)):
            block = self._refblock(block_index)
            if block is not None and any(block):
                last = len(block) - next(i for i, v in enumerate(reversed(block)) if v)
                used_end = block_index * self._rb_entries + last
        self._next_free = max(used_end, _ceil_div(file_size, self._cluster_size))
        free: list[int] = []
        for block_index in range(_ceil_div(self._next_free, self._rb_entries)):
            block = self._refblock(block_index)
            base = block_index * self._rb_entries
            limit = min(self._rb_entries, self._next_free - base)
            if block is None:
                free += range(base, base + limit)
            else:
                free += [base + i for i in range(limit) if block[i] == 0]
        heapq.heapify(free)
        self._free = free

    def _allocate_cluster(self) -> int:
        """One cluster with refcount 1, reusing a freed one when there is one."""
        while self._free:
            cluster_index = heapq.heappop(self._free)
            if self._refcount(cluster_index << self._cluster_bits) == 0:
                self._store_refcounts({cluster_index: 1})
                return cluster_index << self._cluster_bits
        first = self._next_free
        self._next_free += 1
        self._store_refcounts({first: 1})
        return first << self._cluster_bits

    def _allocate_contiguous(self, count: int) -> int:
        """``count`` adjacent clusters with refcount 1: a freed one or the end of the file."""
        if count == 1:
            return self._allocate_cluster()
        first = self._next_free
        self._next_free += count
        self._store_refcounts(dict.fromkeys(range(first, first + count), 1))
        return first << self._cluster_bits

    def _adjust_refcounts(self, host_offsets: Iterable[int], delta: int) -> None:
        """Add ``delta`` once per listed offset; clusters reaching 0 become free."""
        changes: dict[int, int] = {}
        for offset in host_offsets:
            cluster_index = offset >> self._cluster_bits
            changes[cluster_index] = changes.get(cluster_index, 0) + delta
        limit = (1 << (1 << self._refcount_order)) - 1
        values: dict[int, int] = {}
        for cluster_index, change in changes.items():
            value = self._refcount(cluster_index << self._cluster_bits) + change
            if value < 0:
                raise self._damaged(f"refcount of cluster {cluster_index:#x} would drop below 0")
            if value > limit:
                raise SnapshotError(
                    f"{self._path}: refcount of cluster {cluster_index:#x} would overflow"
                )
            values[cluster_index] = value
        self._store_refcounts(values)

    def _store_refcounts(self, values: dict[int, int]) -> None:
        by_block: dict[int, list[int]] = {}
        for cluster_index in sorted(values):
            by_block.setdefault(cluster_index // self._rb_entries, []).append(cluster_index)
        char = _REFCOUNT_CHARS[self._refcount_order]
        width = struct.calcsize(char)
        for block_index, clusters in by_block.items():
            self._ensure_refblock(block_index)
            block = self._refblock(block_index)
            assert block is not None
            base = block_index * self._rb_entries
            for cluster_index in clusters:
                block[cluster_index - base] = values[cluster_index]
            block_offset = self._rt[block_index]
            if len(clusters) > 16:
                self._pwrite(block_offset, struct.pack(f">{self._rb_entries}{char}", *block))
            else:
                for cluster_index in clusters:
                    self._pwrite(
                        block_offset + width * (cluster_index - base),
                        struct.pack(f">{char}", values[cluster_index]),
                    )
            for cluster_index in clusters:
                if values[cluster_index] == 0:
                    self._l2_cache.pop(cluster_index << self._cluster_bits, None)
                    heapq.heappush(self._free, cluster_index)

    def _ensure_refblock(self, block_index: int) -> None:
        if block_index >= len(self._rt):
            self._grow_refcount_table(block_index + 1)
        if self._rt[block_index]:
            return
        cluster_index = self._next_free
        self._next_free += 1
        offset = cluster_index << self._cluster_bits
        self._pwrite(offset, self._zero_cluster)
        self._rt[block_index] = offset
        self._rb_cache[block_index] = [0] * self._rb_entries
        self._pwrite(self._rt_offset + 8 * block_index, struct.pack(">Q", offset))
        self._store_refcounts({cluster_index: 1})  # the block may describe itself

    def _grow_refcount_table(self, min_entries: int) -> None:
        """Move the refcount table to a larger one at the end of the file."""
        per_cluster = self._cluster_size // 8
        entries = max(min_entries, 2 * len(self._rt))
        while True:
            clusters = _ceil_div(entries, per_cluster)
            entries = clusters * per_cluster
            # the new table and the blocks describing it must fall inside what it covers
            frontier = self._next_free + 2 * clusters + 2
            if _ceil_div(frontier, self._rb_entries) <= entries:
                break
            entries *= 2
        if entries * 8 > _MAX_REFTABLE_BYTES:
            raise SnapshotError(f"{self._path}: image too large for its refcount table")
        old = self._table_clusters(self._rt_offset, self._rt_clusters * self._cluster_size)
        first = self._next_free
        self._next_free += clusters
        self._rt.extend([0] * (entries - len(self._rt)))
        offset = first << self._cluster_bits
        self._pwrite(offset, struct.pack(f">{entries}Q", *self._rt))
        self._pwrite(_OFF_REFCOUNT_TABLE, struct.pack(">QI", offset, clusters))
        self._rt_offset, self._rt_clusters = offset, clusters
        self._store_refcounts(dict.fromkeys(range(first, first + clusters), 1))
        self._adjust_refcounts(old, -1)


def _open_backing(image: Path, name: Path, fmt: str | None, chain: tuple[Path, ...]) -> _Backing:
    """Open ``name`` (relative to ``image``'s directory) read-only as raw or qcow2."""
    path = name if name.is_absolute() else image.parent / name
    if not path.exists():
        raise SnapshotError(f"backing file {name} of {image} is missing")
    if path.resolve() in chain or len(chain) >= _MAX_BACKING_DEPTH:
        raise SnapshotError(f"{image}: backing chain loops or is too deep at {name}")
    if fmt is None:  # no format extension: probe, as QEMU does
        try:
            with path.open("rb") as probe:
                fmt = "qcow2" if probe.read(4) == MAGIC else "raw"
        except OSError as exc:
            raise SnapshotError(f"{path}: cannot open backing file: {exc.strerror}") from exc
    if fmt == "qcow2":
        return Qcow2Image._open(path, False, chain)
    return _RawBacking(path)


def _encode_name(image: Path, name: str) -> bytes:
    if not isinstance(name, str) or not name:
        raise SnapshotError(f"{image}: a snapshot needs a non-empty name")
    raw = name.encode("utf-8", "surrogateescape")
    if len(raw) > 0xFFFF:
        raise SnapshotError(f"{image}: snapshot name longer than 65535 bytes")
    return raw


def _encode_snapshot(snap: _Snapshot) -> bytes:
    info = snap.info
    snap_id = info.id.encode("utf-8", "surrogateescape")
    name = info.name.encode("utf-8", "surrogateescape")
    icount = _NO_ICOUNT if info.icount is None else info.icount
    extra = _SNAPSHOT_EXTRA.pack(info.vm_state_size, info.disk_size, icount) + snap.extra_tail
    fixed = _SNAPSHOT.pack(
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
    return entry.ljust(_ceil_div(len(entry), 8) * 8, b"\0")


def _initial_layout(
    size: int, cluster_bits: int, backing_name: bytes, backing_format: str | None
) -> bytes:
    """The bytes of a new, empty image: header, refcount table and blocks, L1 table."""
    cluster = 1 << cluster_bits
    rb_entries = (cluster * 8) >> _CREATE_REFCOUNT_ORDER
    l1_size = _ceil_div(size, cluster << (cluster_bits - 3))
    l1_clusters = _ceil_div(8 * l1_size, cluster)
    rt_clusters, rb_clusters = 1, 1
    while True:  # fixed point: the refcount structures count themselves
        total = 1 + rt_clusters + rb_clusters + l1_clusters
        need_rb = _ceil_div(total, rb_entries)
        need_rt = _ceil_div(8 * need_rb, cluster)
        if (need_rb, need_rt) == (rb_clusters, rt_clusters):
            break
        rb_clusters, rt_clusters = need_rb, need_rt
    rt_offset = cluster
    rb_offset = rt_offset + rt_clusters * cluster
    l1_offset = rb_offset + rb_clusters * cluster if l1_size else 0

    extensions = b""
    if backing_format is not None:
        fmt = backing_format.encode("ascii")
        extensions += _EXT_HEADER.pack(_EXT_BACKING_FORMAT, len(fmt))
        extensions += fmt.ljust(_ceil_div(len(fmt), 8) * 8, b"\0")
    extensions += _EXT_HEADER.pack(_EXT_END, 0)
    backing_offset = _HEADER_V3_LENGTH + len(extensions) if backing_name else 0
    if _HEADER_V3_LENGTH + len(extensions) + len(backing_name) > cluster:
        raise SnapshotError("backing file name does not fit in the header cluster")
    header = _HEADER_V2.pack(
        MAGIC,
        VERSION,
        backing_offset,
        len(backing_name),
        cluster_bits,
        size,
        0,  # crypt_method
        l1_size,
        l1_offset,
        rt_offset,
        rt_clusters,
        0,  # nb_snapshots
        0,  # snapshots_offset
    ) + _HEADER_V3.pack(0, 0, 0, _CREATE_REFCOUNT_ORDER, _HEADER_V3_LENGTH)
    first = (header + extensions + backing_name).ljust(cluster, b"\0")

    table = [rb_offset + i * cluster for i in range(rb_clusters)]
    rt = struct.pack(f">{len(table)}Q", *table).ljust(rt_clusters * cluster, b"\0")
    counts = [1] * total + [0] * (rb_clusters * rb_entries - total)
    rb = struct.pack(f">{len(counts)}H", *counts)
    return first + rt + rb + bytes(l1_clusters * cluster)

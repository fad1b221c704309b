"""The qcow2 image: a virtual disk and its internal snapshots, composed of the header,
the cluster map, the refcounts and the snapshot table, with its backing chain.

Each operation of `Qcow2Image` is a sequence of steps that keeps the file consistent
for ``qemu-img check`` after each step: new clusters are written and counted before
anything points at them, and a cluster is freed only once nothing points at it.
"""

from __future__ import annotations

import os
import struct
import time
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

from rdebug.errors import SnapshotError
from rdebug.snapshots.qcow2.clusters import NOT_COPIED, ClusterMap
from rdebug.snapshots.qcow2.file import ImageFile, ceil_div
from rdebug.snapshots.qcow2.header import (
    MAGIC,
    MAX_BACKING_NAME,
    MAX_CLUSTER_BITS,
    MIN_CLUSTER_BITS,
    OFF_AUTOCLEAR,
    OFF_SIZE,
    Geometry,
    initial_layout,
    read_backing_format,
    read_backing_name,
    read_header,
)
from rdebug.snapshots.qcow2.refcount import Refcounts
from rdebug.snapshots.qcow2.snapshot_table import (
    MAX_SNAPSHOTS,
    SnapshotEntry,
    SnapshotInfo,
    SnapshotTable,
    encode_name,
)

_MAX_BACKING_DEPTH = 32


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

    _version: int
    _size: int
    _geometry: Geometry
    _refcounts: Refcounts
    _clusters: ClusterMap
    _snapshots: SnapshotTable

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
        if not MIN_CLUSTER_BITS <= cluster_bits <= MAX_CLUSTER_BITS:
            raise SnapshotError(
                f"{path}: cluster_bits must be between {MIN_CLUSTER_BITS} and "
                f"{MAX_CLUSTER_BITS}, not {cluster_bits}"
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
                size = ceil_div(backing_size, 512) * 512
            backing_name = os.fsencode(backing)
            if len(backing_name) > MAX_BACKING_NAME:
                raise SnapshotError(f"{path}: backing file name longer than 1023 bytes")
        elif backing_format is not None:
            raise SnapshotError(f"{path}: backing_format given without a backing file")
        if size is None:
            raise SnapshotError(f"{path}: a size is needed when there is no backing file")
        if size < 0 or size % 512:
            raise SnapshotError(f"{path}: size {size} is not a multiple of 512")
        layout = initial_layout(size, cluster_bits, backing_name, backing_format)
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
        self._file = ImageFile(path, fd, writable)
        self._backing: _Backing | None = None
        self._backing_name: Path | None = None
        self._backing_format: str | None = None

    def _load(self, chain: tuple[Path, ...]) -> None:
        file = self._file
        file_size = file.size()
        header = read_header(file, file_size)
        self._version = header.version
        self._size = header.size
        self._geometry = geometry = header.geometry
        self._refcounts = Refcounts(file, geometry, header.refcount_order, self._freed)
        self._clusters = ClusterMap(file, geometry, self._refcounts, self._read_backing)
        self._snapshots = SnapshotTable(file, geometry, self._refcounts)

        self._backing_format = read_backing_format(file, header)
        self._backing_name = read_backing_name(file, header, file_size)
        self._clusters.load(header, file_size)
        self._refcounts.load(header, file_size)
        self._snapshots.load(header.nb_snapshots, header.snapshots_offset, file_size, self._size)

        if self._backing_name is not None:
            fmt = self._backing_format
            self._backing = _open_backing(
                file.path, self._backing_name, fmt, (*chain, file.path.resolve())
            )
            if fmt is None:
                self._backing_format = "qcow2" if isinstance(self._backing, Qcow2Image) else "raw"

        if file.writable:
            if header.autoclear:  # bitmaps and anything newer: we do not keep them up to date
                file.pwrite(OFF_AUTOCLEAR, struct.pack(">Q", 0))
            self._refcounts.scan_free_clusters(file_size)

    def _freed(self, host_offset: int) -> None:
        """A cluster's refcount fell to 0: it may have held a cached L2 table."""
        self._clusters.forget(host_offset)

    # ------------------------------------------------------------------ public API

    @property
    def path(self) -> Path:
        return self._file.path

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
        return self._geometry.cluster_size

    def read(self, offset: int, length: int) -> bytes:
        """Read guest bytes; unallocated clusters come from the backing file or are zero."""
        self._file.require_open()
        self._check_range(offset, length)
        return self._clusters.read(self._clusters.l1, offset, length, from_backing=True)

    def write(self, offset: int, data: bytes) -> None:
        """Write guest bytes, allocating (and copying on write) clusters as needed."""
        self._file.require_writable()
        self._check_range(offset, len(data))
        self._clusters.write(offset, data)

    def snapshots(self) -> list[SnapshotInfo]:
        """The snapshots in table order."""
        return [snap.info for snap in self._snapshots.entries]

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
        self._file.require_writable()
        path = self._file.path
        encode_name(path, name)
        existing = self._snapshots.entries
        if any(snap.info.name == name for snap in existing):
            raise SnapshotError(f"{path}: a snapshot named {name!r} already exists")
        if len(existing) >= MAX_SNAPSHOTS:
            raise SnapshotError(f"{path}: too many snapshots")
        if icount is not None and not 0 <= icount < 1 << 63:
            raise SnapshotError(f"{path}: icount {icount} out of range")
        if not 0 <= vm_clock_nsec < 1 << 64:
            raise SnapshotError(f"{path}: vm_clock_nsec {vm_clock_nsec} out of range")
        if date_ns is None:
            date_ns = time.time_ns()
        date_sec, date_nsec = divmod(date_ns, 1_000_000_000)
        if not 0 <= date_sec < 1 << 32:
            raise SnapshotError(f"{path}: date {date_ns} ns out of range")
        snap_id = self._snapshots.next_id()
        encode_name(path, snap_id)

        clusters = self._clusters
        disk_l1 = clusters.l1[: self._geometry.l1_entries_for(self._size)]
        shared = clusters.reachable(disk_l1)  # refuses compressed clusters before any change
        vm_l1 = clusters.store_vmstate(vmstate)
        self._refcounts.adjust(shared, +1)
        snap_l1 = [entry & NOT_COPIED for entry in disk_l1] + vm_l1
        l1_offset = clusters.write_new_table(snap_l1)
        clusters.fix_copied_flags()
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
        self._snapshots.write([*existing, SnapshotEntry(info, l1_offset, len(snap_l1), b"")])
        return info

    def read_vmstate(self, name_or_id: str) -> bytes:
        """The VM state stored with a snapshot; the disk is left as it is."""
        return self._read_vmstate(self._snapshots.find(name_or_id))

    def revert_to_snapshot(self, name_or_id: str) -> bytes:
        """Make the active disk the snapshot's disk (``qemu-img snapshot -a``); return
        the snapshot's VM state.  The snapshot itself stays."""
        self._file.require_writable()
        snap = self._snapshots.find(name_or_id)
        clusters = self._clusters
        n_disk = self._geometry.l1_entries_for(snap.info.disk_size)
        snap_l1 = clusters.read_l1_table(snap.l1_table_offset, min(snap.l1_size, n_disk))
        new_l1 = [entry & NOT_COPIED for entry in snap_l1]
        new_l1 += [0] * (max(n_disk, len(clusters.l1)) - len(new_l1))
        gained = clusters.reachable(new_l1)
        lost = clusters.reachable(clusters.l1)
        # net changes only; gains first, so nothing still used is ever freed, even briefly
        delta: dict[int, int] = {}
        for offset in gained:
            delta[offset] = delta.get(offset, 0) + 1
        for offset in lost:
            delta[offset] = delta.get(offset, 0) - 1
        self._refcounts.adjust([o for o, d in delta.items() if d > 0 for _ in range(d)], +1)
        clusters.write_active_l1(new_l1)
        self._refcounts.adjust([o for o, d in delta.items() if d < 0 for _ in range(-d)], -1)
        if snap.info.disk_size != self._size:
            self._size = snap.info.disk_size
            self._file.pwrite(OFF_SIZE, struct.pack(">Q", self._size))
        clusters.fix_copied_flags()
        return self._read_vmstate(snap)

    def delete_snapshot(self, name_or_id: str) -> None:
        """Remove a snapshot; clusters nothing else uses are freed."""
        self._file.require_writable()
        snap = self._snapshots.find(name_or_id)
        snap_l1 = self._clusters.read_l1_table(snap.l1_table_offset, snap.l1_size)
        self._snapshots.write([s for s in self._snapshots.entries if s is not snap])
        released = self._clusters.reachable(snap_l1)
        released += self._geometry.table_clusters(snap.l1_table_offset, 8 * snap.l1_size)
        self._refcounts.adjust(released, -1)
        self._clusters.fix_copied_flags()

    def flush(self) -> None:
        """Make everything written so far durable (fsync)."""
        self._file.flush()

    def close(self) -> None:
        """Close the image and its backing chain.  Closing twice is harmless."""
        if self._backing is not None:
            self._backing.close()
            self._backing = None
        self._file.close()

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
        return f"Qcow2Image({str(self._file.path)!r}, size={self._size})"

    # ------------------------------------------------------------------ helpers

    def _check_range(self, offset: int, length: int) -> None:
        if offset < 0 or length < 0 or offset + length > self._size:
            raise SnapshotError(
                f"{self._file.path}: range {offset:#x}+{length:#x} is outside the "
                f"{self._size}-byte disk"
            )

    def _read_backing(self, offset: int, length: int) -> bytes:
        if self._backing is None:
            return bytes(length)
        available = max(0, min(length, self._backing.size - offset))
        data = self._backing.read(offset, available) if available else b""
        return data if available == length else data + bytes(length - available)

    def _read_vmstate(self, snap: SnapshotEntry) -> bytes:
        if snap.info.vm_state_size == 0:
            return b""
        l1 = self._clusters.read_l1_table(snap.l1_table_offset, snap.l1_size)
        start = self._geometry.vm_state_offset(snap.info.disk_size)
        return self._clusters.read(l1, start, snap.info.vm_state_size, from_backing=False)


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

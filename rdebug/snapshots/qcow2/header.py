"""The qcow2 header: its fields, their validation, its extensions, and a new image's
first clusters (qcow2.txt "Header" and "Header extensions").

Refuses, by name, anything this package cannot read or write safely: a damaged header
(`ImageFile.damaged`), a feature it does not implement (`ImageFile.unsupported`).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

from rdebug.errors import SnapshotError
from rdebug.snapshots.qcow2.file import ImageFile, ceil_div

MAGIC = b"QFI\xfb"
#: The version this package writes.  Version 2 images are opened read-only.
VERSION = 3

# Header, qcow2.txt "Header" (bytes 0-71 in every version, 72-103 from version 3 on).
# Bump nothing here: this is QEMU's format, not ours; a new field is a new constant.
HEADER_V2 = struct.Struct(">4sIQIIQIIQQIIQ")
HEADER_V3 = struct.Struct(">QQQII")
HEADER_V3_LENGTH = HEADER_V2.size + HEADER_V3.size  # 104
OFF_SIZE = 24  # u64 size
OFF_L1 = 36  # u32 l1_size, u64 l1_table_offset
OFF_REFCOUNT_TABLE = 48  # u64 refcount_table_offset, u32 refcount_table_clusters
OFF_SNAPSHOTS = 60  # u32 nb_snapshots, u64 snapshots_offset
OFF_AUTOCLEAR = 88  # u64 autoclear_features

# incompatible_features bits
INCOMPAT_DIRTY = 1 << 0
INCOMPAT_CORRUPT = 1 << 1
INCOMPAT_DATA_FILE = 1 << 2
INCOMPAT_COMPRESSION = 1 << 3
INCOMPAT_EXTL2 = 1 << 4

# Header extensions, qcow2.txt "Header extensions"
EXT_END = 0x00000000
EXT_BACKING_FORMAT = 0xE2792ACA
EXT_HEADER = struct.Struct(">II")

# QEMU's implementation limits, used here to refuse absurd (damaged) values.
MIN_CLUSTER_BITS = 9
MAX_CLUSTER_BITS = 21
MAX_L1_BYTES = 32 << 20
MAX_BACKING_NAME = 1023
CREATE_REFCOUNT_ORDER = 4
#: Refcount widths (log2 of the bits) and their struct codes.
REFCOUNT_CHARS = {3: "B", 4: "H", 5: "I", 6: "Q"}


@dataclass(frozen=True, slots=True)
class Geometry:
    """Sizes that follow from cluster_bits: clusters, L2 tables, what one L1 entry maps."""

    cluster_bits: int

    @property
    def cluster_size(self) -> int:
        return 1 << self.cluster_bits

    @property
    def l2_bits(self) -> int:
        return self.cluster_bits - 3

    @property
    def l2_entries(self) -> int:
        return self.cluster_size // 8

    @property
    def l1_coverage(self) -> int:
        """Guest bytes one L1 entry (one L2 table) maps."""
        return self.cluster_size << self.l2_bits

    def l1_entries_for(self, disk_size: int) -> int:
        return ceil_div(disk_size, self.l1_coverage)

    def vm_state_offset(self, disk_size: int) -> int:
        """Where the VM state starts: the first guest offset no disk L1 entry covers."""
        return self.l1_entries_for(disk_size) * self.l1_coverage

    def table_clusters(self, offset: int, length: int) -> list[int]:
        """The host offsets of the clusters `length` bytes at `offset` occupy."""
        if not length:
            return []
        first = offset // self.cluster_size
        last = ceil_div(offset + length, self.cluster_size)
        return [c * self.cluster_size for c in range(first, last)]


@dataclass(frozen=True, slots=True)
class Header:
    """The header's fields, checked (version 2 images get version 3's defaults)."""

    version: int
    backing_offset: int
    backing_length: int
    geometry: Geometry
    size: int
    l1_size: int
    l1_offset: int
    rt_offset: int
    rt_clusters: int
    nb_snapshots: int
    snapshots_offset: int
    autoclear: int
    refcount_order: int
    header_length: int


def read_header(file: ImageFile, file_size: int) -> Header:
    """The header of `file`, or the reason it cannot be opened (as writable as `file`)."""
    head = file.pread(0, HEADER_V3_LENGTH)
    if len(head) < 4 or head[:4] != MAGIC:
        raise SnapshotError(f"{file.path}: not a qcow2 image (bad magic)")
    if len(head) < HEADER_V2.size:
        raise file.damaged(f"header truncated to {len(head)} bytes")
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
    ) = HEADER_V2.unpack_from(head)
    if version == 3:
        if len(head) < HEADER_V3_LENGTH:
            raise file.damaged(f"header truncated to {len(head)} bytes")
        incompatible, _compatible, autoclear, refcount_order, header_length = HEADER_V3.unpack_from(
            head, HEADER_V2.size
        )
    elif version == 2:
        if file.writable:
            raise file.unsupported("version 2 images can only be opened read-only")
        incompatible, autoclear, refcount_order = 0, 0, 4
        header_length = HEADER_V2.size
    else:
        raise file.unsupported(f"version {version} (only versions 2 and 3 are known)")
    if not MIN_CLUSTER_BITS <= cluster_bits <= MAX_CLUSTER_BITS:
        raise file.unsupported(f"cluster_bits {cluster_bits}")
    if crypt_method:
        raise file.unsupported("encryption")
    _check_features(file, incompatible)
    if refcount_order > 6:
        raise file.damaged(f"refcount_order {refcount_order}")
    if file.writable and refcount_order not in REFCOUNT_CHARS:
        raise file.unsupported(f"{1 << refcount_order}-bit refcounts for writing")
    cluster = 1 << cluster_bits
    if header_length < HEADER_V2.size or header_length % 8 or header_length > cluster:
        raise file.damaged(f"header_length {header_length}")
    if file_size < header_length:
        raise file.damaged(f"header truncated to {file_size} bytes")
    return Header(
        version=version,
        backing_offset=backing_offset,
        backing_length=backing_length,
        geometry=Geometry(cluster_bits),
        size=size,
        l1_size=l1_size,
        l1_offset=l1_offset,
        rt_offset=rt_offset,
        rt_clusters=rt_clusters,
        nb_snapshots=nb_snapshots,
        snapshots_offset=snapshots_offset,
        autoclear=autoclear,
        refcount_order=refcount_order,
        header_length=header_length,
    )


def _check_features(file: ImageFile, incompatible: int) -> None:
    known = (
        INCOMPAT_DIRTY
        | INCOMPAT_CORRUPT
        | INCOMPAT_DATA_FILE
        | INCOMPAT_COMPRESSION
        | INCOMPAT_EXTL2
    )
    if incompatible & ~known:
        raise file.unsupported(f"unknown incompatible features {incompatible & ~known:#x}")
    if incompatible & INCOMPAT_DATA_FILE:
        raise file.unsupported("external data file")
    if incompatible & INCOMPAT_COMPRESSION:
        raise file.unsupported("non-zlib compression type")
    if incompatible & INCOMPAT_EXTL2:
        raise file.unsupported("extended L2 entries")
    if file.writable and incompatible & INCOMPAT_CORRUPT:
        raise SnapshotError(f"{file.path}: marked corrupt; it can only be opened read-only")
    if file.writable and incompatible & INCOMPAT_DIRTY:
        raise SnapshotError(
            f"{file.path}: refcounts are dirty (run 'qemu-img check -r all' first); "
            "it can only be opened read-only"
        )


def read_backing_format(file: ImageFile, header: Header) -> str | None:
    """The backing format named by the header extensions, if any."""
    cluster = header.geometry.cluster_size
    backing_offset = header.backing_offset
    end = min(cluster, backing_offset) if backing_offset else cluster
    area = file.pread(header.header_length, max(0, end - header.header_length))
    pos = 0
    backing_format = None
    while pos + EXT_HEADER.size <= len(area):
        kind, length = EXT_HEADER.unpack_from(area, pos)
        if kind == EXT_END:
            break
        data = area[pos + 8 : pos + 8 + length]
        if len(data) != length:
            raise file.damaged(f"header extension {kind:#010x} overruns the header")
        if kind == EXT_BACKING_FORMAT:
            fmt = data.decode("ascii", "replace")
            if fmt not in ("raw", "qcow2"):
                raise file.unsupported(f"backing file format {fmt!r}")
            backing_format = fmt
        pos += 8 + ceil_div(length, 8) * 8
    return backing_format


def read_backing_name(file: ImageFile, header: Header, file_size: int) -> Path | None:
    """The backing file name stored in the header cluster, if any."""
    if not header.backing_offset:
        return None
    if header.backing_length > MAX_BACKING_NAME:
        raise file.damaged(f"backing file name of {header.backing_length} bytes")
    cluster = header.geometry.cluster_size
    end = header.backing_offset + header.backing_length
    if header.backing_offset > cluster or end > file_size:
        raise file.damaged("backing file name beyond the header cluster")
    return Path(os.fsdecode(file.pread(header.backing_offset, header.backing_length)))


def initial_layout(
    size: int, cluster_bits: int, backing_name: bytes, backing_format: str | None
) -> bytes:
    """The bytes of a new, empty image: header, refcount table and blocks, L1 table."""
    cluster = 1 << cluster_bits
    rb_entries = (cluster * 8) >> CREATE_REFCOUNT_ORDER
    l1_size = ceil_div(size, cluster << (cluster_bits - 3))
    l1_clusters = ceil_div(8 * l1_size, cluster)
    rt_clusters, rb_clusters = 1, 1
    while True:  # fixed point: the refcount structures count themselves
        total = 1 + rt_clusters + rb_clusters + l1_clusters
        need_rb = ceil_div(total, rb_entries)
        need_rt = ceil_div(8 * need_rb, cluster)
        if (need_rb, need_rt) == (rb_clusters, rt_clusters):
            break
        rb_clusters, rt_clusters = need_rb, need_rt
    rt_offset = cluster
    rb_offset = rt_offset + rt_clusters * cluster
    l1_offset = rb_offset + rb_clusters * cluster if l1_size else 0

    extensions = b""
    if backing_format is not None:
        fmt = backing_format.encode("ascii")
        extensions += EXT_HEADER.pack(EXT_BACKING_FORMAT, len(fmt))
        extensions += fmt.ljust(ceil_div(len(fmt), 8) * 8, b"\0")
    extensions += EXT_HEADER.pack(EXT_END, 0)
    backing_offset = HEADER_V3_LENGTH + len(extensions) if backing_name else 0
    if HEADER_V3_LENGTH + len(extensions) + len(backing_name) > cluster:
        raise SnapshotError("backing file name does not fit in the header cluster")
    header = HEADER_V2.pack(
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
    ) + HEADER_V3.pack(0, 0, 0, CREATE_REFCOUNT_ORDER, HEADER_V3_LENGTH)
    first = (header + extensions + backing_name).ljust(cluster, b"\0")

    table = [rb_offset + i * cluster for i in range(rb_clusters)]
    rt = struct.pack(f">{len(table)}Q", *table).ljust(rt_clusters * cluster, b"\0")
    rb = struct.pack(f">{total}H", *[1] * total).ljust(rb_clusters * cluster, b"\0")
    return first + rt + rb + bytes(l1_clusters * cluster)

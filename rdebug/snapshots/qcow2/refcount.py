"""Refcounts and cluster allocation (qcow2.txt "Host cluster management").

    host offset -> refcount
      refcount_table[cluster // block_entries]  -> refcount block (one cluster)
        -> block[cluster % block_entries]

Every cluster of the file has a refcount: how many references the image's metadata holds
to it (the rule is in the package docstring).  A cluster whose refcount is 0 is free and
is reused before the file grows.  Refcount blocks are allocated as the file grows, the
refcount table is moved to a larger one when it is full; both count themselves.
"""

from __future__ import annotations

import heapq
import struct
from collections.abc import Callable, Iterable
from itertools import compress

from rdebug.errors import SnapshotError
from rdebug.snapshots.qcow2.file import ImageFile, ceil_div
from rdebug.snapshots.qcow2.header import OFF_REFCOUNT_TABLE, REFCOUNT_CHARS, Geometry, Header

REFTABLE_MASK = 0xFFFF_FFFF_FFFF_FE00  # bits 9-63 of refcount table entries
MAX_REFTABLE_BYTES = 8 << 20


class Refcounts:
    """The refcount table and blocks of an image, cached, written through at once.

    `on_free` is told the host offset of every cluster whose refcount falls to 0 (the
    cluster map drops it from its L2 cache).
    """

    def __init__(
        self,
        file: ImageFile,
        geometry: Geometry,
        refcount_order: int,
        on_free: Callable[[int], None],
    ) -> None:
        self._file = file
        self._geometry = geometry
        self._order = refcount_order
        self._block_entries = (geometry.cluster_size * 8) >> refcount_order
        self._on_free = on_free
        self._table: list[int] = []
        self._table_offset = 0
        self._table_clusters = 0
        self._cache: dict[int, list[int]] = {}
        self._free: list[int] = []  # heap of cluster indices whose refcount fell to 0
        self._next_free = 0  # first cluster index past everything allocated

    def load(self, header: Header, file_size: int) -> None:
        """Read the refcount table; check that its blocks lie inside the file."""
        cluster = self._geometry.cluster_size
        rt_offset, rt_clusters = header.rt_offset, header.rt_clusters
        if rt_clusters == 0 or rt_clusters * cluster > MAX_REFTABLE_BYTES:
            raise self._file.damaged(f"refcount_table_clusters {rt_clusters}")
        self._file.check_table(
            "refcount table", rt_offset, rt_clusters * cluster, file_size, cluster
        )
        raw = self._file.pread(rt_offset, rt_clusters * cluster)
        # the entries past the last nonzero byte are 0: a new image's table has 8192 entries
        # and one block, a 64 GiB disk's 512
        used = ceil_div(len(raw.rstrip(b"\0")), 8)
        self._table = [e & REFTABLE_MASK for e in struct.unpack_from(f">{used}Q", raw)]
        for block in self._table:
            if block and (block % cluster or block + cluster > file_size):
                raise self._file.damaged(f"refcount block at {block:#x} beyond the end of the file")
        self._table += [0] * (len(raw) // 8 - used)
        self._table_offset = rt_offset
        self._table_clusters = rt_clusters

    # -- reading -------------------------------------------------------------------------

    def _block(self, block_index: int) -> list[int] | None:
        if block_index >= len(self._table) or not self._table[block_index]:
            return None
        block = self._cache.get(block_index)
        if block is None:
            self._read_block(block_index)
            block = self._cache[block_index]
        return block

    def _read_block(self, block_index: int) -> bytes:
        """Read an allocated refcount block into the cache; return it as stored."""
        cluster = self._geometry.cluster_size
        raw = self._file.pread(self._table[block_index], cluster)
        if len(raw) != cluster:
            raise self._file.damaged("refcount block beyond the end of the file")
        char = REFCOUNT_CHARS[self._order]
        self._cache[block_index] = list(struct.unpack(f">{self._block_entries}{char}", raw))
        return raw

    def refcount(self, host_offset: int) -> int:
        cluster_index = host_offset >> self._geometry.cluster_bits
        block = self._block(cluster_index // self._block_entries)
        return 0 if block is None else block[cluster_index % self._block_entries]

    def scan_free_clusters(self, file_size: int) -> None:
        """Find the end of the allocated area and the free clusters before it (on opening,
        the cache empty)."""
        width = struct.calcsize(REFCOUNT_CHARS[self._order])
        used_end = 0
        # the allocated blocks only, and each one's last nonzero refcount from its stored
        # bytes: a new image's table has 8192 entries, its one block 32768
        for block_index in compress(range(len(self._table)), self._table):
            used = len(self._read_block(block_index).rstrip(b"\0"))
            if used:
                used_end = block_index * self._block_entries + ceil_div(used, width)
        self._next_free = max(used_end, ceil_div(file_size, self._geometry.cluster_size))
        free: list[int] = []
        for block_index in range(ceil_div(self._next_free, self._block_entries)):
            block = self._block(block_index)
            base = block_index * self._block_entries
            limit = min(self._block_entries, self._next_free - base)
            if block is None:
                free += range(base, base + limit)
            else:
                free += [base + i for i in range(limit) if block[i] == 0]
        heapq.heapify(free)
        self._free = free

    # -- allocating and counting ---------------------------------------------------------

    def allocate_cluster(self) -> int:
        """One cluster with refcount 1, reusing a freed one when there is one."""
        bits = self._geometry.cluster_bits
        while self._free:
            cluster_index = heapq.heappop(self._free)
            if self.refcount(cluster_index << bits) == 0:
                self._store({cluster_index: 1})
                return cluster_index << bits
        first = self._next_free
        self._next_free += 1
        self._store({first: 1})
        return first << bits

    def allocate_contiguous(self, count: int) -> int:
        """``count`` adjacent clusters with refcount 1: a freed one or the end of the file."""
        if count == 1:
            return self.allocate_cluster()
        first = self._next_free
        self._next_free += count
        self._store(dict.fromkeys(range(first, first + count), 1))
        return first << self._geometry.cluster_bits

    def adjust(self, host_offsets: Iterable[int], delta: int) -> None:
        """Add ``delta`` once per listed offset; clusters reaching 0 become free."""
        bits = self._geometry.cluster_bits
        changes: dict[int, int] = {}
        for offset in host_offsets:
            cluster_index = offset >> bits
            changes[cluster_index] = changes.get(cluster_index, 0) + delta
        limit = (1 << (1 << self._order)) - 1
        values: dict[int, int] = {}
        for cluster_index, change in changes.items():
            value = self.refcount(cluster_index << bits) + change
            if value < 0:
                raise self._file.damaged(
                    f"refcount of cluster {cluster_index:#x} would drop below 0"
                )
            if value > limit:
                raise SnapshotError(
                    f"{self._file.path}: refcount of cluster {cluster_index:#x} would overflow"
                )
            values[cluster_index] = value
        self._store(values)

    def _store(self, values: dict[int, int]) -> None:
        by_block: dict[int, list[int]] = {}
        for cluster_index in sorted(values):
            by_block.setdefault(cluster_index // self._block_entries, []).append(cluster_index)
        char = REFCOUNT_CHARS[self._order]
        width = struct.calcsize(char)
        for block_index, clusters in by_block.items():
            self._ensure_block(block_index)
            block = self._block(block_index)
            assert block is not None
            base = block_index * self._block_entries
            for cluster_index in clusters:
                block[cluster_index - base] = values[cluster_index]
            block_offset = self._table[block_index]
            if len(clusters) > 16:
                self._file.pwrite(
                    block_offset, struct.pack(f">{self._block_entries}{char}", *block)
                )
            else:
                for cluster_index in clusters:
                    self._file.pwrite(
                        block_offset + width * (cluster_index - base),
                        struct.pack(f">{char}", values[cluster_index]),
                    )
            for cluster_index in clusters:
                if values[cluster_index] == 0:
                    self._on_free(cluster_index << self._geometry.cluster_bits)
                    heapq.heappush(self._free, cluster_index)

    def _ensure_block(self, block_index: int) -> None:
        if block_index >= len(self._table):
            self._grow_table(block_index + 1)
        if self._table[block_index]:
            return
        cluster_index = self._next_free
        self._next_free += 1
        offset = cluster_index << self._geometry.cluster_bits
        self._file.pwrite(offset, bytes(self._geometry.cluster_size))
        self._table[block_index] = offset
        self._cache[block_index] = [0] * self._block_entries
        self._file.pwrite(self._table_offset + 8 * block_index, struct.pack(">Q", offset))
        self._store({cluster_index: 1})  # the block may describe itself

    def _grow_table(self, min_entries: int) -> None:
        """Move the refcount table to a larger one at the end of the file."""
        cluster = self._geometry.cluster_size
        per_cluster = cluster // 8
        entries = max(min_entries, 2 * len(self._table))
        while True:
            clusters = ceil_div(entries, per_cluster)
            entries = clusters * per_cluster
            # the new table and the blocks describing it must fall inside what it covers
            frontier = self._next_free + 2 * clusters + 2
            if ceil_div(frontier, self._block_entries) <= entries:
                break
            entries *= 2
        if entries * 8 > MAX_REFTABLE_BYTES:
            raise SnapshotError(f"{self._file.path}: image too large for its refcount table")
        old = self._geometry.table_clusters(self._table_offset, self._table_clusters * cluster)
        first = self._next_free
        self._next_free += clusters
        self._table.extend([0] * (entries - len(self._table)))
        offset = first << self._geometry.cluster_bits
        self._file.pwrite(offset, struct.pack(f">{entries}Q", *self._table))
        self._file.pwrite(OFF_REFCOUNT_TABLE, struct.pack(">QI", offset, clusters))
        self._table_offset, self._table_clusters = offset, clusters
        self._store(dict.fromkeys(range(first, first + clusters), 1))
        self.adjust(old, -1)

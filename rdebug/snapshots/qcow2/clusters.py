"""Cluster mapping: guest offsets to host clusters through L1 and L2 tables, and copy on
write (qcow2.txt "Cluster mapping").

    guest offset -> host offset
      L1[off >> (cluster_bits + l2_bits)]
        -> L2 table (one cluster)
        -> L2[(off >> cluster_bits) % l2_entries]
        -> data cluster

The active L1 table is the virtual disk; a snapshot's L1 table is a frozen copy of it
followed by the entries that map its VM state.  Bit 63 ("COPIED") of an entry of the
active L1 table and of the L2 tables it reaches is set exactly when the refcount of what
it points at is 1; only such clusters are written in place, anything else is copied.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from rdebug.snapshots.qcow2.file import ImageFile, ceil_div
from rdebug.snapshots.qcow2.header import MAX_L1_BYTES, OFF_L1, Geometry, Header
from rdebug.snapshots.qcow2.refcount import Refcounts

OFFSET_MASK = 0x00FF_FFFF_FFFF_FE00  # bits 9-55 of L1 and L2 entries
COPIED = 1 << 63
COMPRESSED = 1 << 62
ZERO = 1 << 0  # standard cluster descriptor: reads as zeros (version 3)
NOT_COPIED = ~COPIED & 0xFFFF_FFFF_FFFF_FFFF
L2_CACHE_TABLES = 1024


class ClusterMap:
    """The active L1 table and the L2 tables (cached), read and written through at once.

    `read_backing(offset, length)` gives the backing file's bytes for clusters the image
    does not hold (copy on write of a partial cluster needs them).
    """

    def __init__(
        self,
        file: ImageFile,
        geometry: Geometry,
        refcounts: Refcounts,
        read_backing: Callable[[int, int], bytes],
    ) -> None:
        self._file = file
        self._geometry = geometry
        self._refcounts = refcounts
        self._read_backing = read_backing
        self._zero_cluster = bytes(geometry.cluster_size)
        self._l2_cache: dict[int, list[int]] = {}
        self.l1: list[int] = []  # the active L1 table
        self._l1_offset = 0
        self._l1_clusters = 0

    def load(self, header: Header, file_size: int) -> None:
        """Read the active L1 table; check it can map the whole disk."""
        l1_size, l1_offset = header.l1_size, header.l1_offset
        if l1_size * 8 > MAX_L1_BYTES:
            raise self._file.damaged(f"l1_size {l1_size}")
        if l1_size < self._geometry.l1_entries_for(header.size):
            raise self._file.damaged(f"l1_size {l1_size} too small for a {header.size}-byte disk")
        cluster = self._geometry.cluster_size
        self._file.check_table("L1 table", l1_offset, l1_size * 8, file_size, cluster)
        self._l1_offset = l1_offset
        self._l1_clusters = ceil_div(l1_size * 8, cluster)
        self.l1 = self.read_l1_table(l1_offset, l1_size)

    def forget(self, host_offset: int) -> None:
        """A cluster was freed: if it held an L2 table, drop that from the cache."""
        self._l2_cache.pop(host_offset, None)

    # -- reading -------------------------------------------------------------------------

    def read_l1_table(self, offset: int, count: int) -> list[int]:
        if count == 0:
            return []
        raw = self._file.pread(offset, 8 * count)
        if len(raw) != 8 * count:
            raise self._file.damaged(f"L1 table at {offset:#x} lies beyond the end of the file")
        table = list(struct.unpack(f">{count}Q", raw))
        for entry in table:
            if (entry & OFFSET_MASK) % self._geometry.cluster_size:
                raise self._file.damaged(f"L1 entry {entry:#x} is not cluster-aligned")
        return table

    def _l2_table(self, offset: int) -> list[int]:
        table = self._l2_cache.get(offset)
        if table is not None:
            return table
        cluster = self._geometry.cluster_size
        if offset % cluster:
            raise self._file.damaged(f"L2 table offset {offset:#x} is not cluster-aligned")
        raw = self._file.pread(offset, cluster)
        if len(raw) != cluster:
            raise self._file.damaged(f"L2 table at {offset:#x} lies beyond the end of the file")
        table = list(struct.unpack(f">{self._geometry.l2_entries}Q", raw))
        if len(self._l2_cache) >= L2_CACHE_TABLES:
            del self._l2_cache[next(iter(self._l2_cache))]
        self._l2_cache[offset] = table
        return table

    def _l2_entry(self, l1: list[int], cluster_index: int) -> int:
        l1_index = cluster_index >> self._geometry.l2_bits
        if l1_index >= len(l1):
            return 0
        l2_offset = l1[l1_index] & OFFSET_MASK
        if not l2_offset:
            return 0
        entry = self._l2_table(l2_offset)[cluster_index & (self._geometry.l2_entries - 1)]
        if entry & COMPRESSED:
            raise self._file.unsupported("compressed clusters")
        if (entry & OFFSET_MASK) % self._geometry.cluster_size:
            raise self._file.damaged(f"L2 entry {entry:#x} is not cluster-aligned")
        return entry

    def read(self, l1: list[int], offset: int, length: int, from_backing: bool) -> bytes:
        """Guest bytes as the L1 table `l1` maps them; unmapped ones from the backing file
        (if `from_backing`) or zeros."""
        cluster = self._geometry.cluster_size
        pieces: list[bytes] = []
        pos, end = offset, offset + length
        while pos < end:
            in_cluster = pos & (cluster - 1)
            n = min(cluster - in_cluster, end - pos)
            entry = self._l2_entry(l1, pos >> self._geometry.cluster_bits)
            host = entry & OFFSET_MASK
            if entry & ZERO:
                pieces.append(self._zero_cluster[:n])
            elif host:
                data = self._file.pread(host + in_cluster, n)
                pieces.append(data if len(data) == n else data.ljust(n, b"\0"))
            elif from_backing:
                pieces.append(self._read_backing(pos, n))
            else:
                pieces.append(self._zero_cluster[:n])
            pos += n
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def reachable(self, l1: list[int]) -> list[int]:
        """Every L2 table and data cluster an L1 table references (one entry per reference)."""
        found: list[int] = []
        for l1_entry in l1:
            l2_offset = l1_entry & OFFSET_MASK
            if not l2_offset:
                continue
            found.append(l2_offset)
            table = self._l2_table(l2_offset)
            if any(entry & COMPRESSED for entry in table):
                raise self._file.unsupported("compressed clusters")
            found += [host for entry in table if (host := entry & OFFSET_MASK)]
        return found

    # -- writing the active disk ---------------------------------------------------------

    def write(self, offset: int, data: bytes) -> None:
        """Write guest bytes, allocating (and copying on write) clusters as needed."""
        cluster = self._geometry.cluster_size
        view = memoryview(data)
        pos, end, done = offset, offset + len(data), 0
        while pos < end:
            in_cluster = pos & (cluster - 1)
            n = min(cluster - in_cluster, end - pos)
            cluster_index = pos >> self._geometry.cluster_bits
            self._write_in_cluster(cluster_index, in_cluster, view[done : done + n])
            pos += n
            done += n

    def _write_in_cluster(self, cluster_index: int, in_cluster: int, piece: memoryview) -> None:
        geometry, refcounts = self._geometry, self._refcounts
        l2_offset = self._l2_for_write(cluster_index >> geometry.l2_bits)
        l2_index = cluster_index & (geometry.l2_entries - 1)
        entry = self._l2_table(l2_offset)[l2_index]
        if entry & COMPRESSED:
            raise self._file.unsupported("compressed clusters")
        host = entry & OFFSET_MASK
        if host and not entry & ZERO:
            if not entry & COPIED and refcounts.refcount(host) == 1:
                entry = host | COPIED
                self._set_l2_entry(l2_offset, l2_index, entry)
            if entry & COPIED:
                self._file.pwrite(host + in_cluster, piece)
                return
        cluster = geometry.cluster_size
        if len(piece) == cluster:
            content: bytes | bytearray | memoryview = piece
        else:
            # copy on write: the cluster as the guest sees it now, patched
            start = cluster_index << geometry.cluster_bits
            if entry & ZERO:
                content = bytearray(cluster)
            elif host:
                content = bytearray(self._file.pread(host, cluster))
                content.extend(bytes(cluster - len(content)))
            else:
                content = bytearray(self._read_backing(start, cluster))
            content[in_cluster : in_cluster + len(piece)] = piece
        new = refcounts.allocate_cluster()
        self._file.pwrite(new, content)
        self._set_l2_entry(l2_offset, l2_index, new | COPIED)
        if host:
            refcounts.adjust([host], -1)

    def _l2_for_write(self, l1_index: int) -> int:
        """The offset of an L2 table the active disk owns alone, for ``l1_index``."""
        entry = self.l1[l1_index]
        old = entry & OFFSET_MASK
        if old:
            if not entry & COPIED and self._refcounts.refcount(old) == 1:
                entry = old | COPIED
                self._set_l1_entry(l1_index, entry)
            if entry & COPIED:
                return old
            # shared with a snapshot: every cluster it reaches is reached twice or more
            table = [e & NOT_COPIED for e in self._l2_table(old)]
        else:
            table = [0] * self._geometry.l2_entries
        new = self._refcounts.allocate_cluster()
        self._file.pwrite(new, struct.pack(f">{self._geometry.l2_entries}Q", *table))
        self._l2_cache[new] = table
        self._set_l1_entry(l1_index, new | COPIED)
        if old:
            self._refcounts.adjust([old], -1)
        return new

    def _set_l1_entry(self, index: int, entry: int) -> None:
        self.l1[index] = entry
        self._file.pwrite(self._l1_offset + 8 * index, struct.pack(">Q", entry))

    def _set_l2_entry(self, l2_offset: int, index: int, entry: int) -> None:
        self._l2_table(l2_offset)[index] = entry
        self._file.pwrite(l2_offset + 8 * index, struct.pack(">Q", entry))

    def write_active_l1(self, entries: list[int]) -> None:
        """Replace the active L1 table, in place when it fits."""
        cluster = self._geometry.cluster_size
        raw = struct.pack(f">{len(entries)}Q", *entries)
        if self._l1_offset and ceil_div(len(raw), cluster) <= self._l1_clusters:
            self._file.pwrite(self._l1_offset, raw)
            if len(entries) != len(self.l1):
                self._file.pwrite(OFF_L1, struct.pack(">I", len(entries)))
            self.l1 = list(entries)
            return
        old_offset, old_clusters = self._l1_offset, self._l1_clusters
        offset = self.write_new_table(entries)
        self._file.pwrite(OFF_L1, struct.pack(">IQ", len(entries), offset))
        self.l1, self._l1_offset = list(entries), offset
        self._l1_clusters = ceil_div(len(raw), cluster)
        if old_offset:
            first = old_offset // cluster
            self._refcounts.adjust([c * cluster for c in range(first, first + old_clusters)], -1)

    def fix_copied_flags(self) -> None:
        """Set bit 63 in the active L1 table and its L2 tables exactly where refcount is 1."""
        for index, l1_entry in enumerate(self.l1):
            l2_offset = l1_entry & OFFSET_MASK
            if not l2_offset:
                continue
            wanted = l2_offset | (COPIED if self._refcounts.refcount(l2_offset) == 1 else 0)
            if wanted != l1_entry:
                self._set_l1_entry(index, wanted)
            table = self._l2_table(l2_offset)
            fixed = [e if e == 0 else self._with_copied_flag(e) for e in table]
            if fixed != table:
                entries = self._geometry.l2_entries
                self._file.pwrite(l2_offset, struct.pack(f">{entries}Q", *fixed))
                table[:] = fixed

    def _with_copied_flag(self, entry: int) -> int:
        host = entry & OFFSET_MASK
        entry &= NOT_COPIED
        if host and self._refcounts.refcount(host) == 1:
            entry |= COPIED
        return entry

    # -- new tables ----------------------------------------------------------------------

    def write_new_table(self, entries: list[int]) -> int:
        """Write a table of u64 entries to freshly allocated clusters; 0 when empty."""
        if not entries:
            return 0
        cluster = self._geometry.cluster_size
        raw = struct.pack(f">{len(entries)}Q", *entries)
        clusters = ceil_div(len(raw), cluster)
        offset = self._refcounts.allocate_contiguous(clusters)
        self._file.pwrite(offset, raw.ljust(clusters * cluster, b"\0"))
        return offset

    def store_vmstate(self, vmstate: bytes) -> list[int]:
        """Write a VM state into new clusters; return the L1 entries describing it."""
        cluster = self._geometry.cluster_size
        coverage = self._geometry.l1_coverage
        l2_entries = self._geometry.l2_entries
        data = bytes(vmstate)
        entries: list[int] = []
        for start in range(0, len(data), coverage):
            table = [0] * l2_entries
            for index, pos in enumerate(range(start, min(start + coverage, len(data)), cluster)):
                piece = data[pos : pos + cluster]
                if piece == self._zero_cluster[: len(piece)]:
                    continue  # left unallocated: reads as zeros
                table[index] = host = self._refcounts.allocate_cluster()
                self._file.pwrite(host, piece.ljust(cluster, b"\0"))
            if any(table):
                l2_offset = self._refcounts.allocate_cluster()
                self._file.pwrite(l2_offset, struct.pack(f">{l2_entries}Q", *table))
                entries.append(l2_offset)
            else:
                entries.append(0)
        return entries

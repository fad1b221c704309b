"""qcow2 images: read-through, copy on write, internal snapshots, damage checks.

Every image a test writes is also verified by `assert_consistent`, an independent
re-count of every reference (what `qemu-img check` does), so refcount and COPIED-flag
bugs fail here without QEMU installed.
"""

from __future__ import annotations

import os
import random
import struct
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rdebug.errors import SnapshotError
from rdebug.snapshots.qcow2 import Qcow2Image, SnapshotInfo

MASK = 0x00FF_FFFF_FFFF_FE00
COPIED = 1 << 63


def assert_consistent(path: Path) -> None:
    """Recount every reference in the file and compare with its refcounts and COPIED bits."""
    data = path.read_bytes()
    (_, version, _, _, bits, _, _, l1_size, l1_offset, rt_offset, rt_clusters, count, sn_offset) = (
        struct.unpack_from(">4sIQIIQIIQQIIQ", data)
    )
    assert version == 3
    assert struct.unpack_from(">I", data, 96)[0] == 4  # 16-bit refcounts
    cluster = 1 << bits
    expected: Counter[int] = Counter()

    def cover(offset: int, length: int) -> None:
        for c in range(offset // cluster, -(-(offset + length) // cluster)):
            expected[c] += 1

    def walk(offset: int, size: int) -> list[int]:
        cover(offset, 8 * size)
        l1 = list(struct.unpack_from(f">{size}Q", data, offset))
        for entry in l1:
            if entry & MASK:
                expected[(entry & MASK) // cluster] += 1
                for e in struct.unpack_from(f">{cluster // 8}Q", data, entry & MASK):
                    if e & MASK:
                        expected[(e & MASK) // cluster] += 1
        return l1

    cover(0, cluster)
    cover(rt_offset, rt_clusters * cluster)
    rt = struct.unpack_from(f">{rt_clusters * cluster // 8}Q", data, rt_offset)
    for block in rt:
        if block:
            cover(block, cluster)
    active = walk(l1_offset, l1_size)
    pos = sn_offset
    for _ in range(count):
        sl1_offset, sl1_size, id_len, name_len = struct.unpack_from(">QIHH", data, pos)
        (extra_len,) = struct.unpack_from(">I", data, pos + 36)
        assert extra_len >= 24
        walk(sl1_offset, sl1_size)
        pos += -(-(40 + extra_len + id_len + name_len) // 8) * 8
    cover(sn_offset, pos - sn_offset)

    entries = cluster * 8 // 16
    stored: dict[int, int] = {}
    for index, block in enumerate(rt):
        if block:
            for i, value in enumerate(struct.unpack_from(f">{entries}H", data, block)):
                if value:
                    stored[index * entries + i] = value
    assert stored == dict(expected)
    for entry in active:
        if entry & MASK:
            assert bool(entry & COPIED) == (stored[(entry & MASK) // cluster] == 1)
            for e in struct.unpack_from(f">{cluster // 8}Q", data, entry & MASK):
                if e & MASK:
                    assert bool(e & COPIED) == (stored[(e & MASK) // cluster] == 1)
                else:
                    assert not e & COPIED


def pattern(length: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(length)


@pytest.fixture
def raw_base(tmp_path: Path) -> Path:
    path = tmp_path / "base.raw"
    path.write_bytes(pattern(300_000, 1))  # not a multiple of 512
    return path


@pytest.fixture
def image(tmp_path: Path) -> Iterator[Qcow2Image]:
    with Qcow2Image.create(tmp_path / "disk.qcow2", size=1 << 20) as img:
        yield img


# --------------------------------------------------------------------------- create, read


def test_new_image_reads_zeros(image: Qcow2Image) -> None:
    assert image.size == 1 << 20
    assert image.backing is None
    assert image.cluster_size == 65536
    assert image.read(0, 1 << 20) == bytes(1 << 20)
    assert image.snapshots() == []
    image.close()
    assert_consistent(image.path)


def test_create_refuses_an_existing_path(tmp_path: Path) -> None:
    (tmp_path / "x.qcow2").write_bytes(b"keep me")
    with pytest.raises(SnapshotError, match="already exists"):
        Qcow2Image.create(tmp_path / "x.qcow2", size=4096)
    assert (tmp_path / "x.qcow2").read_bytes() == b"keep me"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "a size is needed"),
        ({"size": 1000}, "multiple of 512"),
        ({"size": 4096, "cluster_bits": 8}, "cluster_bits"),
        ({"size": 4096, "backing_format": "raw"}, "without a backing file"),
    ],
)
def test_create_rejects_bad_arguments(
    tmp_path: Path, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(SnapshotError, match=message):
        Qcow2Image.create(tmp_path / "x.qcow2", **kwargs)  # type: ignore[arg-type]
    assert not (tmp_path / "x.qcow2").exists()


def test_raw_backing_reads_through(tmp_path: Path, raw_base: Path) -> None:
    with Qcow2Image.create(tmp_path / "top.qcow2", backing=raw_base, backing_format="raw") as top:
        assert top.size == 300_032  # rounded up to 512, as qemu-img does
        assert top.backing == raw_base
        assert top.backing_format == "raw"
        assert top.read(0, 300_000) == raw_base.read_bytes()
        assert top.read(300_000, 32) == bytes(32)  # past the backing file: zeros
    assert_consistent(tmp_path / "top.qcow2")


def test_backing_larger_disk_reads_zeros_past_backing(tmp_path: Path, raw_base: Path) -> None:
    path = tmp_path / "top.qcow2"
    with Qcow2Image.create(path, size=1 << 20, backing=raw_base, backing_format="raw") as top:
        top.write(299_990, b"A" * 20)  # copy-on-write of a cluster the backing ends inside
        expected = bytearray(raw_base.read_bytes().ljust(1 << 20, b"\0"))
        expected[299_990:300_010] = b"A" * 20
        assert top.read(0, 1 << 20) == expected


def test_relative_backing_is_relative_to_the_image(tmp_path: Path, raw_base: Path) -> None:
    with Qcow2Image.create(tmp_path / "top.qcow2", backing=Path("base.raw"), backing_format="raw"):
        pass
    with Qcow2Image.open(tmp_path / "top.qcow2") as top:
        assert top.backing == Path("base.raw")
        assert top.read(0, 1000) == raw_base.read_bytes()[:1000]


def test_qcow2_backing_chain_reads_recursively(tmp_path: Path, raw_base: Path) -> None:
    mid_path = tmp_path / "mid.qcow2"
    with Qcow2Image.create(mid_path, backing=raw_base, backing_format="raw", cluster_bits=12) as m:
        m.write(5000, b"mid" * 1000)
    mid_bytes = mid_path.read_bytes()
    top_path = tmp_path / "top.qcow2"
    with Qcow2Image.create(top_path, backing=mid_path, backing_format="qcow2") as top:
        top.write(6000, b"top" * 10)
        expected = bytearray(raw_base.read_bytes().ljust(top.size, b"\0"))
        expected[5000:8000] = b"mid" * 1000
        expected[6000:6030] = b"top" * 10
        assert top.read(0, top.size) == expected
        assert top.backing_format == "qcow2"
    assert mid_path.read_bytes() == mid_bytes  # backing files are never written
    assert_consistent(top_path)


def test_missing_backing_file_is_named(tmp_path: Path, raw_base: Path) -> None:
    with pytest.raises(
        SnapshotError, match=r"backing file .*nowhere.raw of .*top.qcow2 is missing"
    ):
        Qcow2Image.create(
            tmp_path / "top.qcow2", backing=tmp_path / "nowhere.raw", backing_format="raw"
        )
    with Qcow2Image.create(tmp_path / "top.qcow2", backing=raw_base, backing_format="raw"):
        pass
    raw_base.unlink()
    with pytest.raises(SnapshotError, match=r"backing file .*base.raw of .*top.qcow2 is missing"):
        Qcow2Image.open(tmp_path / "top.qcow2")


# --------------------------------------------------------------------------- writes


@pytest.mark.parametrize("cluster_bits", [9, 12, 16])
@pytest.mark.parametrize(
    ("offset", "length"),
    [
        (0, 512),  # one sector at the start
        (0, 65536),  # a whole 64 KiB cluster
        (4096, 4096),  # aligned, inside a cluster
        (1, 3),  # unaligned, tiny
        (65530, 20),  # straddles a 64 KiB cluster boundary
        (1000, 200_000),  # many clusters, unaligned both ends
        (30_000, 40_000),  # crosses the 32 KiB L2 coverage of 512-byte clusters
        ((1 << 20) - 7, 7),  # the last bytes of the disk
    ],
)
def test_writes_read_back_and_persist(
    tmp_path: Path, raw_base: Path, cluster_bits: int, offset: int, length: int
) -> None:
    path = tmp_path / "disk.qcow2"
    data = pattern(length, offset)
    with Qcow2Image.create(
        path, size=1 << 20, backing=raw_base, backing_format="raw", cluster_bits=cluster_bits
    ) as img:
        expected = bytearray(raw_base.read_bytes().ljust(1 << 20, b"\0"))
        img.write(offset, data)
        expected[offset : offset + length] = data
        assert img.read(0, 1 << 20) == expected
        img.write(offset, data[::-1])  # now in place: the clusters are ours
        expected[offset : offset + length] = data[::-1]
        assert img.read(0, 1 << 20) == expected
    with Qcow2Image.open(path) as img:
        assert img.read(0, 1 << 20) == expected
    assert_consistent(path)


def test_out_of_range_access_is_refused(image: Qcow2Image) -> None:
    with pytest.raises(SnapshotError, match="outside the 1048576-byte disk"):
        image.read((1 << 20) - 1, 2)
    with pytest.raises(SnapshotError, match="outside"):
        image.write(1 << 20, b"x")
    with pytest.raises(SnapshotError, match="outside"):
        image.read(-1, 1)
    assert image.read(1 << 20, 0) == b""


def test_read_only_image_refuses_changes(tmp_path: Path, image: Qcow2Image) -> None:
    image.create_snapshot("s", b"")
    image.close()
    with Qcow2Image.open(image.path) as ro:
        for change in (
            lambda: ro.write(0, b"x"),
            lambda: ro.create_snapshot("t", b""),
            lambda: ro.revert_to_snapshot("s"),
            lambda: ro.delete_snapshot("s"),
        ):
            with pytest.raises(SnapshotError, match="read-only"):
                change()


def test_closed_image_refuses_access(image: Qcow2Image) -> None:
    image.close()
    image.close()  # harmless
    with pytest.raises(SnapshotError, match="closed"):
        image.read(0, 1)


def test_refcount_table_grows(tmp_path: Path) -> None:
    # 512-byte clusters: one refcount table cluster covers 64 blocks x 256 clusters = 8 MiB
    path = tmp_path / "small.qcow2"
    size = 10 << 20
    data = pattern(9 << 20, 5)
    with Qcow2Image.create(path, size=size, cluster_bits=9) as img:
        img.write(0, data)
        img.create_snapshot("s", pattern(300_000, 6))
        img.write(0, data[::-1][: 1 << 20])
    assert_consistent(path)
    with Qcow2Image.open(path) as img:
        assert img.read(0, 1 << 20) == data[::-1][: 1 << 20]
        assert img.read(1 << 20, 8 << 20) == data[1 << 20 :]
        assert img.read_vmstate("s") == pattern(300_000, 6)


def test_freed_clusters_are_reused(image: Qcow2Image) -> None:
    image.write(0, pattern(1 << 20, 2))
    image.create_snapshot("s", pattern(200_000, 3))
    image.write(0, pattern(1 << 20, 4))  # copies every cluster
    image.delete_snapshot("s")  # frees the old copies
    size = os.path.getsize(image.path)
    image.create_snapshot("t", b"")
    image.write(0, pattern(1 << 20, 7))
    assert os.path.getsize(image.path) == size
    image.close()
    assert_consistent(image.path)


def test_reopened_image_reuses_its_free_clusters(tmp_path: Path) -> None:
    # 512-byte clusters: 256 per refcount block, so the holes span several blocks
    path = tmp_path / "small.qcow2"
    with Qcow2Image.create(path, size=1 << 20, cluster_bits=9) as img:
        img.write(0, pattern(300_000, 2))
        img.create_snapshot("s", pattern(100_000, 3))
        img.write(0, pattern(300_000, 4))  # copies every cluster
        img.delete_snapshot("s")  # frees the old copies, the end of the file still used
    size = os.path.getsize(path)
    with Qcow2Image.open(path, writable=True) as img:
        img.create_snapshot("t", pattern(250_000, 5))
    assert os.path.getsize(path) == size
    assert_consistent(path)


def test_counted_clusters_past_the_end_of_the_file_stay_taken(tmp_path: Path) -> None:
    path = tmp_path / "disk.qcow2"
    with Qcow2Image.create(path, size=1 << 20, cluster_bits=9) as img:
        img.write(0, pattern(512, 1))  # an L2 table, then the data cluster: the file's last
    os.truncate(path, os.path.getsize(path) - 512)  # counted, no longer in the file
    with Qcow2Image.open(path, writable=True) as img:
        assert img.read(0, 512) == bytes(512)
        img.write(512, pattern(512, 2))
    assert_consistent(path)


# --------------------------------------------------------------------------- snapshots


def test_snapshot_create_read_revert_delete(tmp_path: Path, raw_base: Path) -> None:
    path = tmp_path / "disk.qcow2"
    with Qcow2Image.create(path, backing=raw_base, backing_format="raw", cluster_bits=12) as img:
        v1, v2 = pattern(100_000, 10), pattern(1 << 20, 11)
        img.write(100, b"one" * 100)
        disk1 = img.read(0, img.size)
        s1 = img.create_snapshot("one", v1, icount=1234, vm_clock_nsec=5_000_000_001, date_ns=7)
        assert s1 == SnapshotInfo("1", "one", 100_000, 0, 7, 5_000_000_001, 1234, img.size)
        assert_consistent(path)
        img.write(50, b"two" * 30_000)
        disk2 = img.read(0, img.size)
        s2 = img.create_snapshot("two", v2)
        assert (s2.id, s2.icount) == ("2", None)
        img.write(0, b"three" * 100)
        assert_consistent(path)

        assert img.read_vmstate("one") == v1
        assert img.read_vmstate("2") == v2
        assert img.read(0, 500) == b"three" * 100  # read_vmstate leaves the disk alone

        assert img.revert_to_snapshot("one") == v1
        assert img.read(0, img.size) == disk1
        assert_consistent(path)
        img.write(100, b"again")  # copies on write: the snapshot keeps its data
        assert img.revert_to_snapshot("two") == v2
        assert img.read(0, img.size) == disk2
        assert img.revert_to_snapshot("one") == v1
        assert img.read(0, img.size) == disk1
        assert_consistent(path)

        img.delete_snapshot("one")
        assert [s.name for s in img.snapshots()] == ["two"]
        assert img.read(0, img.size) == disk1  # deleting keeps the active disk
        assert_consistent(path)
    with Qcow2Image.open(path) as img:
        assert img.snapshots() == [s2]
        assert img.read_vmstate("two") == v2
        assert img.read(0, img.size) == disk1


def test_snapshot_ids_are_decimal_and_increasing(image: Qcow2Image) -> None:
    ids = [image.create_snapshot(name, b"").id for name in "abc"]
    assert ids == ["1", "2", "3"]
    image.delete_snapshot("2")
    image.delete_snapshot("c")
    assert image.create_snapshot("d", b"").id == "2"  # max + 1, as QEMU does


def test_snapshot_errors(image: Qcow2Image) -> None:
    image.create_snapshot("a", b"x")
    with pytest.raises(SnapshotError, match="already exists"):
        image.create_snapshot("a", b"y")
    with pytest.raises(SnapshotError, match="non-empty name"):
        image.create_snapshot("", b"y")
    with pytest.raises(SnapshotError, match="icount"):
        image.create_snapshot("b", b"y", icount=-5)
    for action in (image.read_vmstate, image.revert_to_snapshot, image.delete_snapshot):
        with pytest.raises(SnapshotError, match=r"disk.qcow2: no snapshot .* 'nope'"):
            action("nope")
    assert [s.name for s in image.snapshots()] == ["a"]


def test_icount_none_and_zero_are_distinct(image: Qcow2Image) -> None:
    image.create_snapshot("none", b"")
    image.create_snapshot("zero", b"", icount=0)
    image.close()
    with Qcow2Image.open(image.path) as img:
        assert [s.icount for s in img.snapshots()] == [None, 0]


def test_zero_vmstate_clusters_take_no_space(image: Qcow2Image) -> None:
    before = os.path.getsize(image.path)
    image.create_snapshot("z", bytes(4 << 20))
    assert os.path.getsize(image.path) - before <= 2 * 65536  # L1 + snapshot table
    assert image.read_vmstate("z") == bytes(4 << 20)


def test_zero_sized_disk_keeps_vmstates(tmp_path: Path) -> None:
    path = tmp_path / "states.qcow2"
    with Qcow2Image.create(path, size=0) as img:
        img.create_snapshot("a", pattern(150_000, 1), icount=10)
        img.create_snapshot("b", pattern(70_000, 2), icount=20)
        assert img.revert_to_snapshot("a") == pattern(150_000, 1)
        img.delete_snapshot("a")
    assert_consistent(path)
    with Qcow2Image.open(path) as img:
        assert img.read_vmstate("b") == pattern(70_000, 2)
        assert [(s.name, s.icount) for s in img.snapshots()] == [("b", 20)]


# --------------------------------------------------------------------------- damage


def _image_bytes(tmp_path: Path, snapshot: bool = False) -> bytearray:
    path = tmp_path / "good.qcow2"
    with Qcow2Image.create(path, size=1 << 20) as img:
        img.write(0, b"data")
        if snapshot:
            img.create_snapshot("s", b"vm")
    data = bytearray(path.read_bytes())
    path.unlink()
    return data


def _put(data: bytearray, offset: int, fmt: str, value: int) -> bytearray:
    struct.pack_into(fmt, data, offset, value)
    return data


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: d[:0], "bad magic"),
        (lambda d: d[:50], "header truncated"),
        (lambda d: d[:100], "header truncated"),
        (lambda d: b"QFI\xfa" + d[4:], "bad magic"),
        (lambda d: _put(d, 4, ">I", 4), "version 4"),
        (lambda d: _put(d, 20, ">I", 30), "cluster_bits 30"),
        (lambda d: _put(d, 32, ">I", 1), "encryption"),
        (lambda d: _put(d, 72, ">Q", 1 << 9), "unknown incompatible features 0x200"),
        (lambda d: _put(d, 72, ">Q", 1 << 2), "external data file"),
        (lambda d: _put(d, 72, ">Q", 1 << 4), "extended L2"),
        (lambda d: _put(d, 40, ">Q", 1 << 40), "L1 table at .* beyond the end"),
        (lambda d: _put(d, 40, ">Q", 100), "not cluster-aligned"),
        (lambda d: _put(d, 36, ">I", 0), "l1_size 0 too small"),
        (lambda d: _put(d, 48, ">Q", 1 << 40), "refcount table at .* beyond the end"),
        (lambda d: _put(d, 56, ">I", 0), "refcount_table_clusters 0"),
        (lambda d: _put(d, 64, ">Q", 1 << 40), "snapshot table at .* beyond the end"),
        (lambda d: _put(d, 60, ">I", 60000), "snapshot table runs past the end"),
        (lambda d: _put(d, 100, ">I", 13), "header_length 13"),
        (lambda d: _put(d, 65536, ">Q", 1 << 40), "refcount block at .* beyond the end"),
    ],
)
def test_damaged_images_are_refused(
    tmp_path: Path, damage: Callable[[bytearray], bytes | bytearray], message: str
) -> None:
    path = tmp_path / "bad.qcow2"
    path.write_bytes(bytes(damage(_image_bytes(tmp_path, snapshot=True))))
    with pytest.raises(SnapshotError, match=f"bad.qcow2: .*{message}"):
        Qcow2Image.open(path)


def test_damaged_snapshot_l1_is_refused(tmp_path: Path) -> None:
    data = _image_bytes(tmp_path, snapshot=True)
    (snapshots_offset,) = struct.unpack_from(">Q", data, 64)
    path = tmp_path / "bad.qcow2"
    path.write_bytes(bytes(_put(data, snapshots_offset, ">Q", 1 << 40)))
    with pytest.raises(SnapshotError, match=r"snapshot '1' L1 table at .* beyond the end"):
        Qcow2Image.open(path)


def test_damaged_l2_table_is_refused_when_read(tmp_path: Path) -> None:
    data = _image_bytes(tmp_path)
    (l1_offset,) = struct.unpack_from(">Q", data, 40)
    path = tmp_path / "bad.qcow2"
    path.write_bytes(bytes(_put(data, l1_offset, ">Q", COPIED | 1 << 40)))
    with Qcow2Image.open(path) as img, pytest.raises(SnapshotError, match="L2 table at"):
        img.read(0, 4)


def test_compressed_clusters_are_refused(tmp_path: Path) -> None:
    data = _image_bytes(tmp_path)
    (l1_offset,) = struct.unpack_from(">Q", data, 40)
    (l2_offset,) = struct.unpack_from(">Q", data, l1_offset)
    l2_offset &= MASK
    (entry,) = struct.unpack_from(">Q", data, l2_offset)
    path = tmp_path / "bad.qcow2"
    path.write_bytes(bytes(_put(data, l2_offset, ">Q", (entry & MASK) | 1 << 62)))
    with Qcow2Image.open(path) as img, pytest.raises(SnapshotError, match="compressed"):
        img.read(0, 4)


def test_dirty_image_opens_read_only_only(tmp_path: Path) -> None:
    path = tmp_path / "dirty.qcow2"
    path.write_bytes(bytes(_put(_image_bytes(tmp_path), 72, ">Q", 1)))
    with Qcow2Image.open(path) as img:
        assert img.read(0, 4) == b"data"
    with pytest.raises(SnapshotError, match="dirty"):
        Qcow2Image.open(path, writable=True)


def test_autoclear_bits_are_cleared_by_a_writer(tmp_path: Path) -> None:
    path = tmp_path / "bitmaps.qcow2"
    path.write_bytes(bytes(_put(_image_bytes(tmp_path), 88, ">Q", 1)))
    with Qcow2Image.open(path, writable=True):
        pass
    assert struct.unpack_from(">Q", path.read_bytes(), 88) == (0,)


# --------------------------------------------------------------------------- model check

SIZE = 40 * 1024  # 512-byte clusters: two L2 tables, the second half used

ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("write"),
            st.integers(0, SIZE - 1),
            st.integers(1, 3000),
            st.integers(0, 255),
        ),
        st.tuples(st.just("snapshot"), st.integers(0, 5000)),
        st.tuples(st.just("revert"), st.integers(0, 7)),
        st.tuples(st.just("delete"), st.integers(0, 7)),
        st.tuples(st.just("reopen")),
    ),
    max_size=25,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops)
def test_random_operations_match_a_bytearray_model(operations: list[tuple[object, ...]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base.raw"
        base.write_bytes(pattern(30_000, 99))  # shorter than the disk
        path = Path(tmp) / "disk.qcow2"
        model = bytearray(base.read_bytes().ljust(SIZE, b"\0"))
        saved: dict[str, tuple[bytes, bytes]] = {}
        img = Qcow2Image.create(path, size=SIZE, backing=base, backing_format="raw", cluster_bits=9)
        try:
            for number, op in enumerate(operations):
                match op:
                    case ("write", int(offset), int(length), int(value)):
                        length = min(length, SIZE - offset)
                        img.write(offset, bytes([value]) * length)
                        model[offset : offset + length] = bytes([value]) * length
                    case ("snapshot", int(vm_length)):
                        name = f"s{number}"
                        vmstate = pattern(vm_length, number)
                        img.create_snapshot(name, vmstate, icount=number)
                        saved[name] = (bytes(model), vmstate)
                    case ("revert", int(index)) if saved:
                        name = sorted(saved)[index % len(saved)]
                        assert img.revert_to_snapshot(name) == saved[name][1]
                        model[:] = saved[name][0]
                    case ("delete", int(index)) if saved:
                        name = sorted(saved)[index % len(saved)]
                        img.delete_snapshot(name)
                        del saved[name]
                    case ("reopen",):
                        img.close()
                        img = Qcow2Image.open(path, writable=True)
                    case _:
                        continue
                assert img.read(0, SIZE) == model
            assert sorted(s.name for s in img.snapshots()) == sorted(saved)
            for name, (_, vmstate) in saved.items():
                assert img.read_vmstate(name) == vmstate
        finally:
            img.close()
        assert_consistent(path)

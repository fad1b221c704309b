"""Our qcow2 files against the real `qemu-img` (and `qemu-io`): both directions.

Every image we write must pass `qemu-img check` with no errors and no leaks; what we
write must read back identically through `qemu-img convert`; images and snapshots made
by QEMU must read correctly through `Qcow2Image`.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from rdebug.errors import SnapshotError
from rdebug.snapshots.qcow2 import Qcow2Image

pytestmark = pytest.mark.skipif(
    shutil.which("qemu-img") is None,
    reason="qemu-img is not installed (Debian package qemu-utils)",
)
needs_qemu_io = pytest.mark.skipif(
    shutil.which("qemu-io") is None, reason="qemu-io is not installed (Debian qemu-utils)"
)


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, check=False, timeout=60
    )


def qemu_img(*args: str | Path) -> str:
    result = run("qemu-img", *args)
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout


def qemu_io(image: Path, *commands: str) -> str:
    args: list[str | Path] = ["qemu-io", "-f", "qcow2"]
    for command in commands:
        args += ["-c", command]
    result = run(*args, image)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "fail" not in result.stdout.lower(), result.stdout
    return result.stdout


def assert_checks_clean(image: Path) -> dict[str, Any]:
    """`qemu-img check`: exit 0 (2 = corruptions, 3 = leaks), and say so in the JSON."""
    result = run("qemu-img", "check", "--output=json", image)
    report: dict[str, Any] = json.loads(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert report["check-errors"] == 0
    assert report.get("corruptions", 0) == 0
    assert report.get("leaks", 0) == 0
    return report


def info(image: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(qemu_img("info", "--output=json", image))
    return data


def converted(image: Path, tmp_path: Path) -> bytes:
    out = tmp_path / f"{image.stem}.converted.raw"
    out.unlink(missing_ok=True)
    qemu_img("convert", "-O", "raw", image, out)
    return out.read_bytes()


SNAPSHOT_ROW = re.compile(
    r"(?P<id>\S+)\s+(?P<tag>.+?)\s+(?P<vm_size>[\d.]+ [KMGTPE]?i?B)"
    r"\s+(?P<date>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\s+(?P<vm_clock>[\d:.]+)\s*(?P<icount>\d*)"
)


def snapshot_list(image: Path) -> list[dict[str, str]]:
    """The rows of `qemu-img snapshot -l`, by column."""
    lines = qemu_img("snapshot", "-l", image).splitlines()
    assert lines[0] == "Snapshot list:"
    assert lines[1].split() == ["ID", "TAG", "VM", "SIZE", "DATE", "VM", "CLOCK", "ICOUNT"]
    rows = []
    for line in lines[2:]:
        match = SNAPSHOT_ROW.fullmatch(line.strip())
        assert match, line
        rows.append(match.groupdict())
    return rows


def pattern(length: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(length)


@pytest.fixture
def base(tmp_path: Path) -> Path:
    path = tmp_path / "base.raw"
    path.write_bytes(pattern(3 << 20, 1))
    return path


# --------------------------------------------------------------------------- our files


def test_our_overlay_passes_check_and_info(tmp_path: Path, base: Path) -> None:
    path = tmp_path / "disk.qcow2"
    with Qcow2Image.create(path, backing=base, backing_format="raw") as img:
        img.write(100, pattern(200_000, 2))
        img.create_snapshot("boot", pattern(1 << 20, 3), icount=123_456)
        img.write(65_530, b"straddle")
        expected = img.read(0, img.size)
    assert_checks_clean(path)
    details = info(path)
    assert details["format"] == "qcow2"
    assert details["virtual-size"] == 3 << 20
    assert details["format-specific"]["data"]["compat"] == "1.1"
    assert details["format-specific"]["data"]["refcount-bits"] == 16
    assert details["backing-filename"] == str(base)
    assert details["backing-filename-format"] == "raw"
    assert converted(path, tmp_path) == expected


def test_snapshot_list_shows_name_vm_size_and_icount(tmp_path: Path) -> None:
    path = tmp_path / "states.qcow2"
    with Qcow2Image.create(path, size=1 << 20) as img:
        img.create_snapshot("boot", pattern(1 << 20, 4), icount=123_456, vm_clock_nsec=2 * 10**9)
        img.create_snapshot("no-icount", b"x" * 1536)
    assert_checks_clean(path)
    rows = snapshot_list(path)
    assert [(r["id"], r["tag"], r["vm_size"], r["vm_clock"], r["icount"]) for r in rows] == [
        ("1", "boot", "1 MiB", "00:00:02.000", "123456"),
        ("2", "no-icount", "1.5 KiB", "00:00:00.000", ""),  # icount -1: an empty cell
    ]
    listed = info(path)["snapshots"]
    assert [(s["name"], s["vm-state-size"]) for s in listed] == [
        ("boot", 1 << 20),
        ("no-icount", 1536),
    ]
    assert listed[0]["icount"] == 123_456
    assert "icount" not in listed[1]


def test_qcow2_backing_chain(tmp_path: Path, base: Path) -> None:
    mid = tmp_path / "mid.qcow2"
    top = tmp_path / "top.qcow2"
    with Qcow2Image.create(mid, backing=base, backing_format="raw", cluster_bits=12) as img:
        img.write(10_000, pattern(50_000, 5))
        img.create_snapshot("m", b"mid state")
    with Qcow2Image.create(top, backing=mid, backing_format="qcow2") as img:
        img.write(30_000, pattern(70_000, 6))
        expected = img.read(0, img.size)
    for path in (mid, top):
        assert_checks_clean(path)
    assert info(top)["backing-filename-format"] == "qcow2"
    assert converted(top, tmp_path) == expected


def test_qemu_img_reverts_and_deletes_our_snapshots(tmp_path: Path, base: Path) -> None:
    path = tmp_path / "disk.qcow2"
    vmstate = b"\x5a" * (1 << 20)
    with Qcow2Image.create(path, backing=base, backing_format="raw") as img:
        img.write(0, pattern(300_000, 7))
        disk_at_snapshot = img.read(0, img.size)
        img.create_snapshot("s1", vmstate, icount=1)
        img.write(0, pattern(500_000, 8))
        img.create_snapshot("s2", b"second", icount=2)
        img.write(1 << 20, b"after s2")
    qemu_img("snapshot", "-a", "s1", path)
    assert_checks_clean(path)
    assert converted(path, tmp_path) == disk_at_snapshot
    if shutil.which("qemu-io"):  # QEMU's loadvm reads the VM state from where we put it
        qemu_io(path, "read -b -P 0x5a 0 1M", "read -b -P 0 1M 64k")
    qemu_img("snapshot", "-d", "s2", path)
    assert_checks_clean(path)
    with Qcow2Image.open(path, writable=True) as img:
        assert [s.name for s in img.snapshots()] == ["s1"]
        assert img.read(0, img.size) == disk_at_snapshot
        assert img.read_vmstate("s1") == vmstate
        img.write(0, b"ours again")
        img.delete_snapshot("s1")
    assert_checks_clean(path)


def test_small_clusters_and_a_grown_refcount_table(tmp_path: Path) -> None:
    path = tmp_path / "small.qcow2"
    data = pattern(9 << 20, 9)
    with Qcow2Image.create(path, size=10 << 20, cluster_bits=9) as img:
        img.write(0, data)
        img.create_snapshot("s", pattern(100_000, 10))
        img.write(4 << 20, data[: 1 << 20])
        expected = img.read(0, img.size)
    report = assert_checks_clean(path)
    assert report["total-clusters"] == (10 << 20) // 512
    assert info(path)["cluster-size"] == 512
    assert converted(path, tmp_path) == expected


def test_random_history_stays_clean(tmp_path: Path, base: Path) -> None:
    rng = random.Random(2024)
    path = tmp_path / "disk.qcow2"
    names: list[str] = []
    with Qcow2Image.create(path, backing=base, backing_format="raw", cluster_bits=12) as img:
        for step in range(120):
            choice = rng.random()
            if choice < 0.6:
                offset = rng.randrange(img.size)
                img.write(offset, rng.randbytes(min(rng.randrange(1, 40_000), img.size - offset)))
            elif choice < 0.75:
                names.append(f"s{step}")
                img.create_snapshot(
                    names[-1], rng.randbytes(rng.randrange(0, 100_000)), icount=step
                )
            elif choice < 0.9 and names:
                img.revert_to_snapshot(rng.choice(names))
            elif names:
                name = rng.choice(names)
                names.remove(name)
                img.delete_snapshot(name)
        expected = img.read(0, img.size)
        vmstates = {name: img.read_vmstate(name) for name in names}
    assert_checks_clean(path)
    assert converted(path, tmp_path) == expected
    assert [row["tag"] for row in snapshot_list(path)] == names
    with Qcow2Image.open(path) as img:
        assert {name: img.read_vmstate(name) for name in names} == vmstates


def test_zero_sized_state_file(tmp_path: Path) -> None:
    path = tmp_path / "snapshots.qcow2"
    with Qcow2Image.create(path, size=0) as img:
        img.create_snapshot("a", pattern(200_000, 11), icount=5)
        img.create_snapshot("b", pattern(10_000, 12), icount=6)
        img.delete_snapshot("a")
    assert_checks_clean(path)
    assert [row["tag"] for row in snapshot_list(path)] == ["b"]


# --------------------------------------------------------------------------- QEMU's files


@needs_qemu_io
def test_we_read_and_revert_an_image_qemu_made(tmp_path: Path, base: Path) -> None:
    path = tmp_path / "qemu.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-b", base, "-F", "raw", path)
    qemu_io(path, "write -P 0xab 0 64k", "write -P 0xcd 100k 8k")
    qemu_img("snapshot", "-c", "first", path)
    qemu_io(path, "write -P 0xef 32k 64k", "write -b -P 0x11 0 64k")  # -b: VM state area
    qemu_img("snapshot", "-c", "second", path)
    # zero clusters: one keeping its (shared) host cluster, one plain, one partial
    qemu_io(path, "write -z 0 64k", "write -z 128k 64k", "write -z 256k 4k")

    at_first = bytearray(base.read_bytes())
    at_first[0 : 64 << 10] = b"\xab" * (64 << 10)
    at_first[100 << 10 : 108 << 10] = b"\xcd" * (8 << 10)
    at_second = bytearray(at_first)
    at_second[32 << 10 : 96 << 10] = b"\xef" * (64 << 10)
    now = bytearray(at_second)
    for start, length in ((0, 64), (128, 64), (256, 4)):
        now[start << 10 : (start + length) << 10] = bytes(length << 10)

    with Qcow2Image.open(path) as img:
        assert img.size == 3 << 20
        assert img.backing == Path(str(base)) and img.backing_format == "raw"
        assert img.read(0, img.size) == now == converted(path, tmp_path)
        snaps = img.snapshots()
        assert [(s.id, s.name, s.vm_state_size) for s in snaps] == [
            ("1", "first", 0),
            ("2", "second", 0),
        ]
        assert all(s.disk_size == 3 << 20 for s in snaps)
        assert img.read_vmstate("first") == b""

    with Qcow2Image.open(path, writable=True) as img:
        img.write(10, b"abc")  # into the zero cluster that keeps a shared host cluster
        img.write(130 << 10, b"def")  # into the plain zero cluster
        now[10:13], now[130 << 10 : (130 << 10) + 3] = b"abc", b"def"
        assert img.read(0, img.size) == now
    assert_checks_clean(path)
    assert converted(path, tmp_path) == now

    with Qcow2Image.open(path, writable=True) as img:
        assert img.revert_to_snapshot("first") == b""
        assert img.read(0, img.size) == at_first
        img.write(1000, b"mine")
        at_first[1000:1004] = b"mine"
        assert img.create_snapshot("ours", b"state", icount=77).id == "3"
        img.revert_to_snapshot("second")
        assert img.read(0, img.size) == at_second
        img.delete_snapshot("first")
    assert_checks_clean(path)
    qemu_img("snapshot", "-a", "ours", path)
    assert converted(path, tmp_path) == at_first
    assert_checks_clean(path)


@needs_qemu_io
def test_our_overlay_over_a_qcow2_qemu_made(tmp_path: Path, base: Path) -> None:
    lower = tmp_path / "lower.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", lower, "2M")
    qemu_io(lower, "write -P 0x42 4k 12k", "write -P 0x43 1M 1k")
    path = tmp_path / "top.qcow2"
    with Qcow2Image.create(path, backing=lower, backing_format="qcow2") as img:
        assert img.size == 2 << 20
        img.write(5000, b"top!")
        expected = bytearray(2 << 20)
        expected[4096 : 16 << 10] = b"\x42" * (12 << 10)
        expected[1 << 20 : (1 << 20) + 1024] = b"\x43" * 1024
        expected[5000:5004] = b"top!"
        assert img.read(0, img.size) == expected
    assert_checks_clean(path)
    assert converted(path, tmp_path) == expected


@needs_qemu_io
@pytest.mark.parametrize("refcount_bits", [8, 32, 64])
def test_we_write_other_refcount_widths(tmp_path: Path, refcount_bits: int) -> None:
    path = tmp_path / f"rc{refcount_bits}.qcow2"
    options = f"refcount_bits={refcount_bits},cluster_size=4096"
    qemu_img("create", "-q", "-f", "qcow2", "-o", options, path, "1M")
    qemu_io(path, "write -P 0x33 0 10k")
    qemu_img("snapshot", "-c", "theirs", path)
    with Qcow2Image.open(path, writable=True) as img:
        img.write(5000, b"x" * 9000)
        img.create_snapshot("ours", b"v" * 50_000, icount=3)
        assert img.revert_to_snapshot("theirs") == b""
        img.write(0, b"y" * 100)
        img.delete_snapshot("theirs")
        expected = img.read(0, img.size)
    assert_checks_clean(path)
    assert info(path)["format-specific"]["data"]["refcount-bits"] == refcount_bits
    assert converted(path, tmp_path) == expected


@needs_qemu_io
def test_version_2_images_open_read_only(tmp_path: Path) -> None:
    path = tmp_path / "old.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-o", "compat=0.10", path, "1M")
    qemu_io(path, "write -P 0x44 512 1k")
    qemu_img("snapshot", "-c", "old", path)
    with Qcow2Image.open(path) as img:
        assert img.read(0, 2048) == bytes(512) + b"\x44" * 1024 + bytes(512)
        assert [(s.name, s.disk_size) for s in img.snapshots()] == [("old", 1 << 20)]
    with pytest.raises(SnapshotError, match="version 2 images can only be opened read-only"):
        Qcow2Image.open(path, writable=True)

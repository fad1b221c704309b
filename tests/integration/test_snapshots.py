"""Named snapshots in the trace's qcow2 file, disks that are never written, and damage."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import rdebug
from rdebug.errors import RdebugError, SnapshotError
from rdebug.host.sources import LiveInputs
from rdebug.machine.machine import Machine, MachineConfig
from rdebug.snapshots import vmstate
from tests.conftest import EXPECTED, GUESTS, ROOT

QEMU_IMG = shutil.which("qemu-img")
needs_qemu_img = pytest.mark.skipif(QEMU_IMG is None, reason="qemu-img (qemu-utils) is absent")


def _rdebug(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "rdebug", *args],
        capture_output=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )


def _qemu_img(*args: str) -> str:
    assert QEMU_IMG is not None
    return subprocess.run(
        [QEMU_IMG, *args], capture_output=True, text=True, check=True, timeout=60
    ).stdout


def _check_clean(path: Path) -> None:
    report = json.loads(_qemu_img("check", "--output=json", str(path)))
    assert report.get("corruptions", 0) == 0 and report.get("leaks", 0) == 0, report
    assert report.get("check-errors", 0) == 0, report


@pytest.fixture
def usermode_trace(tmp_path: Path) -> Path:
    trace = tmp_path / "trace"
    result = _rdebug(
        "record", str(GUESTS / "usermode.elf"), "-o", str(trace), "-m", "16", "--serial", "null"
    )
    assert result.returncode == 1, result.stderr
    return trace


@needs_qemu_img
def test_savevm_survives_closing_and_reopening(usermode_trace: Path) -> None:
    with rdebug.open(usermode_trace) as session:
        assert [s.name for s in session.snapshots()] == ["init"]
        session.seek(20_000)
        expected = session.state_hash()
        session.savevm("middle")
        session.seek(30_000)
        later = session.state_hash()
        session.seek(5)
    with rdebug.open(usermode_trace) as session:
        names = {s.name: s.icount for s in session.snapshots()}
        assert names == {"init": 0, "middle": 20_000}
        session.loadvm("middle")
        assert (session.icount, session.state_hash()) == (20_000, expected)
        session.seek(30_000)  # and the replay goes on from there exactly
        assert session.state_hash() == later
        session.loadvm("init")
        assert session.icount == 0
        with pytest.raises(SnapshotError, match="no snapshot named 'nope'"):
            session.loadvm("nope")
    snapshots = usermode_trace / "snapshots.qcow2"
    _check_clean(snapshots)
    listing = _qemu_img("snapshot", "-l", str(snapshots))
    assert "init" in listing and "middle" in listing and "20000" in listing
    info = json.loads(_qemu_img("info", "--output=json", str(snapshots)))
    assert info["format"] == "qcow2"
    assert {s["name"] for s in info["snapshots"]} == {"init", "middle"}
    cli = _rdebug("snapshots", str(usermode_trace))
    assert cli.returncode == 0
    assert [line.split()[:2] for line in cli.stdout.decode().splitlines()[1:]] == [
        ["init", "0"],
        ["middle", "20000"],
    ]


@needs_qemu_img
def test_disk_guest_never_writes_the_users_image(tmp_path: Path) -> None:
    image = tmp_path / "disk.img"
    image.write_bytes(bytes(range(256)) * 4096)
    before = image.read_bytes()
    expected = (EXPECTED / "disk.txt").read_bytes().replace(b"QEMU HARDDISK", b"RDEBUG HARDDISK")

    run = _rdebug("run", str(GUESTS / "disk.elf"), "--drive", f"file={image},format=raw")
    assert (run.returncode, run.stdout) == (1, expected), run.stderr
    assert image.read_bytes() == before

    trace = tmp_path / "trace"
    rec = _rdebug("record", str(GUESTS / "disk.elf"), "-o", str(trace), "--drive", f"file={image}")
    assert (rec.returncode, rec.stdout) == (1, expected), rec.stderr
    assert image.read_bytes() == before
    for _ in range(2):
        rep = _rdebug("replay", str(trace))
        assert (rep.returncode, rep.stdout) == (1, expected), rep.stderr
    assert image.read_bytes() == before

    overlay = trace / "disk0.qcow2"
    _check_clean(overlay)
    info = json.loads(_qemu_img("info", "--output=json", str(overlay)))
    assert info["backing-filename"] == str(image) and info["backing-filename-format"] == "raw"
    flat = tmp_path / "flat.raw"
    _qemu_img("convert", "-O", "raw", str(overlay), str(flat))
    written = flat.read_bytes()
    assert written[:512] == before[:512]  # sector 0 as it was
    assert written[512:2048] != before[512:2048]  # the guest's sectors 1-3
    assert written[2048:] == before[2048:]


def test_replay_refuses_a_changed_disk_image(tmp_path: Path) -> None:
    image = tmp_path / "disk.img"
    image.write_bytes(bytes(range(256)) * 4096)
    trace = tmp_path / "trace"
    rec = _rdebug(
        "record",
        str(GUESTS / "disk.elf"),
        "-o",
        str(trace),
        "--drive",
        f"file={image}",
        "--serial",
        "null",
    )
    assert rec.returncode == 1
    image.write_bytes(bytes(1 << 20))
    rep = _rdebug("replay", str(trace))
    err = rep.stderr.decode()
    assert rep.returncode == 2 and err.count("\n") == 1 and "changed since it was recorded" in err
    image.unlink()
    rep = _rdebug("replay", str(trace))
    err = rep.stderr.decode()
    assert rep.returncode == 2 and err.count("\n") == 1 and "disk.img" in err, err


def test_a_damaged_snapshot_file_gives_one_clear_line(usermode_trace: Path) -> None:
    snapshots = usermode_trace / "snapshots.qcow2"
    raw = bytearray(snapshots.read_bytes())
    raw[0:4] = b"JUNK"
    snapshots.write_bytes(bytes(raw))
    cli = _rdebug("snapshots", str(usermode_trace))
    err = cli.stderr.decode()
    assert cli.returncode == 2 and err.count("\n") == 1 and "snapshots.qcow2" in err, err
    assert "Traceback" not in err
    with rdebug.open(usermode_trace) as session, pytest.raises(RdebugError):
        session.loadvm("init")


@pytest.mark.parametrize(
    ("drive", "needle"),
    [
        ("file=/no/such/disk.img", "no such file"),
        ("file=README.md,format=vmdk", "format must be raw or qcow2"),
        ("file=README.md,index=7", "index must be 0"),
        ("bogus=1", "expected file=PATH"),
    ],
)
def test_bad_drive_options(drive: str, needle: str) -> None:
    result = _rdebug("run", str(GUESTS / "hello.elf"), "--drive", drive)
    err = result.stderr.decode()
    assert result.returncode == 2 and err.count("\n") == 1 and needle in err, err


def test_a_snapshot_with_damaged_device_state_is_refused() -> None:
    machine = Machine(MachineConfig(memory_mb=16), LiveInputs(), [])
    try:
        good = vmstate.encode(machine, None)
        bad = good.replace(b'"irr": 0', b'"irr":[]', 1)  # same length: the header keeps its size
        assert bad != good
        with pytest.raises(SnapshotError, match="device state is damaged"):
            vmstate.apply(machine, vmstate.decode(bad, "bad"))
    finally:
        machine.close()

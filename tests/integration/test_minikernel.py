"""The minikernel (sample_guests/minikernel) under rdebug: it boots to its shell prompt,
runs a scripted session (COM1 input through IRQ4 on the IOAPIC, two ring-3 processes
preempted by the LAPIC timer, a ring-3 page fault, the IDE slave through IRQ14) and
prints what it printed under QEMU; record it, replay it (same output, same final state
as a live run), and seek back and forth (states equal to straight replays)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rdebug import api
from rdebug.host.sources import FileSerialSource, LiveInputs, ScriptedInputs
from rdebug.machine.disks import OverlayDisk
from rdebug.machine.inputs import KeyInput
from rdebug.machine.loader import load_image
from rdebug.machine.machine import Machine, MachineConfig, StopReason
from tests.conftest import EXPECTED, GUESTS, ROOT, BytesImage, Capture

KERNEL = GUESTS / "minikernel.elf"
MEMORY_MB = 224  # what the kernel would get under QEMU in expected/
#: the session of expected/minikernel-shell.txt (sample_guests/minikernel/qemu_session.py)
SHELL_SESSION = b"help\nps\nrun\nfault\ndisk\ndisk\ncrc 3\nbogus\nexit 0\n"
#: a shorter one for recording and seeking
SHORT_SESSION = b"ps\nfault\ndisk\ncrc 1\nexit 5\n"
#: a longer one (about 5.9e6 instructions) to cut
CRC_SESSION = b"crc 20\nexit 0\n"


def slave_image(sectors: int = 2048) -> bytes:
    """The IDE slave of the sessions: sector 0 holds "MINIDISK" and the counter 41."""
    return b"MINIDISK" + (41).to_bytes(4, "little") + bytes(sectors * 512 - 12)


def _rdebug(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "rdebug", *map(str, args)],
        capture_output=True,
        timeout=300,
        cwd=ROOT,
        check=False,
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("minikernel")
    (folder / "slave.img").write_bytes(slave_image())
    (folder / "shell.txt").write_bytes(SHELL_SESSION)
    (folder / "short.txt").write_bytes(SHORT_SESSION)
    (folder / "crc.txt").write_bytes(CRC_SESSION)
    return folder


def _session_args(files: Path, session: str, out: Path) -> list[str | Path]:
    return [
        "-m", str(MEMORY_MB),
        "--drive", f"file={files / 'slave.img'},index=1",
        "--serial-input", files / f"{session}.txt",
        "--serial", f"file:{out}",
    ]  # fmt: skip


def test_shell_session_prints_what_qemu_printed(files: Path, tmp_path: Path) -> None:
    out = tmp_path / "com1.txt"
    result = _rdebug("run", KERNEL, *_session_args(files, "shell", out))
    assert result.returncode == 1, result.stderr
    assert out.read_bytes() == (EXPECTED / "minikernel-shell.txt").read_bytes()
    # rdebug never writes the user's image: the guest's counter lives in the overlay
    assert (files / "slave.img").read_bytes() == slave_image()


def test_boot_reaches_the_prompt_and_waits(files: Path, tmp_path: Path) -> None:
    out = tmp_path / "com1.txt"
    result = _rdebug("run", KERNEL, "-m", "32", "--serial", f"file:{out}", "--max-insns", "3000000")
    text = out.read_bytes()
    assert result.returncode == 4, result.stderr  # idle at the prompt, not crashed
    assert text.endswith(b"ide: no slave\nminikernel shell, pid 1: type help\n$ ")


def _live_run(files: Path, session: bytes) -> tuple[bytes, str, int]:
    """The session on a Machine in this process, no recording: output, final state."""
    out = Capture()
    disk = OverlayDisk(BytesImage((files / "slave.img").read_bytes()))
    inputs = LiveInputs({0: FileSerialSource(session)})
    # the slave is drive index 1: no master
    machine = Machine(MachineConfig(memory_mb=MEMORY_MB), inputs, [out], [None, disk])
    try:
        machine.load(load_image(KERNEL))
        stop = machine.run()
        assert stop.reason is StopReason.EXIT, stop
        return bytes(out.data), machine.state_hash(), machine.icount
    finally:
        machine.close()


@pytest.fixture(scope="module")
def trace(files: Path) -> Path:
    folder = files / "trace"
    out = files / "recorded.txt"
    result = _rdebug("record", KERNEL, "-o", folder, *_session_args(files, "short", out))
    assert result.returncode == (5 << 1) | 1, result.stderr
    return folder


def test_record_and_replay_give_the_live_output_and_state(files: Path, trace: Path) -> None:
    live_out, live_hash, live_icount = _live_run(files, SHORT_SESSION)
    assert b"disk: counter 42\n" in live_out and b"crc 1: 0x" in live_out
    assert (files / "recorded.txt").read_bytes() == live_out
    replayed = files / "replayed.txt"
    result = _rdebug("replay", trace, "--serial", f"file:{replayed}")
    assert result.returncode == (5 << 1) | 1, result.stderr
    assert replayed.read_bytes() == live_out
    with api.open(trace) as session:
        assert session.end_icount == live_icount
        session.seek(session.end_icount)
        assert session.state_hash() == live_hash


@pytest.mark.parametrize("cut", [2_500_000, 4_000_000, 5_500_000])
def test_a_recording_cut_by_max_insns_replays_to_its_cut(
    files: Path, tmp_path: Path, cut: int
) -> None:
    """Cut while the kernel takes timer ticks and system calls in C (they are passed to
    the log after each engine run): the replay's runs must still end at the cut, not
    run past it and find the end of the log where it expected the next interrupt."""
    trace = tmp_path / "cut"
    recorded = tmp_path / "recorded.txt"
    result = _rdebug(
        "record", KERNEL, "-o", trace, *_session_args(files, "crc", recorded),
        "--max-insns", str(cut),
    )  # fmt: skip
    assert result.returncode == 4, result.stderr
    replayed = tmp_path / "replayed.txt"
    result = _rdebug("replay", trace, "--serial", f"file:{replayed}")
    assert result.returncode == 0, result.stderr
    assert f"end of the recording at icount {cut}".encode() in result.stderr
    assert replayed.read_bytes() == recorded.read_bytes()


@pytest.fixture
def session(trace: Path) -> Iterator[api.Session]:
    with api.open(trace) as opened:
        yield opened


def _straight_hash(trace: Path, icount: int) -> str:
    with api.open(trace) as fresh:  # no checkpoints yet: replays from the start
        fresh.seek(icount)
        return fresh.state_hash()


def test_seeking_back_and_forth_matches_straight_replays(trace: Path, session: api.Session) -> None:
    end = session.end_icount
    session.seek(end)  # leaves checkpoints behind
    for target in (end // 2, end // 5, end - 1, end // 2 + 12345, 3 * end // 4):
        session.seek(target)
        assert session.icount == target
        assert session.state_hash() == _straight_hash(trace, target), target


def test_kernel_counters_read_back_through_the_session(session: api.Session) -> None:
    """The kernel's own counters, read through its page tables at the end: one ring-3
    page fault killed a process, and syscalls were made."""
    session.seek(session.end_icount)
    syscalls = int.from_bytes(session.read_memory(session.symbols["syscalls"], 4), "little")
    ticks = int.from_bytes(session.read_memory(session.symbols["ticks"], 4), "little")
    assert syscalls > 20 and ticks > 0
    assert session.register("cr4") & 0x10  # PSE
    assert session.register("cr0") & 0x80010000 == 0x80010000  # PG | WP


#: "hi kbd 42" and Enter as scan code set 1 make codes
KEY_CODES = [0x23, 0x17, 0x39, 0x25, 0x30, 0x20, 0x39, 0x05, 0x03, 0x1C]


def test_key_reads_a_line_typed_on_the_ps2_keyboard() -> None:
    """`key`: make and break codes through the i8042 and IRQ1 on the IOAPIC (the session
    of expected/minikernel-key.txt); the inputs are handed over while the shell idles."""
    later = 10**9  # an idle guest gets the next scripted input at once
    events = []
    for code in KEY_CODES:
        events += [(later + 1, KeyInput(code, True)), (later + 1, KeyInput(code, False))]
    inputs = ScriptedInputs([(later, 0, b"key\nexit\n")], events=events)
    out = Capture()
    machine = Machine(MachineConfig(memory_mb=MEMORY_MB), inputs, [out])
    try:
        machine.load(load_image(KERNEL))
        stop = machine.run()
    finally:
        machine.close()
    assert stop.reason is StopReason.EXIT and stop.exit_code == 1, (stop, bytes(out.data))
    assert bytes(out.data) == (EXPECTED / "minikernel-key.txt").read_bytes()


def test_key_session_recorded_from_the_command_line(tmp_path: Path) -> None:
    """`record --keyboard-input` types the keyboard line; the replay, with no input
    source, prints the same."""
    (tmp_path / "keys.txt").write_text("hi kbd 42\n")
    (tmp_path / "com1.txt").write_bytes(b"key\nexit\n")
    recorded, replayed = tmp_path / "recorded.txt", tmp_path / "replayed.txt"
    result = _rdebug(
        "record", KERNEL, "-o", tmp_path / "trace", "-m", str(MEMORY_MB),
        "--serial-input", tmp_path / "com1.txt", "--keyboard-input", tmp_path / "keys.txt",
        "--serial", f"file:{recorded}",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    expected = (EXPECTED / "minikernel-key.txt").read_bytes()
    assert recorded.read_bytes() == expected
    result = _rdebug("replay", tmp_path / "trace", "--serial", f"file:{replayed}")
    assert result.returncode == 1, result.stderr
    assert replayed.read_bytes() == expected

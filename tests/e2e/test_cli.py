"""`rdebug run` as a user types it: output, exit statuses, and one clear line on bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXPECTED, GUESTS, ROOT
from tests.linux_guest import synthetic_bzimage


def rdebug(
    *args: str, stdin: bytes = b"", timeout: float = 120
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "rdebug", *args],
        input=stdin,
        capture_output=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )


def assert_one_clear_line(result: subprocess.CompletedProcess[bytes], status: int = 2) -> str:
    assert result.returncode == status, result
    err = result.stderr.decode()
    assert "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith("rdebug: "), err
    return err


def test_hello_prints_and_exits_with_the_guest_status() -> None:
    result = rdebug("run", str(GUESTS / "hello.elf"))
    assert result.returncode == 1  # (0 << 1) | 1: the guest's success
    assert result.stdout == (EXPECTED / "hello.txt").read_bytes()
    assert result.stderr == b""


def test_python_dash_m_and_the_console_script_agree() -> None:
    script = Path(sys.executable).with_name("rdebug")
    if not script.exists():
        pytest.skip("console script not installed next to this interpreter")
    result = subprocess.run(
        [str(script), "run", str(GUESTS / "hello.elf")],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout) == (1, (EXPECTED / "hello.txt").read_bytes())


def test_serial_input_file_drives_the_echo_guest(tmp_path: Path) -> None:
    typed = tmp_path / "typed"
    typed.write_bytes(b"abcq")
    result = rdebug("run", str(GUESTS / "echo.elf"), "--serial-input", str(typed))
    assert result.returncode == 1
    assert result.stdout == (EXPECTED / "echo.txt").read_bytes()


def test_serial_to_a_file_and_to_null(tmp_path: Path) -> None:
    out = tmp_path / "com1.txt"
    result = rdebug("run", str(GUESTS / "timer.elf"), "--serial", f"file:{out}")
    assert (result.returncode, result.stdout) == (1, b"")
    assert out.read_bytes() == (EXPECTED / "timer.txt").read_bytes()
    result = rdebug("run", str(GUESTS / "timer.elf"), "--serial", "null")
    assert (result.returncode, result.stdout) == (1, b"")


def test_boot_sector_runs_in_real_mode() -> None:
    result = rdebug("run", str(GUESTS / "bootsector.bin"))
    assert result.returncode == 1
    assert result.stdout == (EXPECTED / "bootsector.txt").read_bytes()


def test_max_insns_stops_with_status_4() -> None:
    result = rdebug("run", str(GUESTS / "crc.elf"), "--max-insns", "5000")
    err = assert_one_clear_line(result, status=4)
    assert "icount 5000" in err


def test_a_guest_that_halts_for_good_exits_0(tmp_path: Path) -> None:
    image = tmp_path / "halt.bin"
    image.write_bytes(bytes.fromhex("fa f4"))  # cli; hlt
    result = rdebug("run", str(image), "--format", "flat", "--load-address", "0x100000")
    err = assert_one_clear_line(result, status=0)
    assert "halted" in err and "interrupts disabled" in err


def test_a_crashing_guest_exits_3(tmp_path: Path) -> None:
    image = tmp_path / "crash.bin"
    # lidt [0x100010] (an empty IDT); ud2: #UD, #GP, #DF beyond the IDT: a triple fault
    code = bytes.fromhex("0f011d 10001000 0f0b")
    image.write_bytes(code + bytes(0x10 - len(code)) + bytes(6))
    result = rdebug("run", str(image), "--format", "flat", "--load-address", "0x100000", "-m", "16")
    err = assert_one_clear_line(result, status=3)
    assert "triple fault" in err


def test_an_access_to_nothing_is_open_bus_not_a_crash(tmp_path: Path) -> None:
    """A PC's bus: reads of unassigned physical memory give all-ones, writes vanish."""
    image = tmp_path / "open-bus.bin"
    # mov dword [0x40000000], 1; mov eax, [0x40000000]; inc eax; out 0xf4, al
    image.write_bytes(bytes.fromhex("c705 00000040 01000000 a1 00000040 40 e6f4"))
    result = rdebug("run", str(image), "--format", "flat", "--load-address", "0x100000", "-m", "16")
    assert result.returncode == 1, result.stderr  # EAX was all-ones: exit code 0


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", "no/such/guest.elf"], "no such file"),
        (["run", "README.md"], "not an ELF"),
        (["run", sys.executable], "64-bit ELF"),
        (["run", "sample_guests/build/hello.elf", "--frobnicate"], "unrecognized arguments"),
        (["run", "sample_guests/build/hello.elf", "-m", "0"], "memory"),
        (["run", "sample_guests/build/hello.elf", "--icount-shift", "99"], "icount-shift"),
        (["run", "sample_guests/build/hello.elf", "--serial", "tcp:1234"], "--serial"),
        (
            ["run", "sample_guests/build/hello.elf", "--serial-input", "no/such/file"],
            "serial-input",
        ),
        (["run", "sample_guests/build/hello.elf", "--max-insns", "many"], "not a number"),
        (["run"], "GUEST"),
        ([], "COMMAND"),
    ],
)
def test_bad_input_gives_one_clear_line(args: list[str], needle: str) -> None:
    err = assert_one_clear_line(rdebug(*args))
    assert needle in err


def test_an_elf_for_another_machine_is_refused(tmp_path: Path) -> None:
    elf = bytearray((GUESTS / "hello.elf").read_bytes())
    elf[18:20] = (40).to_bytes(2, "little")  # EM_ARM
    image = tmp_path / "arm.elf"
    image.write_bytes(bytes(elf))
    err = assert_one_clear_line(rdebug("run", str(image)))
    assert "not i386" in err


def test_a_truncated_elf_is_refused(tmp_path: Path) -> None:
    image = tmp_path / "short.elf"
    image.write_bytes((GUESTS / "hello.elf").read_bytes()[:200])
    err = assert_one_clear_line(rdebug("run", str(image)))
    assert "short.elf" in err


def test_ctrl_c_interrupts_a_running_guest(tmp_path: Path) -> None:
    # PIT channel 0 one-shot (so no timer is left to stop the run loop), then
    # mov dx, 0x3f8; mov al, 'R'; out dx, al; jmp $
    image = tmp_path / "spin.bin"
    image.write_bytes(bytes.fromhex("b030e643 b001e640 b000e640 66baf803 b052 ee ebfe"))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rdebug",
            "run",
            str(image),
            "--format",
            "flat",
            "--load-address",
            "0x100000",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.read(1) == b"R"  # the guest is running
        os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert b"interrupted at icount" in err and b"Traceback" not in err


def test_record_keeps_a_linux_kernels_initrd_and_replay_checks_it(tmp_path: Path) -> None:
    kernel, initrd, trace = tmp_path / "vmlinuz", tmp_path / "initrd.cpio", tmp_path / "t"
    kernel.write_bytes(synthetic_bzimage())
    initrd.write_bytes(b"070701" + bytes(100))
    args = ["--initrd", str(initrd), "--append", "console=ttyS0", "--max-insns", "1000"]
    result = rdebug("record", str(kernel), "-o", str(trace), *args)
    assert result.returncode == 4, result.stderr  # --max-insns
    assert (trace / "initrd").read_bytes() == initrd.read_bytes()
    replayed = rdebug("replay", str(trace))
    assert replayed.returncode == 0 and b"end of the recording at icount 1000" in replayed.stderr
    (trace / "initrd").write_bytes(b"changed")
    err = assert_one_clear_line(rdebug("replay", str(trace)))
    assert "initrd changed since it was recorded" in err
    err = assert_one_clear_line(rdebug("run", str(GUESTS / "hello.elf"), "--initrd", str(initrd)))
    assert "Linux kernels" in err

"""gdb reverse-debugs a recorded minikernel session: a breakpoint on the kernel's
system call entry found again backwards, and a watchpoint on the LAPIC timer's tick
counter that reverse-continue takes back to the store in the interrupt handler."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import GUESTS
from tests.e2e.gdb.conftest import Gdb, attached_gdb, rdebug_gdb_server
from tests.integration.test_minikernel import KERNEL, _rdebug, slave_image

SESSION = b"ps\ndisk\ncrc 1\nexit 0\n"  # crc: long enough for timer ticks


@pytest.fixture(scope="module")
def minikernel_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("minikernel-gdb")
    (folder / "slave.img").write_bytes(slave_image())
    (folder / "input.txt").write_bytes(SESSION)
    out = folder / "com1.txt"
    result = _rdebug(
        "record", KERNEL, "-o", folder / "trace", "-m", "64",
        "--drive", f"file={folder / 'slave.img'},index=1",
        "--serial-input", folder / "input.txt", "--serial", f"file:{out}",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert b"disk: counter 42\n" in out.read_bytes()
    return folder / "trace"


@pytest.fixture
def kgdb(minikernel_trace: Path) -> Iterator[Gdb]:
    with (
        rdebug_gdb_server("replay", str(minikernel_trace)) as address,
        attached_gdb(address, GUESTS / "minikernel.elf") as gdb,
    ):
        yield gdb


def test_reverse_continue_returns_to_the_previous_syscall(kgdb: Gdb) -> None:
    kgdb.run("break do_syscall")
    counts = []
    for _ in range(4):
        text, _ = kgdb.run("continue")
        assert "Breakpoint 1" in text, text
        assert kgdb.pc() == kgdb.value("(unsigned)&do_syscall")
        counts.append(kgdb.value("*(unsigned*)&syscalls"))
    # do_syscall counts itself after the breakpoint: one more per entry
    assert counts == list(range(counts[0], counts[0] + 4))
    text, _ = kgdb.run("reverse-continue")
    assert "Breakpoint 1" in text, text
    assert kgdb.value("*(unsigned*)&syscalls") == counts[2]
    # do_syscall(struct regs *r): r (the caller's saved registers) is the first argument,
    # and the system call number is the saved EAX, the 12th word of struct regs
    number = kgdb.value("((unsigned*)*(unsigned*)($esp + 4))[11]")
    assert 1 <= number <= 14


def test_watchpoint_on_the_tick_counter_found_backwards(kgdb: Gdb) -> None:
    text, _ = kgdb.run("continue")  # to the end of the recording
    assert "No more reverse-execution history" in text, text
    final = kgdb.value("*(unsigned*)&ticks")
    assert final > 0
    kgdb.run("watch *(unsigned*)&ticks")
    text, _ = kgdb.run("reverse-continue")
    assert f"Old value = {final}" in text and f"New value = {final - 1}" in text, text
    symbol, _ = kgdb.run("info symbol $pc")
    assert symbol.startswith("trap"), symbol  # the LAPIC timer interrupt's handler
    kgdb.run("stepi")
    assert kgdb.value("*(unsigned*)&ticks") == final

"""docs/linux.md section 6, run: a user program's bad store found backwards in a Linux replay.

tests/data/listbug.c (built here: `gcc -m32 -static -O0 -g`) has an off-by-one loop
that writes past a node's values[] over its `next` pointer; a later walk of the list
follows the corrupted pointer and the process dies of SIGSEGV.  The Debian kernel of
tests/linux_guest.py boots an initramfs whose /init runs it, then powers off.

- `rdebug record` (the CLI): the kernel logs `listbug[N]: segfault at 5eed0304 ip ...`;
- a real gdb on the replay, with the kernel's symbols (`break start_kernel`: an __init
  function) and the program's; a watch on the program's heap set in `kernel_init` (no
  page maps it there) is refused when gdb resumes; break where the
  kernel sends the signal (`force_sig_fault`), load listbug's DWARF, back to the faulting
  instruction (a breakpoint at the ip the kernel logged, reverse-continue: sum(), the
  line that follows the pointer), then a watchpoint on the corrupted `list->next` and
  reverse-continue: gdb stops at the stray store, fill()'s loop body, with i == 4.

The watchpoint is set (and gdb resumes) while the process's page tables are in force:
stopped in force_sig_fault or in listbug itself (machine/watchpoints.py).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import rdebug
import rdebug.gdb
from rdebug.replay.trace import Trace
from tests.conftest import ROOT
from tests.linux_guest import Unavailable, gdb_icount, linux_guest, watch_values

pytestmark = [pytest.mark.linux, pytest.mark.timeout(3600)]

SOURCE = Path("tests") / "data" / "listbug.c"  # built from ROOT: the same bytes every time
INIT = """#!/bin/sh
echo "init: running listbug"
/bin/listbug
echo "init: listbug ended with status $?"
poweroff -f
"""
SEGFAULT = re.compile(
    r"listbug\[(\d+)\]: segfault at ([0-9a-f]+) ip ([0-9a-f]+) sp [0-9a-f]+ error (\d+) in listbug"
)


def source_line(marker: str) -> int:
    """The line of listbug.c whose comment has `marker`."""
    lines = (ROOT / SOURCE).read_text().splitlines()
    found = [number for number, line in enumerate(lines, 1) if marker in line]
    assert len(found) == 1, (marker, found)
    return found[0]


@pytest.fixture(scope="module")
def listbug(tmp_path_factory: pytest.TempPathFactory) -> Path:
    program = tmp_path_factory.mktemp("listbug") / "listbug"
    argv = ["gcc", "-m32", "-static", "-O0", "-g", "-o", str(program), str(SOURCE)]
    try:
        built = subprocess.run(
            argv, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
        )
    except OSError as exc:
        pytest.skip(f"gcc: {exc}")
    if built.returncode != 0:
        pytest.skip(f"{' '.join(argv)} (gcc-multilib?): {built.stderr.strip()[-400:]}")
    return program


@pytest.fixture(scope="module")
def recorded(listbug: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The trace of a boot whose /init runs listbug, and the console's transcript."""
    try:
        guest = linux_guest(init=INIT, files={"bin/listbug": listbug.read_bytes()})
    except Unavailable as exc:
        pytest.skip(f"the package manager cannot give Debian's i386 kernel: {exc}")
    folder = tmp_path_factory.mktemp("linux-bug")
    trace, console = folder / "trace", folder / "console.txt"
    argv = [sys.executable, "-m", "rdebug", "record", str(guest.kernel)]
    argv += ["--initrd", str(guest.initramfs), "--append", "console=ttyS0 cryptomgr.notests"]
    argv += ["--serial", f"file:{console}", "-o", str(trace)]
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, timeout=3000, check=False)
    transcript = console.read_text(errors="replace") if console.exists() else ""
    assert result.returncode == 0, (result.stderr.decode(errors="replace"), transcript[-3000:])
    return trace, transcript


def test_the_program_segfaults_on_the_corrupted_pointer(recorded: tuple[Path, str]) -> None:
    trace, transcript = recorded
    assert "init: running listbug" in transcript
    assert "listbug: list built" in transcript and "listbug: sum" not in transcript
    match = SEGFAULT.search(transcript)
    assert match is not None, transcript[-3000:]
    assert int(match.group(2), 16) == 0x5EED0304  # key 3's values[4]: the pointer it wrote
    assert match.group(4) == "4"  # a user-mode read of a page not present
    assert "init: listbug ended with status 139" in transcript  # 128 + SIGSEGV
    assert "reboot: Power down" in transcript
    # KASLR moved the kernel; the offset, found at the end of the recording, is kept
    offset = Trace.open(trace).info.guest.kernel_offset
    assert offset is not None and offset % (16 << 20) == 0  # Debian's CONFIG_PHYSICAL_ALIGN


def test_gdb_finds_the_stray_store_backwards_from_the_segfault(
    recorded: tuple[Path, str], listbug: Path
) -> None:
    trace, transcript = recorded
    match = SEGFAULT.search(transcript)
    assert match is not None
    ip = int(match.group(3), 16)
    crash, stray = source_line("the crash:"), source_line("the stray store")
    head = re.search(r"listbug: list built, head (0x[0-9a-f]+)", transcript)
    assert head is not None
    head_next = int(head.group(1), 16) + 16  # &list->next: the program printed list
    with rdebug.open(trace) as session, rdebug.gdb.attach(session) as gdb:
        # an __init function (in .init.text, after _etext) is a function to gdb
        assert "Breakpoint 1 at" in gdb.command("break start_kernel").console
        stop = gdb.command("continue", timeout=1800).stopped
        assert stop is not None and stop["reason"] == "breakpoint-hit", stop
        assert gdb.value("$pc") == session.address("start_kernel")
        assert "start_kernel in section .init.text" in gdb.command("info symbol $pc").console
        gdb.command("delete")

        # in the kernel's own address space (pid 1 before it execs /init), no page maps
        # the process's heap: the watchpoint is refused when gdb resumes (inserts it)
        gdb.command("break kernel_init")
        stop = gdb.command("continue", timeout=1800).stopped
        assert stop is not None and stop["reason"] == "breakpoint-hit", stop
        gdb.command(f"watch *(unsigned *) {head_next:#x}")
        with pytest.raises(rdebug.gdb.GdbError, match="Could not insert hardware watchpoint"):
            gdb.command("continue", timeout=1800)
        assert gdb.value("$pc") == session.address("kernel_init")  # it did not move

        # the kernel sends SIGSEGV: stopped in the process's context (its page tables)
        gdb.command("delete")
        gdb.command("break force_sig_fault")
        stop = gdb.command("continue", timeout=1800).stopped
        assert stop is not None and stop["reason"] == "breakpoint-hit", stop
        assert gdb.value("$pc") == session.address("force_sig_fault")
        signalled = gdb_icount(gdb)
        gdb.command(f"add-symbol-file {listbug}")
        where = gdb.command(f"info line *{ip:#x}").console
        assert f"Line {crash} of " in where and "<sum+" in where, where

        # back to the faulting instruction: the last time the process was there
        gdb.command("delete")
        gdb.command(f"break *{ip:#x}")
        stop = gdb.command("reverse-continue", timeout=1800).stopped
        assert stop is not None and stop["reason"] == "breakpoint-hit", stop
        assert stop["frame"]["func"] == "sum" and int(stop["frame"]["line"]) == crash, stop
        faulted = gdb_icount(gdb)
        assert faulted < signalled
        assert gdb.value("(unsigned) n") == 0x5EED0304  # the pointer being followed
        assert gdb.value("(unsigned) list->next") == 0x5EED0304  # the head's own next
        assert "main ()" in gdb.command("bt").console

        # who wrote the head's next pointer last?
        gdb.command("delete")
        gdb.command("watch -l list->next")
        assert gdb.value("(unsigned) &list->next") == head_next
        back = gdb.command("reverse-continue", timeout=1800)
        stop = back.stopped
        assert stop is not None and stop["reason"] == "watchpoint-trigger", back
        frame = stop["frame"]
        assert frame["func"] == "fill" and int(frame["line"]) == stray, stop
        assert frame["file"].endswith("listbug.c")
        assert gdb_icount(gdb) < faulted
        # the off-by-one: values[NVALUES], of the node key 3 pushed, i.e. its next
        assert gdb.value("i") == 4 and gdb.value("key") == 3
        assert gdb.value("(unsigned) &n->values[i]") == gdb.value("(unsigned) &n->next")
        # going backwards, "Old value" is the later one: the stray store replaced the
        # node before it in the list (main's `list`, until push returns) by 0x5eed0304
        later, earlier = (int(v.split()[-1], 16) for v in watch_values(back.console))
        assert later == 0x5EED0304 and earlier == gdb.value("(unsigned) list") != 0
        assert "the stray store" in gdb.command("list fill").console

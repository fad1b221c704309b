"""Source-level reverse debugging of the `bug` guest (built with -g): a stray store in an
interrupt handler corrupts a variable; `watch` + reverse-continue finds it, reverse-finish
returns to the handler's caller, reverse-next retraces `next`."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import GUESTS, ROOT
from tests.e2e.gdb.conftest import Gdb, attached_gdb, rdebug_gdb_server


@pytest.fixture(scope="module")
def bug_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    trace = tmp_path_factory.mktemp("bug") / "trace"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "rdebug",
            "record",
            str(GUESTS / "bug.elf"),
            "-o",
            str(trace),
            "-m",
            "8",
        ],
        capture_output=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 1 and b"balance corrupted" in result.stdout, result
    return trace


@pytest.fixture
def bug_gdb(bug_trace: Path) -> Iterator[Gdb]:
    with (
        rdebug_gdb_server("replay", str(bug_trace)) as address,
        attached_gdb(address, GUESTS / "bug.elf") as gdb,
    ):
        yield gdb


def _where(gdb: Gdb) -> tuple[str, int]:
    _, records = gdb.run("frame")
    frames = [r["payload"] for r in records if r.get("message") == "stopped"]
    text, _ = gdb.run("info line *$pc")
    function = re.search(r"<(\w+)", text)
    line = re.search(r"Line (\d+)", text)
    assert function and line, (text, frames)
    return function[1], int(line[1])


def test_watch_and_reverse_continue_find_the_stray_store(bug_gdb: Gdb) -> None:
    text, _ = bug_gdb.run("continue")  # to the end of the recording
    assert "No more reverse-execution history" in text
    bug_gdb.run("watch acct.balance")
    # deposit() goes on adding to the corrupted balance until the round ends: going back
    # change by change, the first write that is not deposit's is the culprit
    for _ in range(12):
        text, _ = bug_gdb.run("reverse-continue")
        assert "watchpoint" in text.lower()
        function, _ = _where(bug_gdb)
        if function != "deposit":
            break
    assert function == "timer_irq"  # the interrupt handler's stray store
    source, _ = bug_gdb.run("list *$pc,+0")
    assert "acct.samples[sample_index]" in source
    bug_gdb.run("reverse-finish")  # back out of the handler, into its caller
    text, _ = bug_gdb.run("info symbol $pc")
    assert text.startswith("isr_dispatch"), text


def test_reverse_next_retraces_next(bug_gdb: Gdb) -> None:
    bug_gdb.run("break deposit")  # straight-line code: three lines, no loop
    bug_gdb.run("continue")
    bug_gdb.run("next")
    lines = [_where(bug_gdb)]
    for _ in range(1):
        bug_gdb.run("next")
        lines.append(_where(bug_gdb))
    for expected in reversed(lines[:-1]):
        bug_gdb.run("reverse-next")
        assert _where(bug_gdb) == expected

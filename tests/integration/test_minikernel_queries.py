"""Queries on a recorded minikernel session (two ring-3 processes, LAPIC timer ticks,
COM1 input through IRQ4, IDE through IRQ14): every call of its page allocator
`frame_alloc` with its return value, every write to `ticks`, the IRQ1/IRQ4 interrupts
in a window; from the API, the REPL, gdb's `monitor` and `rdebug query --json`, each
checked against the recording stepped one instruction at a time."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import pytest

from rdebug import api
from rdebug.repl import Repl
from tests.conftest import ROOT
from tests.e2e.gdb.conftest import attached_gdb, rdebug_gdb_server
from tests.integration.test_minikernel import KERNEL, files, trace  # noqa: F401 - fixtures
from tests.integration.test_queries import _reference

FRAMES = range(0x200000, 0x400000, 0x1000)  # main.c: FRAMES_START .. FRAMES_END
TIMER_VECTOR = 0x40
IRQ_VECTOR = 0x30  # ISA IRQ n arrives at IRQ_VECTOR + n
KBD_COM1 = (IRQ_VECTOR + 1, IRQ_VECTOR + 4)


@pytest.fixture
def session(trace: Path) -> Iterator[api.Session]:  # noqa: F811 - the imported fixture
    with api.open(trace) as opened:
        yield opened


def test_every_call_of_the_page_allocator(trace: Path, session: api.Session) -> None:  # noqa: F811
    calls = list(session.calls("frame_alloc", nargs=0))
    assert len(calls) >= 7  # two processes: page directory, page tables, stacks
    frames = [call.eax for call in calls]
    assert all(frame in FRAMES for frame in frames)
    assert all(call.returned and call.caller.startswith("proc_create") for call in calls)
    # each row is where it says: the entry, then back at the caller with the frame in EAX
    entry = session.address("frame_alloc")
    for call in calls[:3]:
        session.seek(call.icount)
        assert session.registers["eip"] == entry
        assert session.registers["esp"] == call.esp
        assert call.return_icount is not None
        session.seek(call.return_icount)
        assert session.registers["eip"] == call.return_address
        assert session.registers["eax"] == call.eax
        assert session.read_memory(call.eax, 4096) == bytes(4096)  # frame_alloc zeroes it
    # and stepping through the first two calls finds exactly them
    start, end = calls[0].icount - 50, calls[1].return_icount + 50  # type: ignore[operator]
    ref = _reference(trace, "ticks", "frame_alloc", start, end)
    window = list(session.calls("frame_alloc", 1, start, end))
    assert [(c.icount, c.return_address, c.args[0], c.return_icount, c.eax) for c in window] == (
        ref.calls
    )


def test_every_write_to_the_tick_counter(session: api.Session) -> None:
    clear, *writes = session.accesses("ticks", 4, "write")
    assert clear.where == "_start+0x36" and clear.value == 0  # the boot code clears the BSS
    timer = list(session.interrupts(TIMER_VECTOR))
    assert len(writes) == len(timer) >= 3  # the timer handler counts each tick once
    assert [w.value for w in writes] == list(range(1, len(writes) + 1))
    assert all(w.where and w.where.startswith("trap") for w in writes)
    for write, tick in zip(writes, timer, strict=True):
        assert tick.icount < write.icount
        session.seek(write.icount)
        assert session.registers["eip"] == write.pc
        session.stepi(1)
        assert int.from_bytes(session.read_memory(session.address("ticks"), 4), "little") == (
            write.value
        )
    history = session.history("ticks")
    assert [(c.icount, c.value) for c in history] == [(w.icount, w.value) for w in writes]
    assert history.initial == 0


def _vector_taken(session: api.Session, icount: int) -> int:
    """The vector of the interrupt taken at `icount`: its handler stub is `vec_N`."""
    session.seek(icount)
    session.stepi(1)
    name = session.symbol(session.registers["eip"]) or ""
    assert name.startswith("vec_"), name
    return int(name[4:].split("+")[0])


def test_keyboard_and_com1_interrupts_in_a_window(session: api.Session) -> None:
    recorded = [event.icount for event in session.events("interrupt")]
    start, end = recorded[0], recorded[-1] + 1  # a window inside the recording
    rows = list(session.interrupts(KBD_COM1, start, end))
    expected = [i for i in recorded if start <= i < end and _vector_taken(session, i) in KBD_COM1]
    assert [row.icount for row in rows] == expected
    assert IRQ_VECTOR + 4 in {row.vector for row in rows}  # COM1 input arrived
    everything = list(session.interrupts(None, start, end))
    assert [row.icount for row in everything] == [i for i in recorded if start <= i < end]


def test_the_repl_asks_the_same(session: api.Session) -> None:
    out, err = io.StringIO(), io.StringIO()
    repl = Repl(session, out, err, show_progress=False)
    calls = list(session.calls("frame_alloc", nargs=0))
    repl.execute("calls frame_alloc 0")
    table = out.getvalue()
    assert f"{len(calls)} rows; goto N goes to row N" in table, table + err.getvalue()
    for index, call in enumerate(calls):
        assert f"{index:>5} {call.icount:>14}  ()" in table
        assert f"{call.eax:#x}" in table
    repl.execute("goto 2")
    assert session.icount == calls[2].icount
    assert "<frame_alloc>" in out.getvalue().splitlines()[-1]
    repl.execute("history ticks")
    assert "0x1         0x0" in out.getvalue()
    repl.execute("interrupts 0x31 0x34 --from 0")
    assert " 0x34  external" in out.getvalue()
    assert err.getvalue() == ""


def test_gdb_monitor_asks_the_same(trace: Path, session: api.Session) -> None:  # noqa: F811
    writes = list(session.accesses("ticks"))[1:]  # after the BSS clearing
    with (
        rdebug_gdb_server("replay", str(trace)) as address,
        attached_gdb(address, KERNEL) as gdb,
    ):
        text, _ = gdb.run("monitor history ticks")
        assert f"{len(writes)} rows" in text, text
        for write in writes:
            assert f"{write.icount:>14}  {write.value:>#10x}" in text
        gdb.run(f"monitor goto {len(writes) - 1}")  # the last one
        gdb.run("flushregs")
        assert gdb.pc() == writes[-1].pc
        text, _ = gdb.run("monitor calls frame_alloc 0")
        assert "<proc_create+" in text and "0x200000" in text, text


def test_the_command_line_gives_json_rows(trace: Path, session: api.Session) -> None:  # noqa: F811
    def query(*args: str) -> list[dict[str, object]]:
        result = subprocess.run(
            [sys.executable, "-m", "rdebug", "query", str(trace), *args, "--json"],
            capture_output=True,
            timeout=300,
            cwd=ROOT,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        rows = json.loads(result.stdout)
        assert isinstance(rows, list) and all("icount" in row for row in rows)
        return rows

    calls = [asdict(c) for c in session.calls("frame_alloc", 2)]
    assert query("calls", "frame_alloc", "--nargs", "2") == [
        {**c, "args": list(c["args"])} for c in calls
    ]
    assert query("accesses", "ticks", "--kind", "write") == [
        asdict(w) for w in session.accesses("ticks")
    ]
    start = next(session.events("interrupt")).icount
    assert query("interrupts", "0x31", "0x34", "--from", str(start)) == [
        asdict(i) for i in session.interrupts(KBD_COM1, start)
    ]
    assert query("io", "0x3f8-0x3ff", "--direction", "in", "--to", "100000") == [
        asdict(p) for p in session.io("0x3f8-0x3ff", "in", end=100000)
    ]

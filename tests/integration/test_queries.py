"""Queries over a recording (rdebug/replay/query.py through the Session) against a
reference computed the slow way: stepping the recording one instruction at a time
through the Session, decoding each instruction and comparing memory and registers.

bug.elf: every write/read of `acct.balance`, its history, every call of `deposit` (with
its argument and return value), its port I/O and its timer interrupts; timer.elf: the
writes to `ticks` and IRQ0.  A hypothesis property test runs the queries over random
windows and compares them with the reference cut to the window.
"""

from __future__ import annotations

import io
import os
import re
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import capstone
import pytest
from capstone import x86_const as CX
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document

from rdebug import api
from rdebug.repl import Completions, Repl
from rdebug.replay import query as query_engine
from tests.conftest import EVENT_TIMEOUT, HeldOperation, long_crc_trace, record_cli
from tests.unit.test_repl import Screen

BALANCE = "acct+16"


@dataclass
class Reference:
    """What stepping the whole recording saw."""

    end: int
    writes: list[tuple[int, int, int]] = field(default_factory=list)  # icount, pc, after
    reads: list[tuple[int, int]] = field(default_factory=list)  # icount, pc
    changes: list[tuple[int, int, int]] = field(default_factory=list)  # icount, value, prev
    calls: list[tuple[int, int, int, int | None, int | None]] = field(default_factory=list)
    ports: list[tuple[int, int, str, int]] = field(default_factory=list)  # icount, port, dir, v
    initial: dict[int, int] = field(default_factory=dict)  # value of the variable at icounts


def _overlaps(ea: int, size: int, addr: int, length: int) -> bool:
    return ea < addr + length and addr < ea + size


def _reference(
    trace: Path, variable: str, function: str | None, start: int = 0, end: int | None = None
) -> Reference:
    """Step the recording from `start` to `end` (its end), one instruction at a time."""
    engine = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_32)
    engine.detail = True
    with api.open(trace) as session:
        addr = session.address(variable)
        entry = session.address(function) if function else None
        end = session.end_icount if end is None else end
        ref = Reference(end)
        session.seek(start)
        value = int.from_bytes(session.read_memory(addr, 4), "little")
        open_calls: list[list[int | None]] = []  # [icount, esp, ret, arg0, return icount, eax]
        all_calls: list[list[int | None]] = []
        while session.icount < end:
            icount = session.icount
            regs = dict(session.registers)
            ref.initial[icount] = value
            pc = regs["eip"]  # flat segments in these guests
            insn = next(engine.disasm(session.read_memory(pc, 15), pc, 1))
            reads_it = writes_it = False
            for op in insn.operands:
                if op.type != CX.X86_OP_MEM or insn.mnemonic == "lea":
                    continue
                mem = op.mem
                ea = mem.disp
                if mem.base:
                    ea += regs[insn.reg_name(mem.base)]
                if mem.index:
                    ea += regs[insn.reg_name(mem.index)] * mem.scale
                if _overlaps(ea & 0xFFFFFFFF, op.size, addr, 4):
                    reads_it |= bool(op.access & capstone.CS_AC_READ)
                    writes_it |= bool(op.access & capstone.CS_AC_WRITE)
            esp = regs["esp"]
            if pc == entry:
                ret = int.from_bytes(session.read_memory(esp, 4), "little")
                # an interrupt taken at the entry comes back to it at the same depth
                if not any(c[1] == esp and c[2] == ret for c in open_calls):
                    arg = int.from_bytes(session.read_memory(esp + 4, 4), "little")
                    call: list[int | None] = [icount, esp, ret, arg, None, None]
                    open_calls.append(call)
                    all_calls.append(call)
            for call in reversed(open_calls):
                if call[2] == pc and call[1] is not None and esp == call[1] + 4:
                    call[4], call[5] = icount, regs["eax"]
                    open_calls.remove(call)
                    break
            if insn.mnemonic in ("in", "out"):
                port_op = insn.operands[1] if insn.mnemonic == "in" else insn.operands[0]
                port = port_op.imm if port_op.type == CX.X86_OP_IMM else regs["edx"] & 0xFFFF
                size = (insn.operands[0] if insn.mnemonic == "in" else insn.operands[1]).size
            session.stepi(1)
            if insn.mnemonic == "out":
                ref.ports.append((icount, port, "out", regs["eax"] & ((1 << (8 * size)) - 1)))
            elif insn.mnemonic == "in":
                after_eax = session.registers["eax"]
                ref.ports.append((icount, port, "in", after_eax & ((1 << (8 * size)) - 1)))
            new = int.from_bytes(session.read_memory(addr, 4), "little")
            if reads_it:
                ref.reads.append((icount, pc))
            if writes_it:
                ref.writes.append((icount, pc, new))
            if new != value:
                ref.changes.append((icount, new, value))
                value = new
        ref.calls = [(c[0], c[2], c[3], c[4], c[5]) for c in all_calls]  # type: ignore[misc]
        return ref


@pytest.fixture(scope="module")
def bug(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Reference]:
    trace = record_cli("bug", tmp_path_factory.mktemp("q") / "bug")
    return trace, _reference(trace, BALANCE, "deposit")


@pytest.fixture
def session(bug: tuple[Path, Reference]) -> Iterator[api.Session]:
    with api.open(bug[0]) as opened:
        yield opened


def _writes(session: api.Session, start: int | None = None, end: int | None = None) -> list:
    return [
        (row.icount, row.pc, row.value) for row in session.accesses(BALANCE, 4, "write", start, end)
    ]


def _in(rows: list, start: int, end: int) -> list:
    return [row for row in rows if start <= row[0] < end]


def test_writes_reads_and_history_equal_stepping(
    bug: tuple[Path, Reference], session: api.Session
) -> None:
    ref = bug[1]
    assert len(ref.writes) > 1000  # deposit writes it 10 times a round, the IRQ once
    assert _writes(session) == ref.writes
    reads = [(r.icount, r.pc) for r in session.accesses(BALANCE, 4, "read")]
    assert reads == ref.reads
    both = list(session.accesses(BALANCE, 4, "access"))
    assert sorted((r.icount, r.kind) for r in both) == sorted(
        [(i, "read") for i, _ in ref.reads] + [(i, "write") for i, _, _ in ref.writes]
    )
    history = session.history(BALANCE)
    assert [(c.icount, c.value, c.previous) for c in history] == ref.changes
    assert history.initial == ref.initial[0]
    # the corrupting write is the timer handler's, not deposit's
    assert any(c.where and c.where.startswith("timer_irq") for c in session.history(BALANCE))
    assert session.icount == 0


def test_every_row_is_where_it_says(session: api.Session) -> None:
    for row in list(session.accesses(BALANCE, 4, "write", 9000, 20000)):
        session.seek(row.icount)
        assert session.registers["eip"] == row.pc
        assert int.from_bytes(session.read_memory(row.addr, row.size), "little") == row.before
        session.stepi(1)
        assert int.from_bytes(session.read_memory(row.addr, row.size), "little") == row.value


def test_calls_equal_stepping(bug: tuple[Path, Reference], session: api.Session) -> None:
    ref = bug[1]
    rows = list(session.calls("deposit", nargs=1))
    assert len(rows) > 1000
    assert [(c.icount, c.return_address, c.args[0], c.return_icount, c.eax) for c in rows] == (
        ref.calls
    )
    assert all(c.returned and c.depth == 0 and c.caller.startswith("one_round") for c in rows)
    # deposit(i) returns the balance: the sum of 1..i in the first round
    assert [c.eax for c in rows[:10]] == [sum(range(1, i + 1)) for i in range(1, 11)]


def test_io_equals_stepping(bug: tuple[Path, Reference], session: api.Session) -> None:
    rows = list(session.io((0, 0xFFFF)))
    assert [(r.icount, r.port, r.direction, r.value) for r in rows] == bug[1].ports
    com1 = session.io("0x3f8-0x3ff", "out")
    assert all(r.direction == "out" and 0x3F8 <= r.port <= 0x3FF for r in com1)


def test_interrupts_are_the_recorded_ones(session: api.Session) -> None:
    rows = list(session.interrupts())
    recorded = [event.icount for event in session.events("interrupt")]
    assert [r.icount for r in rows] == recorded and rows
    assert {r.vector for r in rows} == {32}  # IRQ0 through the remapped PIC
    assert list(session.interrupts(vector=33)) == []
    for row in rows[:2]:  # the handler's first instruction runs next
        session.seek(row.icount)
        assert session.registers["eip"] == row.pc
    assert list(session.exceptions()) == []


def test_a_query_leaves_the_session_where_the_caller_put_it(
    bug: tuple[Path, Reference], session: api.Session
) -> None:
    session.seek(30000)
    rows = session.accesses(BALANCE, 4, "write", 1000, 12000)
    seen = []
    for row in rows:
        seen.append((row.icount, row.pc, row.value))
        session.seek(row.icount)  # look at each one
    assert seen == _in(bug[1].writes, 1000, 12000)
    assert session.icount == seen[-1][0]
    assert session.first(session.accesses(BALANCE, start=5000)) is not None
    assert session.icount == seen[-1][0]
    last = session.last(session.accesses(BALANCE, end=20000))
    assert last is not None and last.icount == _in(bug[1].writes, 0, 20000)[-1][0]


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_random_windows_agree_with_stepping(
    bug: tuple[Path, Reference], session: api.Session, data: st.DataObject
) -> None:
    ref = bug[1]
    start = data.draw(st.integers(0, ref.end))
    end = data.draw(st.integers(start, ref.end))
    here = data.draw(st.integers(0, ref.end))
    session.seek(here)
    assert _writes(session, start, end) == _in(ref.writes, start, end)
    changes = [(c.icount, c.value, c.previous) for c in session.history(BALANCE, 4, start, end)]
    assert changes == _in(ref.changes, start, end)
    calls = [
        (c.icount, c.return_address, c.args[0], c.return_icount if c.returned else None)
        for c in session.calls("deposit", 1, start, end)
    ]
    expected = [
        (i, ret, arg, back if back is not None and back < end else None)
        for i, ret, arg, back, _eax in _in(ref.calls, start, end)
    ]
    assert calls == expected
    ports = [
        (r.icount, r.port, r.direction, r.value) for r in session.io((0, 0xFFFF), None, start, end)
    ]
    assert ports == _in(ref.ports, start, end)
    taken = [r.icount for r in session.interrupts(None, start, end)]
    assert taken == [e.icount for e in session.events("interrupt", start, end)]
    assert session.icount == here


@pytest.fixture(scope="module")
def long_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return long_crc_trace(tmp_path_factory)


def test_ctrl_c_stops_a_query_in_the_repl_keeping_the_rows(
    long_trace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, err = io.StringIO(), Screen("replaying at icount")
    with api.open(long_trace) as session:
        session.seek(1000)
        repl = Repl(session, out, err)  # the progress bar on (err)
        # the query is held at its first progress report until Ctrl-C has interrupted
        # the session: it cannot end first, whatever the machine's speed
        held = HeldOperation(session, monkeypatch)

        def press_ctrl_c() -> None:
            held.wait_reached()
            assert err.shown.wait(EVENT_TIMEOUT), "the progress bar never showed"
            os.kill(os.getpid(), signal.SIGINT)

        presser = threading.Thread(target=press_ctrl_c)
        presser.start()
        try:
            assert repl.execute("accesses crc_buffer 4 read")  # not a failure: rows so far
        finally:
            presser.join()
        table = out.getvalue()
        stopped = re.search(r"interrupted at icount (\d+): the rows found so far", table)
        assert stopped, table + err.getvalue()
        assert int(stopped[1]) == held.icount
        rows = [line.split() for line in table.splitlines() if line[:5].strip().isdigit()]
        assert len(rows) >= 3
        assert all(int(row[1]) < held.icount for row in rows)
        assert session.icount == 1000  # back where it was
        # the rows so far are the query's first rows, and goto reaches them
        monkeypatch.undo()
        session.progress = None
        query = session.accesses("crc_buffer", 4, "read")
        first = [r.icount for _, r in zip(range(len(rows)), query, strict=False)]
        assert [int(row[1]) for row in rows] == first
        assert repl.execute("goto 2")
        assert session.icount == int(rows[2][1])


def test_queries_leave_the_timeline_as_a_straight_run(bug: tuple[Path, Reference]) -> None:
    """After queries of every kind (hooks, breakpoints, probes, their checkpoints), going
    anywhere gives the state of a straight replay, and cont/watchpoints work as before."""
    trace, ref = bug
    targets = [ref.end, 9384, 40668, 123, 40669, 25011]
    with api.open(trace) as fresh:
        straight = {}
        for target in sorted(targets):
            fresh.seek(target)
            straight[target] = fresh.state_hash()
    with api.open(trace) as session:
        session.add_breakpoint("timer_irq")
        list(session.calls("deposit", 2))
        list(session.accesses(BALANCE, 8, "access", 500, 30000))
        list(session.history("sample_index"))
        list(session.interrupts(exceptions=True))
        list(session.io((0x20, 0x3FF)))
        for target in targets:
            session.seek(target)
            assert session.state_hash() == straight[target], target
        session.seek(0)
        stop = session.cont()  # the user's breakpoint still stops, no query's does
        assert stop.where.value == "breakpoint" and session.symbol(stop.addr or 0) == "timer_irq"
        session.remove_breakpoint("timer_irq")
        session.add_watchpoint(BALANCE)
        session.seek(40600)
        stop = session.cont()
        assert stop.where.value == "watchpoint" and session.icount == 40613


def test_the_repl_completes_the_queries(session: api.Session) -> None:
    completer = Completions(Repl(session, io.StringIO(), io.StringIO()))

    def complete(text: str) -> list[str]:
        found = completer.get_completions(Document(text, len(text)), CompleteEvent(True))
        return [c.text for c in found]

    assert complete("acc") == ["accesses"]
    assert complete("history ac") == ["acct"]
    assert complete("calls dep") == ["deposit"]
    assert complete("accesses acct r") == ["read"]
    assert complete("io 0x60 o") == ["out"]
    assert complete("interrupts --f") == ["--from"]


def test_timer_ticks_and_irq0_equal_stepping(tmp_path: Path) -> None:
    """timer.elf: the writes to `ticks` and the IRQ0 interrupts, against stepping: an
    interrupt taken at icount i puts the next instruction in its `isr_stub_N`."""
    trace = record_cli("timer", tmp_path / "timer")
    ref = _reference(trace, "ticks", None)
    taken: list[tuple[int, int]] = []
    with api.open(trace) as session:
        while session.icount < session.end_icount:
            icount = session.icount
            before = session.symbol(session.registers["eip"]) or ""
            session.stepi(1)
            name = session.symbol(session.registers["eip"]) or ""
            stub = name.split("+")[0]
            if stub.startswith("isr_stub_") and not before.startswith(stub):
                taken.append((icount, int(stub[len("isr_stub_") :], 0)))
        assert len(ref.changes) == 50 and [v for _, v, _ in ref.changes] == list(range(1, 51))
        writes = [(w.icount, w.pc, w.value) for w in session.accesses("ticks")]
        assert writes == ref.writes
        assert [(c.icount, c.value) for c in session.history("ticks")] == [
            (i, v) for i, v, _ in ref.changes
        ]
        rows = [(r.icount, r.vector) for r in session.interrupts(exceptions=True)]
        assert rows == taken and {v for _, v in rows} == {32}
        assert [(r.icount, r.vector) for r in session.interrupts(32)] == taken


def test_spans_and_chunks_that_begin_on_a_call(
    bug: tuple[Path, Reference], session: api.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run does not stop at a breakpoint where it starts: a span (or one of the query's
    chunks) beginning exactly at a call's entry or return still sees it."""
    ref = bug[1]
    first, second = ref.calls[0], ref.calls[1]
    rows = list(session.calls("deposit", 1, first[0], second[0] + 1))
    assert [(c.icount, c.return_icount) for c in rows] == [(first[0], first[3]), (second[0], None)]
    monkeypatch.setattr(query_engine, "CHUNK", 7)  # chunk ends land on entries and returns
    rows = list(session.calls("deposit", 1, 1500, 12000))
    expected = [c for c in ref.calls if 1500 <= c[0] < 12000]
    returned = [(i, ret, arg, back, eax) for i, ret, arg, back, eax in expected if back < 12000]
    assert [c for c in expected if c not in returned] == [expected[-1]]  # still running at the end
    assert [(c.icount, c.return_address, c.args[0], c.return_icount, c.eax) for c in rows] == [
        *returned,
        (*expected[-1][:3], None, None),
    ]
    writes = [(w.icount, w.pc, w.value) for w in session.accesses(BALANCE, 4, "write", 1500, 12000)]
    assert writes == _in(ref.writes, 1500, 12000)

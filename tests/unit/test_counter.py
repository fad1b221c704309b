"""The counters on a hand-written snippet: exact counts, partial blocks, breakpoints."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdebug.machine.counter import Counter, StopCause
from rdebug.machine.cpu import Cpu
from rdebug.machine.native_counter import NativeCounter
from tests.oracle.reference_counter import ReferenceCounter

# mov ecx,16 / l: inc eax; inc ebx; loop l / mov esi,0x3000; mov edi,0x4000; mov ecx,5;
# rep movsb / nop; nop; hlt
SNIPPET = bytes.fromhex("b9100000004043e2fcbe00300000bf00400000b905000000f3a49090f4")
BASE = 0x1000
#: 1 + 16*3 (loop) + 3 movs + 6 rep iterations (5 + the final check) + 3 = 61
TOTAL = 61


def _make(kind: type[NativeCounter] | type[ReferenceCounter]) -> tuple[Cpu, Counter]:
    cpu = Cpu(2)
    cpu.write_physical(BASE, SNIPPET)
    cpu.eip = BASE
    return cpu, kind(cpu)


@pytest.fixture(params=[NativeCounter, ReferenceCounter], ids=["native", "reference"])
def counter(request: pytest.FixtureRequest) -> Iterator[tuple[Cpu, Counter]]:
    cpu, counter = _make(request.param)
    yield cpu, counter
    counter.close()
    cpu.close()


def test_counts_every_instruction_start_including_rep_iterations(
    counter: tuple[Cpu, Counter],
) -> None:
    cpu, c = counter
    assert c.execute(1 << 40) is StopCause.HALTED
    assert c.icount == TOTAL
    assert cpu.eip == BASE + len(SNIPPET)


def test_breakpoint_stops_before_the_instruction_and_is_stepped_over_on_resume(
    counter: tuple[Cpu, Counter],
) -> None:
    cpu, c = counter
    loop = BASE + 5
    c.add_breakpoint(loop)
    hits = []
    while (cause := c.execute(1 << 40)) is StopCause.BREAKPOINT:
        assert cpu.eip == loop
        hits.append(c.icount)
    assert cause is StopCause.HALTED
    assert hits == [1 + 3 * i for i in range(16)]
    c.remove_breakpoint(loop)


@settings(max_examples=40, deadline=None)
@given(targets=st.lists(st.integers(min_value=0, max_value=TOTAL), min_size=1, max_size=8))
def test_any_sequence_of_targets_lands_exactly_as_the_reference(targets: list[int]) -> None:
    results = []
    for kind in (NativeCounter, ReferenceCounter):
        cpu, c = _make(kind)
        trace = []
        for target in sorted(targets):
            cause = c.execute(target) if target >= c.icount else None
            trace.append((cause, c.icount, cpu.eip, cpu.read("ecx"), cpu.read("eax")))
        results.append(trace)
        c.close()
        cpu.close()
    assert results[0] == results[1]

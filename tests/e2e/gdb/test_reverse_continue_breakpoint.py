"""reverse-continue goes back to the previous breakpoint hit, with the state of then."""

from __future__ import annotations

from tests.e2e.gdb.conftest import Gdb


def test_reverse_continue_to_the_previous_hit(gdb: Gdb) -> None:
    gdb.run("break isr_dispatch")
    ticks = []
    for _ in range(4):
        text, _ = gdb.run("continue")
        assert "Breakpoint 1" in text
        ticks.append(gdb.value("*(int*)&ticks"))
    assert ticks == sorted(ticks) and ticks[-1] > ticks[0]
    for expected in reversed(ticks[:-1]):
        text, _ = gdb.run("reverse-continue")
        assert "Breakpoint 1" in text
        assert gdb.pc() == gdb.value("isr_dispatch")
        assert gdb.value("*(int*)&ticks") == expected

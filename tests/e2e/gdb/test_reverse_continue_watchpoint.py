"""reverse-continue with a watchpoint stops at the instruction that wrote the value."""

from __future__ import annotations

from tests.e2e.gdb.conftest import Gdb


def test_reverse_watch_shows_the_writing_instruction(gdb: Gdb) -> None:
    gdb.run("watch *(int*)&ticks")
    for _ in range(4):
        text, _ = gdb.run("continue")
        assert "watchpoint 1" in text.lower()
    # gdb reports a write only when it changes the value: ticks 1, 2, 3, 4
    assert gdb.value("*(int*)&ticks") == 4
    text, _ = gdb.run("reverse-continue")
    assert "Old value = 4" in text and "New value = 3" in text
    assert gdb.value("*(int*)&ticks") == 3
    insn, _ = gdb.run("x/i $pc")
    assert "mov" in insn and "0x101000" in insn  # the store into ticks is next
    gdb.run("stepi")
    assert gdb.value("*(int*)&ticks") == 4

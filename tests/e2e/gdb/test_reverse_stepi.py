"""stepi forward recording every pc and register, then reverse-stepi back comparing them."""

from __future__ import annotations

from tests.e2e.gdb.conftest import Gdb

REGISTERS = ("$eax", "$ecx", "$edx", "$ebx", "$esp", "$ebp", "$esi", "$edi", "$eflags")


def test_reverse_stepi_retraces_pcs_and_registers(gdb: Gdb) -> None:
    gdb.run("break guest_main")
    gdb.run("continue")
    seen = []
    for _ in range(25):
        seen.append(gdb.values("$pc", *REGISTERS))
        gdb.run("stepi")
    for expected in reversed(seen):
        gdb.run("reverse-stepi")
        assert gdb.values("$pc", *REGISTERS) == expected

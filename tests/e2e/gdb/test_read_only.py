"""A replay refuses gdb's register and memory writes, with a reason where gdb shows one."""

from __future__ import annotations

from typing import Any

from tests.e2e.gdb.conftest import Gdb

READ_ONLY = "the recording is read-only"


def _errors(records: list[dict[str, Any]]) -> list[str]:
    return [r["payload"]["msg"] for r in records if r.get("message") == "error"]


def test_writes_are_refused_as_read_only(gdb: Gdb) -> None:
    gdb.run("break guest_main")
    gdb.run("continue")
    eax, word = gdb.values("$eax", "*(unsigned *)$esp")
    _, records = gdb.run("set var $eax = 0x1234")
    assert any(READ_ONLY in e for e in _errors(records)), records
    # for M/X gdb 13 prints its own "Cannot access memory" whatever text the stub sends
    _, records = gdb.run("set {unsigned}$esp = 7")
    assert _errors(records), records
    assert gdb.values("$eax", "*(unsigned *)$esp") == [eax, word]

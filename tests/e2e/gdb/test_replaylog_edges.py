"""At the edges of the recording gdb is told replaylog begin/end and the target lives on."""

from __future__ import annotations

from tests.e2e.gdb.conftest import Gdb


def test_reverse_continue_from_the_start_reports_the_beginning(gdb: Gdb) -> None:
    text, _ = gdb.run("reverse-continue")
    assert "No more reverse-execution history" in text
    assert gdb.pc() == gdb.value("_start")


def _icount(gdb: Gdb) -> tuple[int, int]:
    words = gdb.run("monitor info replay")[0].split()
    return int(words[1]), int(words[3])  # "icount N of END ..."


def test_continue_to_the_end_and_back(gdb: Gdb) -> None:
    text, _ = gdb.run("continue")
    assert "No more reverse-execution history" in text
    icount, end = _icount(gdb)
    assert icount == end
    gdb.run("reverse-stepi")
    assert _icount(gdb) == (end - 1, end)
    text, _ = gdb.run("stepi")
    text, _ = gdb.run("stepi")  # nothing after the end: gdb is told so, the target lives
    assert "No more reverse-execution history" in text
    assert _icount(gdb) == (end, end)


def test_reverse_stepi_at_icount_0(gdb: Gdb) -> None:
    assert _icount(gdb)[0] == 0
    text, _ = gdb.run("reverse-stepi")
    assert "No more reverse-execution history" in text
    assert _icount(gdb)[0] == 0 and gdb.pc() == gdb.value("_start")

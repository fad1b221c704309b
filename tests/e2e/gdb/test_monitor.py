"""monitor commands: info replay, replay_seek, savevm/loadvm, replay_break."""

from __future__ import annotations

from tests.e2e.gdb.conftest import Gdb


def test_monitor_seek_savevm_loadvm(gdb: Gdb) -> None:
    text, _ = gdb.run("monitor replay_seek 3000")
    assert "icount 3000" in text
    gdb.run("flushregs")
    pc = gdb.pc()
    assert "saved mark at icount 3000" in gdb.run("monitor savevm mark")[0]
    gdb.run("monitor replay_seek 10")
    gdb.run("flushregs")
    assert "loaded mark: icount 3000" in gdb.run("monitor loadvm mark")[0]
    gdb.run("flushregs")
    assert gdb.pc() == pc
    info, _ = gdb.run("monitor info replay")
    assert "icount 3000 of" in info and "mark (icount 3000)" in info
    assert "mark" in gdb.run("monitor info snapshots")[0]


def test_monitor_replay_break_stops_continue(gdb: Gdb) -> None:
    gdb.run("monitor replay_break 4000")
    gdb.run("continue")
    assert "icount 4000 of" in gdb.run("monitor info replay")[0]

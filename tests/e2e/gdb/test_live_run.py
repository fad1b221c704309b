"""rdebug run GUEST --gdb: forward-only live debugging with a real gdb."""

from __future__ import annotations

from tests.conftest import GUESTS
from tests.e2e.gdb.conftest import attached_gdb, rdebug_gdb_server


def test_live_run_breaks_steps_and_has_no_history() -> None:
    guest = GUESTS / "timer.elf"
    with (
        rdebug_gdb_server("run", str(guest), "--serial", "null", "-m", "8") as address,
        attached_gdb(address, guest) as gdb,
    ):
        gdb.run("break timer_irq")
        text, _ = gdb.run("continue")
        assert "Breakpoint 1" in text and gdb.pc() == gdb.value("timer_irq")
        before = gdb.pc()
        gdb.run("stepi")
        assert gdb.pc() != before
        _, records = gdb.run("reverse-stepi")
        errors = [str(r.get("payload")) for r in records if r.get("message") == "error"]
        assert errors and "does not support" in errors[0], records
        gdb.run("delete")
        text, _ = gdb.run("continue")
        assert "exited with code 01" in text  # the guest's exit port status

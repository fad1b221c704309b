"""loadvm writes only the RAM pages that differ (issue 18: it rebuilt the whole RAM): the
state it reaches must still be exactly a straight replay's, from anywhere, both ways."""

from __future__ import annotations

from pathlib import Path

import pytest

import rdebug
from rdebug.api import Trace
from tests.conftest import record_cli, straight_hash


@pytest.fixture(scope="module")
def usermode_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("loadvm") / "usermode"
    return record_cli("usermode", folder, "-m", "8", "--serial", "null")


def test_loadvm_from_anywhere_equals_a_straight_replay(usermode_trace: Path) -> None:
    trace = Trace.open(usermode_trace)
    with rdebug.open(usermode_trace) as session:
        end = session.end_icount
        marks = {"early": end // 5, "late": end * 4 // 5}
        for name, icount in marks.items():
            session.seek(icount)
            session.savevm(name)
        # from later and from earlier, to each snapshot and to init
        for start, name in [(end, "early"), (0, "late"), (end // 2, "init"), (end, "late")]:
            session.seek(start)
            session.loadvm(name)
            at = marks.get(name, 0)
            assert session.icount == at
            assert session.state_hash() == straight_hash(trace, at), (start, name)
            session.seek(min(at + 1000, end))  # and the replay goes on exactly
            assert session.state_hash() == straight_hash(trace, min(at + 1000, end))

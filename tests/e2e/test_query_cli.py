"""`rdebug query` and `rdebug report` at the command line: bad input is one clear line
and exit status 2; Ctrl-C stops a long query with the rows found so far (exit 130, the
JSON list complete)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, long_crc_trace, record_cli


def _rdebug(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rdebug", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        check=False,
    )


@pytest.fixture(scope="module")
def hello(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return record_cli("hello", tmp_path_factory.mktemp("q") / "hello")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["accesses", "nosuch"], "'nosuch': no such symbol in the guest"),
        (["calls"], "query calls: one FUNCTION"),
        (["io", "0x3f8", "0x3f9"], "query io: one PORT[-PORT]"),
        (["interrupts", "300"], "a vector is 0 to 255"),
        (["history", "guest_main", "--length", "9"], "history: LEN is 1 to 8 bytes"),
        (["accesses", "guest_main", "--from", "9", "--to", "3"], "ends (3) before it starts"),
        (["accesses", "guest_main", "--from", "99999"], "outside the recording"),
        (["frobs", "x"], "invalid choice: 'frobs'"),
    ],
)
def test_bad_queries_are_one_clear_line(hello: Path, args: list[str], message: str) -> None:
    result = _rdebug("query", hello, *args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


def test_bad_report_is_one_clear_line_and_writes_nothing(hello: Path, tmp_path: Path) -> None:
    out = tmp_path / "page.html"
    result = _rdebug("report", hello, "-o", out, "--history", "nosuch")
    assert result.returncode == 2 and "'nosuch': no such symbol" in result.stderr
    assert result.stderr.count("\n") == 1 and not out.exists()
    result = _rdebug("report", tmp_path / "missing", "-o", out)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and not out.exists()


def test_a_query_on_a_missing_trace(tmp_path: Path) -> None:
    result = _rdebug("query", tmp_path / "nothing", "interrupts")
    assert result.returncode == 2 and result.stderr.startswith("rdebug: error: ")
    assert result.stderr.count("\n") == 1


def test_ctrl_c_keeps_the_rows_so_far(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The query cannot end before Ctrl-C: it has 20000 rows to print, and blocks on the
    pipe (which this test does not drain) long before the last."""
    trace = long_crc_trace(tmp_path_factory, passes=20000)
    command = ["query", str(trace), "accesses", "crc_buffer", "--kind", "read", "--json"]
    with subprocess.Popen(
        [sys.executable, "-m", "rdebug", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        text=True,
    ) as query:
        assert query.stdout is not None and query.stderr is not None
        head = query.stdout.readline() + query.stdout.readline()  # rows are coming
        assert head.startswith("[\n  {"), head
        query.send_signal(signal.SIGINT)
        rest = query.stdout.read()
        status = query.wait(120)
        err = query.stderr.read()
    assert status == 130, err
    assert err.startswith("rdebug: interrupted at icount ") and err.count("\n") == 1, err
    rows = json.loads(head + rest)
    stopped = int(err.split()[-1])
    assert 2 <= len(rows) < 20000 and all(row["icount"] < stopped for row in rows)
    assert [row["icount"] for row in rows] == sorted(row["icount"] for row in rows)

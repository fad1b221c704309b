"""docs/queries.md, as written: its `$ rdebug ...` console commands run in a scratch
folder (the recording first), and every output line each shows comes out, in order;
its Python example runs."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT
from tests.e2e.test_tutorial import BLOCK, assert_shows, split

DOC = ROOT / "docs" / "queries.md"


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def test_the_queries_page_runs_as_written(tmp_path: Path) -> None:
    (tmp_path / "sample_guests").symlink_to(ROOT / "sample_guests")
    blocks = [(m[1], m[2]) for m in BLOCK.finditer(DOC.read_text())]
    commands = [step for kind, body in blocks if kind == "console" for step in split(body, "$ ")]
    assert len(commands) >= 7
    for command, expected in commands:
        words = shlex.split(command)
        assert words[0] == "rdebug", command
        result = subprocess.run(
            [sys.executable, "-m", "rdebug", *words[1:]],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
            env=_env(),
            check=False,
        )
        assert result.returncode in (0, 1), f"{command}: {result.stderr}"
        assert_shows(expected, result.stdout, command)
    scripts = [body for kind, body in blocks if kind == "python"]
    assert len(scripts) == 1
    result = subprocess.run(
        [sys.executable, "-c", scripts[0]],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=_env(),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "<timer_irq+0xe>" in result.stdout and "1608 1 1621 1" in result.stdout

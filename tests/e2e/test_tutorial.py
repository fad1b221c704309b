"""docs/tutorial.md, followed to the letter: every command in its fenced blocks runs, and
every output line it shows must come out, in order ("..." stands for lines left out).

- ```console: `$ CMD` lines run in a shell (in a scratch folder holding `sample_guests`),
  exit status 0 or 1 (the guest's success); `rdebug replay ... --gdb PORT` starts the
  server in the background (on a free port instead of the shown one); `gdb ...` is the
  gdb of the next ```gdb block; `rdebug repl TRACE` takes the next ```rdebug block.
- ```gdb: `(gdb) CMD` lines, run by a real gdb (pygdbmi) attached to that server, with
  the settings of the shown `gdb -ex ...` command line.
- ```rdebug: `(rdebug) CMD` lines, typed into the REPL (on its standard input).
- ```python: run as a script; the ```text block after it is its output.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.e2e.gdb.conftest import GDB, attached_gdb

TUTORIAL = ROOT / "docs" / "tutorial.md"
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks() -> list[tuple[str, str]]:
    return [(m[1], m[2]) for m in BLOCK.finditer(TUTORIAL.read_text())]


def split(body: str, prompt: str) -> list[tuple[str, list[str]]]:
    """(command, expected output lines) for each `prompt` line of a block."""
    steps: list[tuple[str, list[str]]] = []
    for line in body.splitlines():
        if line.startswith(prompt):
            steps.append((line[len(prompt) :], []))
        else:
            assert steps, f"output before any command in:\n{body}"
            steps[-1][1].append(line)
    return steps


def assert_shows(expected: list[str], actual: str, what: str) -> None:
    """Every expected line (but "...") is a line of `actual`, in that order."""
    lines = [line.rstrip() for line in actual.splitlines()]
    at = 0
    for want in expected:
        if want.strip() in ("...", ""):
            continue
        try:
            at = lines.index(want.rstrip(), at) + 1
        except ValueError:
            raise AssertionError(f"{what}: {want!r} not shown (in order) in:\n{actual}") from None


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "sample_guests").symlink_to(ROOT / "sample_guests")
    yield tmp_path


@pytest.mark.skipif(GDB is None, reason="gdb is not installed (the tutorial uses it)")
def test_the_tutorial_runs_as_written(workdir: Path) -> None:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    servers: list[subprocess.Popen[str]] = []
    address = ""
    gdb_line = ""
    repl_command = ""
    last_python = ""
    ran = {"console": 0, "gdb": 0, "rdebug": 0, "python": 0}
    try:
        for kind, body in blocks():
            if kind == "console":
                for command, expected in split(body, "$ "):
                    ran["console"] += 1
                    if "--gdb" in command:
                        # [HOST:]PORT as typed: port 0 instead, read back from the banner
                        spec = command.split()[-1]
                        host = spec.rpartition(":")[0]
                        line = command[: -len(spec)] + (f"{host}:0" if host else "0")
                        server = subprocess.Popen(
                            shlex.split(line), cwd=workdir, env=env, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                        )  # fmt: skip
                        servers.append(server)
                        assert server.stderr is not None
                        banner = server.stderr.readline() + server.stderr.readline()
                        found = re.search(r"target remote ([\d.]+:\d+)", banner)
                        assert found, banner
                        address = found[1]
                    elif command.startswith("gdb "):
                        gdb_line = command
                    elif command.startswith("rdebug repl "):
                        repl_command = command
                    else:
                        result = subprocess.run(
                            command, shell=True, cwd=workdir, env=env, text=True,
                            capture_output=True, timeout=300, check=False,
                        )  # fmt: skip
                        assert result.returncode in (0, 1), (command, result.stderr)
                        assert "Traceback" not in result.stderr
                        assert_shows(expected, result.stdout + result.stderr, command)
            elif kind == "gdb":
                assert address and gdb_line, "a gdb block before its server and gdb command"
                settings = re.findall(r"-ex '([^']*)'", gdb_line)
                assert settings[-1].startswith("target remote ")
                program = workdir / gdb_line.split()[-1]
                with attached_gdb(address, program, *settings[:-1]) as gdb:
                    for command, expected in split(body, "(gdb) "):
                        ran["gdb"] += 1
                        text, records = gdb.run(command)
                        assert not any(r.get("message") == "error" for r in records), records
                        assert_shows(expected, text, f"(gdb) {command}")
                for server in servers:
                    server.terminate()
            elif kind == "rdebug":
                assert repl_command, "an rdebug block before `rdebug repl TRACE`"
                steps = split(body, "(rdebug) ")
                ran["rdebug"] += len(steps)
                result = subprocess.run(
                    shlex.split(repl_command), cwd=workdir, env=env, text=True,
                    input="".join(command + "\n" for command, _ in steps),
                    capture_output=True, timeout=300, check=False,
                )  # fmt: skip
                assert result.returncode == 0 and result.stderr == "", result.stderr
                expected = [line for _, lines in steps for line in lines]
                assert_shows(expected, result.stdout, repl_command)
            elif kind == "python":
                ran["python"] += 1
                last_python = body
            elif kind == "text":
                assert last_python, "a text block that follows no python block"
                script = workdir / "tutorial_script.py"
                script.write_text(last_python)
                result = subprocess.run(
                    [sys.executable, str(script)], cwd=workdir, env=env, text=True,
                    capture_output=True, timeout=300, check=False,
                )  # fmt: skip
                assert result.returncode == 0, result.stderr
                assert_shows(body.splitlines(), result.stdout, "the python script")
                last_python = ""
        assert not last_python, "a python block without its output"
        assert all(ran.values()), ran
    finally:
        for server in servers:
            server.kill()
            server.wait()
            if server.stderr is not None:
                server.stderr.close()

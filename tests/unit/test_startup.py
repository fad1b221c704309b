"""What a command imports: `rdebug run` and `rdebug --help` load only what they use.

Start-up time is mostly imports (issue 16: a tiny guest's whole `rdebug run` is most of
it), so these tests pin down which modules stay out of a command's way: the replay's
modules (a run records and replays nothing), the Linux boot code (for an ELF guest),
numpy, the gdb stub, the REPL...  They check `sys.modules` in a fresh interpreter after
the command, never the clock.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HELLO = ROOT / "sample_guests" / "build" / "hello.elf"

#: A fresh interpreter runs `rdebug ARGS` as `python -m rdebug` does, then lists every
#: module it has imported on stderr, after a marker line (--help exits from argparse).
_CHILD = """
import sys
from rdebug.cli import main
try:
    status = main(sys.argv[1:])
except SystemExit as exc:
    status = exc.code
sys.stdout.flush()
sys.stderr.write("\\n--modules--\\n" + "\\n".join(sorted(sys.modules)) + "\\n")
sys.exit(status)
"""

#: Imported by no `rdebug run` of an ELF guest (each is some milliseconds of start-up).
NOT_FOR_RUN = (
    # the replay: a recording's log, events, queries, checkpoints and snapshots
    "rdebug.replay.log",
    "rdebug.replay.codec",
    "rdebug.replay.dump",
    "rdebug.replay.events",
    "rdebug.replay.player",
    "rdebug.replay.playback",
    "rdebug.replay.query",
    "rdebug.replay.recording",
    "rdebug.replay.timeline",
    "rdebug.snapshots.checkpoints",
    "rdebug.snapshots.named",
    "rdebug.snapshots.vmstate",
    "rdebug.snapshots.qcow2",
    # a Linux kernel's boot (bzImage), the devices a plain machine does not have (no
    # drive, no NIC, no sound card), host devices asked for by options
    "rdebug.machine.linux",
    "rdebug.machine.devices.ide",
    "rdebug.machine.devices.ne2000",
    "rdebug.machine.devices.sb16",
    "rdebug.host.netdev",
    "rdebug.host.wav",
    # the front ends of the other commands, gdb's stub
    "rdebug.cli.replaying",
    "rdebug.cli.querying",
    "rdebug.cli.serving",
    "rdebug.cli.manpage",
    "rdebug.gdb_target",
    "rdebug.gdbstub",
    "rdebug.repl",
    "rdebug.monitor",
    "rdebug.report",
    # third-party and standard modules only those need (pyelftools reads symbol tables:
    # a run loads the program headers only; blocks are decoded in C with capstone's
    # library, its Python binding is for disassembly and the rare store search)
    "capstone",
    "elftools",
    "numpy",
    "prompt_toolkit",
    "pygdbmi",
    "shtab",
    "json",
    # the machine's debug messages use it once something else imported it (debuglog.py)
    "logging",
    # digests: a run computes none (a recording's guest spec and state hashes do; its
    # import loads OpenSSL, ~2.5 ms)
    "hashlib",
    "_hashlib",
)

#: Imported by no `rdebug --help`: the whole machine and its libraries.
NOT_FOR_HELP = (
    "rdebug.api",
    "rdebug.live",
    "rdebug.machine",
    "rdebug.replay",
    "rdebug.snapshots",
    "rdebug.host",
    "rdebug.cli.running",
    "unicorn",
    "capstone",
    "elftools",
    "numpy",
)


def _imported(*args: str, says: str = "") -> tuple[int, str, set[str]]:
    """Exit status, standard output and imported modules of `rdebug ARGS`, whose
    standard error holds nothing or a line starting with `says`."""
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert "\n--modules--\n" in result.stderr, result.stderr
    errors, _, listing = result.stderr.partition("\n--modules--\n")
    assert errors.strip().startswith(says) if says else not errors.strip(), errors
    return result.returncode, result.stdout, set(listing.split())


def _loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    """Those of `names` that are in `modules`, a package with any of its modules."""
    return sorted(m for m in modules for name in names if m == name or m.startswith(name + "."))


def test_run_imports_nothing_of_the_replay_nor_of_other_commands() -> None:
    status, out, modules = _imported("run", str(HELLO))
    assert (status, out) == (1, "Hello from rdebug guest\n")  # the guest ran, and succeeded
    assert "rdebug.machine.machine" in modules  # (the check below looks at the right list)
    assert _loaded(modules, NOT_FOR_RUN) == []


#: Imported by no `rdebug record`: what only going back in time needs (its initial
#: snapshot is written without numpy), the devices the machine does not have, and the
#: front ends of the other commands.
NOT_FOR_RECORD = (
    "rdebug.snapshots.checkpoints",
    "rdebug.machine.devices.ne2000",
    "rdebug.machine.devices.sb16",
    "rdebug.replay.player",
    "rdebug.replay.query",
    "rdebug.gdbstub",
    "rdebug.repl",
    "capstone",
    "numpy",
    "prompt_toolkit",
    "pygdbmi",
)


def test_record_imports_no_numpy_nor_checkpoints_nor_capstone(tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    status, out, modules = _imported(
        "record", "-o", str(trace), str(HELLO), says="rdebug: recorded "
    )
    assert (status, out) == (1, "Hello from rdebug guest\n")
    assert "rdebug.snapshots.vmstate" in modules  # the recording's initial snapshot
    assert (trace / "snapshots.qcow2").is_file()
    assert _loaded(modules, NOT_FOR_RECORD) == []


@pytest.mark.parametrize("args", [("--help",), ("run", "--help"), ("help", "replay")])
def test_help_imports_no_machine(args: tuple[str, ...]) -> None:
    status, out, modules = _imported(*args)
    assert status == 0
    assert out.startswith("usage: rdebug")
    assert "rdebug.cli.parser" in modules
    assert _loaded(modules, NOT_FOR_HELP) == []


def test_the_names_api_offers_from_the_replay_are_the_same_objects() -> None:
    """rdebug.api imports the replay's modules, the NIC's and the sound card's on first
    use of one of their names."""
    code = (
        "import sys, rdebug.api as api\n"
        "assert 'rdebug.replay.query' not in sys.modules\n"
        "from rdebug.replay import events, player, query\n"
        "from rdebug.snapshots import named\n"
        "assert api.Calls is query.Calls and api.parse_kind is events.parse_kind\n"
        "assert api.NamedSnapshot is named.NamedSnapshot and api.Player is player.Player\n"
        "assert 'rdebug.machine.devices.sb16' not in sys.modules\n"
        "from rdebug.machine.devices import ne2000, sb16\n"
        "assert api.NicConfig is ne2000.NicConfig and api.Sb16Config is sb16.Sb16Config\n"
        "assert 'Query' in dir(api) and not hasattr(api, 'NoSuchThing')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert result.returncode == 0, result.stderr


def test_the_program_collects_no_garbage_while_it_starts_and_does_while_the_guest_runs() -> None:
    """`main()` as the program keeps the collector off while the command's modules load,
    freezes what they made, and has it on again while the guest runs (a long run makes
    garbage); `main(argv)`, from a script, leaves the collector alone."""
    code = f"""
import gc, sys
import rdebug.live
seen = []
original = rdebug.live.LiveSession.run
def run(self, target=None):
    seen.append((gc.isenabled(), gc.get_freeze_count() > 0))
    return original(self, target)
rdebug.live.LiveSession.run = run
from rdebug.cli import main
sys.argv = ["rdebug", "run", "--serial", "null", {str(HELLO)!r}]
status = main()
print(status, seen, gc.isenabled())
gc.unfreeze()
status = main(sys.argv[1:])
print(status, seen[1:], gc.isenabled(), gc.get_freeze_count())
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "1 [(True, True)] True",  # the program: on, with start-up's objects frozen
        "1 [(True, False)] True 0",  # a script's call: untouched
    ]

"""Keyboard and mouse input through the seam: guest output, record/replay, seeking, CLI.

The `keyboard` sample guest takes keys through IRQ1 and mouse packets through IRQ12 and
echoes them on COM1; every input is logged as EVENT_ASYNC INPUT events and replays at
the same instruction, giving the same output and state hash.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rdebug.host.keys import ListInputSource, parse_mouse_script, text_to_keys
from rdebug.host.sources import LiveInputs, ScriptedInputs
from rdebug.machine.inputs import AsyncInput, ExternalInputs, KeyInput, MouseInput
from rdebug.machine.loader import load_image
from rdebug.machine.machine import Machine, MachineConfig, StopEvent, StopReason
from rdebug.replay.log import AsyncInput as LoggedInput
from rdebug.replay.log import AsyncInputSync, InputKind, Reader
from rdebug.replay.player import Player, recording_end
from rdebug.replay.recorder import Recorder
from rdebug.replay.timeline import Timeline
from rdebug.replay.trace import Trace, load_guest
from tests.conftest import EXPECTED, GUESTS, ROOT, Capture

CONFIG = MachineConfig(memory_mb=8)
CLOCK_NS = 1_764_000_000_000_000_000
BANNER = b"keyboard: type, q quits\n"


def _run(inputs: ExternalInputs) -> tuple[StopEvent, bytes, str]:
    out = Capture()
    machine = Machine(CONFIG, inputs, [out])
    try:
        machine.load(load_image(GUESTS / "keyboard.elf"))
        stop = machine.run(5_000_000)
        return stop, bytes(out.data), machine.state_hash()
    finally:
        machine.close()


def _record(inputs: ExternalInputs, log: Path) -> tuple[StopEvent, bytes, str]:
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        recorder = Recorder(inputs, fd)
        result = _run(recorder)
        recorder.finish(result[0].icount)
    finally:
        os.close(fd)
    return result


def _replay(log: Path) -> tuple[StopEvent, bytes, str]:
    with log.open("rb") as stream:
        player = Player(stream, str(log))
        result = _run(player)
    player.verify_end(result[0].icount, f"stopped ({result[0].reason.value})")
    return result


def _live(keys: str, mouse: str = "") -> LiveInputs:
    sources = [ListInputSource(text_to_keys(keys))]
    if mouse:
        sources.append(ListInputSource(parse_mouse_script(mouse)))
    return LiveInputs(clock=lambda: CLOCK_NS, input_sources=sources)


def _log_inputs(log: Path) -> list[tuple[int, LoggedInput | AsyncInputSync]]:
    with log.open("rb") as stream:
        found: list[tuple[int, LoggedInput | AsyncInputSync]] = []
        reader = Reader(stream, "log")
        for event in reader:
            if isinstance(event, LoggedInput | AsyncInputSync):
                found.append((reader.icount, event))
        return found


def test_typed_text_reaches_the_guest_through_irq1() -> None:
    text = "Hello, World! ~{|}\n"
    stop, out, _ = _run(_live(text + "q"))
    assert stop.reason is StopReason.EXIT
    # one byte per key event (no E0 keys), and the make code of q
    count = len(text_to_keys(text)) + 1
    assert out == BANNER + text.encode() + f"\nbye: {count} key bytes, 0 packets\n".encode()


def test_same_output_as_qemu_typing_the_same_keys() -> None:
    """expected/keyboard.txt: QEMU's monitor typed these keys (sample_guests/README.md)."""
    _, out, _ = _run(_live("Hello, World!\nq"))
    assert out == (EXPECTED / "keyboard.txt").read_bytes()


def test_modifiers_caps_lock_and_e0_keys() -> None:
    def press(key: int) -> list[tuple[int, AsyncInput]]:
        return [(0, KeyInput(key, True)), (0, KeyInput(key, False))]

    a, caps, ctrl, right_ctrl, up_arrow, q = 0x1E, 0x3A, 0x1D, 0xE01D, 0xE048, 0x10
    events = [
        *press(a),
        *press(caps),
        *press(a),
        *press(caps),
        (0, KeyInput(ctrl, True)),
        *press(0x2E),  # c
        (0, KeyInput(ctrl, False)),
        *press(up_arrow),
        (0, KeyInput(right_ctrl, True)),
        *press(q),  # Ctrl-Q does not quit
        (0, KeyInput(right_ctrl, False)),
        *press(q),
    ]
    stop, out, _ = _run(ScriptedInputs([], CLOCK_NS, events))
    assert stop.reason is StopReason.EXIT
    assert out.startswith(BANNER + b"aA^C<E048><E01D>^Q\nbye:")


def test_mouse_packets_reach_the_guest_through_irq12() -> None:
    # Typed keys and mouse packets take turns byte by byte: enough keys before the q.
    _, out, _ = _run(_live("abcdefgh\nq", "5 3 0\n-10 -20 1\n300 0 4\n0 -1 2\n"))
    text = out.decode()
    moves = re.findall(r"mouse [^\n]*\n", text)
    assert moves == [
        "mouse 5 3 0\n",
        "mouse -10 -20 1\n",
        "mouse 255 0 4 overflow\n",
        "mouse 0 -1 2\n",
    ]
    keys = re.sub(r"mouse [^\n]*\n", "", text.removeprefix(BANNER.decode()))
    assert keys == "abcdefgh\n\nbye: 19 key bytes, 4 packets\n"


def test_record_replay_twice_same_output_and_state(tmp_path: Path) -> None:
    log = tmp_path / "log"
    recorded = _record(_live("The quick brown fox\nq", "1 2 0\n-3 4 1\n"), log)
    assert recorded[0].reason is StopReason.EXIT
    inputs = _log_inputs(log)
    kinds = [event.kind for _, event in inputs if isinstance(event, LoggedInput)]
    assert kinds.count(InputKind.KEY) == len(text_to_keys("The quick brown fox\nq"))
    assert kinds.count(InputKind.REL) == 4
    assert kinds.count(InputKind.BTN) == 6
    assert sum(isinstance(event, AsyncInputSync) for _, event in inputs) == 2
    for _ in range(2):
        replayed = _replay(log)
        assert replayed[1] == recorded[1]
        assert replayed[2] == recorded[2]
        assert replayed[0].icount == recorded[0].icount


@pytest.mark.parametrize("spread", [0, 1, 7919])
def test_keys_at_chosen_instructions_replay_identically(tmp_path: Path, spread: int) -> None:
    keys = text_to_keys("rdebug\nq")
    events: list[tuple[int, AsyncInput]] = [
        (20_000 + i * spread, key) for i, key in enumerate(keys)
    ]
    events.insert(3, (20_000 + 3 * spread, MouseInput(7, -7, 3)))
    log = tmp_path / "log"
    recorded = _record(ScriptedInputs([], CLOCK_NS, events), log)
    assert recorded[1].startswith(BANNER + b"rd")
    assert b"mouse 7 -7 3\n" in recorded[1]
    replayed = _replay(log)
    assert replayed[1:] == recorded[1:]


# -- seeking: backwards to before a key and forwards again --------------------------------


def test_seek_across_key_events_matches_straight_replays(tmp_path: Path) -> None:
    log = tmp_path / "log"
    events: list[tuple[int, AsyncInput]] = [
        (30_000 + 5_000 * i, key) for i, key in enumerate(text_to_keys("xy\nq"))
    ]
    events.insert(2, (32_000, MouseInput(-2, 9, 1)))
    _record(ScriptedInputs([], CLOCK_NS, events), log)
    key_icounts = [icount for icount, _ in _log_inputs(log)]
    first, last = key_icounts[0], key_icounts[-1]

    def straight(icount: int) -> str:
        with log.open("rb") as stream:
            machine = Machine(CONFIG, Player(stream, "log"), [])
            try:
                machine.load(load_image(GUESTS / "keyboard.elf"))
                machine.run(icount)
                assert machine.icount == icount
                return machine.state_hash()
            finally:
                machine.close()

    with log.open("rb") as stream:
        end = recording_end(stream, "log")
        stream.seek(0)
        player = Player(stream, "log")
        machine = Machine(CONFIG, player, [])
        machine.load(load_image(GUESTS / "keyboard.elf"))
        line = Timeline(machine, player, end, min_interval=max(31, end // 8), adaptive=False)
        try:
            targets = [end, first - 1, first, first + 1, last + 3, (first + last) // 2, 5, end]
            for target in targets:
                line.seek(target)
                assert machine.icount == target
                assert machine.state_hash() == straight(target), target
        finally:
            line.close()
            machine.close()


# -- the command line -------------------------------------------------------------------


def _rdebug(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "rdebug", *map(str, args)],
        capture_output=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )


def test_cli_record_replay_dump_with_keyboard_and_mouse(tmp_path: Path) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text("Hi!\nq")
    mouse = tmp_path / "mouse.txt"
    mouse.write_text("# dx dy buttons\n4 -4 1\n")
    trace = tmp_path / "trace"
    guest = GUESTS / "keyboard.elf"
    ran = _rdebug(
        "run", guest, "--serial", "stdio", "--keyboard-input", keys, "--mouse-input", mouse
    )
    recorded = _rdebug(
        "record",
        guest,
        "-o",
        trace,
        "--serial",
        "stdio",
        "--keyboard-input",
        keys,
        "--mouse-input",
        mouse,
    )
    assert recorded.returncode == 1, recorded.stderr
    assert ran.returncode == 1, ran.stderr
    assert recorded.stdout == BANNER + b"Hmouse 4 -4 1\ni!\n\nbye: 13 key bytes, 1 packets\n"
    assert ran.stdout == recorded.stdout
    replayed = _rdebug("replay", trace, "--serial", "stdio")
    assert replayed.returncode == 1, replayed.stderr
    assert replayed.stdout == recorded.stdout
    dumped = _rdebug("dump", trace)
    assert dumped.returncode == 0
    text = dumped.stdout.decode()
    assert "ASYNC INPUT checkpoint=CLOCK_VIRTUAL KEY key=0x2a down" in text  # Shift for H
    assert "ASYNC INPUT checkpoint=CLOCK_VIRTUAL REL axis=Y value=-4" in text
    assert "ASYNC INPUT checkpoint=CLOCK_VIRTUAL BTN button=left down" in text
    assert "ASYNC INPUT_SYNC" in text
    assert Trace.open(trace).info.guest.name == "keyboard.elf"
    assert load_guest(Trace.open(trace).info.guest, Trace.open(trace).guest_image())


@pytest.mark.parametrize("option", ["--keyboard-input", "--mouse-input"])
def test_replay_refuses_device_input(tmp_path: Path, option: str) -> None:
    trace = tmp_path / "trace"
    keys = tmp_path / "keys.txt"
    keys.write_text("q")
    _rdebug(
        "record", GUESTS / "keyboard.elf", "-o", trace, "--serial", "null", "--keyboard-input", keys
    )
    result = _rdebug("replay", trace, option, keys)
    assert result.returncode == 2
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1
    assert f"replay takes no {option}: the trace's log carries every input" in lines[0]


@pytest.mark.parametrize(
    ("option", "content", "message"),
    [
        ("--keyboard-input", "caf\u00e9", "is not on the keyboard"),
        ("--mouse-input", "1 2\n", "line 1: expected 'dx dy buttons'"),
        ("--mouse-input", "1 2 9\n", "buttons is a bit mask"),
        ("--keyboard-input", None, "No such file"),
    ],
)
def test_bad_input_files_give_one_line(
    tmp_path: Path, option: str, content: str | None, message: str
) -> None:
    path = tmp_path / "input.txt"
    if content is not None:
        path.write_text(content)
    result = _rdebug("run", GUESTS / "keyboard.elf", "--serial", "null", option, path)
    assert result.returncode == 2
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and message in lines[0], lines

"""Record, then replay twice: the same output, the same final state, no input source.

Also: input at random instruction counts (hypothesis), a recorder killed with SIGKILL,
and damaged logs.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rdebug.errors import FormatError, LogDivergence
from rdebug.host.sources import FileSerialSource, LiveInputs, ScriptedInputs
from rdebug.machine.inputs import ExternalInputs
from rdebug.machine.loader import load_image
from rdebug.machine.machine import Machine, MachineConfig, StopEvent, StopReason
from rdebug.replay.log import (
    LOG_VERSION,
    InterruptTaken,
    Reader,
    Truncated,
    encode_header,
)
from rdebug.replay.player import Ending, Player
from rdebug.replay.recorder import Recorder
from tests.conftest import EXPECTED, GUESTS, ROOT, Capture

CONFIG = MachineConfig(memory_mb=16)


def _run(guest: str, inputs: ExternalInputs) -> tuple[StopEvent, bytes, str]:
    out = Capture()
    machine = Machine(CONFIG, inputs, [out])
    try:
        machine.load(load_image(GUESTS / f"{guest}.elf"))
        stop = machine.run()
        return stop, bytes(out.data), machine.state_hash()
    finally:
        machine.close()


def _record(guest: str, inputs: ExternalInputs, log: Path) -> tuple[StopEvent, bytes, str]:
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        recorder = Recorder(inputs, fd)
        result = _run(guest, recorder)
        recorder.finish(result[0].icount)
    finally:
        os.close(fd)
    return result


def _replay(guest: str, log: Path) -> tuple[StopEvent, bytes, str, Player]:
    with log.open("rb") as stream:
        player = Player(stream, str(log))
        stop, out, state = _run(guest, player)
    player.verify_end(stop.icount, f"stopped ({stop.reason.value})")
    return stop, out, state, player


@pytest.mark.parametrize(
    ("guest", "typed"),
    [("echo", b"hello\rworld\rq"), ("clock", None), ("timer", None), ("usermode", None)],
)
def test_replay_twice_reproduces_output_and_state(
    tmp_path: Path, guest: str, typed: bytes | None
) -> None:
    log = tmp_path / "replay.log"
    sources = {0: FileSerialSource(typed)} if typed else {}
    recorded = _record(guest, LiveInputs(sources), log)
    assert recorded[0].reason is StopReason.EXIT
    for _ in range(2):
        stop, out, state, player = _replay(guest, log)
        assert (stop, out, state) == recorded
        assert player.ending is Ending.SHUTDOWN


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    times=st.lists(st.integers(min_value=0, max_value=20_000), min_size=1, max_size=6),
    text=st.binary(min_size=1, max_size=6).filter(lambda b: b"q" not in b),
)
def test_input_at_random_times_replays_identically(
    tmp_path: Path, times: list[int], text: bytes
) -> None:
    chunks = [text[i :: len(times)] for i in range(len(times))]
    schedule = [(t, 0, c) for t, c in zip(sorted(times), chunks, strict=True) if c]
    schedule.append((max(times) + 1, 0, b"q"))
    log = tmp_path / f"random-{os.getpid()}-{abs(hash((tuple(times), text)))}.log"
    recorded = _record("echo", ScriptedInputs(schedule), log)
    assert recorded[0].reason is StopReason.EXIT
    stop, out, state, _ = _replay("echo", log)
    assert (stop, out, state) == recorded
    assert out.endswith(b"bye\n")


def test_replay_detects_a_log_that_does_not_match_the_guest(tmp_path: Path) -> None:
    log = tmp_path / "timer.log"
    _record("timer", LiveInputs(), log)
    with pytest.raises(LogDivergence, match="icount"):
        _replay("usermode", log)  # another guest: its first exception is not in the log


def _rdebug(*args: str, **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "rdebug", *args],
        capture_output=True,
        timeout=120,
        cwd=ROOT,
        check=False,
        **kwargs,  # type: ignore[call-overload]
    )


def test_cli_record_replay_dump(tmp_path: Path) -> None:
    typed = tmp_path / "typed"
    typed.write_bytes(b"abcq")
    trace = tmp_path / "trace"
    rec = _rdebug(
        "record", str(GUESTS / "echo.elf"), "-o", str(trace), "--serial-input", str(typed)
    )
    assert rec.returncode == 1, rec.stderr
    assert rec.stdout == (EXPECTED / "echo.txt").read_bytes()
    typed.unlink()  # replay needs no input source
    for _ in range(2):
        rep = _rdebug("replay", str(trace))
        assert (rep.returncode, rep.stdout) == (1, rec.stdout), rep.stderr
    out_file = tmp_path / "com1"
    rep = _rdebug("replay", str(trace), "--serial", f"file:{out_file}")
    assert (rep.returncode, rep.stdout, out_file.read_bytes()) == (1, b"", rec.stdout)
    dumped = _rdebug("dump", str(trace))
    assert dumped.returncode == 0
    lines = dumped.stdout.decode().splitlines()
    assert "ASYNC CHAR_READ" in lines[2] and "61 62 63 71" in lines[2]
    assert lines[-1].endswith("END")
    summary = _rdebug("dump", str(trace), "--summary").stdout.decode()
    assert "ASYNC CHAR_READ" in summary and "SHUTDOWN GUEST_SHUTDOWN" in summary


def test_a_recorder_killed_with_sigkill_leaves_a_replayable_log(tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    banner = b"echo: type, q quits\n"
    with subprocess.Popen(
        [sys.executable, "-m", "rdebug", "record", str(GUESTS / "echo.elf"), "-o", str(trace)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        try:
            assert proc.stdout.read(len(banner)) == banner
            proc.stdin.write(b"abc")
            proc.stdin.flush()
            assert proc.stdout.read(3) == b"abc"  # the guest has echoed
            _wait_for_events_after_the_echo(trace / "replay.log")
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
        finally:
            proc.kill()
    rep = _rdebug("replay", str(trace))
    assert rep.returncode == 6, rep.stderr
    assert rep.stdout == banner + b"abc"
    err = rep.stderr.decode()
    assert err.count("\n") == 1 and "stops abruptly" in err and "icount" in err


def _wait_for_events_after_the_echo(log: Path) -> None:
    """Until the log holds an event after the interrupt that delivered the input."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        seen_interrupt = None
        with log.open("rb") as stream:
            reader = Reader(stream, str(log))
            try:
                for event in reader:
                    if isinstance(event, InterruptTaken):
                        seen_interrupt = reader.icount
                    elif seen_interrupt is not None and reader.icount > seen_interrupt:
                        return
            except Truncated:
                pass
        time.sleep(0.01)
    raise AssertionError("the recorder logged nothing after the echo")


def _damaged(tmp_path: Path, mutate: str) -> subprocess.CompletedProcess[bytes]:
    typed = tmp_path / "typed"
    typed.write_bytes(b"xyq")
    trace = tmp_path / f"trace-{mutate}"
    assert (
        _rdebug(
            "record", str(GUESTS / "echo.elf"), "-o", str(trace), "--serial-input", str(typed)
        ).returncode
        == 1
    )
    log = trace / "replay.log"
    raw = bytearray(log.read_bytes())
    if mutate == "truncate":
        raw = raw[:-3]
    elif mutate == "version":
        raw[:12] = encode_header(LOG_VERSION + 1)
    elif mutate == "qemu":
        raw[:12] = encode_header(0xE02007)
    elif mutate == "event-id":
        raw[12] = 0xEE
    elif mutate == "guest":
        (trace / "guest").write_bytes((GUESTS / "hello.elf").read_bytes())
    log.write_bytes(bytes(raw))
    before = {p.name: p.read_bytes() for p in trace.iterdir()}
    result = _rdebug("replay", str(trace))
    assert {p.name: p.read_bytes() for p in trace.iterdir()} == before  # files untouched
    return result


@pytest.mark.parametrize(
    ("mutate", "status", "needle"),
    [
        ("truncate", 6, "stops abruptly"),
        ("version", 2, f"rdebug log version {(LOG_VERSION + 1) & 0xFFFF}"),
        ("qemu", 2, "QEMU replay log"),
        ("event-id", 2, "unknown event id 238"),
        ("guest", 2, "guest image changed"),
    ],
)
def test_damaged_traces_give_one_clear_line(
    tmp_path: Path, mutate: str, status: int, needle: str
) -> None:
    result = _damaged(tmp_path, mutate)
    err = result.stderr.decode()
    assert result.returncode == status, err
    assert "Traceback" not in err and err.count("\n") == 1 and needle in err, err


def test_reader_refuses_garbage() -> None:
    with pytest.raises(FormatError, match="not a replay log"):
        Player(io.BytesIO(b"\x00" * 12), "zeros")
    with pytest.raises(FormatError, match="too short"):
        Player(io.BytesIO(b"\x72\x64"), "short")


def test_a_recording_stopped_where_an_interrupt_was_due_replays_to_its_end(
    tmp_path: Path,
) -> None:
    """A recording cut (--max-insns, Ctrl-C) at the icount where an interrupt was about to
    be delivered ends before the delivery; its replay must stop there too, not deliver
    it and then find the end of the log instead of an INTERRUPT."""
    full = tmp_path / "full.log"
    _record("timer", LiveInputs({}), full)
    interrupts = []
    with full.open("rb") as stream:
        reader = Reader(stream, str(full))
        for event in reader:
            if isinstance(event, InterruptTaken):
                interrupts.append(reader.icount)
    cut = interrupts[len(interrupts) // 2]
    log = tmp_path / "cut.log"
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        recorder = Recorder(LiveInputs({}), fd)
        out = Capture()
        machine = Machine(CONFIG, recorder, [out])
        try:
            machine.load(load_image(GUESTS / "timer.elf"))
            stop = machine.run(cut)
            recorded = (stop.icount, bytes(out.data), machine.state_hash())
        finally:
            machine.close()
        recorder.finish(stop.icount)
    finally:
        os.close(fd)
    assert stop.reason is StopReason.TARGET and stop.icount == cut
    for _ in range(2):
        stop, out_bytes, state, _player = _replay("timer", log)
        assert stop.reason is StopReason.END_OF_INPUT
        assert (stop.icount, out_bytes, state) == recorded

"""The Sound Blaster 16 end to end: the microphone guest hears a WAV file byte for byte,
a recording replays without the file (same line, same state, same output WAV), seeking
across the card's interrupts equals a straight run, the playback guest's output equals
QEMU's, and bad WAV files or options are one clear line."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import wave
import zlib
from pathlib import Path

import numpy as np
import pytest

from rdebug.errors import LogDivergence, SnapshotError
from rdebug.host.sources import LiveInputs
from rdebug.host.wav import WavMicrophone
from rdebug.machine.audio import AudioFormat
from rdebug.machine.devices.sb16 import Sb16Config
from rdebug.machine.machine import Machine, MachineConfig, StopEvent
from rdebug.replay import log
from rdebug.replay.events import EventKind, read_events
from rdebug.replay.player import Player
from rdebug.replay.recording import record
from rdebug.replay.timeline import Timeline
from rdebug.replay.trace import GuestSpec, Trace, sha256
from rdebug.snapshots import vmstate
from tests.conftest import GUESTS, ROOT, Replay, straight_hash
from tests.e2e.test_cli import assert_one_clear_line, rdebug
from tests.unit.test_wav import write_wav

CAPTURE = 4000
MIC_LINE = re.compile(rb"mic n=(\d+) crc32=([0-9a-f]{8}) peak=(\d+)\n")
CONFIG = MachineConfig(memory_mb=16, sound=Sb16Config())


def noise_wav(path: Path, frames: int = 6000, seed: int = 20) -> bytes:
    """An 8000 Hz 8-bit mono WAV of noise; returns its sample bytes."""
    data = np.random.default_rng(seed).integers(0, 256, frames, dtype=np.uint8).tobytes()
    write_wav(path, 8000, 1, 1, data)
    return data


def mic_line(captured: bytes) -> bytes:
    peak = max(abs(b - 128) for b in captured)
    return b"mic n=%d crc32=%08x peak=%d\n" % (len(captured), zlib.crc32(captured), peak)


def test_microphone_guest_hears_the_wav_byte_for_byte(tmp_path: Path) -> None:
    data = noise_wav(tmp_path / "mic.wav")
    result = rdebug(
        "run", str(GUESTS / "microphone.elf"), "--audio-input", str(tmp_path / "mic.wav")
    )
    assert result.returncode == 1, result.stderr
    assert mic_line(data[:CAPTURE]) in result.stdout


def test_microphone_converts_another_format(tmp_path: Path) -> None:
    """16-bit stereo at 16 kHz: the guest gets every other frame, mixed down to 8-bit mono."""
    rng = np.random.default_rng(7)
    frames = rng.integers(-32768, 32768, (2 * CAPTURE + 10, 2), dtype=np.int64)
    write_wav(tmp_path / "s.wav", 16000, 2, 2, frames.astype("<i2").tobytes())
    mono = frames[::2].sum(axis=1) // 2
    expected = ((mono >> 8) + 128).astype(np.uint8).tobytes()[:CAPTURE]
    result = rdebug("run", str(GUESTS / "microphone.elf"), "--audio-input", str(tmp_path / "s.wav"))
    assert mic_line(expected) in result.stdout


def test_without_a_wav_the_microphone_hears_silence(tmp_path: Path) -> None:
    result = rdebug("run", str(GUESTS / "microphone.elf"), "--sound", "sb16")
    assert mic_line(b"\x80" * CAPTURE) in result.stdout


def test_without_a_sound_card_the_guest_finds_none() -> None:
    result = rdebug("run", str(GUESTS / "microphone.elf"))
    assert result.stdout == b"no sb16\n"
    assert result.returncode == (3 << 1) | 1


@pytest.fixture(scope="module")
def mic_trace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Trace, str, bytes]:
    """The microphone guest recorded with a WAV: (trace, state hash at the end, output)."""
    folder = tmp_path_factory.mktemp("mic")
    noise_wav(folder / "mic.wav")
    data = (GUESTS / "microphone.elf").read_bytes()
    spec = GuestSpec("microphone.elf", str(GUESTS / "microphone.elf"), sha256(data))
    hashes: list[str] = []

    def run(machine: Machine) -> StopEvent:
        stop = machine.run()
        hashes.append(machine.state_hash())
        return stop

    out = Capture()
    inputs = LiveInputs(microphone=WavMicrophone.open(folder / "mic.wav"))
    recording = record(folder / "trace", data, spec, CONFIG, inputs, serial=[out], run=run)
    return recording.trace, hashes[0], bytes(out.data)


class Capture:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data


def test_replay_without_the_wav_gives_the_same_line_and_state(
    mic_trace: tuple[Trace, str, bytes],
) -> None:
    trace, recorded_hash, recorded_out = mic_trace
    assert MIC_LINE.search(recorded_out)
    for _ in range(2):
        replay = Replay(trace)
        out = Capture()
        replay.machine.board.com1.backend = out
        try:
            replay.machine.run()
            assert replay.machine.state_hash() == recorded_hash
            assert bytes(out.data) == recorded_out
        finally:
            replay.close()


def test_cli_record_then_replay_same_output_and_wav(tmp_path: Path) -> None:
    noise_wav(tmp_path / "mic.wav")
    recorded = rdebug(
        "record", str(GUESTS / "microphone.elf"), "-o", str(tmp_path / "t"),
        "--audio-input", str(tmp_path / "mic.wav"), "--audio-output", str(tmp_path / "rec.wav"),
    )  # fmt: skip
    assert recorded.returncode == 1, recorded.stderr
    (tmp_path / "mic.wav").unlink()  # replay needs no WAV
    for name in ("rep1.wav", "rep2.wav"):
        replayed = rdebug("replay", str(tmp_path / "t"), "--audio-output", str(tmp_path / name))
        assert replayed.returncode == 1, replayed.stderr
        assert replayed.stdout == recorded.stdout
        assert (tmp_path / name).read_bytes() == (tmp_path / "rec.wav").read_bytes()
    with wave.open(str(tmp_path / "rec.wav")) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()) == (
            8000, 1, 1, 2000,
        )  # fmt: skip
    dumped = rdebug("dump", str(tmp_path / "t"))
    lines = [x for x in dumped.stdout.decode().splitlines() if "AUDIO_IN" in x]
    # Batched: 4000 bytes in steps of at most 10 ms (80 frames), not one per sample.
    assert 50 <= len(lines) <= 60
    assert all("8000 Hz 8-bit unsigned mono" in x for x in lines)
    script = tmp_path / "script"
    script.write_text("events audio\n")
    listed = rdebug("repl", str(tmp_path / "t"), "-x", str(script), "--batch")
    assert listed.returncode == 0, listed.stderr
    rows = [x for x in listed.stdout.decode().splitlines() if " audio " in x]
    assert len(rows) == len(lines)
    assert "sound card 0 took 80 microphone frames (8000 Hz 8-bit unsigned mono)" in rows[0]


def test_seek_and_reverse_across_the_card_interrupts(
    mic_trace: tuple[Trace, str, bytes],
) -> None:
    trace = mic_trace[0]
    events = read_events(trace.log_path)
    irqs = [e.icount for e in events if e.kind is EventKind.INTERRUPT]
    audio = [e.icount for e in events if isinstance(e.raw, log.AudioIn)]
    assert len(irqs) >= 3 and len(audio) >= 50
    replay = Replay(trace)
    line = Timeline(replay.machine, replay.player, replay.end,
                    min_interval=max(31, replay.end // 16), adaptive=False)  # fmt: skip
    try:
        line.seek(line.end_icount)
        targets = [irqs[1] + 1, irqs[0], audio[30], irqs[1] - 1, irqs[0] + 1, audio[7] + 3,
                   irqs[2], 1, irqs[1]]  # fmt: skip
        for target in targets:
            line.seek(target)
            assert line.icount == target
            assert line.machine.state_hash() == straight_hash(trace, target), target
        line.seek(irqs[1] + 2)
        line.reverse_stepi(3)
        assert line.icount == irqs[1] - 1
        assert line.machine.state_hash() == straight_hash(trace, irqs[1] - 1)
    finally:
        line.close()
        replay.close()


# -- QEMU ------------------------------------------------------------------------------------


def qemu_wav(mode: str, backend: str, path: Path) -> Path:
    qemu = shutil.which("qemu-system-i386")
    assert qemu is not None, "qemu-system-i386 is needed (installed by .ci/run)"
    subprocess.run(
        [
            qemu, "-kernel", str(GUESTS / "playback.elf"), "-append", mode,
            "-display", "none", "-serial", "null", "-monitor", "none", "-no-reboot",
            "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04", "-icount", "shift=7",
            "-audiodev", f"wav,id=snd0,path={path},{backend}", "-device", "sb16,audiodev=snd0",
        ],
        capture_output=True, timeout=120, check=False, cwd=ROOT,
    )  # fmt: skip
    return path


def read_frames(path: Path) -> tuple[wave._wave_params, np.ndarray]:
    with wave.open(str(path)) as w:
        params = w.getparams()
        dtype = np.uint8 if params.sampwidth == 1 else np.dtype("<i2")
        frames = np.frombuffer(w.readframes(params.nframes), dtype)
    return params, frames.reshape(-1, params.nchannels)


@pytest.mark.parametrize(
    ("mode", "backend", "rate", "channels", "width", "frames"),
    [
        # QEMU's mono output adds left and right (twice the amplitude): compare its left.
        ("mono8", "out.frequency=8000,out.channels=2,out.format=u8", 8000, 1, 1, 2000),
        ("stereo16", "out.frequency=22050,out.channels=2,out.format=s16", 22050, 2, 2, 2048),
    ],
)
def test_playback_wav_equals_qemus(
    tmp_path: Path, mode: str, backend: str, rate: int, channels: int, width: int, frames: int
) -> None:
    result = rdebug(
        "run", str(GUESTS / "playback.elf"), "--append", mode,
        "--audio-output", str(tmp_path / "rdebug.wav"),
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    ours_params, ours = read_frames(tmp_path / "rdebug.wav")
    assert (ours_params.framerate, ours_params.nchannels, ours_params.sampwidth) == (
        rate, channels, width,
    )  # fmt: skip
    assert len(ours) == frames  # every sample the guest programmed, once
    _, theirs = read_frames(qemu_wav(mode, backend, tmp_path / "qemu.wav"))
    theirs = theirs[:, :channels]
    # QEMU drops the tail of each transfer (what its DMA fetched but its WAV back end
    # had not written when the transfer ended): its stream is a prefix of ours.
    assert frames // 2 < len(theirs) <= frames
    assert np.array_equal(ours[: len(theirs)], theirs)


# -- bad input --------------------------------------------------------------------------------


def test_truncated_or_non_pcm_wav_is_one_line(tmp_path: Path) -> None:
    raw = write_wav(tmp_path / "t.wav", 8000, 1, 2, bytes(4000)).read_bytes()
    (tmp_path / "t.wav").write_bytes(raw[:-1000])
    err = assert_one_clear_line(
        rdebug(
            "record",
            str(GUESTS / "microphone.elf"),
            "-o",
            str(tmp_path / "trace"),
            "--audio-input",
            str(tmp_path / "t.wav"),
        )
    )
    assert "t.wav: truncated" in err
    assert not (tmp_path / "trace").exists()
    float_fmt = (
        (3).to_bytes(2, "little")
        + (1).to_bytes(2, "little")
        + (8000).to_bytes(4, "little")
        + (32000).to_bytes(4, "little")
        + (4).to_bytes(2, "little")
        + (32).to_bytes(2, "little")
    )
    body = b"WAVEfmt " + len(float_fmt).to_bytes(4, "little") + float_fmt
    body += b"data" + (8).to_bytes(4, "little") + bytes(8)
    (tmp_path / "f.wav").write_bytes(b"RIFF" + len(body).to_bytes(4, "little") + body)
    err = assert_one_clear_line(
        rdebug("run", str(GUESTS / "microphone.elf"), "--audio-input", str(tmp_path / "f.wav"))
    )
    assert "f.wav: not a PCM WAV file" in err


def test_audio_options_refused_where_they_make_no_sense(tmp_path: Path) -> None:
    trace = tmp_path / "t"
    assert rdebug("record", str(GUESTS / "hello.elf"), "-o", str(trace)).returncode == 1
    err = assert_one_clear_line(
        rdebug("replay", str(trace), "--audio-output", str(tmp_path / "o.wav"))
    )
    assert "recorded without a sound card" in err
    assert not (tmp_path / "o.wav").exists()
    err = assert_one_clear_line(
        rdebug("replay", str(trace), "--audio-input", str(tmp_path / "o.wav"))
    )
    assert "replay takes no --audio-input" in err
    err = assert_one_clear_line(rdebug("run", str(GUESTS / "hello.elf"), "--sound", "gus"))
    assert "unknown sound card 'gus'" in err
    err = assert_one_clear_line(rdebug("run", str(GUESTS / "hello.elf"), "--sound", "sb16,irq=3"))
    assert "irq 3" in err


def test_a_snapshot_needs_the_same_sound_hardware() -> None:
    with_card = Machine(CONFIG, LiveInputs(), [])
    without = Machine(MachineConfig(memory_mb=16), LiveInputs(), [])
    try:
        for source, target in ((with_card, without), (without, with_card)):
            state = vmstate.decode(vmstate.encode(source, None), "snap")
            with pytest.raises(SnapshotError, match=r"other hardware.*sb16"):
                vmstate.apply(target, state)
        vmstate.apply(with_card, vmstate.decode(vmstate.encode(with_card, None), "snap"))
    finally:
        with_card.close()
        without.close()


def test_replay_diverges_when_the_card_asks_for_other_samples() -> None:
    fmt = AudioFormat(8000, 1, 8, False)
    event = log.AudioIn(0, 8000, 1, 8, False, b"\x01\x02")
    raw = log.encode_header() + log.encode(log.Instruction(10)) + log.encode(event)
    raw += log.encode(log.End())
    assert Player(io.BytesIO(raw), "l").audio_input(10, fmt, 2) == b"\x01\x02"
    for icount, asked, frames in ((11, fmt, 2), (10, AudioFormat(8000, 2, 8, False), 1),
                                  (10, fmt, 3)):  # fmt: skip
        with pytest.raises(LogDivergence, match=r"AUDIO_IN card=0 8000 Hz .* microphone"):
            Player(io.BytesIO(raw), "l").audio_input(icount, asked, frames)

"""host/wav.py: reading PCM WAV files into the microphone (exact when the formats match,
converted otherwise, silence after the end), refusing bad files, writing the speaker."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import numpy as np
import pytest

from rdebug.host.wav import WavError, WavMicrophone, WavSpeaker
from rdebug.machine.audio import AudioFormat

U8_MONO_8K = AudioFormat(8000, 1, 8, False)


def write_wav(path: Path, rate: int, channels: int, width: int, data: bytes) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(data)
    return path


def noise(n: int, seed: int = 1) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def test_same_format_is_byte_for_byte_then_silence(tmp_path: Path) -> None:
    data = noise(1000)
    mic = WavMicrophone.open(write_wav(tmp_path / "a.wav", 8000, 1, 1, data))
    got = b"".join(mic.read(U8_MONO_8K, n) for n in (1, 80, 7, 500, 412))
    assert got == data
    assert mic.read(U8_MONO_8K, 5) == b"\x80" * 5


def test_16bit_stereo_same_format_is_exact(tmp_path: Path) -> None:
    data = noise(4 * 300, seed=2)
    fmt = AudioFormat(22050, 2, 16, True)
    mic = WavMicrophone.open(write_wav(tmp_path / "s.wav", 22050, 2, 2, data))
    assert mic.read(fmt, 100) + mic.read(fmt, 200) == data
    assert mic.read(fmt, 1) == bytes(4)


def test_sample_format_and_channel_conversion(tmp_path: Path) -> None:
    left = np.array([1000, -1000, 32767, -32768], "<i2")
    right = np.array([3000, -3000, 32767, 0], "<i2")
    frames = np.stack([left, right], axis=1).tobytes()
    path = write_wav(tmp_path / "c.wav", 8000, 2, 2, frames)
    mono8 = WavMicrophone.open(path).read(U8_MONO_8K, 4)
    mean = (left.astype(np.int64) + right) // 2
    assert list(mono8) == [int(v >> 8) + 128 for v in mean]
    unsigned16 = WavMicrophone.open(path).read(AudioFormat(8000, 2, 16, False), 4)
    assert np.array_equal(
        np.frombuffer(unsigned16, "<u2").reshape(-1, 2),
        np.stack([left, right], axis=1).astype(np.int64) + 32768,
    )
    signed8 = WavMicrophone.open(path).read(AudioFormat(8000, 2, 8, True), 1)
    assert np.frombuffer(signed8, "i1").tolist() == [1000 >> 8, 3000 >> 8]
    mono_src = write_wav(tmp_path / "m.wav", 8000, 1, 1, bytes([0x10, 0xF0]))
    assert WavMicrophone.open(mono_src).read(AudioFormat(8000, 2, 8, False), 2) == bytes(
        [0x10, 0x10, 0xF0, 0xF0]
    )


@pytest.mark.parametrize("width", [3, 4])
def test_24_and_32_bit_files(tmp_path: Path, width: int) -> None:
    values = [0x123456, -0x654321]
    raw = b"".join((v << (8 * (width - 3))).to_bytes(width, "little", signed=True) for v in values)
    mic = WavMicrophone.open(write_wav(tmp_path / "w.wav", 8000, 1, width, raw))
    got = np.frombuffer(mic.read(AudioFormat(8000, 1, 16, True), 2), "<i2")
    assert got.tolist() == [v >> 8 for v in values]


def test_rate_conversion_halves_and_interpolates(tmp_path: Path) -> None:
    data = bytes(range(0, 200, 2))  # a ramp
    path = write_wav(tmp_path / "r.wav", 16000, 1, 1, data)
    assert WavMicrophone.open(path).read(U8_MONO_8K, 50) == data[::2]
    up = WavMicrophone.open(path).read(AudioFormat(32000, 1, 8, False), 6)
    assert list(up) == [0, 1, 2, 3, 4, 5]  # midpoints of the ramp
    mic = WavMicrophone.open(path)
    first = mic.read(AudioFormat(16000, 1, 8, False), 10)  # then the rate changes
    assert first + mic.read(U8_MONO_8K, 5) == data[:10] + data[10:20:2]


def test_truncated_file_is_an_error(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "t.wav", 8000, 1, 2, noise(2000))
    raw = path.read_bytes()
    path.write_bytes(raw[:-100])
    with pytest.raises(WavError, match=r"truncated \(its header announces 1000 frames"):
        WavMicrophone.open(path)
    path.write_bytes(raw[:30])
    with pytest.raises(WavError, match=r"t\.wav"):
        WavMicrophone.open(path)


def test_non_pcm_and_non_wav_files_are_errors(tmp_path: Path) -> None:
    fmt = struct.pack("<HHIIHH", 3, 1, 8000, 32000, 4, 32)  # IEEE float
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", 4)
    path = tmp_path / "f.wav"
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body) + 4) + body + bytes(4))
    with pytest.raises(WavError, match=r"f\.wav: not a PCM WAV file"):
        WavMicrophone.open(path)
    (tmp_path / "x.wav").write_bytes(b"hello, not a wav file at all")
    with pytest.raises(WavError, match=r"x\.wav: not a PCM WAV file"):
        WavMicrophone.open(tmp_path / "x.wav")
    with pytest.raises(WavError, match=r"missing\.wav"):
        WavMicrophone.open(tmp_path / "missing.wav")


def test_speaker_writes_played_samples_in_the_first_format(tmp_path: Path) -> None:
    path = tmp_path / "out.wav"
    speaker = WavSpeaker.create(path)
    speaker.play(U8_MONO_8K, b"\x10\x20")
    speaker.play(U8_MONO_8K, b"\x30")
    speaker.play(AudioFormat(8000, 1, 8, True), bytes([0x7F, 0x80]))  # signed: +127, -128
    speaker.play(AudioFormat(8000, 2, 16, True), struct.pack("<hh", 0x1000, 0x3000))
    speaker.play(AudioFormat(16000, 1, 8, False), b"\x01\x02\x03\x04")
    speaker.close()
    with wave.open(str(path), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 1)
        assert w.readframes(100) == b"\x10\x20\x30\xff\x00\xa0\x01\x03"


def test_speaker_that_played_nothing_leaves_an_empty_wav(tmp_path: Path) -> None:
    path = tmp_path / "none.wav"
    WavSpeaker.create(path).close()
    with wave.open(str(path), "rb") as w:
        assert w.getnframes() == 0

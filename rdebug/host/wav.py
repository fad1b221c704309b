"""WAV files as the sound card's host side: the microphone's source, the speaker's sink.

Reading and writing is the standard library's `wave` (PCM: 8-bit unsigned, 16/24/32-bit
signed, any channel count and rate); sample conversion is numpy.  Samples are held as
32-bit signed integers at full scale (an 8-bit sample v becomes (v - 128) << 24, a
16-bit one v << 16, ...), so a conversion back to the width a sample came in is exact:
when the guest programs the file's own format, the guest gets the file's bytes.

Rate conversion is linear interpolation between source frames at the exact position
``frame * source_rate / target_rate`` (kept as an integer and a remainder, never a
float): at equal rates every position is a whole frame, so no sample is changed, skipped
or repeated.  Channels: mono is copied to both sides of a stereo frame; stereo (or more)
to mono is the mean of the channels; to stereo, the first two.

Knows nothing of the machine but its `AudioFormat`.
"""

from __future__ import annotations

import contextlib
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from rdebug.errors import UsageError
from rdebug.machine.audio import AudioFormat

Samples = npt.NDArray[np.int32]  # (frames, channels), full-scale 32-bit


class WavError(UsageError):
    """A WAV file rdebug cannot use (not PCM, truncated, unreadable)."""


# -- conversions --------------------------------------------------------------------------


def decode(data: bytes, width: int, channels: int) -> Samples:
    """PCM bytes of `width` bytes per sample to full-scale int32, shape (frames, channels)."""
    raw = np.frombuffer(data, dtype=np.uint8)
    frames = len(raw) // (width * channels)
    raw = raw[: frames * width * channels]
    if width == 1:
        values = (raw.astype(np.int32) - 128) << 24
    elif width == 2:
        values = raw.view("<i2").astype(np.int32) << 16
    elif width == 3:
        triples = raw.reshape(-1, 3).astype(np.int32)
        values = triples[:, 0] << 8 | triples[:, 1] << 16 | triples[:, 2] << 24
    elif width == 4:
        values = raw.view("<i4").astype(np.int32)
    else:
        raise ValueError(f"{8 * width}-bit samples")
    return values.reshape(frames, channels)


def encode(samples: Samples, fmt: AudioFormat) -> bytes:
    """Full-scale int32 frames (with `fmt.channels` columns) to `fmt`'s bytes."""
    shift = 32 - fmt.bits
    values = samples.astype(np.int64) >> shift
    if not fmt.signed:
        values += 1 << (fmt.bits - 1)
    dtype = {(8, True): "i1", (8, False): "u1", (16, True): "<i2", (16, False): "<u2"}
    return values.astype(dtype[fmt.bits, fmt.signed]).tobytes()


def to_channels(samples: Samples, channels: int) -> Samples:
    have = samples.shape[1]
    if have == channels:
        return samples
    if channels == 1:
        mean: Samples = (samples.astype(np.int64).sum(axis=1) // have).astype(np.int32)
        return mean.reshape(-1, 1)
    if have == 1:
        return np.repeat(samples, channels, axis=1)
    first: Samples = samples[:, :channels]
    return first


class RateConverter:
    """Positions in a source at `source_rate` for frames wanted at other rates.

    The position is ``index + remainder / rate`` source frames (`rate` the target rate
    of the last request); each target frame advances it by ``source_rate / rate``.
    """

    def __init__(self, source_rate: int) -> None:
        self.source_rate = source_rate
        self.index = 0
        self.remainder = 0
        self.rate = source_rate

    def take(self, frames: int, rate: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """(source frame, weight of the next frame) of the next `frames` target frames."""
        if rate != self.rate:
            self.remainder = self.remainder * rate // self.rate
            self.rate = rate
        steps = self.remainder + np.arange(frames, dtype=np.int64) * self.source_rate
        index = self.index + steps // rate
        weight = (steps % rate) / rate
        total = self.remainder + frames * self.source_rate
        self.index += total // rate
        self.remainder = total % rate
        return index, weight


def interpolate(
    samples: Samples, index: npt.NDArray[np.int64], weight: npt.NDArray[np.float64]
) -> Samples:
    """Frames at fractional positions (beyond the end: silence, i.e. zero)."""
    padded = np.concatenate([samples, np.zeros((2, samples.shape[1]), np.int32)])
    last = len(samples)
    here = padded[np.minimum(index, last)].astype(np.float64)
    after = padded[np.minimum(index + 1, last)].astype(np.float64)
    mixed = here + (after - here) * weight[:, None]
    exact = weight == 0
    mixed[exact] = here[exact]
    return np.clip(np.rint(mixed), -(1 << 31), (1 << 31) - 1).astype(np.int32)


# -- the microphone -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pcm:
    """The frames of a PCM WAV file as it stores them."""

    data: bytes
    width: int  # bytes per sample
    channels: int
    rate: int

    @property
    def frames(self) -> int:
        return len(self.data) // (self.width * self.channels)

    def samples(self, start: int, stop: int) -> Samples:
        """Frames [start, stop) (clipped to the file) at full scale."""
        size = self.width * self.channels
        return decode(self.data[start * size : stop * size], self.width, self.channels)


class WavMicrophone:
    """A WAV file played into the microphone from its first frame, then silence.

    The file's bytes stay as they are; each read converts only the frames it needs.
    """

    def __init__(self, pcm: Pcm) -> None:
        self.pcm = pcm
        self._position = RateConverter(pcm.rate)

    @classmethod
    def open(cls, path: Path, option: str = "--audio-input") -> WavMicrophone:
        return cls(read_wav(path, option))

    def read(self, fmt: AudioFormat, frames: int) -> bytes:
        """The next `frames` frames, converted to `fmt` (exactly that many bytes)."""
        index, weight = self._position.take(frames, fmt.rate)
        first = int(index[0]) if frames else 0
        window = self.pcm.samples(first, int(index[-1]) + 2 if frames else 0)
        frames_out = interpolate(window, index - first, weight)
        return encode(to_channels(frames_out, fmt.channels), fmt)


def read_wav(path: Path, option: str) -> Pcm:
    """A PCM WAV file's frames and format; a `WavError` naming the file if it is not one."""
    where = f"{option} {path}"
    try:
        stream = path.open("rb")
    except OSError as exc:
        raise WavError(f"{where}: {exc.strerror}") from None
    with stream:
        try:
            with wave.open(stream, "rb") as reader:
                params = reader.getparams()
                data = reader.readframes(params.nframes)
        except wave.Error as exc:
            raise WavError(f"{where}: not a PCM WAV file ({exc})") from None
        except EOFError:
            raise WavError(f"{where}: truncated (the file ends inside its header)") from None
    if params.comptype != "NONE":
        raise WavError(f"{where}: not a PCM WAV file ({params.compname})")
    if params.sampwidth not in (1, 2, 3, 4):
        raise WavError(f"{where}: {8 * params.sampwidth}-bit samples are not supported")
    if params.framerate <= 0 or params.nchannels <= 0:
        raise WavError(f"{where}: a rate of {params.framerate} Hz, {params.nchannels} channels")
    expected = params.nframes * params.sampwidth * params.nchannels
    if len(data) < expected:
        have = len(data) // (params.sampwidth * params.nchannels)
        raise WavError(
            f"{where}: truncated (its header announces {params.nframes} frames, "
            f"the file holds {have})"
        )
    return Pcm(data, params.sampwidth, params.nchannels, params.framerate)


# -- the speaker ----------------------------------------------------------------------------


class WavSpeaker:
    """Writes what the guest plays to a WAV file, in the format it first plays.

    WAV stores 8-bit samples unsigned and 16-bit ones signed: the file takes the first
    played rate, channels and width, and samples of another signedness, width, channel
    count or rate are converted to it (a rate piece by piece, by linear interpolation).
    Only played samples are written: while the card plays nothing, nothing is added (no
    silence).  A run that plays nothing leaves a WAV file with no frames (8000 Hz 8-bit
    mono).  `close` finishes the file.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._writer: wave.Wave_write | None = None
        self.fmt: AudioFormat | None = None
        self.frames = 0

    @classmethod
    def create(cls, path: Path, option: str = "--audio-output") -> WavSpeaker:
        try:
            stream = path.open("wb")
        except OSError as exc:
            raise UsageError(f"{option} {path}: {exc.strerror}") from None
        return cls(stream)

    def _open(self, fmt: AudioFormat) -> tuple[wave.Wave_write, AudioFormat]:
        target = AudioFormat(fmt.rate, fmt.channels, fmt.bits, signed=fmt.bits == 16)
        writer = wave.open(self._stream, "wb")  # noqa: SIM115 - open until close()
        writer.setnchannels(target.channels)
        writer.setsampwidth(target.sample_bytes)
        writer.setframerate(target.rate)
        self.fmt = target
        self._writer = writer
        return writer, target

    def play(self, fmt: AudioFormat, data: bytes) -> None:
        """`data` played in `fmt` (AudioSink)."""
        if self._writer is None or self.fmt is None:
            writer, target = self._open(fmt)
        else:
            writer, target = self._writer, self.fmt
        if fmt != target:
            samples = decode(data, fmt.sample_bytes, fmt.channels)
            if fmt.signed != (fmt.bits == 16):  # decode read WAV's signedness
                samples = samples ^ np.int32(-(1 << 31))
            samples = to_channels(samples, target.channels)
            if fmt.rate != target.rate:
                count = len(samples) * target.rate // fmt.rate
                index, weight = RateConverter(fmt.rate).take(count, target.rate)
                samples = interpolate(samples, index, weight)
            data = encode(samples, target)
        writer.writeframesraw(data)
        self.frames += len(data) // target.frame_bytes

    def close(self) -> None:
        writer = self._writer
        if writer is None:
            writer, _ = self._open(AudioFormat(8000, 1, 8, False))
        writer.close()
        self._stream.close()


@contextlib.contextmanager
def audio_output(path: Path | None) -> Iterator[WavSpeaker | None]:
    """The WAV file of `--audio-output PATH` (finished when the run ends), or None."""
    if path is None:
        yield None
        return
    speaker = WavSpeaker.create(path)
    try:
        yield speaker
    finally:
        speaker.close()

"""PCM sample formats, as the sound card programs them and the inputs seam asks for them.

Samples are little-endian; 8-bit samples are unsigned on the Sound Blaster's 8-bit
commands and either on its 16-bit ones; frames interleave the channels (left first).

>>> fmt = AudioFormat(rate=8000, channels=1, bits=8, signed=False)
>>> fmt.frame_bytes, fmt.byte_rate, fmt.silence(3)
(1, 8000, b'\\x80\\x80\\x80')
>>> str(AudioFormat(44100, 2, 16, True))
'44100 Hz 16-bit signed stereo'
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """A PCM format: frames a second, channels, bits a sample, and their sign."""

    rate: int  # frames per second of virtual time
    channels: int  # 1 or 2
    bits: int  # 8 or 16
    signed: bool

    @property
    def sample_bytes(self) -> int:
        return self.bits // 8

    @property
    def frame_bytes(self) -> int:
        return self.sample_bytes * self.channels

    @property
    def byte_rate(self) -> int:
        return self.rate * self.frame_bytes

    def silence(self, frames: int) -> bytes:
        """`frames` frames of the mid-scale value (0x80 / 0x8000 when unsigned, else 0)."""
        if self.signed:
            return bytes(frames * self.frame_bytes)
        sample = b"\x80" if self.bits == 8 else b"\x00\x80"
        return sample * (frames * self.channels)

    def __str__(self) -> str:
        sign = "signed" if self.signed else "unsigned"
        layout = "stereo" if self.channels == 2 else "mono"
        return f"{self.rate} Hz {self.bits}-bit {sign} {layout}"

"""reverse-continue across the sound card's interrupts: the DMA-filled capture buffer
is back to what it held at each earlier hit (the microphone recorded, replayed from the
log alone)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import record_cli
from tests.e2e.gdb.conftest import Gdb, attached_gdb, rdebug_gdb_server
from tests.unit.test_wav import write_wav

HALF = 2000


@pytest.fixture(scope="module")
def mic_trace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    folder = tmp_path_factory.mktemp("mic-gdb")
    data = np.random.default_rng(3).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    wav = write_wav(folder / "mic.wav", 8000, 1, 1, data)
    trace = record_cli("microphone", folder / "t", "--audio-input", str(wav), "--serial", "null")
    wav.unlink()  # the replay needs only the trace
    return trace, data


def captured(gdb: Gdb, offset: int) -> bytes:
    """8 bytes of the guest's capture buffer at `offset`."""
    return bytes(gdb.values(*(f"((unsigned char*)&capture)[{offset + i}]" for i in range(8))))


def test_reverse_continue_across_audio_interrupts(mic_trace: tuple[Path, bytes]) -> None:
    trace, data = mic_trace
    with (
        rdebug_gdb_server("replay", str(trace)) as address,
        attached_gdb(address, trace / "guest") as gdb,
    ):
        gdb.run("break sb_irq")
        seen = []
        for _ in range(3):  # two capture halves, then the tone
            text, _ = gdb.run("continue")
            assert "Breakpoint 1" in text
            seen.append((gdb.value("*(int*)&sb_irqs"), captured(gdb, HALF)))
        assert [count for count, _ in seen] == [0, 1, 2]
        assert seen[1][1] == data[HALF : HALF + 8]  # the second half came from the WAV
        text, _ = gdb.run("reverse-continue")
        text, _ = gdb.run("reverse-continue")
        assert "Breakpoint 1" in text
        assert gdb.value("*(int*)&sb_irqs") == 0
        assert captured(gdb, 0) == data[:8]
        assert captured(gdb, HALF) == bytes(8)  # not captured yet at the first interrupt

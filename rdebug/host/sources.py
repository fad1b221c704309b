"""Host input sources behind the machine's inputs seam (machine/inputs.py).

`LiveInputs` answers the machine from the host: the real clock, and serial bytes and
key/mouse events from host sources (`FileSerialSource`, `StreamSerialSource`, or a
`ListInputSource` of host/keys.py), and the microphone's samples from a
`MicrophoneSource` (a WAV file, host/wav.py).  `ScriptedInputs` hands inputs over at chosen
instruction counts, for scripted sessions, benchmarks and tests.

Threads: host sources (a terminal reader, a file feeder) run on their own threads and
only put items on a queue; the machine thread takes them with `take_async` at its
checkpoints, so the machine alone decides at which icount each input lands.
"""

from __future__ import annotations

import os
import queue
import select
import threading
import time
from collections.abc import Callable, Sequence
from typing import BinaryIO

from rdebug.machine.audio import AudioFormat
from rdebug.machine.inputs import (
    AsyncInput,
    DeliverFn,
    InputDeliverFn,
    InputSource,
    KeyInput,
    MicrophoneSource,
    MouseInput,
    SerialInput,
    SerialSource,
    SyncEvent,
)


class FileSerialSource:
    """All bytes of a file, handed over at once (the UART paces them to the guest)."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def start(self, deliver: DeliverFn) -> None:
        if self._data:
            deliver(self._data)
        deliver(None)

    def close(self) -> None:
        pass


class StreamSerialSource:
    """Bytes from a file descriptor (a terminal or a pipe) as they arrive."""

    def __init__(self, stream: BinaryIO) -> None:
        self._fd = stream.fileno()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, deliver: DeliverFn) -> None:
        self._thread = threading.Thread(
            target=self._pump, args=(deliver,), name="serial-input", daemon=True
        )
        self._thread.start()

    def _pump(self, deliver: DeliverFn) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._fd], [], [], 0.1)
            if not ready:
                continue
            try:
                data = os.read(self._fd, 4096)
            except OSError:
                data = b""
            if not data:
                deliver(None)
                return
            deliver(data)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)


class LiveInputs:
    """Inputs straight from the host: the real clock, and the given serial sources."""

    def __init__(
        self,
        serial_sources: dict[int, SerialSource] | None = None,
        clock: Callable[[], int] = time.time_ns,
        input_sources: Sequence[InputSource] = (),
        microphone: MicrophoneSource | None = None,
    ) -> None:
        self._clock = clock
        self._microphone = microphone
        self._queue: queue.SimpleQueue[AsyncInput | int] = queue.SimpleQueue()
        self._open: set[int] = set()  # serial ports, and -1, -2, ... for input sources
        self._sources = dict(serial_sources or {})
        self._input_sources = list(input_sources)
        self._wake = threading.Event()
        for port, source in self._sources.items():
            self._open.add(port)
            source.start(self._deliverer(port))
        for index, input_source in enumerate(self._input_sources):
            self._open.add(-1 - index)
            input_source.start(self._input_deliverer(-1 - index))

    def _deliverer(self, port: int) -> DeliverFn:
        def deliver(data: bytes | None) -> None:
            self._queue.put(SerialInput(port, data) if data is not None else port)
            self._wake.set()

        return deliver

    def _input_deliverer(self, key: int) -> InputDeliverFn:
        def deliver(items: Sequence[KeyInput | MouseInput] | None) -> None:
            if items is None:
                self._queue.put(key)
            else:
                for item in items:
                    self._queue.put(item)
            self._wake.set()

        return deliver

    def host_clock_ns(self, icount: int) -> int:
        del icount
        return self._clock()

    def take_async(self, icount: int) -> list[AsyncInput]:
        del icount
        out: list[AsyncInput] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return out
            if isinstance(item, int):
                self._open.discard(item)
            else:
                out.append(item)

    def more_expected(self) -> bool:
        return bool(self._open) or not self._queue.empty()

    def audio_input(self, icount: int, fmt: AudioFormat, frames: int) -> bytes:
        """From the microphone source; silence without one."""
        del icount
        if self._microphone is None:
            return fmt.silence(frames)
        return self._microphone.read(fmt, frames)

    def horizon(self) -> int | None:
        return None

    def synchronize(self, event: SyncEvent, icount: int) -> None:
        del event, icount

    def synchronize_all(self, events: Sequence[tuple[SyncEvent, int]]) -> None:
        del events

    def finished(self) -> bool:
        return False

    def wait(self, timeout: float) -> None:
        self._wake.wait(timeout)
        self._wake.clear()

    def close(self) -> None:
        for source in self._sources.values():
            source.close()
        for input_source in self._input_sources:
            input_source.close()


class ScriptedInputs:
    """Input delivered at chosen instruction counts: scripted sessions and tests.

    Each `(icount, port, data)` of serial input, and each `(icount, input)` of `events`
    (any `AsyncInput`), is handed over at the first checkpoint at or after
    `icount`; an idle guest (halted, nothing else pending) gets the next one at once.
    The host clock is a fixed value.
    """

    def __init__(
        self,
        schedule: Sequence[tuple[int, int, bytes]],
        clock_ns: int = 1_700_000_000 * 10**9,
        events: Sequence[tuple[int, AsyncInput]] = (),
    ) -> None:
        items = [(icount, SerialInput(port, data)) for icount, port, data in schedule]
        self._schedule: list[tuple[int, AsyncInput]] = sorted(
            [*items, *events], key=lambda item: item[0]
        )
        self._clock_ns = clock_ns
        self._release_next = False

    def host_clock_ns(self, icount: int) -> int:
        del icount
        return self._clock_ns

    def take_async(self, icount: int) -> list[AsyncInput]:
        out: list[AsyncInput] = []
        while self._schedule and (self._schedule[0][0] <= icount or self._release_next):
            out.append(self._schedule.pop(0)[1])
            self._release_next = False
        return out

    def more_expected(self) -> bool:
        return bool(self._schedule)

    def audio_input(self, icount: int, fmt: AudioFormat, frames: int) -> bytes:
        """Silence (a scripted session's microphone hears nothing)."""
        del icount
        return fmt.silence(frames)

    def wait(self, timeout: float) -> None:
        del timeout
        self._release_next = True

    def horizon(self) -> int | None:
        return None

    def synchronize(self, event: SyncEvent, icount: int) -> None:
        del event, icount

    def synchronize_all(self, events: Sequence[tuple[SyncEvent, int]]) -> None:
        del events

    def finished(self) -> bool:
        return False

    def close(self) -> None:
        pass

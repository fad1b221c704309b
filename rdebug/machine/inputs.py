"""The seam through which every non-deterministic input enters the machine.

The machine never reads the host clock, a terminal or a file itself: it asks an
`ExternalInputs`.  `LiveInputs` (here) answers from the host; the recorder (which logs
what it answers) and the player (which answers from the log) live in replay/ and
implement the same protocol.  This is QEMU's REPLAY_CLOCK / replay_char_* seam.

Threads: host sources (a terminal reader, a file feeder) run on their own threads and
only put items on a queue; the machine thread takes them with `take_async` at its
checkpoints, so the machine alone decides at which icount each input lands.
"""

from __future__ import annotations

import enum
import os
import queue
import select
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import BinaryIO, Protocol


class SyncEvent(enum.Enum):
    """Deterministic events the inputs seam is told about, so a log can pin them down."""

    INTERRUPT = "interrupt"  # an external interrupt was delivered
    EXCEPTION = "exception"  # an exception or software interrupt was delivered
    SHUTDOWN = "shutdown"  # the guest powered off (exit port)
    RESET = "reset"  # the guest triple-faulted
    CLOCK_WARP = "clock-warp"  # a halted CPU's clock skipped ahead to the next timer


@dataclass(frozen=True, slots=True)
class SerialInput:
    """Bytes that arrived from the host for serial port `port` (0 = COM1)."""

    port: int
    data: bytes


@dataclass(frozen=True, slots=True)
class NetInput:
    """An Ethernet frame that arrived from the host for network adapter `adapter`."""

    adapter: int
    data: bytes


@dataclass(frozen=True, slots=True)
class KeyInput:
    """A key went down or up on the host keyboard.

    `key` is the key's scan code set 1 make code; keys sent with an E0 prefix are
    0xE000 | code (e.g. 0xE01D, right Ctrl).
    """

    key: int
    down: bool


@dataclass(frozen=True, slots=True)
class MouseInput:
    """One report of the host mouse: a relative move (y grows upwards, as PS/2 reports)
    and the buttons held (bit 0 left, bit 1 right, bit 2 middle)."""

    dx: int
    dy: int
    buttons: int


AsyncInput = SerialInput | NetInput | KeyInput | MouseInput


class ExternalInputs(Protocol):
    """What the machine asks of the outside world."""

    def host_clock_ns(self, icount: int) -> int:
        """Host wall-clock time (ns since the Unix epoch), e.g. for the RTC."""
        ...

    def take_async(self, icount: int) -> Sequence[AsyncInput]:
        """Inputs that arrived since the last call; they land at `icount` exactly."""
        ...

    def more_expected(self) -> bool:
        """Whether input may still arrive (an idle guest then waits instead of stopping)."""
        ...

    def horizon(self) -> int | None:
        """An icount the machine must stop at exactly and call `take_async` there.

        A replay answers the icount of its next recorded input (or of the end of the
        recording, where `take_async` then leaves the horizon in place: the run ends).
        Live inputs answer None.
        """
        ...

    def synchronize(self, event: SyncEvent, icount: int) -> None:
        """`event` happened at `icount` (a recorder logs it; a player checks it)."""
        ...

    def finished(self) -> bool:
        """Nothing more will ever come: at its horizon, the run must end."""
        ...

    def wait(self, timeout: float) -> None:
        """Block until input may have arrived or `timeout` seconds passed."""
        ...

    def close(self) -> None: ...


class SerialSource(Protocol):
    """A host byte source for one serial port, read on its own thread."""

    def start(self, deliver: DeliverFn) -> None: ...

    def close(self) -> None: ...


class DeliverFn(Protocol):
    def __call__(self, data: bytes | None) -> None:
        """Hand over bytes; None means the source is exhausted."""
        ...


class InputDeliverFn(Protocol):
    def __call__(self, items: Sequence[KeyInput | MouseInput] | None) -> None:
        """Hand over keyboard or mouse events; None means the source is exhausted."""
        ...


class InputSource(Protocol):
    """A host source of keyboard or mouse events, read on its own thread."""

    def start(self, deliver: InputDeliverFn) -> None: ...

    def close(self) -> None: ...


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
    ) -> None:
        self._clock = clock
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

    def horizon(self) -> int | None:
        return None

    def synchronize(self, event: SyncEvent, icount: int) -> None:
        del event, icount

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

    def wait(self, timeout: float) -> None:
        del timeout
        self._release_next = True

    def horizon(self) -> int | None:
        return None

    def synchronize(self, event: SyncEvent, icount: int) -> None:
        del event, icount

    def finished(self) -> bool:
        return False

    def close(self) -> None:
        pass

"""Host network backends: where the NIC's frames go, and where received frames come from.

Shaped after QEMU's `-netdev`:

    socket,udp=HOST:PORT,localaddr=HOST:PORT   one Ethernet frame per UDP datagram: frames
                                               the guest sends go to udp=, datagrams that
                                               arrive at localaddr= are frames for the guest
    none                                       the NIC is on no network

Received frames enter the machine only through the inputs seam: the socket's reader
thread puts them on a bounded queue and `NetInputs` (wrapping the other live inputs)
hands them over as `NetInput` at the machine's next checkpoint, where a recorder logs
them.  Under a flood the queue fills and frames are dropped *here*, on the host side,
before anything is logged: the log holds exactly the frames the guest saw.

`PcapWriter` writes the guest's frames to a capture file (replay's `--net-output`), with
virtual-time stamps.  Knows nothing of the log, the NIC's registers or the run loop.
"""

from __future__ import annotations

import errno
import logging
import queue
import select
import socket
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from rdebug.errors import UsageError
from rdebug.machine.audio import AudioFormat
from rdebug.machine.inputs import AsyncInput, ExternalInputs, NetInput, SyncEvent

log = logging.getLogger(__name__)

#: Frames waiting for the machine, at most (more are dropped at the host side).
QUEUE_LIMIT = 256
#: The largest datagram read (bigger ones are truncated by the kernel; the NIC drops them).
_DATAGRAM_MAX = 65536
#: How often a waiting machine looks at the frame queue (seconds).
_POLL = 0.005


class FrameSource(Protocol):
    """Frames from the host for one adapter, read on their own thread."""

    def start(self, deliver: FrameDeliverFn) -> None: ...

    def close(self) -> None: ...


class FrameDeliverFn(Protocol):
    def __call__(self, frame: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class SocketNetdev:
    """`socket,udp=HOST:PORT,localaddr=HOST:PORT`."""

    udp: tuple[str, int]
    localaddr: tuple[str, int]


@dataclass(frozen=True, slots=True)
class NoNetdev:
    """`none`."""


NetdevSpec = SocketNetdev | NoNetdev


def _address(option: str, text: str, key: str, port_zero: bool) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise UsageError(f"{option}: {key}={text!r}: expected HOST:PORT")
    number = int(port)
    if not (0 if port_zero else 1) <= number <= 65535:
        raise UsageError(f"{option}: {key}={text!r}: the port must be 1..65535")
    return host or "127.0.0.1", number


def parse_netdev(text: str) -> NetdevSpec:
    """QEMU's -netdev syntax, the backends rdebug has (`id=` is accepted and ignored)."""
    option = f"--netdev {text}"
    kind, _, rest = text.partition(",")
    fields: dict[str, str] = {}
    for part in rest.split(",") if rest else []:
        key, sep, value = part.partition("=")
        if not sep or not value or key in fields:
            raise UsageError(f"{option}: expected KEY=VALUE, not {part!r}")
        fields[key] = value
    fields.pop("id", None)
    if kind == "none":
        if fields:
            raise UsageError(f"{option}: 'none' takes no options")
        return NoNetdev()
    if kind != "socket":
        raise UsageError(f"{option}: unknown backend {kind!r} (socket or none)")
    unknown = set(fields) - {"udp", "localaddr"}
    if unknown:
        raise UsageError(f"{option}: unknown option {sorted(unknown)[0]!r} (udp=, localaddr=)")
    if "udp" not in fields or "localaddr" not in fields:
        raise UsageError(f"{option}: socket needs udp=HOST:PORT and localaddr=HOST:PORT")
    return SocketNetdev(
        _address(option, fields["udp"], "udp", port_zero=False),
        _address(option, fields["localaddr"], "localaddr", port_zero=True),
    )


class UdpNetdev:
    """One frame per UDP datagram: sends to `udp`, receives at `localaddr`.

    Opening binds the local address at once (a port in use is a `UsageError`); the
    reader thread starts with `start`.  A peer that is gone is not an error: frames sent
    to it are lost, as on a wire with nobody listening.
    """

    def __init__(self, spec: SocketNetdev) -> None:
        self.peer = spec.udp
        try:
            infos = socket.getaddrinfo(*spec.localaddr, socket.AF_INET, socket.SOCK_DGRAM)
            peer_infos = socket.getaddrinfo(*spec.udp, socket.AF_INET, socket.SOCK_DGRAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise UsageError(f"--netdev socket: cannot resolve an address: {exc}") from None
        self._peer_addr = peer_infos[0][4]
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._sock.bind(infos[0][4])
        except OSError as exc:
            self._sock.close()
            host, port = spec.localaddr
            reason = "the port is in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            raise UsageError(f"--netdev socket: cannot bind {host}:{port}: {reason}") from None
        self.local: tuple[str, int] = self._sock.getsockname()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sent = 0
        self.send_errors = 0

    # -- FrameSink ----------------------------------------------------------------------

    def transmit(self, frame: bytes, now_ns: int) -> None:
        del now_ns
        try:
            self._sock.sendto(frame, self._peer_addr)
            self.sent += 1
        except OSError as exc:  # peer gone (ECONNREFUSED), frame too big, ...
            self.send_errors += 1
            log.debug("netdev: frame of %d bytes not sent: %s", len(frame), exc)

    # -- FrameSource --------------------------------------------------------------------

    def start(self, deliver: FrameDeliverFn) -> None:
        self._thread = threading.Thread(
            target=self._pump, args=(deliver,), name="netdev-socket", daemon=True
        )
        self._thread.start()

    def _pump(self, deliver: FrameDeliverFn) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self._sock], [], [], 0.1)
                if not ready:
                    continue
                frame = self._sock.recv(_DATAGRAM_MAX)
            except (OSError, ValueError):  # ICMP errors from a vanished peer; closed socket
                if self._stop.is_set():
                    return
                continue
            deliver(frame)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        self._sock.close()


class NetInputs:
    """Live inputs plus received frames: `inner`'s inputs, then queued frames as NetInput.

    Each source delivers into one bounded queue (QUEUE_LIMIT frames); a frame that finds
    it full is dropped and counted in `dropped`, before it could be logged.
    """

    def __init__(
        self,
        inner: ExternalInputs,
        sources: dict[int, FrameSource],
        queue_limit: int = QUEUE_LIMIT,
    ) -> None:
        self._inner = inner
        self._queue: queue.Queue[NetInput] = queue.Queue(maxsize=queue_limit)
        self._sources = dict(sources)
        self.dropped = 0
        self.received = 0
        self._lock = threading.Lock()
        for adapter, source in self._sources.items():
            source.start(self._deliverer(adapter))

    def _deliverer(self, adapter: int) -> FrameDeliverFn:
        def deliver(frame: bytes) -> None:
            try:
                self._queue.put_nowait(NetInput(adapter, frame))
            except queue.Full:
                with self._lock:
                    self.dropped += 1

        return deliver

    def host_clock_ns(self, icount: int) -> int:
        return self._inner.host_clock_ns(icount)

    def audio_input(self, icount: int, fmt: AudioFormat, frames: int) -> bytes:
        return self._inner.audio_input(icount, fmt, frames)

    def take_async(self, icount: int) -> Sequence[AsyncInput]:
        items: list[AsyncInput] = [*self._inner.take_async(icount)]
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                return items
            self.received += 1

    def more_expected(self) -> bool:
        return bool(self._sources) or self._inner.more_expected() or not self._queue.empty()

    def horizon(self) -> int | None:
        return self._inner.horizon()

    def synchronize(self, event: SyncEvent, icount: int) -> None:
        self._inner.synchronize(event, icount)

    def synchronize_all(self, events: Sequence[tuple[SyncEvent, int]]) -> None:
        self._inner.synchronize_all(events)

    def finished(self) -> bool:
        return self._inner.finished()

    def wait(self, timeout: float) -> None:
        """Wait for the inner inputs, looking at the frame queue every few ms."""
        remaining = timeout
        while self._queue.empty() and remaining > 0:
            step = min(_POLL, remaining)
            self._inner.wait(step)
            remaining -= step

    def close(self) -> None:
        for source in self._sources.values():
            source.close()
        self._inner.close()


class PcapWriter:
    """A FrameSink writing a pcap capture (LINKTYPE_ETHERNET), stamped in virtual time."""

    _HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._stream.write(self._HEADER)
        self.frames = 0

    @classmethod
    def open(cls, path: Path) -> tuple[PcapWriter, BinaryIO]:
        try:
            stream = path.open("wb")
        except OSError as exc:
            raise UsageError(f"--net-output {path}: cannot write: {exc.strerror}") from None
        return cls(stream), stream

    def transmit(self, frame: bytes, now_ns: int) -> None:
        seconds, ns = divmod(now_ns, 1_000_000_000)
        record = struct.pack("<IIII", seconds & 0xFFFFFFFF, ns // 1000, len(frame), len(frame))
        self._stream.write(record + frame)
        self.frames += 1


def read_pcap(data: bytes) -> list[tuple[int, bytes]]:
    """The (timestamp in µs, frame) records of a capture `PcapWriter` wrote."""
    if data[:4] != PcapWriter._HEADER[:4]:
        raise ValueError("not a little-endian microsecond pcap file")
    out = []
    offset = len(PcapWriter._HEADER)
    while offset + 16 <= len(data):
        seconds, micros, length, _ = struct.unpack_from("<IIII", data, offset)
        offset += 16
        out.append((seconds * 1_000_000 + micros, data[offset : offset + length]))
        offset += length
    return out

"""`GdbServer`: the RSP over TCP, one gdb connection at a time.

Owns the listening socket, the accept loop and, per connection, two threads:

    reader thread                         session thread (the caller of serve_*)
    -------------                         ------------------------------------------
    recv -> PacketDecoder -> events  ==>  queue -> RspSession.handle -> Target calls
         \\-> 0x03 sets / a packet clears the interrupt flag (read by the target's
             interrupted() while it runs)

The target is only ever called from the session thread, and never sees the socket.
Knows nothing about emulators; what a packet means lives in `commands`/`session`.

Errors: a `TargetError` or malformed packet is an ``E`` reply (inside the session); any
other exception from the target is logged, that connection is closed, and the server
keeps listening.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import select
import socket
import threading
from types import TracebackType

from rdebug.gdbstub.packet import Event, PacketDecoder, frame
from rdebug.gdbstub.session import DEFAULT_PACKET_SIZE, RspSession, track_interrupt
from rdebug.gdbstub.target import Target

log = logging.getLogger(__name__)


class GdbServer:
    """Serve `target` to gdb on `host`:`port` (port 0: the system picks a free one).

    Bound to 127.0.0.1 unless another host is given: the stub can read and write the
    whole guest.  ``listening`` is set, and ``address`` valid, once the socket listens:
    `start` listens before it returns; a caller running `serve_forever` in its own thread
    waits on ``listening`` instead of sleeping.
    """

    def __init__(
        self,
        target: Target,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        packet_size: int = DEFAULT_PACKET_SIZE,
    ) -> None:
        self._target = target
        self._host = host
        self._port = port
        self._packet_size = packet_size
        self._listener: socket.socket | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._conn: socket.socket | None = None
        self._thread: threading.Thread | None = None
        #: Set once the listening socket is bound and listening.
        self.listening = threading.Event()
        #: Number of connections served so far (finished or not).
        self.connections = 0
        #: a connection accepted while the previous one was ending, served next
        self._handoff: queue.Queue[tuple[socket.socket, object]] = queue.Queue()

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) actually listened on."""
        if self._listener is None:
            raise RuntimeError("the server is not listening yet")
        host, port = self._listener.getsockname()[:2]
        return str(host), int(port)

    def listen(self) -> tuple[str, int]:
        """Bind and listen (once); return the address."""
        if self._listener is None:
            family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
            listener = socket.socket(family, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                listener.bind((self._host, self._port))
                listener.listen(1)
            except OSError:
                listener.close()
                raise
            self._listener = listener
            log.info("gdb stub listening on %s:%d", *self.address)
            self.listening.set()
        return self.address

    def start(self) -> threading.Thread:
        """Listen now, then `serve_forever` in a daemon thread; return the thread."""
        self.listen()
        if self._thread is None:
            self._thread = threading.Thread(
                target=self.serve_forever, name="gdbstub-server", daemon=True
            )
            self._thread.start()
        return self._thread

    def shutdown(self) -> None:
        """Make `serve_forever`/`serve_one` return soon: stop accepting and end the
        current connection, but close nothing: the serving thread may still be waiting
        on the sockets (a signal handler calls this from another thread: the main one
        may hold the lock); `close` releases them once serving has returned."""
        self._closing.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(OSError):
                    self._conn.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Stop accepting, end the current connection, release the sockets."""
        self.shutdown()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)
        if self._listener is not None:
            self._listener.close()
        self._wake_r.close()
        self._wake_w.close()

    def __enter__(self) -> GdbServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- serving --------------------------------------------------------------------------

    def serve_forever(self) -> None:
        """Accept and serve connections one after the other until `close`."""
        while self.serve_one():
            pass

    def serve_one(self) -> bool:
        """Accept one connection and serve it to its end; False if the server closed."""
        if self._closing.is_set():
            return False
        listener = self._listener or self._listen_socket()
        with contextlib.suppress(queue.Empty):
            conn, peer = self._handoff.get_nowait()
            self._serve_connection(conn, peer)
            return not self._closing.is_set()
        while not self._closing.is_set():
            try:
                ready, _, _ = select.select([listener, self._wake_r], [], [])
            except (OSError, ValueError):  # close() closed the sockets meanwhile
                break
            if self._wake_r in ready or self._closing.is_set():
                break
            try:
                conn, peer = listener.accept()
            except OSError:
                continue
            self._serve_connection(conn, peer)
            return not self._closing.is_set()
        return False

    def _listen_socket(self) -> socket.socket:
        self.listen()
        assert self._listener is not None
        return self._listener

    def _serve_connection(self, conn: socket.socket, peer: object) -> None:
        self.connections += 1
        log.info("gdb connected from %s", peer)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self._conn = conn
        interrupt = threading.Event()
        events: queue.Queue[Event | None] = queue.Queue()
        reader = threading.Thread(
            target=_read_loop,
            args=(conn, PacketDecoder(max_packet=2 * self._packet_size), interrupt, events),
            name="gdbstub-reader",
            daemon=True,
        )
        session = RspSession(self._target, conn.sendall, interrupt, packet_size=self._packet_size)
        reader.start()
        served = threading.Event()
        refuser = threading.Thread(
            target=self._refuse_others, args=(served,), name="gdbstub-refuser", daemon=True
        )
        refuser.start()
        try:
            while (event := events.get()) is not None:
                if not session.handle(event):
                    break
        except OSError as exc:
            log.info("gdb connection lost: %s", exc)
        except Exception:
            # Not a TargetError: the target is in an unknown state for this connection.
            log.exception("target failed; closing the gdb connection")
        finally:
            with self._lock:
                self._conn = None
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
            served.set()
            refuser.join(timeout=10)
            reader.join(timeout=10)
            log.info("gdb connection from %s closed", peer)

    def _refuse_others(self, served: threading.Event) -> None:
        """While one gdb is attached, tell any other that connects why it cannot.

        The target has one state: two debuggers moving it would confuse both.  The
        refusal answers the newcomer's first packet with an `E.` error text (GDB manual,
        node "Standard Replies"), which gdb prints, then closes.
        """
        listener = self._listener
        assert listener is not None
        while not served.is_set() and not self._closing.is_set():
            try:
                ready, _, _ = select.select([listener], [], [], 0.1)
            except (OSError, ValueError):  # close() closed the listener meanwhile
                return
            if not ready:
                continue
            try:
                other, peer = listener.accept()
            except OSError:
                continue
            if served.wait(0.5):
                # the first gdb was just leaving: this one is next, not refused
                self._handoff.put((other, peer))
                return
            log.info("refusing a second gdb from %s", peer)
            with contextlib.closing(other):
                other.settimeout(5)
                with contextlib.suppress(OSError):
                    data = b""
                    while b"#" not in data or len(data) < data.index(b"#") + 3:
                        chunk = other.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    other.sendall(b"+" + frame(b"E.another gdb is already attached to this target"))


def _read_loop(
    conn: socket.socket,
    decoder: PacketDecoder,
    interrupt: threading.Event,
    events: queue.Queue[Event | None],
) -> None:
    """Read until EOF; queue events; keep the interrupt flag (session's rule)."""
    try:
        while data := conn.recv(65536):
            for event in decoder.feed(data):
                track_interrupt(event, interrupt)
                events.put(event)
    except OSError:
        pass
    finally:
        interrupt.set()  # gdb is gone: a running target should stop
        events.put(None)

"""One RSP conversation with one gdb: acknowledgments, no-ack mode, and every command.

Owns the per-connection protocol state (ack mode, what gdb announced in ``qSupported``,
the last packet sent for a ``-``) and the dispatch of typed commands to a `Target`.  Knows
nothing about sockets or threads: bytes leave through a `send` callable, events come in
through `handle` (or raw bytes through `feed`), and the interrupt flag is an Event some
other party sets (the server's reader thread).  So a test drives a session with scripted
transcripts and no socket.

Interrupt rule (shared with the server's reader): a 0x03 sets the flag, any packet clears
it.  gdb sends 0x03 only after a resume packet, so the flag is set exactly when gdb wants
the current run to stop; a 0x03 racing with a stop reply is cleared by gdb's next packet.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import assert_never

from rdebug.gdbstub.commands import (
    Command,
    Detach,
    InsertBreakpoint,
    Kill,
    Monitor,
    MustReplyEmpty,
    QueryAttached,
    QueryCurrentThread,
    QueryHaltReason,
    QueryOffsets,
    QuerySupported,
    QuerySymbol,
    QueryThreadInfoFirst,
    QueryThreadInfoNext,
    QueryVContActions,
    ReadExecFile,
    ReadFeatures,
    ReadMemory,
    ReadRegister,
    ReadRegisters,
    RemoveBreakpoint,
    SetThread,
    StartNoAckMode,
    ThreadAlive,
    Unknown,
    VCont,
    WriteMemory,
    WriteRegister,
    WriteRegisters,
    parse_command,
)
from rdebug.gdbstub.errors import PacketError, TargetError
from rdebug.gdbstub.packet import (
    Ack,
    BadPacket,
    Event,
    Interrupt,
    Nack,
    Packet,
    PacketDecoder,
    encode_hex,
    frame,
    printable,
)
from rdebug.gdbstub.replies import (
    EMPTY,
    OK,
    StopReplyOptions,
    error_reply,
    stop_reply,
    xfer_chunk,
)
from rdebug.gdbstub.target import (
    BreakpointKind,
    Continue,
    ReverseContinue,
    ReverseStep,
    Signalled,
    Step,
    StopReason,
    Target,
)
from rdebug.gdbstub.target_xml import RegisterLayout

log = logging.getLogger(__name__)

#: The one thread of the single-threaded target (thread-ids are hex, >0).
THREAD_ID = 1
#: Largest packet data we accept, announced as ``PacketSize`` (hex) in ``qSupported``.
DEFAULT_PACKET_SIZE = 0x4000
#: Most bytes of one monitor command's output sent to gdb; the rest is cut, and a last
#: line says so.
MAX_MONITOR_OUTPUT = 1 << 20


def track_interrupt(event: Event, flag: threading.Event) -> None:
    """Apply the interrupt rule: 0x03 sets `flag`, a packet clears it."""
    if isinstance(event, Interrupt):
        flag.set()
    elif isinstance(event, Packet):
        flag.clear()


class RspSession:
    """The protocol side of one gdb connection.

    `send` writes bytes to gdb.  `interrupt` is the flag a target's `interrupted()` reads;
    whoever receives bytes keeps it with `track_interrupt` (`feed` does so itself).
    """

    def __init__(
        self,
        target: Target,
        send: Callable[[bytes], None],
        interrupt: threading.Event | None = None,
        *,
        packet_size: int = DEFAULT_PACKET_SIZE,
    ) -> None:
        self._target = target
        self._send = send
        self.interrupt = interrupt if interrupt is not None else threading.Event()
        self.packet_size = packet_size
        self.ack_mode = True
        self._last_sent: bytes | None = None
        self._stop_options = StopReplyOptions(tid=THREAD_ID)
        self._layout: RegisterLayout | None = None
        self._decoder: PacketDecoder | None = None
        #: breakpoints and watchpoints this connection placed and has not removed
        self._placed: set[tuple[BreakpointKind, int, int]] = set()

    # -- input --------------------------------------------------------------------------

    def feed(self, data: bytes) -> bool:
        """Decode `data` and handle its events; False once the session is over.

        Interrupts are tracked for the whole piece first, as the server's reader thread
        would have done while the target ran.
        """
        if self._decoder is None:
            self._decoder = PacketDecoder(max_packet=2 * self.packet_size)
        events = self._decoder.feed(data)
        for event in events:
            track_interrupt(event, self.interrupt)
        return self.handle_all(events)

    def handle_all(self, events: Iterable[Event]) -> bool:
        """`handle` each event in turn; False (and stop) once the session is over."""
        return all(self.handle(event) for event in events)

    def handle(self, event: Event) -> bool:
        """Act on one decoded event; False once the session is over (``D``, ``k``).

        `TargetError` and `PacketError` become ``E`` replies; any other exception from
        the target propagates: the connection is not trustworthy any more.
        """
        match event:
            case Packet(payload=payload):
                log.debug("<- $%s", printable(payload))
                if self.ack_mode:
                    self._write(b"+")
                return self._dispatch(payload)
            case BadPacket(raw=raw, reason=reason):
                log.warning("bad packet (%s): %s", reason, printable(raw))
                if self.ack_mode:
                    self._write(b"-")
                return True
            case Ack():
                return True
            case Nack():
                # node "Overview": '-' requests retransmission
                if self.ack_mode and self._last_sent is not None:
                    log.debug("retransmitting after '-'")
                    self._write(self._last_sent)
                return True
            case Interrupt():
                log.debug("<- 0x03 while stopped: ignored")
                return True
            case _:
                assert_never(event)

    def end(self) -> None:
        """The connection is over, however it ended (``D``, ``k``, EOF, a broken socket):
        remove the breakpoints and watchpoints it placed and left, as QEMU does, so the
        next connection starts clean.  Never raises: the target may be in any state."""
        placed, self._placed = self._placed, set()
        bps = self._target.breakpoints() if placed else None
        for kind, addr, length in sorted(placed):
            try:
                assert bps is not None
                bps.remove_breakpoint(kind, addr, length)
            except Exception:
                log.exception("cannot remove %s at %#x left by gdb", kind.name, addr)

    # -- output -------------------------------------------------------------------------

    def _write(self, raw: bytes) -> None:
        log.debug("-> %s", printable(raw))
        self._send(raw)

    def _reply(self, payload: bytes) -> None:
        raw = frame(payload)
        self._last_sent = raw
        self._write(raw)

    # -- dispatch -----------------------------------------------------------------------

    def _dispatch(self, payload: bytes) -> bool:
        try:
            return self._execute(parse_command(payload))
        except PacketError as exc:
            log.info("malformed packet %s: %s", printable(payload, 60), exc)
            self._reply(error_reply(exc.errno))
        except TargetError as exc:
            log.debug("target error for %s: %s", printable(payload, 60), exc)
            if exc.tell:
                # node "Standard Replies": 'E.errtext'; framing bytes cannot be sent
                text = str(exc).encode("ascii", "replace")
                self._reply(b"E." + bytes(c for c in text if c not in b"$#}*" and c >= 0x20))
            else:
                self._reply(error_reply(exc.errno))
        return True

    @property
    def layout(self) -> RegisterLayout:
        """The target's register layout, asked once per connection."""
        if self._layout is None:
            self._layout = self._target.register_layout()
        return self._layout

    def _execute(self, command: Command) -> bool:
        """Serve `command`; False when the connection must close."""
        target = self._target
        match command:
            # node "Packets", '?': the reply is a stop reply
            case QueryHaltReason():
                self._reply_stop(target.stop_reason())
            # node "Packets", 'g' / 'G'
            case ReadRegisters():
                self._reply(encode_hex(target.read_registers()))
            case WriteRegisters(data=data):
                if len(data) != self.layout.g_size:
                    raise PacketError(f"G: {len(data)} bytes, want {self.layout.g_size}")
                target.write_registers(data)
                self._reply(OK)
            # node "Packets", 'p' / 'P'
            case ReadRegister(regnum=regnum):
                self._check_register(regnum)
                self._reply(encode_hex(target.read_register(regnum)))
            case WriteRegister(regnum=regnum, value=value):
                size = self._check_register(regnum)
                if len(value) != size:
                    raise PacketError(f"P{regnum:x}: {len(value)} bytes, want {size}")
                target.write_register(regnum, value)
                self._reply(OK)
            # node "Packets", 'm': "The reply may contain fewer addressable memory units
            # than requested" -- so cap what one reply carries
            case ReadMemory(addr=addr, length=length):
                self._check_address(addr, 1, "m")
                length = min(length, (self.packet_size - 1) // 2, self._address_end - addr)
                data = target.read_memory(addr, length) if length else b""
                self._reply(encode_hex(data))
            # node "Packets", 'M' / 'X' (gdb probes 'X' support with a 0-length write)
            case WriteMemory(addr=addr, data=data):
                self._check_address(addr, len(data), "M")
                if data:
                    target.write_memory(addr, data)
                self._reply(OK)
            # node "Packets", 'Z'/'z': empty reply = this type is not supported
            case InsertBreakpoint(kind=kind, addr=addr, length=length):
                bps = target.breakpoints()
                if bps is None or kind not in bps.supported_kinds():
                    self._reply(EMPTY)
                else:
                    self._check_breakpoint(kind, addr, length)
                    bps.add_breakpoint(kind, addr, length)
                    self._placed.add((kind, addr, length))
                    self._reply(OK)
            case RemoveBreakpoint(kind=kind, addr=addr, length=length):
                bps = target.breakpoints()
                if bps is None or kind not in bps.supported_kinds():
                    self._reply(EMPTY)
                else:
                    self._check_breakpoint(kind, addr, length)
                    bps.remove_breakpoint(kind, addr, length)
                    self._placed.discard((kind, addr, length))
                    self._reply(OK)
            # node "Packets", 'c', 'C', 's', 'S': replies are stop replies
            case Continue() | Step():
                self._reply_resumed(target.resume(command, self.interrupt.is_set))
            # node "Packets", 'vCont': the leftmost action matching our thread applies
            case VCont():
                action = command.action_for(THREAD_ID)
                if action is None:
                    raise PacketError("vCont: no action for the thread")
                self._reply_resumed(target.resume(action, self.interrupt.is_set))
            case QueryVContActions():
                self._reply(b"vCont;c;C;s;S")
            # node "Packets", 'bc' / 'bs' (only announced when reverse() is not None)
            case ReverseContinue() | ReverseStep():
                reverse = target.reverse()
                if reverse is None:
                    self._reply(EMPTY)
                else:
                    self._reply_resumed(reverse.resume_reverse(command, self.interrupt.is_set))
            # node "General Query Packets", 'qSupported'
            case QuerySupported():
                self._reply(self._negotiate(command))
            # node "General Query Packets", 'qXfer:features:read'
            case ReadFeatures(annex=annex, offset=offset, length=length):
                if annex != "target.xml":
                    self._reply(b"E00")  # "annex was invalid"
                else:
                    document = self.layout.target_xml.encode()
                    self._reply(xfer_chunk(document, offset, length, self.packet_size))
            # node "General Query Packets", 'qXfer:exec-file:read'
            case ReadExecFile(offset=offset, length=length):
                path = target.exec_file()
                if path is None:
                    self._reply(EMPTY)
                else:
                    self._reply(xfer_chunk(path.encode(), offset, length, self.packet_size))
            # node "General Query Packets", 'qRcmd'
            case Monitor(command=line):
                self._reply_monitor(target.monitor(line, self.interrupt.is_set))
            # node "General Query Packets", 'qC', 'qfThreadInfo', 'qsThreadInfo'
            case QueryCurrentThread():
                self._reply(f"QC{THREAD_ID:x}".encode())
            case QueryThreadInfoFirst():
                self._reply(f"m{THREAD_ID:x}".encode())
            case QueryThreadInfoNext():
                self._reply(b"l")
            # node "General Query Packets", 'qAttached': 1 = attached to an existing
            # process, so quitting gdb detaches instead of killing the replay
            case QueryAttached():
                self._reply(b"1")
            # node "General Query Packets", 'qOffsets': no relocation to report
            case QueryOffsets():
                self._reply(EMPTY)
            # node "General Query Packets", 'qSymbol': "OK: the target does not need to
            # look up any (more) symbols"
            case QuerySymbol():
                self._reply(OK)
            # node "Packet Acknowledgment": acks stop after our OK
            case StartNoAckMode():
                self._reply(OK)
                self.ack_mode = False
            # node "Packets", 'H' and 'T': a single thread
            case SetThread(thread=thread) | ThreadAlive(thread=thread):
                self._reply(OK if thread.matches(THREAD_ID) else error_reply(PacketError.errno))
            # node "Packets", 'D': reply OK, then gdb goes away
            case Detach():
                target.detach()
                self._reply(OK)
                return False
            # node "Packets", 'k': "the k packet has no reply"; closing is what gdb expects
            case Kill():
                target.kill()
                return False
            # node "Packets", 'vMustReplyEmpty': answered like any unknown 'v' packet
            case MustReplyEmpty() | Unknown():
                self._reply(EMPTY)
            case _:
                assert_never(command)
        return True

    @property
    def _address_end(self) -> int:
        return 1 << self.layout.address_bits

    def _check_address(self, addr: int, length: int, what: str) -> None:
        """Refuse what does not fit the target's address space (nothing is masked)."""
        if addr >= self._address_end or addr + length > self._address_end:
            raise PacketError(
                f"{what}: {addr:#x}+{length:#x} is beyond the "
                f"{self.layout.address_bits}-bit address space"
            )

    def _check_breakpoint(self, kind: BreakpointKind, addr: int, length: int) -> None:
        if kind in (BreakpointKind.SOFTWARE, BreakpointKind.HARDWARE):
            self._check_address(addr, 1, f"Z{kind.value}")
            return
        # a watchpoint's kind is its length in bytes: 0 would watch nothing
        if length == 0:
            raise PacketError(f"Z{kind.value}: a watchpoint of 0 bytes")
        self._check_address(addr, length, f"Z{kind.value}")

    def _check_register(self, regnum: int) -> int:
        try:
            return self.layout.register(regnum).size
        except KeyError:
            raise PacketError(f"no register {regnum:#x}") from None

    def _reply_stop(self, reason: StopReason) -> None:
        self._reply(stop_reply(reason, self._stop_options))

    def _reply_resumed(self, reason: StopReason) -> None:
        # node "Stop Reply Packets": 'O XX...' console output may come before the stop
        # reply to a resume (not to '?', which replies with the stop alone)
        if isinstance(reason, Signalled) and reason.message:
            self._console(reason.message.encode())
        self._reply_stop(reason)

    def _console(self, data: bytes) -> None:
        per_packet = (self.packet_size - 1) // 2
        for i in range(0, len(data), per_packet):
            self._reply(b"O" + encode_hex(data[i : i + per_packet]))

    def _reply_monitor(self, output: str) -> None:
        # qRcmd replies: OK, or the hex-encoded output; output longer than a packet goes
        # first as 'O' console-output packets (node "Stop Reply Packets", 'O XX...').
        data = output.encode()
        if len(data) > MAX_MONITOR_OUTPUT:
            cut = data.rfind(b"\n", 0, MAX_MONITOR_OUTPUT) + 1 or MAX_MONITOR_OUTPUT
            data = data[:cut] + (
                f"... output truncated: {len(data) - cut} more bytes not sent\n".encode()
            )
        if not data:
            self._reply(OK)
            return
        if len(data) <= (self.packet_size - 1) // 2:
            self._reply(encode_hex(data))
            return
        self._console(data)
        self._reply(OK)

    def qsupported_reply(self) -> bytes:
        """Our ``qSupported`` features, computed from the target's capabilities."""
        target = self._target
        features = [f"PacketSize={self.packet_size:x}", "QStartNoAckMode+", "qXfer:features:read+"]
        if target.exec_file() is not None:
            features.append("qXfer:exec-file:read+")
        bps = target.breakpoints()
        kinds = bps.supported_kinds() if bps is not None else frozenset()
        if BreakpointKind.SOFTWARE in kinds:
            features.append("swbreak+")
        if BreakpointKind.HARDWARE in kinds:
            features.append("hwbreak+")
        features.append("vContSupported+")
        if target.reverse() is not None:
            features += ["ReverseStep+", "ReverseContinue+"]
        return ";".join(features).encode()

    def _negotiate(self, command: QuerySupported) -> bytes:
        reply = self.qsupported_reply()
        ours = reply.split(b";")
        self._stop_options = StopReplyOptions(
            swbreak=command.peer_supports("swbreak") and b"swbreak+" in ours,
            hwbreak=command.peer_supports("hwbreak") and b"hwbreak+" in ours,
            tid=THREAD_ID,
        )
        return reply

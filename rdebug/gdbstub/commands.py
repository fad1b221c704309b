"""Typed commands parsed from packet payloads (GDB manual, nodes "Packets" and "General
Query Packets").

Owns the meaning of every packet the stub understands: `parse_command` turns a payload
into one frozen value, or `Unknown` for anything else (the session answers that with an
empty reply, as the manual asks).  A packet that is recognised but malformed raises
`PacketError`.  Knows nothing about framing, replies, sockets or targets' behaviour; the
resume commands are the target's own action values (`Continue`, `Step`, `ReverseContinue`,
`ReverseStep`).
"""

from __future__ import annotations

from dataclasses import dataclass

from rdebug.gdbstub.errors import PacketError
from rdebug.gdbstub.packet import decode_hex, parse_hex_int, unescape_binary
from rdebug.gdbstub.target import (
    BreakpointKind,
    Continue,
    ReverseContinue,
    ReverseStep,
    Step,
)

# -- thread ids (node "Packets", anchor "thread-id syntax") -------------------------------

ALL_THREADS = -1
ANY_THREAD = 0


@dataclass(frozen=True, slots=True)
class ThreadId:
    """``tid`` or ``p<pid>.<tid>``; -1 is every thread (or process), 0 any one."""

    tid: int
    pid: int | None = None

    def matches(self, tid: int) -> bool:
        """Whether this id designates thread `tid`."""
        return self.tid in (ALL_THREADS, ANY_THREAD, tid)


def parse_thread_id(text: bytes) -> ThreadId:
    """Parse a thread-id.

    >>> parse_thread_id(b"-1"), parse_thread_id(b"p1.a"), parse_thread_id(b"p2")
    (ThreadId(tid=-1, pid=None), ThreadId(tid=10, pid=1), ThreadId(tid=-1, pid=2))
    """
    if text.startswith(b"p"):
        pid_text, dot, tid_text = text[1:].partition(b".")
        return ThreadId(_thread_number(tid_text) if dot else ALL_THREADS, _thread_number(pid_text))
    return ThreadId(_thread_number(text))


def _thread_number(text: bytes) -> int:
    return ALL_THREADS if text == b"-1" else parse_hex_int(text)


# -- the commands ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueryHaltReason:
    """``?``: why did the target stop."""


@dataclass(frozen=True, slots=True)
class ReadRegisters:
    """``g``."""


@dataclass(frozen=True, slots=True)
class WriteRegisters:
    """``G XX...``."""

    data: bytes


@dataclass(frozen=True, slots=True)
class ReadRegister:
    """``p n``."""

    regnum: int


@dataclass(frozen=True, slots=True)
class WriteRegister:
    """``P n=r``."""

    regnum: int
    value: bytes


@dataclass(frozen=True, slots=True)
class ReadMemory:
    """``m addr,length``."""

    addr: int
    length: int


@dataclass(frozen=True, slots=True)
class WriteMemory:
    """``M addr,length:XX...`` or ``X addr,length:binary``."""

    addr: int
    data: bytes


@dataclass(frozen=True, slots=True)
class InsertBreakpoint:
    """``Z type,addr,kind`` (conditions and commands after ``;`` are ignored)."""

    kind: BreakpointKind
    addr: int
    length: int


@dataclass(frozen=True, slots=True)
class RemoveBreakpoint:
    """``z type,addr,kind``."""

    kind: BreakpointKind
    addr: int
    length: int


@dataclass(frozen=True, slots=True)
class VContAction:
    """One ``vCont`` action: what to do (None for ``t``, stop) and to which threads."""

    action: Continue | Step | None
    thread: ThreadId | None


@dataclass(frozen=True, slots=True)
class VCont:
    """``vCont;action[:thread-id]...``."""

    actions: tuple[VContAction, ...]

    def action_for(self, tid: int) -> Continue | Step | None:
        """The leftmost action that applies to thread `tid`, None if none applies."""
        for a in self.actions:
            if a.thread is None or a.thread.matches(tid):
                return a.action
        return None


@dataclass(frozen=True, slots=True)
class QueryVContActions:
    """``vCont?``."""


@dataclass(frozen=True, slots=True)
class QuerySupported:
    """``qSupported[:gdbfeature[;gdbfeature]...]``."""

    features: tuple[str, ...] = ()

    def peer_supports(self, name: str) -> bool:
        """Whether gdb announced ``name+``."""
        return f"{name}+" in self.features


@dataclass(frozen=True, slots=True)
class ReadFeatures:
    """``qXfer:features:read:annex:offset,length`` (target description)."""

    annex: str
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class ReadExecFile:
    """``qXfer:exec-file:read:annex:offset,length`` (annex: a hex pid, or empty)."""

    annex: str
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class Monitor:
    """``qRcmd,hex``: a ``monitor`` command line."""

    command: str


@dataclass(frozen=True, slots=True)
class QueryCurrentThread:
    """``qC``."""


@dataclass(frozen=True, slots=True)
class QueryThreadInfoFirst:
    """``qfThreadInfo``."""


@dataclass(frozen=True, slots=True)
class QueryThreadInfoNext:
    """``qsThreadInfo``."""


@dataclass(frozen=True, slots=True)
class QueryAttached:
    """``qAttached[:pid]``."""

    pid: int | None = None


@dataclass(frozen=True, slots=True)
class QueryOffsets:
    """``qOffsets`` (section relocation; a bare-metal guest has none)."""


@dataclass(frozen=True, slots=True)
class QuerySymbol:
    """``qSymbol::`` or ``qSymbol:value:name`` (symbol lookup offer)."""

    rest: bytes


@dataclass(frozen=True, slots=True)
class StartNoAckMode:
    """``QStartNoAckMode``."""


@dataclass(frozen=True, slots=True)
class SetThread:
    """``H op thread-id``; op is ``g`` (registers, memory) or ``c`` (resume)."""

    op: str
    thread: ThreadId


@dataclass(frozen=True, slots=True)
class ThreadAlive:
    """``T thread-id``."""

    thread: ThreadId


@dataclass(frozen=True, slots=True)
class Detach:
    """``D`` or ``D;pid``."""

    pid: int | None = None


@dataclass(frozen=True, slots=True)
class Kill:
    """``k``."""


@dataclass(frozen=True, slots=True)
class MustReplyEmpty:
    """``vMustReplyEmpty``: must be answered like any unknown ``v`` packet (empty)."""


@dataclass(frozen=True, slots=True)
class Unknown:
    """Any packet the stub does not implement; answered with an empty reply."""

    payload: bytes


Command = (
    QueryHaltReason
    | ReadRegisters
    | WriteRegisters
    | ReadRegister
    | WriteRegister
    | ReadMemory
    | WriteMemory
    | InsertBreakpoint
    | RemoveBreakpoint
    | Continue
    | Step
    | ReverseContinue
    | ReverseStep
    | VCont
    | QueryVContActions
    | QuerySupported
    | ReadFeatures
    | ReadExecFile
    | Monitor
    | QueryCurrentThread
    | QueryThreadInfoFirst
    | QueryThreadInfoNext
    | QueryAttached
    | QueryOffsets
    | QuerySymbol
    | StartNoAckMode
    | SetThread
    | ThreadAlive
    | Detach
    | Kill
    | MustReplyEmpty
    | Unknown
)


# -- the parser -----------------------------------------------------------------------------


def parse_command(payload: bytes) -> Command:
    """The command `payload` carries.

    >>> parse_command(b"m1000,4")
    ReadMemory(addr=4096, length=4)
    >>> parse_command(b"Z0,8048000,1")
    InsertBreakpoint(kind=<BreakpointKind.SOFTWARE: 0>, addr=134512640, length=1)
    >>> parse_command(b"bs")
    ReverseStep()
    >>> parse_command(b"qTStatus")
    Unknown(payload=b'qTStatus')
    """
    if not payload:
        return Unknown(payload)
    head, rest = payload[:1], payload[1:]
    match head:
        case b"?":
            return QueryHaltReason() if not rest else Unknown(payload)
        case b"g":
            return ReadRegisters() if not rest else Unknown(payload)
        case b"G":
            return WriteRegisters(decode_hex(rest))
        case b"p":
            return ReadRegister(parse_hex_int(rest))
        case b"P":
            regnum, value = _split(rest, b"=", "P")
            return WriteRegister(parse_hex_int(regnum), decode_hex(value))
        case b"m":
            addr_text, length = _split(rest, b",", "m")
            return ReadMemory(parse_hex_int(addr_text), parse_hex_int(length))
        case b"M" | b"X":
            where, data = _split(rest, b":", head.decode())
            addr_text, length = _split(where, b",", head.decode())
            decoded = decode_hex(data) if head == b"M" else unescape_binary(data)
            if len(decoded) != parse_hex_int(length):
                raise PacketError(f"{head.decode()}: length {length!r} but {len(decoded)} bytes")
            return WriteMemory(parse_hex_int(addr_text), decoded)
        case b"Z" | b"z":
            return _parse_breakpoint(payload)
        case b"c" | b"s":
            at = parse_hex_int(rest) if rest else None
            return Continue(addr=at) if head == b"c" else Step(addr=at)
        case b"C" | b"S":
            sig, _, addr_text = rest.partition(b";")
            signal = parse_hex_int(sig)
            at = parse_hex_int(addr_text) if addr_text else None
            return Continue(signal, at) if head == b"C" else Step(signal, at)
        case b"b":
            if rest == b"c":
                return ReverseContinue()
            return ReverseStep() if rest == b"s" else Unknown(payload)
        case b"H":
            if rest[:1] not in (b"g", b"c") or len(rest) < 2:
                raise PacketError(f"H: bad operation in {payload!r}")
            return SetThread(rest[:1].decode(), parse_thread_id(rest[1:]))
        case b"T":
            return ThreadAlive(parse_thread_id(rest))
        case b"D":
            if not rest:
                return Detach()
            if rest[:1] != b";":
                raise PacketError(f"D: bad argument {rest!r}")
            return Detach(parse_hex_int(rest[1:]))
        case b"k":
            return Kill()
        case b"q" | b"Q":
            return _parse_query(payload)
        case b"v":
            return _parse_v(payload)
        case _:
            return Unknown(payload)


def _split(text: bytes, sep: bytes, packet: str) -> tuple[bytes, bytes]:
    left, found, right = text.partition(sep)
    if not found:
        raise PacketError(f"{packet}: missing {sep.decode()!r} in {text[:40]!r}")
    return left, right


def _parse_breakpoint(payload: bytes) -> Command:
    # Z type,addr,kind[;cond_list...][;cmds:persist,cmd_list...]: conditions are only
    # sent to a stub announcing ConditionalBreakpoints+, which we do not.
    fields = payload[1:].split(b";", 1)[0].split(b",")
    if len(fields) != 3:
        raise PacketError(f"{payload[:1].decode()}: want type,addr,kind in {payload[:40]!r}")
    type_text, addr, length = fields
    if type_text not in (b"0", b"1", b"2", b"3", b"4"):
        return Unknown(payload)  # "shall return an empty string for an unrecognized type"
    kind = BreakpointKind(int(type_text))
    if payload[:1] == b"Z":
        return InsertBreakpoint(kind, parse_hex_int(addr), parse_hex_int(length))
    return RemoveBreakpoint(kind, parse_hex_int(addr), parse_hex_int(length))


def _parse_query(payload: bytes) -> Command:
    name, sep, args = _query_name(payload)
    match name:
        case b"qSupported":
            features = args.split(b";") if args else []
            return QuerySupported(tuple(f.decode("ascii", "replace") for f in features))
        case b"qXfer":
            return _parse_xfer(payload, args)
        case b"qRcmd":
            if sep != b",":
                raise PacketError("qRcmd: want qRcmd,<hex command>")
            return Monitor(decode_hex(args).decode("utf-8", "replace"))
        case b"qC" if not sep:
            return QueryCurrentThread()
        case b"qfThreadInfo" if not sep:
            return QueryThreadInfoFirst()
        case b"qsThreadInfo" if not sep:
            return QueryThreadInfoNext()
        case b"qAttached":
            return QueryAttached(parse_hex_int(args) if args else None)
        case b"qOffsets" if not sep:
            return QueryOffsets()
        case b"qSymbol":
            return QuerySymbol(args)
        case b"QStartNoAckMode" if not sep:
            return StartNoAckMode()
        case _:
            return Unknown(payload)


def _query_name(payload: bytes) -> tuple[bytes, bytes, bytes]:
    """Split ``qName[:|,]args`` into (name, separator, args)."""
    for i, b in enumerate(payload):
        if b in b":,":
            return payload[:i], payload[i : i + 1], payload[i + 1 :]
    return payload, b"", b""


def _parse_xfer(payload: bytes, args: bytes) -> Command:
    # qXfer:object:read:annex:offset,length (node "General Query Packets", "qXfer read")
    parts = args.split(b":")
    if len(parts) != 4 or parts[1] != b"read":
        return Unknown(payload)
    obj, _, annex, span = parts
    offset, length = _split(span, b",", "qXfer")
    annex_text = annex.decode("ascii", "replace")
    if obj == b"features":
        return ReadFeatures(annex_text, parse_hex_int(offset), parse_hex_int(length))
    if obj == b"exec-file":
        return ReadExecFile(annex_text, parse_hex_int(offset), parse_hex_int(length))
    return Unknown(payload)


def _parse_v(payload: bytes) -> Command:
    # "Packets starting with v are identified by a multi-letter name, up to the first ;
    # or ? (or the end of the packet)."
    if payload == b"vCont?":
        return QueryVContActions()
    if payload == b"vMustReplyEmpty":
        return MustReplyEmpty()
    if payload.startswith(b"vCont;"):
        return VCont(tuple(_parse_vcont_action(a) for a in payload[6:].split(b";")))
    return Unknown(payload)


def _parse_vcont_action(text: bytes) -> VContAction:
    body, colon, thread_text = text.partition(b":")
    thread = parse_thread_id(thread_text) if colon else None
    op, arg = body[:1], body[1:]
    action: Continue | Step | None
    match op:
        case b"c" if not arg:
            action = Continue()
        case b"s" if not arg:
            action = Step()
        case b"C":
            action = Continue(parse_hex_int(arg))
        case b"S":
            action = Step(parse_hex_int(arg))
        case b"r":
            # range step: "valid to implement ... as a single instruction step"
            start, end = _split(arg, b",", "vCont;r")
            parse_hex_int(start), parse_hex_int(end)
            action = Step()
        case b"t" if not arg:
            action = None
        case _:
            raise PacketError(f"vCont: unknown action {body!r}")
    return VContAction(action, thread)

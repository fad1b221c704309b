"""RSP framing: the bytes on the wire and the packet data inside them.

Owns checksums, acknowledgments, the 0x03 interrupt byte, binary escaping, run-length
decoding and hex encoding.  Knows nothing about what a packet means, nor about targets,
sockets or threads.

Wire layout (GDB manual, node "Overview")::

    $ <packet-data> # <c1><c2>     c1c2 = two hex digits: sum of packet-data bytes mod 256
    +                              ack: the last packet arrived intact
    -                              nack: send it again
    0x03                           interrupt (outside any packet), "Interrupts" node

Binary data (node "Overview", anchor "Binary Data")::

    0x7d (})  then  byte ^ 0x20    # $ } must always be escaped; replies also escape *

Run-length encoding: ``X*<n+29>`` means X followed by n more copies of X.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from rdebug.gdbstub.errors import PacketError

ESCAPE = 0x7D
INTERRUPT = 0x03
#: Bytes a stub must escape in binary reply data: # $ } and * (node "Overview").
_MUST_ESCAPE = frozenset(b"#$}*")
_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")


def checksum(data: bytes) -> int:
    """The RSP checksum: the sum of the bytes modulo 256.

    >>> f"{checksum(b'OK'):02x}"
    '9a'
    """
    return sum(data) & 0xFF


def frame(payload: bytes) -> bytes:
    """`payload` as a packet on the wire: ``$payload#cs``.

    The payload must already be escaped where it carries binary data; a raw ``$``, ``#``
    or ``*`` in it is a bug in the caller.

    >>> frame(b"OK")
    b'$OK#9a'
    >>> frame(b"")
    b'$#00'
    """
    if b"$" in payload or b"#" in payload or b"*" in payload:
        raise ValueError(f"unescaped framing byte in reply payload {payload[:40]!r}")
    return b"$" + payload + b"#" + f"{checksum(payload):02x}".encode()


def escape_binary(data: bytes) -> bytes:
    """Escape binary reply data: ``#``, ``$``, ``}`` and ``*`` become ``}`` + byte ^ 0x20.

    >>> escape_binary(b"a#b}c*")
    b'a}\\x03b}]c}\\n'
    """
    if not any(b in _MUST_ESCAPE for b in data):
        return data
    out = bytearray()
    for b in data:
        if b in _MUST_ESCAPE:
            out += bytes((ESCAPE, b ^ 0x20))
        else:
            out.append(b)
    return bytes(out)


def unescape_binary(data: bytes) -> bytes:
    """Undo binary escaping (``X`` packet data).  A trailing lone ``}`` is a `PacketError`.

    >>> unescape_binary(b"a}\\x03b}]")
    b'a#b}'
    """
    if ESCAPE not in data:
        return data
    out = bytearray()
    escaped = False
    for b in data:
        if escaped:
            out.append(b ^ 0x20)
            escaped = False
        elif b == ESCAPE:
            escaped = True
        else:
            out.append(b)
    if escaped:
        raise PacketError("binary data ends with an escape byte")
    return bytes(out)


def expand_rle(data: bytes) -> bytes:
    """Expand run-length encoding: ``X*<c>`` is X then ``ord(c) - 29`` more copies.

    >>> expand_rle(b"0* ")
    b'0000'
    >>> expand_rle(b'0*"00')
    b'00000000'
    """
    if b"*" not in data:
        return data
    out = bytearray()
    i = 0
    while i < len(data):
        b = data[i]
        if b != ord("*"):
            out.append(b)
            i += 1
            continue
        if not out or i + 1 >= len(data):
            raise PacketError("run-length marker without a character to repeat or a count")
        count = data[i + 1]
        if count < 0x20 or count > 0x7E or count in b"#$":
            raise PacketError(f"bad run-length count byte {count:#04x}")
        out += bytes((out[-1],)) * (count - 29)
        i += 2
    return bytes(out)


def encode_hex(data: bytes) -> bytes:
    """Two lowercase hex digits per byte.

    >>> encode_hex(b"\\x90\\xcc")
    b'90cc'
    """
    return data.hex().encode()


def decode_hex(text: bytes) -> bytes:
    """Bytes from hex digit pairs; anything else is a `PacketError`.

    >>> decode_hex(b"90CC")
    b'\\x90\\xcc'
    """
    if len(text) % 2 or not all(b in _HEX_DIGITS for b in text):
        raise PacketError(f"not hex byte pairs: {text[:40]!r}")
    return bytes.fromhex(text.decode())


def parse_hex_int(text: bytes) -> int:
    """A hex number as RSP writes them (no prefix, leading zeros suppressed).

    >>> parse_hex_int(b"1000")
    4096
    """
    if not text or not all(b in _HEX_DIGITS for b in text):
        raise PacketError(f"not a hex number: {text[:40]!r}")
    return int(text, 16)


def printable(raw: bytes, limit: int = 200) -> str:
    """`raw` for a log line: printable ASCII as is, other bytes as ``\\xNN``."""
    text = "".join(chr(b) if 0x20 <= b < 0x7F else f"\\x{b:02x}" for b in raw[:limit])
    return text if len(raw) <= limit else f"{text}...({len(raw)} bytes)"


# -- decoder events -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Packet:
    """A packet that arrived intact; `payload` is its data, run-length decoded."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class BadPacket:
    """A packet that did not arrive intact (checksum, run-length or size); answer ``-``."""

    raw: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class Interrupt:
    """The 0x03 byte outside a packet: gdb asks a running target to stop."""


@dataclass(frozen=True, slots=True)
class Ack:
    """``+``: the peer received our last packet."""


@dataclass(frozen=True, slots=True)
class Nack:
    """``-``: the peer wants our last packet again."""


Event = Packet | BadPacket | Interrupt | Ack | Nack


class _State(Enum):
    IDLE = "idle"
    DATA = "data"
    CHECKSUM = "checksum"


class PacketDecoder:
    """Turns a byte stream, fed in arbitrary pieces, into `Event`s.

    Bytes outside packets other than ``+``, ``-`` and 0x03 are ignored (noise, or the
    ``+`` gdb sends after ``QStartNoAckMode``).  A ``$`` inside a packet starts over.

    >>> d = PacketDecoder()
    >>> d.feed(b"+$m10")
    [Ack()]
    >>> d.feed(b"00,4#8e\\x03")
    [Packet(payload=b'm1000,4'), Interrupt()]
    >>> d.feed(b"$g#00")
    [BadPacket(raw=b'$g#00', reason='checksum 00, expected 67')]
    """

    def __init__(self, max_packet: int = 1 << 20) -> None:
        self._max_packet = max_packet
        self._state = _State.IDLE
        self._data = bytearray()
        self._checksum = bytearray()
        #: Bytes ignored outside packets so far (for diagnostics).
        self.garbage = 0

    def feed(self, data: bytes) -> list[Event]:
        """Consume `data`; return the events it completes, in order."""
        events: list[Event] = []
        i = 0
        n = len(data)
        while i < n:
            if self._state is _State.IDLE:
                b = data[i]
                i += 1
                if b == ord("$"):
                    self._start()
                elif b == ord("+"):
                    events.append(Ack())
                elif b == ord("-"):
                    events.append(Nack())
                elif b == INTERRUPT:
                    events.append(Interrupt())
                else:
                    self.garbage += 1
            elif self._state is _State.DATA:
                end = _find_first(data, i, b"#$")
                chunk = data[i:] if end < 0 else data[i:end]
                self._data += chunk
                i += len(chunk)
                if len(self._data) > self._max_packet:
                    events.append(BadPacket(b"$" + bytes(self._data[:40]), "packet too long"))
                    self._state = _State.IDLE
                    self._data.clear()
                    continue
                if end < 0:
                    continue
                i += 1
                if data[end] == ord("$"):  # an unterminated packet: start over
                    self.garbage += len(self._data) + 1
                    self._start()
                else:
                    self._state = _State.CHECKSUM
            else:
                self._checksum.append(data[i])
                i += 1
                if len(self._checksum) == 2:
                    events.append(self._finish())
        return events

    def _start(self) -> None:
        self._state = _State.DATA
        self._data.clear()
        self._checksum.clear()

    def _finish(self) -> Packet | BadPacket:
        self._state = _State.IDLE
        raw_data = bytes(self._data)
        got = bytes(self._checksum)
        raw = b"$" + raw_data + b"#" + got
        want = checksum(raw_data)
        if not all(b in _HEX_DIGITS for b in got):
            return BadPacket(raw, f"checksum {got!r} is not hex")
        if int(got, 16) != want:
            return BadPacket(raw, f"checksum {got.decode()}, expected {want:02x}")
        try:
            return Packet(expand_rle(raw_data))
        except PacketError as exc:
            return BadPacket(raw, str(exc))


def _find_first(data: bytes, start: int, needles: bytes) -> int:
    """Index of the first byte of `needles` in `data[start:]`, or -1."""
    found = [p for p in (data.find(bytes((c,)), start) for c in needles) if p >= 0]
    return min(found) if found else -1

"""RspSession driven by scripted packet transcripts against a FakeTarget (no sockets)."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rdebug.gdbstub.packet import Packet, PacketDecoder, frame, unescape_binary
from rdebug.gdbstub.session import RspSession
from rdebug.gdbstub.target import (
    BreakpointKind,
    Continue,
    Exited,
    GdbSignal,
    ReverseContinue,
    ReverseStep,
    Signalled,
    Step,
    Watch,
    WatchKind,
)
from tests.unit.gdbstub.fakes import FakeTarget, wait_for_interrupt


class Client:
    """Plays gdb against a session: sends framed packets, decodes the replies."""

    def __init__(self, target: FakeTarget | None = None, packet_size: int = 0x4000) -> None:
        self.target = target or FakeTarget()
        self._wire = bytearray()
        self.session = RspSession(self.target, self._wire.extend, packet_size=packet_size)
        self.alive = True

    def raw(self, data: bytes) -> bytes:
        """Feed raw bytes; return every byte the session wrote."""
        self.alive = self.session.feed(data)
        out = bytes(self._wire)
        self._wire.clear()
        return out

    def ask_all(self, payload: bytes) -> list[bytes]:
        """Send one packet; return the payloads of all reply packets."""
        acked = self.session.ack_mode
        out = self.raw(frame(payload))
        if acked:
            assert out[:1] == b"+", out
            out = out[1:]
        events = PacketDecoder().feed(out)
        assert all(isinstance(e, Packet) for e in events), events
        return [e.payload for e in events if isinstance(e, Packet)]

    def ask(self, payload: bytes) -> bytes:
        """Send one packet; return the one reply payload."""
        replies = self.ask_all(payload)
        assert len(replies) == 1, replies
        return replies[0]


def test_ack_mode_acks_each_packet_then_replies() -> None:
    client = Client()
    assert client.raw(b"$?#3f") == b"+" + frame(b"T05thread:1;")


def test_bad_checksum_is_nacked_and_not_executed() -> None:
    client = Client()
    assert client.raw(b"$M1000,1:ff#00") == b"-"
    assert client.target.memory[0] == 0x00
    assert client.alive


def test_nack_retransmits_the_last_reply() -> None:
    client = Client()
    assert client.ask(b"m1000,2") == b"0001"
    assert client.raw(b"-") == frame(b"0001")
    assert client.raw(b"+") == b""


def test_no_ack_mode() -> None:
    client = Client()
    assert client.raw(frame(b"QStartNoAckMode")) == b"+" + frame(b"OK")
    assert not client.session.ack_mode
    # gdb's final '+' for our OK is ignored; from now on no acks either way
    assert client.raw(b"+" + frame(b"m1000,1")) == frame(b"00")
    assert client.raw(b"$g#00") == b""  # a bad packet is dropped, no '-'
    assert client.raw(b"-") == b""  # nor retransmission


def test_garbage_between_packets_is_ignored() -> None:
    client = Client()
    assert client.raw(b"\r\nhello" + frame(b"qC") + b"\x00") == b"+" + frame(b"QC1")


def test_packets_split_across_reads() -> None:
    client = Client()
    wire = frame(b"m1004,4")
    out = b"".join(client.raw(wire[i : i + 1]) for i in range(len(wire)))
    assert out == b"+" + frame(b"04050607")


@pytest.mark.parametrize(
    ("request_", "reply"),
    [
        (b"?", b"T05thread:1;"),
        (b"p8", b"00100000"),
        (b"p9", b"00000000"),
        (b"p28", b"00000000"),  # mxcsr
        (b"p29", b"E16"),  # no register 41
        (b"P8=00", b"E16"),  # eip is 4 bytes
        (b"G00", b"E16"),  # not the whole register file
        (b"m1000,4", b"00010203"),
        (b"m10fe,4", b"feff0001"),
        (b"m1ffe,4", b"feff"),  # partial read at the end of memory
        (b"m0,4", b"E0e"),  # EFAULT from the target
        (b"m1000,0", b""),
        (b"M0,1:00", b"E0e"),
        (b"X1000,0:", b"OK"),
        (b"Z0,dead,1", b"E0e"),  # the target refuses this breakpoint
        (b"z0,1234,1", b"OK"),  # removing an absent breakpoint is fine
        (b"Z9,1000,1", b""),
        (b"vCont?", b"vCont;c;C;s;S"),
        (b"qC", b"QC1"),
        (b"qfThreadInfo", b"m1"),
        (b"qsThreadInfo", b"l"),
        (b"qAttached", b"1"),
        (b"qAttached:1", b"1"),
        (b"Hg0", b"OK"),
        (b"Hc-1", b"OK"),
        (b"Hg1", b"OK"),
        (b"Hg2", b"E16"),
        (b"T1", b"OK"),
        (b"T2", b"E16"),
        (b"qOffsets", b""),
        (b"qSymbol::", b"OK"),
        (b"vMustReplyEmpty", b""),
        (b"qTStatus", b""),
        (b"QNonStop:1", b""),
        (b"vFile:setfs:0", b""),
        (b"qXfer:features:read:other.xml:0,100", b"E00"),
        (b"qXfer:exec-file:read::0,100", b""),  # no exec file known
        (b"qXfer:libraries:read::0,100", b""),
        (b"m1000", b"E16"),  # malformed
        (b"qRcmd,6563686f206869", b"6869"),  # "echo hi" -> "hi"
        (b"qRcmd,6e6f6f70", b"OK"),  # no output
        (b"qRcmd,6661696c", b"E05"),  # TargetError(5)
        # a TargetError told as text (node "Standard Replies", E.errtext)
        (b"qRcmd," + b"refuse".hex().encode(), b"E.the fake target says no:  are dropped"),
        # issue 17: nothing beyond the 32-bit address space is masked into it
        (b"m100000000,4", b"E16"),
        (b"mffffffff,4", b"E0e"),  # clipped to 1 byte, which the fake has not
        (b"M100000000,1:00", b"E16"),
        (b"Mffffffff,2:0000", b"E16"),
        (b"Z0,100001000,1", b"E16"),
        (b"z0,100001000,1", b"E16"),
        (b"Z2,100000,ffffffffffffffff", b"E16"),
        (b"Z2,100000,ffffffff", b"E16"),
        (b"Z3,ffffff00,100", b"OK"),  # ends exactly at 4 GiB
        # issue 17: a watchpoint of 0 bytes would watch nothing
        (b"Z2,1000,0", b"E16"),
        (b"Z4,1000,0", b"E16"),
    ],
)
def test_request_reply(request_: bytes, reply: bytes) -> None:
    assert Client().ask(request_) == reply


def test_registers_read_and_write() -> None:
    client = Client()
    layout = client.target.layout
    regs = client.ask(b"g")
    assert len(regs) == 2 * layout.g_size
    assert regs[2 * 32 : 2 * 36] == b"00100000"  # eip at byte offset 32
    new = bytes(range(256)) + bytes(layout.g_size - 256)
    assert client.ask(b"G" + new.hex().encode()) == b"OK"
    assert client.target.regs == new
    assert client.ask(b"P8=78563412") == b"OK"
    assert client.target.eip == 0x12345678
    assert client.ask(b"p8") == b"78563412"
    assert client.ask(b"P20=" + b"11" * 16) == b"OK"  # xmm0
    assert client.ask(b"p20") == b"11" * 16


def test_memory_write_hex_and_binary() -> None:
    client = Client()
    assert client.ask(b"M1000,2:90cc") == b"OK"
    assert client.ask(b"X1002,4:}]}\x03}\x04}\x0a") == b"OK"
    assert client.target.memory[:6] == b"\x90\xcc}#$*"


def test_memory_reads_are_capped_to_the_packet_size() -> None:
    client = Client(packet_size=0x100)
    reply = client.ask(b"m1000,1000")
    assert len(reply) == 2 * 0x7F  # fewer bytes than asked: allowed by the manual


def test_breakpoints_reach_the_target_and_are_idempotent() -> None:
    client = Client()
    bps = client.target.bps
    assert bps is not None
    for _ in range(2):
        assert client.ask(b"Z0,1010,1") == b"OK"
    assert client.ask(b"Z2,1800,4") == b"OK"
    assert bps.placed == {
        (BreakpointKind.SOFTWARE, 0x1010, 1),
        (BreakpointKind.WRITE_WATCH, 0x1800, 4),
    }
    assert client.ask(b"z0,1010,1") == b"OK"
    assert client.ask(b"z0,1010,1") == b"OK"
    assert bps.placed == {(BreakpointKind.WRITE_WATCH, 0x1800, 4)}


def test_breakpoint_kinds_the_target_lacks_get_empty_replies() -> None:
    client = Client(FakeTarget(breakpoints=frozenset({BreakpointKind.SOFTWARE})))
    assert client.ask(b"Z0,1010,1") == b"OK"
    assert client.ask(b"Z1,1010,1") == b""
    assert client.ask(b"z4,1010,1") == b""
    bare = Client(FakeTarget(breakpoints=None))
    assert bare.ask(b"Z0,1010,1") == b""  # gdb then writes int3 itself with M/X


def test_resume_forward() -> None:
    client = Client()
    assert client.ask(b"s") == b"T05thread:1;"
    assert client.target.eip == 0x1001
    assert client.ask(b"vCont;s:1") == b"T05thread:1;"
    assert client.ask(b"Z0,1010,1") == b"OK"
    assert client.ask(b"vCont;c") == b"T05thread:1;"  # swbreak not negotiated
    assert client.target.eip == 0x1010
    assert client.ask(b"C0b;1000") == b"T05replaylog:end;thread:1;"
    assert client.ask(b"vCont;c:2") == b"E16"  # nothing for our thread
    assert client.target.resumes == [
        Step(),
        Step(),
        Continue(),
        Continue(signal=11, addr=0x1000),
    ]


def test_swbreak_is_reported_once_negotiated() -> None:
    client = Client()
    reply = client.ask(b"qSupported:multiprocess+;swbreak+;hwbreak+;vContSupported+")
    assert b"swbreak+" in reply.split(b";")
    assert client.ask(b"Z0,1010,1") == b"OK"
    assert client.ask(b"c") == b"T05swbreak:;thread:1;"
    client.target.script.append(Watch(WatchKind.WRITE, 0x1800))
    assert client.ask(b"c") == b"T05watch:1800;thread:1;"
    client.target.script.append(Exited(3))
    assert client.ask(b"c") == b"W03"


def test_a_stop_with_a_message_sends_it_to_the_console_first() -> None:
    """A resume that ends with a message (why the target could not go on): 'O' packets
    with it, in pieces that fit the packet size, then the stop reply; '?' afterwards
    gives the stop alone (console output is for replies to a resume)."""
    client = Client(packet_size=0x20)
    message = "rdebug: the replay cannot go on: a long reason\n"
    client.target.script.append(Signalled(GdbSignal.ABRT, message=message))
    replies = client.ask_all(b"c")
    assert replies[-1] == b"T06thread:1;"
    assert all(r.startswith(b"O") and len(r) <= 0x20 for r in replies[:-1])
    assert b"".join(bytes.fromhex(r[1:].decode()) for r in replies[:-1]) == message.encode()
    assert client.ask(b"?") == b"T06thread:1;"
    client.target.script.append(Signalled(GdbSignal.ABRT, message="backwards too\n"))
    assert client.ask_all(b"bc") == [b"O" + b"backwards too\n".hex().encode(), b"T06thread:1;"]


def test_reverse_execution() -> None:
    client = Client()
    assert client.ask(b"bs") == b"T05replaylog:begin;thread:1;"  # at the start
    client.target.eip = 0x1020
    assert client.ask(b"bs") == b"T05thread:1;"
    assert client.target.eip == 0x101F
    assert client.ask(b"Z0,1010,1") == b"OK"
    assert client.ask(b"bc") == b"T05thread:1;"
    assert client.target.eip == 0x1010
    assert client.ask(b"bc") == b"T05replaylog:begin;thread:1;"
    assert client.target.eip == 0x1000
    assert client.target.resumes == [
        ReverseStep(),
        ReverseStep(),
        ReverseContinue(),
        ReverseContinue(),
    ]


def test_reverse_packets_are_unsupported_without_the_capability() -> None:
    client = Client(FakeTarget(reverse=False))
    assert client.ask(b"bs") == b""
    assert client.ask(b"bc") == b""
    assert client.target.resumes == []


@pytest.mark.parametrize(
    ("target", "features"),
    [
        (
            FakeTarget(),
            b"PacketSize=4000;QStartNoAckMode+;qXfer:features:read+;swbreak+;hwbreak+;"
            b"vContSupported+;ReverseStep+;ReverseContinue+",
        ),
        (
            FakeTarget(reverse=False, exec_file="/guest/kernel.elf"),
            b"PacketSize=4000;QStartNoAckMode+;qXfer:features:read+;qXfer:exec-file:read+;"
            b"swbreak+;hwbreak+;vContSupported+",
        ),
        (
            FakeTarget(reverse=False, breakpoints=None),
            b"PacketSize=4000;QStartNoAckMode+;qXfer:features:read+;vContSupported+",
        ),
        (
            FakeTarget(breakpoints=frozenset({BreakpointKind.SOFTWARE})),
            b"PacketSize=4000;QStartNoAckMode+;qXfer:features:read+;swbreak+;"
            b"vContSupported+;ReverseStep+;ReverseContinue+",
        ),
    ],
)
def test_qsupported_is_computed_from_capabilities(target: FakeTarget, features: bytes) -> None:
    assert Client(target).ask(b"qSupported:swbreak+;hwbreak+;xmlRegisters=i386") == features


def test_target_xml_is_served_in_chunks() -> None:
    client = Client(packet_size=0x100)
    document = b""
    while True:
        reply = client.ask(f"qXfer:features:read:target.xml:{len(document):x},fb".encode())
        document += unescape_binary(reply[1:])
        if reply[:1] == b"l":
            break
        assert reply[:1] == b"m"
    assert document.decode() == client.target.layout.target_xml


def test_exec_file() -> None:
    client = Client(FakeTarget(exec_file="/guest/kernel.elf"))
    assert client.ask(b"qXfer:exec-file:read::0,fff") == b"l/guest/kernel.elf"
    assert client.ask(b"qXfer:exec-file:read:1:0,6") == b"m/guest"
    assert client.ask(b"qXfer:exec-file:read::6,fff") == b"l/kernel.elf"


def test_long_monitor_output_goes_as_console_packets() -> None:
    client = Client(packet_size=0x41)
    text = "x" * 40
    replies = client.ask_all(b"qRcmd," + f"echo {text}".encode().hex().encode())
    assert replies[-1] == b"OK"
    assert all(r[:1] == b"O" for r in replies[:-1])
    assert b"".join(bytes.fromhex(r[1:].decode()) for r in replies[:-1]).decode() == text
    assert client.target.monitor_commands == [f"echo {text}"]


def test_detach_replies_ok_and_ends_the_session() -> None:
    client = Client()
    assert client.ask(b"D") == b"OK"
    assert not client.alive and client.target.detached


def test_kill_ends_the_session_without_a_reply() -> None:
    client = Client()
    assert client.raw(frame(b"k")) == b"+"
    assert not client.alive and client.target.killed


def test_packets_after_detach_in_the_same_read_are_not_served() -> None:
    client = Client()
    out = client.raw(frame(b"D") + frame(b"m1000,1"))
    assert out == b"+" + frame(b"OK")


def test_other_target_exceptions_propagate() -> None:
    client = Client()
    with pytest.raises(RuntimeError, match="crashed"):
        client.raw(frame(b"qRcmd," + b"crash".hex().encode()))


def test_interrupt_during_a_run_stops_it() -> None:
    client = Client()
    client.target.script.append(wait_for_interrupt)
    # gdb sends 0x03 after the resume packet; the reader saw it while the target ran
    assert client.raw(frame(b"c") + b"\x03") == b"+" + frame(b"T02thread:1;")


def test_an_interrupt_while_stopped_is_forgotten_by_the_next_packet() -> None:
    client = Client()
    assert client.raw(b"\x03") == b""
    seen: list[bool] = []

    def step(interrupted: object) -> Signalled:
        assert callable(interrupted)
        seen.append(bool(interrupted()))
        return Signalled(GdbSignal.TRAP)

    client.target.script.append(step)
    assert client.ask(b"s") == b"T05thread:1;"
    assert seen == [False]


def test_a_gdb_connect_transcript() -> None:
    """What gdb 13.1 sends on `target remote` (seen in test_real_gdb's log), byte for byte."""
    client = Client()
    document = client.target.layout.target_xml.encode()
    assert 0x1000 < len(document) < 0x2000
    transcript = [
        (b"+", b""),  # gdb acks whatever the stub might have sent before
        (
            frame(b"qSupported:multiprocess+;swbreak+;hwbreak+;qRelocInsn+;fork-events+;"
                  b"vfork-events+;exec-events+;vContSupported+;QThreadEvents+;no-resumed+;"
                  b"memory-tagging+;xmlRegisters=i386"),
            b"+" + frame(b"PacketSize=4000;QStartNoAckMode+;qXfer:features:read+;swbreak+;"
                         b"hwbreak+;vContSupported+;ReverseStep+;ReverseContinue+"),
        ),
        (b"+", b""),
        (frame(b"vMustReplyEmpty"), b"+" + frame(b"")),
        (b"+", b""),
        (frame(b"QStartNoAckMode"), b"+" + frame(b"OK")),
        (b"+", b""),  # "can be safely ignored"
        (frame(b"Hg0"), frame(b"OK")),
        (frame(b"qXfer:features:read:target.xml:0,1000"), frame(b"m" + document[:0x1000])),
        (frame(b"qXfer:features:read:target.xml:1000,1000"), frame(b"l" + document[0x1000:])),
        (frame(b"qTStatus"), frame(b"")),
        (frame(b"?"), frame(b"T05thread:1;")),
        (frame(b"qfThreadInfo"), frame(b"m1")),
        (frame(b"qsThreadInfo"), frame(b"l")),
        (frame(b"qAttached"), frame(b"1")),
        (frame(b"Hc-1"), frame(b"OK")),
        (frame(b"vCont?"), frame(b"vCont;c;C;s;S")),
        (frame(b"vCont;s:1;c"), frame(b"T05thread:1;")),  # stepi
        (frame(b"Hc0"), frame(b"OK")),
        (frame(b"bs"), frame(b"T05thread:1;")),  # reverse-stepi
        (frame(b"bs"), frame(b"T05replaylog:begin;thread:1;")),
    ]  # fmt: skip
    for sent, expected in transcript:
        assert client.raw(sent) == expected, sent


@given(st.binary(max_size=120).filter(lambda b: b"$" not in b and b"#" not in b))
def test_malformed_packets_get_an_answer_never_a_crash(payload: bytes) -> None:
    """Whatever the payload, the session replies (an error or an empty reply)."""
    sent: list[bytes] = []
    session = RspSession(FakeTarget(), sent.append, threading.Event())
    session.handle(Packet(payload))
    assert sent  # an answer went out (and nothing was raised)

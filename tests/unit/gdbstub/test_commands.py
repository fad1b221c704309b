"""Packet payloads -> typed commands (GDB manual, nodes "Packets", "General Query Packets")."""

from __future__ import annotations

import pytest

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
    ThreadId,
    Unknown,
    VCont,
    VContAction,
    WriteMemory,
    WriteRegister,
    WriteRegisters,
    parse_command,
)
from rdebug.gdbstub.errors import PacketError
from rdebug.gdbstub.target import BreakpointKind, Continue, ReverseContinue, ReverseStep, Step

SW, HW = BreakpointKind.SOFTWARE, BreakpointKind.HARDWARE
WRITE, READ, ACCESS = (
    BreakpointKind.WRITE_WATCH,
    BreakpointKind.READ_WATCH,
    BreakpointKind.ACCESS_WATCH,
)


@pytest.mark.parametrize(
    ("payload", "command"),
    [
        (b"?", QueryHaltReason()),
        (b"g", ReadRegisters()),
        (b"G0102ff", WriteRegisters(b"\x01\x02\xff")),
        (b"p8", ReadRegister(8)),
        (b"p1f", ReadRegister(31)),
        (b"P8=78563412", WriteRegister(8, b"\x78\x56\x34\x12")),
        (b"m1000,4", ReadMemory(0x1000, 4)),
        (b"mffff0000,100", ReadMemory(0xFFFF0000, 0x100)),
        (b"M1000,2:90cc", WriteMemory(0x1000, b"\x90\xcc")),
        (b"X1000,3:a}]b", WriteMemory(0x1000, b"a}b")),
        (b"X1000,0:", WriteMemory(0x1000, b"")),  # gdb's probe for X support
        (b"Z0,8048000,1", InsertBreakpoint(SW, 0x8048000, 1)),
        (b"z0,8048000,1", RemoveBreakpoint(SW, 0x8048000, 1)),
        (b"Z1,1000,1", InsertBreakpoint(HW, 0x1000, 1)),
        (b"Z2,804a01c,4", InsertBreakpoint(WRITE, 0x804A01C, 4)),
        (b"z3,2000,2", RemoveBreakpoint(READ, 0x2000, 2)),
        (b"Z4,2000,8", InsertBreakpoint(ACCESS, 0x2000, 8)),
        (b"Z0,1000,1;X2,0101", InsertBreakpoint(SW, 0x1000, 1)),  # conditions ignored
        (b"Z5,1000,1", Unknown(b"Z5,1000,1")),  # unknown type: empty reply
        (b"c", Continue()),
        (b"c1000", Continue(addr=0x1000)),
        (b"s", Step()),
        (b"s2000", Step(addr=0x2000)),
        (b"C0b", Continue(signal=11)),
        (b"C05;1000", Continue(signal=5, addr=0x1000)),
        (b"S02", Step(signal=2)),
        (b"bc", ReverseContinue()),
        (b"bs", ReverseStep()),
        (b"b9600", Unknown(b"b9600")),  # the old baud-rate packet
        (b"vCont?", QueryVContActions()),
        (b"vCont;c", VCont((VContAction(Continue(), None),))),
        (
            b"vCont;s:1;c",
            VCont((VContAction(Step(), ThreadId(1)), VContAction(Continue(), None))),
        ),
        (b"vCont;C05:p1.1", VCont((VContAction(Continue(5), ThreadId(1, 1)),))),
        (b"vCont;S02:-1", VCont((VContAction(Step(2), ThreadId(-1)),))),
        (b"vCont;r1000,1010:1", VCont((VContAction(Step(), ThreadId(1)),))),
        (b"vCont;t:1", VCont((VContAction(None, ThreadId(1)),))),
        (b"vMustReplyEmpty", MustReplyEmpty()),
        (b"vKill;1", Unknown(b"vKill;1")),
        (b"qSupported", QuerySupported()),
        (
            b"qSupported:multiprocess+;swbreak+;xmlRegisters=i386",
            QuerySupported(("multiprocess+", "swbreak+", "xmlRegisters=i386")),
        ),
        (
            b"qXfer:features:read:target.xml:0,ffb",
            ReadFeatures("target.xml", 0, 0xFFB),
        ),
        (b"qXfer:exec-file:read::10,20", ReadExecFile("", 0x10, 0x20)),
        (b"qXfer:exec-file:read:2a:0,fff", ReadExecFile("2a", 0, 0xFFF)),
        (b"qXfer:libraries:read::0,fff", Unknown(b"qXfer:libraries:read::0,fff")),
        (b"qXfer:features:write:a:0,1", Unknown(b"qXfer:features:write:a:0,1")),
        (b"qRcmd,696e666f207265706c6179", Monitor("info replay")),
        (b"qC", QueryCurrentThread()),
        (b"qfThreadInfo", QueryThreadInfoFirst()),
        (b"qsThreadInfo", QueryThreadInfoNext()),
        (b"qAttached", QueryAttached()),
        (b"qAttached:2a", QueryAttached(0x2A)),
        (b"qOffsets", QueryOffsets()),
        (b"qSymbol::", QuerySymbol(b":")),
        (b"QStartNoAckMode", StartNoAckMode()),
        (b"Hg0", SetThread("g", ThreadId(0))),
        (b"Hc-1", SetThread("c", ThreadId(-1))),
        (b"Hgp1.1", SetThread("g", ThreadId(1, 1))),
        (b"T1", ThreadAlive(ThreadId(1))),
        (b"D", Detach()),
        (b"D;1", Detach(1)),
        (b"k", Kill()),
        (b"qTStatus", Unknown(b"qTStatus")),
        (b"QNonStop:1", Unknown(b"QNonStop:1")),
        (b"vRun;", Unknown(b"vRun;")),
        (b"!", Unknown(b"!")),
        (b"", Unknown(b"")),
    ],
)
def test_parse(payload: bytes, command: Command) -> None:
    assert parse_command(payload) == command


@pytest.mark.parametrize(
    "payload",
    [
        b"Gxyz",
        b"G123",
        b"p",
        b"pzz",
        b"P8",
        b"P8=zz",
        b"m1000",
        b"m1000,",
        b"m,4",
        b"M1000,2",
        b"M1000,3:90cc",  # length does not match the data
        b"X1000,2:a",
        b"X1000,1:}",
        b"Z0,1000",
        b"Z0,xyz,1",
        b"cxyz",
        b"C",
        b"Sxx;1000",
        b"vCont;x",
        b"vCont;",
        b"vCont;c:zz",
        b"vCont;r1000",
        b"qRcmd,zz",
        b"qRcmd:6869",
        b"qXfer:features:read:target.xml:0",
        b"qXfer:features:read:target.xml:a,q",
        b"H",
        b"Hx1",
        b"Hg",
        b"D1",
        b"T",
    ],
)
def test_malformed_packets_raise_packet_error(payload: bytes) -> None:
    with pytest.raises(PacketError):
        parse_command(payload)


def test_vcont_picks_the_leftmost_action_for_the_thread() -> None:
    command = parse_command(b"vCont;s:2;c:1;s")
    assert isinstance(command, VCont)
    assert command.action_for(1) == Continue()
    assert command.action_for(2) == Step()
    assert command.action_for(3) == Step()
    only_two = parse_command(b"vCont;c:2")
    assert isinstance(only_two, VCont) and only_two.action_for(1) is None


def test_qsupported_knows_what_gdb_announced() -> None:
    command = parse_command(b"qSupported:swbreak+;hwbreak-;xmlRegisters=i386")
    assert isinstance(command, QuerySupported)
    assert command.peer_supports("swbreak")
    assert not command.peer_supports("hwbreak")
    assert not command.peer_supports("xmlRegisters")

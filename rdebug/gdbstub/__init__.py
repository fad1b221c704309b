"""A GDB Remote Serial Protocol stub, as a library (GDB manual, appendix "Remote Serial
Protocol").

Owns every byte gdb sends and receives: framing (`packet`), typed commands (`commands`),
replies (`replies`), one conversation (`session`) and the TCP server (`server`).  The thing
debugged is a `Target` (`target`) with optional capabilities, described to gdb by a
`RegisterLayout` (`target_xml`).

Imports the standard library only (an import-linter contract checks it): it knows
nothing of rdebug or emulators.  ``rdebug.gdb_target`` adapts rdebug's sessions (a
replay, or a live run) to `Target`.
"""

from rdebug.gdbstub.errors import GdbStubError, PacketError, TargetError
from rdebug.gdbstub.server import GdbServer
from rdebug.gdbstub.session import RspSession
from rdebug.gdbstub.target import (
    BreakpointKind,
    Breakpoints,
    Continue,
    Exited,
    ForwardResume,
    GdbSignal,
    HwBreak,
    LogBoundary,
    ReplayLogEnd,
    Resume,
    ReverseContinue,
    ReverseExecution,
    ReverseResume,
    ReverseStep,
    Signalled,
    Step,
    StopReason,
    SwBreak,
    Target,
    Terminated,
    Watch,
    WatchKind,
)
from rdebug.gdbstub.target_xml import Feature, Register, RegisterLayout, i386_layout

__all__ = [
    "BreakpointKind",
    "Breakpoints",
    "Continue",
    "Exited",
    "Feature",
    "ForwardResume",
    "GdbServer",
    "GdbSignal",
    "GdbStubError",
    "HwBreak",
    "LogBoundary",
    "PacketError",
    "Register",
    "RegisterLayout",
    "ReplayLogEnd",
    "Resume",
    "ReverseContinue",
    "ReverseExecution",
    "ReverseResume",
    "ReverseStep",
    "RspSession",
    "Signalled",
    "Step",
    "StopReason",
    "SwBreak",
    "Target",
    "TargetError",
    "Terminated",
    "Watch",
    "WatchKind",
    "i386_layout",
]

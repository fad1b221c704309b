"""The PIT's idle ticks in C: `struct rd_ticker` (_icount.c).

The PIT's counter 0 in a periodic mode pulses IRQ0 once a period, and a kernel that
uses the LAPIC timer or no timer at all leaves that line masked: every pulse then stops
the engine only to latch an edge both interrupt controllers already hold (xv6 and the
minikernel: a few thousand stops per run; a bare-metal loop: one every 55 ms of
virtual time).  Before each engine run the machine asks whether a pulse would change
anything (`Board.isa_pulse_changes_nothing`); if not, it gives the counter the PIT's
periodic schedule, and the block hook moves the schedule on by itself at the branch
boundaries where Python would have fired the timer.  Any I/O a device answers during
the run (`busy`) makes the hook stop at the next expiry again, as before.  After the
run, and during it before any port access a device answers (the guest may program the
PIT there), the PIT takes the schedule back (`edge_taken`), so its state is what the
same run with every expiry taken in Python leaves; the reference counter (tests/oracle)
takes them all in Python.

`TickerState` mirrors `struct rd_ticker` (change both sides together).
"""

from __future__ import annotations

import ctypes


class TickerState(ctypes.Structure):
    """Mirror of struct rd_ticker in _icount.c."""

    _fields_ = (
        ("wired", ctypes.c_uint32),
        ("idle", ctypes.c_uint32),
        ("icount_shift", ctypes.c_uint32),
        ("_pad", ctypes.c_uint32),
        ("bias_ns", ctypes.c_int64),
        ("start_tick", ctypes.c_int64),
        ("period", ctypes.c_int64),
        ("edge_tick", ctypes.c_int64),
        ("deadline_icount", ctypes.c_uint64),
        ("taken", ctypes.c_uint64),
    )


class NativeTicker:
    """The machine's handle on one `struct rd_ticker` (it lives as long as this)."""

    #: Machines made while this is False leave every PIT expiry to Python (tests compare
    #: both ways, step by step and in their logs).
    default_enabled = True

    def __init__(self) -> None:
        self.state = TickerState()
        self._taken = 0
        #: the schedule in the struct while it is wired
        self._wired: tuple[int, ...] | None = None

    @property
    def address(self) -> int:
        return ctypes.addressof(self.state)

    @property
    def taken(self) -> int:
        """Expiries the block hook has taken (statistics)."""
        return int(self.state.taken)

    def wire(
        self,
        start_tick: int,
        period: int,
        edge_tick: int,
        deadline_icount: int,
        shift: int,
        bias_ns: int,
    ) -> None:
        """Let the hook take the expiries of a periodic schedule (rising edges at
        `start_tick` + k * `period` PIT ticks; the next one `edge_tick`, due at
        `deadline_icount`), which change nothing until `busy`."""
        st = self.state
        schedule = (start_tick, period, edge_tick, deadline_icount, shift, bias_ns)
        if schedule != self._wired:  # (most runs start where the last one left it)
            st.start_tick = start_tick
            st.period = period
            st.edge_tick = edge_tick
            st.deadline_icount = deadline_icount
            st.icount_shift = shift
            st.bias_ns = bias_ns
            st.wired = 1
            self._wired = schedule
        st.idle = 1
        self._taken = int(st.taken)

    def unwire(self) -> None:
        """Leave every expiry to Python (the machine's timers)."""
        self.state.wired = 0
        self.state.idle = 0
        self._wired = None

    def busy(self) -> None:
        """A device answered an I/O access: an expiry may matter now, stop for it."""
        self.state.idle = 0

    def edge_taken(self) -> int | None:
        """The next rising edge, if the hook took expiries since `wire`."""
        st = self.state
        if not st.wired or int(st.taken) == self._taken:
            return None
        self._taken = int(st.taken)
        self._wired = None  # the struct moved on
        return int(st.edge_tick)

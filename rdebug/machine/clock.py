"""Virtual time and the devices' timers.

Virtual time is derived from the instruction count: `ns(icount) = (icount << shift) +
bias_ns`, where the bias grows only when a halted CPU's clock is warped ahead to its next
timer.  Each device has at most one timer, a deadline in virtual ns; the run loop fires
the timers that are due (`pop_due`) at the boundaries it chooses.
"""

from __future__ import annotations

from rdebug.machine.devices.base import Device

#: An icount no run reaches ("no deadline").
NEVER = 1 << 63


class VirtualClock:
    """Virtual time of one machine, and its devices' timer deadlines."""

    def __init__(self, shift: int) -> None:
        self.shift = shift
        #: Virtual ns added by HLT fast-forwards.
        self.bias_ns = 0
        #: Each armed device's deadline (ns); ties fire in the order they were armed.
        self.timers: dict[Device, int] = {}

    def ns(self, icount: int) -> int:
        """Virtual time (ns) at `icount`."""
        return (icount << self.shift) + self.bias_ns

    def icount_at(self, deadline_ns: int) -> int:
        """First icount at which virtual time reaches `deadline_ns` (ceil)."""
        delta = deadline_ns - self.bias_ns
        if delta <= 0:
            return 0
        return -(-delta >> self.shift)

    def set_timer(self, device: Device, deadline_ns: int | None) -> None:
        if deadline_ns is None:
            self.timers.pop(device, None)
        else:
            self.timers[device] = deadline_ns

    def next_deadline_ns(self) -> int | None:
        return min(self.timers.values()) if self.timers else None

    def next_deadline_icount(self) -> int:
        """The icount of the earliest deadline (NEVER without timers)."""
        return self.icount_at(min(self.timers.values())) if self.timers else NEVER

    def pop_due(self, icount: int) -> Device | None:
        """The device whose timer is due first at `icount` (its timer disarmed), if any."""
        if not self.timers:
            return None
        device, deadline = min(self.timers.items(), key=lambda kv: kv[1])
        if self.icount_at(deadline) > icount:
            return None
        del self.timers[device]
        return device

    def warp(self, now_ns: int, to_ns: int) -> None:
        """Skip virtual time ahead from `now_ns` to `to_ns` (a halted CPU's next timer)."""
        self.bias_ns += to_ns - now_ns

"""Virtual time and the devices' timers.

Virtual time is derived from the instruction count: `ns(icount) = (icount << shift) +
bias_ns`, where the bias grows only when a halted CPU's clock is warped ahead to its next
timer.  Each device has at most one timer, a deadline in virtual ns; the run loop fires
the timers that are due (`pop_due`) at the boundaries it chooses.
"""

from __future__ import annotations

from collections.abc import Collection

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
        #: Change it only through set_timer, pop_due and clear (they keep the cache below).
        self.timers: dict[Device, int] = {}
        #: The entry min() over `timers` would give (the first of the earliest, in the
        #: dict's order), or None when not known: the run loop asks for it at every stop
        #: and timers change far less often than that.
        self._earliest: tuple[Device, int] | None = None

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
        timers = self.timers
        earliest = self._earliest
        if deadline_ns is None:
            if timers.pop(device, None) is not None and earliest and earliest[0] is device:
                self._earliest = None
            return
        armed = device in timers
        timers[device] = deadline_ns
        if earliest is None:
            return
        if earliest[0] is device:
            if deadline_ns > earliest[1]:
                self._earliest = None  # another timer may be first now
            else:
                self._earliest = (device, deadline_ns)
        elif deadline_ns < earliest[1]:
            self._earliest = (device, deadline_ns)
        elif deadline_ns == earliest[1] and armed:
            self._earliest = None  # a tie: the dict's order decides
        # (a new device goes last in the dict: on a tie, the earliest stays first)

    def clear(self) -> None:
        """Disarm every timer."""
        self.timers.clear()
        self._earliest = None

    def _first(self) -> tuple[Device, int] | None:
        earliest = self._earliest
        if earliest is None and self.timers:
            earliest = self._earliest = min(self.timers.items(), key=lambda kv: kv[1])
        return earliest

    def next_deadline_ns(self) -> int | None:
        first = self._first()
        return None if first is None else first[1]

    def next_deadline_icount(self, skip: Collection[Device] = ()) -> int:
        """The icount of the earliest deadline (NEVER without timers), of the devices
        not in `skip` (those whose timers the native counter watches itself)."""
        first = self._first()
        if first is None:
            return NEVER
        if first[0] in skip:
            others = [ns for device, ns in self.timers.items() if device not in skip]
            return self.icount_at(min(others)) if others else NEVER
        return self.icount_at(first[1])

    def pop_due(self, icount: int) -> Device | None:
        """The device whose timer is due first at `icount` (its timer disarmed), if any."""
        first = self._first()
        if first is None or self.icount_at(first[1]) > icount:
            return None
        device = first[0]
        del self.timers[device]
        self._earliest = None
        return device

    def warp(self, now_ns: int, to_ns: int) -> None:
        """Skip virtual time ahead from `now_ns` to `to_ns` (a halted CPU's next timer)."""
        self.bias_ns += to_ns - now_ns

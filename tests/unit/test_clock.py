"""The virtual clock's timers: its cached earliest deadline against a plain scan.

`VirtualClock` keeps the earliest timer between changes instead of scanning all of them
at every stop; whatever the order of arming, re-arming, disarming, firing and clearing,
it must answer what a scan of the timers answers, ties included (the first armed fires
first)."""

from __future__ import annotations

from typing import cast

from hypothesis import example, given, settings
from hypothesis import strategies as st

from rdebug.machine.clock import NEVER, VirtualClock
from rdebug.machine.devices.base import Device


class _Scan:
    """The reference: every answer from a scan of the timers (the dict's order)."""

    def __init__(self, shift: int) -> None:
        self.clock = VirtualClock(shift)  # only for icount_at
        self.timers: dict[object, int] = {}

    def set_timer(self, device: object, deadline: int | None) -> None:
        if deadline is None:
            self.timers.pop(device, None)
        else:
            self.timers[device] = deadline

    def next_deadline_ns(self) -> int | None:
        return min(self.timers.values()) if self.timers else None

    def next_deadline_icount(self) -> int:
        first = self.next_deadline_ns()
        return NEVER if first is None else self.clock.icount_at(first)

    def pop_due(self, icount: int) -> object | None:
        if not self.timers:
            return None
        device, deadline = min(self.timers.items(), key=lambda kv: kv[1])
        if self.clock.icount_at(deadline) > icount:
            return None
        del self.timers[device]
        return device


DEVICES = [cast(Device, object()) for _ in range(4)]
_deadline = st.one_of(st.none(), st.integers(0, 6))  # small: ties are common
_operation = st.one_of(
    st.tuples(st.just("set"), st.integers(0, len(DEVICES) - 1), _deadline),
    st.tuples(st.just("pop"), st.integers(0, 2), st.none()),
    st.tuples(st.just("clear"), st.just(0), st.none()),
    st.tuples(st.just("ask"), st.just(0), st.none()),
)


@settings(max_examples=1000, deadline=None)
@given(st.lists(_operation, max_size=60))
# a timer armed before the earliest one, re-armed to the same deadline, fires first
@example([("set", 0, 5), ("set", 1, 3), ("ask", 0, None), ("set", 0, 3), ("pop", 2, None)])
def test_cached_earliest_timer_answers_as_a_scan(
    operations: list[tuple[str, int, int | None]],
) -> None:
    clock, scan = VirtualClock(2), _Scan(2)
    for name, arg, deadline in operations:
        if name == "set":
            clock.set_timer(DEVICES[arg], deadline)
            scan.set_timer(DEVICES[arg], deadline)
        elif name == "pop":
            while True:
                fired = clock.pop_due(arg)
                assert fired is scan.pop_due(arg)
                if fired is None:
                    break
        elif name == "clear":
            clock.clear()
            scan.timers.clear()
        else:  # asking fills the cache: without asking, changes meet an unknown earliest
            assert clock.next_deadline_ns() == scan.next_deadline_ns()
            assert clock.next_deadline_icount() == scan.next_deadline_icount()
        assert clock.timers == scan.timers
    assert clock.next_deadline_ns() == scan.next_deadline_ns()

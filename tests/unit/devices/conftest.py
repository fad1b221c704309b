"""A fake machine for device tests: a clock the test moves, recorded IRQ lines and timers."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from rdebug.machine.devices.base import Device
from rdebug.machine.devices.dma import IsaDma


class FakeContext:
    """A `DeviceContext` driven by the test.

    `irq_calls` records every `set_irq` as (now_ns, line, level).  `advance_to` fires the
    due timers in deadline order with the clock set to each deadline, as the machine's
    run loop does, then leaves the clock at the target.
    """

    def __init__(self, now_ns: int = 0) -> None:
        self.now = now_ns
        self.irq_calls: list[tuple[int, int, bool]] = []
        self.levels: dict[int, bool] = {}
        self.timers: dict[Device, int] = {}
        self.stops = 0
        self.exits: list[int] = []
        #: Extra receiver of `set_irq` (e.g. a PicPair's), to wire devices together.
        self.irq_sink: Callable[[int, bool], None] | None = None

    # -- DeviceContext ------------------------------------------------------------------

    def now_ns(self) -> int:
        return self.now

    def set_timer(self, device: Device, deadline_ns: int | None) -> None:
        if deadline_ns is None:
            self.timers.pop(device, None)
        else:
            self.timers[device] = deadline_ns

    def set_irq(self, line: int, level: bool) -> None:
        assert 0 <= line < 16
        self.irq_calls.append((self.now, line, level))
        self.levels[line] = level
        if self.irq_sink is not None:
            self.irq_sink(line, level)

    def request_stop(self) -> None:
        self.stops += 1

    def intr_raised(self) -> None:
        self.stops += 1  # the run loop is told, as for a stop

    def guest_exit(self, code: int) -> None:
        self.exits.append(code)

    # -- test controls ------------------------------------------------------------------

    def advance_to(self, ns: int) -> None:
        for _ in range(1_000_000):
            due = [(deadline, device) for device, deadline in self.timers.items()]
            due = [item for item in due if item[0] <= ns]
            if not due:
                break
            deadline, device = min(due, key=lambda item: item[0])
            del self.timers[device]
            self.now = max(self.now, deadline)
            device.on_timer()
        else:
            raise AssertionError("timers keep firing")
        self.now = max(self.now, ns)

    def advance(self, ns: int) -> None:
        self.advance_to(self.now + ns)

    def deadline(self, device: Device) -> int | None:
        return self.timers.get(device)

    def rises(self, line: int) -> list[int]:
        """Times at which `line` was driven from low to high."""
        times = []
        level = False
        for now, irq, new_level in self.irq_calls:
            if irq == line:
                if new_level and not level:
                    times.append(now)
                level = new_level
        return times

    def level(self, line: int) -> bool:
        return self.levels.get(line, False)


@pytest.fixture
def ctx() -> FakeContext:
    return FakeContext()


@pytest.fixture
def new_ctx() -> Callable[[int], FakeContext]:
    """Make more contexts (a restored twin of a device needs its own)."""
    return FakeContext


class Ram:
    """Guest RAM for the DMA controller (`PhysicalMemory`)."""

    def __init__(self, size: int = 1 << 20) -> None:
        self.ram_size = size
        self.data = bytearray(size)

    def read_physical(self, paddr: int, length: int) -> bytes:
        assert paddr >= 0 and paddr + length <= self.ram_size
        return bytes(self.data[paddr : paddr + length])

    def write_physical(self, paddr: int, data: bytes) -> None:
        assert paddr >= 0 and paddr + len(data) <= self.ram_size
        self.data[paddr : paddr + len(data)] = data


@pytest.fixture
def ram() -> Ram:
    return Ram()


@pytest.fixture
def dma(ctx: FakeContext, ram: Ram) -> IsaDma:
    device = IsaDma(ctx, ram)
    device.reset()
    return device

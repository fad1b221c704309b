"""Every device: save -> load -> save is identical, and a restored twin behaves the same.

A "rig" is a few devices on one FakeContext, addressed by port as the machine's bus
does.  A script runs on rig A; at the split point its state is saved and loaded into a
fresh rig B (new context at the same virtual time); the rest of the script runs on both,
and what the guest reads, the IRQ lines, the output and the final states must agree.
Scripted scenarios stop in the interesting places (a period half gone, bytes in flight, a
clock being set); hypothesis adds random scripts, which also shows no port write crashes.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdebug.machine.devices.base import Device, State
from rdebug.machine.devices.misc import DebugExit, PostPort
from rdebug.machine.devices.pic import PicPair
from rdebug.machine.devices.pit import Pit, SystemControlPort
from rdebug.machine.devices.rtc import Rtc
from rdebug.machine.devices.uart import Uart
from tests.unit.devices.conftest import FakeContext

MS = 1_000_000


@dataclass(frozen=True, slots=True)
class Out:
    port: int
    value: int
    size: int = 1


@dataclass(frozen=True, slots=True)
class In:
    port: int
    size: int = 1


@dataclass(frozen=True, slots=True)
class Advance:
    ns: int


@dataclass(frozen=True, slots=True)
class Irq:
    """Drive a PIC input line."""

    line: int
    level: bool


@dataclass(frozen=True, slots=True)
class Ack:
    """The CPU takes the interrupt if the PIC's INT is up."""


@dataclass(frozen=True, slots=True)
class Host:
    """Host bytes for the UART."""

    data: bytes


Op = Out | In | Advance | Irq | Ack | Host


class Capture:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data


class Rig:
    def __init__(self, ctx: FakeContext, devices: Sequence[Device], out: Capture) -> None:
        self.ctx = ctx
        self.devices = devices
        self.out = out

    def device(self, kind: type[Device]) -> Device:
        return next(device for device in self.devices if isinstance(device, kind))

    def save(self) -> dict[str, State]:
        return {device.name: device.save_state() for device in self.devices}

    def load(self, states: dict[str, State]) -> None:
        for device in self.devices:
            device.load_state(states[device.name])

    def apply(self, op: Op) -> object:
        match op:
            case Out(port, value, size):
                for device in self.devices:
                    if any(port in ports for ports in device.ports):
                        device.io_write(port, size, value)
                return None
            case In(port, size):
                for device in self.devices:
                    if any(port in ports for ports in device.ports):
                        return device.io_read(port, size)
                return None
            case Advance(ns):
                self.ctx.advance(ns)
                return None
            case Irq(line, level):
                pic = self.device(PicPair)
                assert isinstance(pic, PicPair)
                pic.set_irq(line, level)
                return None
            case Ack():
                pic = self.device(PicPair)
                assert isinstance(pic, PicPair)
                return pic.acknowledge() if pic.intr() else None
            case Host(data):
                uart = self.device(Uart)
                assert isinstance(uart, Uart)
                uart.receive_host(data)
                return uart.rx_idle()


class HostClock:
    """The same host time for both rigs; counts the calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        return 1_700_000_000 * 10**9


def pic_rig(ctx: FakeContext, _restored: bool) -> Rig:
    return Rig(ctx, [PicPair(ctx)], Capture())


def pit_rig(ctx: FakeContext, _restored: bool) -> Rig:
    pit = Pit(ctx)
    return Rig(ctx, [pit, SystemControlPort(ctx, pit)], Capture())


def uart_rig(ctx: FakeContext, _restored: bool) -> Rig:
    out = Capture()
    return Rig(ctx, [Uart(ctx, base=0x3F8, irq=4, backend=out)], out)


def rtc_rig(ctx: FakeContext, _restored: bool) -> Rig:
    return Rig(ctx, [Rtc(ctx, HostClock(), memory_mb=64)], Capture())


def misc_rig(ctx: FakeContext, _restored: bool) -> Rig:
    return Rig(ctx, [PostPort(ctx), DebugExit(ctx)], Capture())


def pc_rig(ctx: FakeContext, _restored: bool) -> Rig:
    """PIC + PIT + COM1 wired together: the devices' IRQs feed the PIC."""
    pic = PicPair(ctx)
    ctx.irq_sink = pic.set_irq
    out = Capture()
    pit = Pit(ctx)
    return Rig(ctx, [pic, pit, Uart(ctx, backend=out)], out)


RigFactory = Callable[[FakeContext, bool], Rig]


def check_restore(factory: RigFactory, prefix: Sequence[Op], suffix: Sequence[Op]) -> None:
    ctx_a = FakeContext()
    rig_a = factory(ctx_a, False)
    for device in rig_a.devices:
        device.reset()
    for op in prefix:
        rig_a.apply(op)
    saved = rig_a.save()
    frozen_copy = copy.deepcopy(saved)

    ctx_b = FakeContext(ctx_a.now)
    rig_b = factory(ctx_b, True)
    for device in rig_b.devices:
        device.reset()
    ctx_b.irq_calls.clear()
    rig_b.load(copy.deepcopy(saved))
    assert rig_b.save() == saved  # save -> load -> save
    assert saved == frozen_copy  # saving hands out no live references
    for device_a, device_b in zip(rig_a.devices, rig_b.devices, strict=True):
        assert ctx_b.deadline(device_b) == ctx_a.deadline(device_a), device_a.name
    assert ctx_b.irq_calls == []  # loading re-arms timers, drives no line

    irq_mark, stop_mark, exit_mark = len(ctx_a.irq_calls), ctx_a.stops, len(ctx_a.exits)
    out_mark = len(rig_a.out.data)
    seen_a = [rig_a.apply(op) for op in suffix]
    seen_b = [rig_b.apply(op) for op in suffix]
    assert seen_a == seen_b
    assert ctx_a.irq_calls[irq_mark:] == ctx_b.irq_calls
    assert ctx_a.stops - stop_mark == ctx_b.stops
    assert ctx_a.exits[exit_mark:] == ctx_b.exits
    assert rig_a.out.data[out_mark:] == rig_b.out.data
    assert rig_a.save() == rig_b.save()


# -- scripted scenarios --------------------------------------------------------------------

# fmt: off
PIC_INIT: list[Op] = [
    Out(0x20, 0x11), Out(0xA0, 0x11), Out(0x21, 0x20), Out(0xA1, 0x28),
    Out(0x21, 0x04), Out(0xA1, 0x02), Out(0x21, 0x01), Out(0xA1, 0x01),
]

SCENARIOS: dict[str, tuple[RigFactory, list[Op], list[Op]]] = {
    "pic: requests in service, one pending, one line held high": (
        pic_rig,
        [*PIC_INIT, Irq(12, True), Ack(), Irq(3, True), Irq(3, False), Irq(5, True), Ack()],
        [In(0x20), Out(0x20, 0x0B), In(0x20), Out(0xA0, 0x20), Out(0x20, 0x20), Ack(), Ack(),
         Irq(5, False), Irq(5, True), Out(0x20, 0x20), Ack(), Out(0x20, 0x0C), In(0x20)],
    ),
    "pic: between ICW2 and ICW3": (
        pic_rig,
        [Out(0x20, 0x11), Out(0x21, 0x40)],
        [Out(0x21, 0x04), Out(0x21, 0x03), Irq(1, True), Ack(), Irq(0, True), Ack(), In(0x20)],
    ),
    "pit: mode 2 mid-period with a count pending, channel 2 mid-lohi": (
        pit_rig,
        [Out(0x43, 0x34), Out(0x40, 0x9C), Out(0x40, 0x2E), Advance(3 * MS),
         Out(0x40, 0x10), Out(0x40, 0x27), Out(0x61, 0x01), Out(0x43, 0xB0), Out(0x42, 0x34),
         Advance(MS), Out(0x43, 0x00), In(0x40)],
        [In(0x40), Advance(20 * MS), Out(0x42, 0x12), Advance(MS), In(0x61), Out(0x43, 0xE2),
         In(0x40), In(0x40), In(0x40), Advance(30 * MS), Out(0x61, 0x00), In(0x61)],
    ),
    "pit: mode 0 one-shot before terminal count": (
        pit_rig,
        [Out(0x43, 0x30), Out(0x40, 0xFF), Out(0x40, 0x40), Advance(5 * MS)],
        [Advance(10 * MS), Out(0x43, 0xC2), In(0x40), Out(0x40, 0x00), Advance(MS)],
    ),
    "uart: fifo half full, bytes in flight, timeout running, host queue": (
        uart_rig,
        [Out(0x3FB, 0x80), Out(0x3F8, 0x02), Out(0x3FB, 0x03), Out(0x3FA, 0xC7),
         Out(0x3F9, 0x03), In(0x3FA), Host(b"hello, world"), Advance(700_000), In(0x3F8),
         Out(0x3F8, 0x41)],
        [In(0x3FA), In(0x3FD), Advance(2 * MS), In(0x3FA), In(0x3F8), In(0x3F8),
         Host(b"!"), Advance(3 * MS), Out(0x3F8, 0x42), In(0x3FA), In(0x3FA),
         *[In(0x3F8)] * 16, Advance(5 * MS), In(0x3FA), In(0x3FD)],
    ),
    "uart: loopback with an overrun pending": (
        uart_rig,
        [Out(0x3FC, 0x1E), Out(0x3F9, 0x0F), Out(0x3F8, 1), Out(0x3F8, 2)],
        [In(0x3FA), In(0x3FD), In(0x3FA), In(0x3F8), In(0x3FA), In(0x3FE), In(0x3FA),
         Out(0x3FC, 0x0B), Out(0x3F8, 0x43)],
    ),
    "rtc: being set, periodic interrupt and alarm armed": (
        rtc_rig,
        [Out(0x70, 0x0B), Out(0x71, 0x62), Out(0x70, 0x01), Out(0x71, 0xC0),
         Advance(3 * MS), Out(0x70, 0x0B), Out(0x71, 0xE2), Out(0x70, 0x04), Out(0x71, 0x09)],
        [Out(0x70, 0x00), In(0x71), Out(0x70, 0x0B), Out(0x71, 0x62), Advance(1500 * MS),
         Out(0x70, 0x0C), In(0x71), Out(0x70, 0x04), In(0x71), Advance(3 * MS),
         Out(0x70, 0x0C), In(0x71), Out(0x70, 0x0A), In(0x71)],
    ),
    "rtc: before the first access": (
        rtc_rig,
        [Advance(5 * MS)],
        [Out(0x70, 0x00), In(0x71), Advance(2000 * MS), In(0x71)],
    ),
    "misc: post and exit": (
        misc_rig,
        [Out(0x80, 0x12)],
        [In(0x80), Out(0xF4, 0x05), In(0xF5, 2)],
    ),
    "pc: timer and serial interrupts through the pic": (
        pc_rig,
        [*PIC_INIT, Out(0x43, 0x34), Out(0x40, 0xA9), Out(0x40, 0x04), Out(0x3F9, 0x01),
         Host(b"xy"), Advance(2 * MS), Ack()],
        [Advance(MS), Ack(), In(0x3FA), In(0x3F8), Out(0x20, 0x20), Ack(), Advance(MS), Ack(),
         Out(0x20, 0x20), Ack(), In(0x3F8), Out(0x20, 0x20), Ack()],
    ),
}
# fmt: on


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_restored_device_behaves_the_same(name: str) -> None:
    factory, prefix, suffix = SCENARIOS[name]
    check_restore(factory, prefix, suffix)


def test_restored_rtc_does_not_ask_the_host_again() -> None:
    ctx_a = FakeContext()
    rtc_a = Rtc(ctx_a, HostClock(), memory_mb=64)
    rtc_a.io_write(0x70, 1, 0x00)
    ctx_a.advance(5 * MS)
    ctx_b = FakeContext(ctx_a.now)
    clock_b = HostClock()
    rtc_b = Rtc(ctx_b, clock_b, memory_mb=64)
    rtc_b.load_state(rtc_a.save_state())
    ctx_a.advance(3000 * MS)
    ctx_b.advance(3000 * MS)
    assert rtc_a.io_read(0x71, 1) == rtc_b.io_read(0x71, 1)
    assert clock_b.calls == 0  # the time base is in the snapshot


# -- random scripts ------------------------------------------------------------------------


def ops(
    ports: Sequence[int], max_ns: int, extra: st.SearchStrategy[Op] | None = None
) -> st.SearchStrategy[list[Op]]:
    port = st.sampled_from(ports)
    choices: list[st.SearchStrategy[Op]] = [
        st.builds(Out, port, st.integers(0, 255)),
        st.builds(In, port),
        st.builds(Advance, st.integers(0, max_ns)),
    ]
    if extra is not None:
        choices.append(extra)
    return st.lists(st.one_of(*choices), max_size=40)


PIC_EXTRA: st.SearchStrategy[Op] = st.one_of(
    st.builds(Irq, st.integers(0, 15), st.booleans()), st.just(Ack())
)
RANDOM: dict[str, tuple[RigFactory, st.SearchStrategy[list[Op]]]] = {
    "pic": (pic_rig, ops([0x20, 0x21, 0xA0, 0xA1], 0, PIC_EXTRA)),
    "pit": (pit_rig, ops([0x40, 0x41, 0x42, 0x43, 0x43, 0x61], 200_000)),
    "uart": (
        uart_rig,
        ops(list(range(0x3F8, 0x400)), 2 * MS, st.builds(Host, st.binary(max_size=20))),
    ),
    "rtc": (rtc_rig, ops([0x70, 0x71, 0x71], 1500 * MS)),
}


@pytest.mark.parametrize("kind", sorted(RANDOM))
def test_random_scripts_restore_identically(kind: str) -> None:
    factory, scripts = RANDOM[kind]

    @settings(max_examples=60, deadline=None, derandomize=True, database=None)
    @given(script=scripts, split=st.integers(0, 40))
    def run(script: list[Op], split: int) -> None:
        check_restore(factory, script[:split], script[split:])

    run()

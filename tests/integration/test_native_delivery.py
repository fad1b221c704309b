"""Interrupts in C against the Python paths: every guest that takes interrupts and
exceptions from ring 0 and ring 3 runs the same way, stop for stop, register for register,
to the same final state, whichever takes them:

- native: system calls (INT n, n >= 32) taken by the C interrupt hook (_intr.c), the
  local APIC's periodic timer expiries and its interrupts at IRQ windows taken by the
  counter's block hook, its EOIs by its register page's store hook (_lapic.c), every
  delivery through a 32-bit gate done by rd_deliver (_vtlb.c);
- python-hook: every interrupt through the machine's Python hook, delivered by rd_deliver;
- python: the Python hook and interrupts.py's Python delivery.

A recording made with the system calls and the APIC's interrupts taken in C is the same
log, byte for byte, as one made with the Python paths, and replays either way.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from unicorn import Uc

from rdebug.errors import LogDivergence
from rdebug.host.sources import FileSerialSource, LiveInputs
from rdebug.machine.devices.base import Device
from rdebug.machine.devices.lapic import TIMER_INITIAL, LocalApic
from rdebug.machine.inputs import ExternalInputs
from rdebug.machine.intr import NativeInterrupts
from rdebug.machine.loader import ImageFormat, load_image, parse_image
from rdebug.machine.machine import Machine, MachineConfig, StopReason
from rdebug.machine.regpages import RegisterPages
from rdebug.machine.vtlb import VirtualTlb
from rdebug.replay.log import (
    ExceptionTaken,
    Instruction,
    InterruptTaken,
    Reader,
    encode,
    encode_header,
)
from rdebug.replay.recorder import Recorder
from tests.conftest import (
    COUNTERS,
    GUESTS,
    Capture,
    make_machine,
    record_log,
    replay_log,
    stride_walk,
)

CLOCK_NS = 1_764_000_000_000_000_000
SESSIONS = {"minikernel": b"crc 30\nexit 0\n"}
#: guests whose ring 3 makes system calls with INT n (n >= 32)
SYSCALLS = {"usermode", "paging", "minikernel"}
#: guests whose local APIC timer interrupts running code: the minikernel's periodic one,
#: the apic guest's one-shot (it waits for its periodic ticks in HLT: the machine wakes
#: it, in Python)
LAPIC_TIMER = {"minikernel", "apic"}


def _walk(guest: str) -> tuple[list[tuple[object, ...]], str, tuple[int, ...]]:
    machine, out = make_machine(guest, serial_input=SESSIONS.get(guest), clock_ns=CLOCK_NS)
    try:
        # uneven strides: inside handlers and user code
        stops = stride_walk(machine, out, lambda step: step * 5 % 60_013 + 1)
        assert machine.native_interrupts is not None
        core = machine.board.lapic.core
        taken = (
            machine.cpu.vtlb.delivered,
            machine.native_interrupts.handled,
            core.expiries,
            core.delivered,
            core.eois,
        )
        return stops, machine.state_hash(), taken
    finally:
        machine.close()


@pytest.mark.parametrize("guest", ["usermode", "paging", "apic", "timer", "minikernel"])
def test_native_delivery_gives_the_python_delivery_run(
    guest: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    native = _walk(guest)
    monkeypatch.setattr(NativeInterrupts, "default_native", False)
    python_hook = _walk(guest)
    monkeypatch.setattr(VirtualTlb, "deliver", lambda self, *args: False)
    python = _walk(guest)
    assert native[0][-2][0] is StopReason.EXIT
    # each path was the one taken
    assert native[2][0] > 0 and python[2] == (0, 0, 0, 0, 0)
    # the same deliveries, all through Python's hook
    assert python_hook[2] == (native[2][0], 0, 0, 0, 0)
    if guest in SYSCALLS:
        assert native[2][1] > 0
    if guest in LAPIC_TIMER:
        assert native[2][2] > 0 and native[2][3] > 0 and native[2][4] > 0
    assert native[:2] == python_hook[:2] == python[:2]


Result = tuple[StopReason, int, bytes, str, int]


def _machine_run(inputs: ExternalInputs) -> Result:
    out = Capture()
    machine = Machine(MachineConfig(memory_mb=64), inputs, [out])
    try:
        machine.load(load_image(GUESTS / "minikernel.elf"))
        stop = machine.run()
        assert machine.native_interrupts is not None
        handled = machine.native_interrupts.handled
        return stop.reason, stop.icount, bytes(out.data), machine.state_hash(), handled
    finally:
        machine.close()


def _record(log: Path) -> Result:
    session = LiveInputs({0: FileSerialSource(SESSIONS["minikernel"])}, lambda: CLOCK_NS)
    return record_log(log, session, _machine_run)


def _replay(log: Path) -> Result:
    return replay_log(log, _machine_run)


def test_native_system_calls_record_the_same_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    native_log, python_log = tmp_path / "native.log", tmp_path / "python.log"
    native = _record(native_log)
    native_replay = _replay(native_log)
    monkeypatch.setattr(NativeInterrupts, "default_native", False)
    python = _record(python_log)
    python_replay_of_native = _replay(native_log)
    assert native[0] is StopReason.EXIT
    assert native[4] > 60 and python[4] == 0  # the session's system calls, in C or not
    assert native_log.read_bytes() == python_log.read_bytes()
    assert native[:4] == python[:4] == native_replay[:4] == python_replay_of_native[:4]


@pytest.mark.parametrize(
    ("taken", "says"),
    [(ExceptionTaken, "took an exception"), (InterruptTaken, "took an interrupt")],
)
def test_an_interrupt_not_where_the_log_has_it_is_a_divergence(
    tmp_path: Path, taken: type, says: str
) -> None:
    """The C paths' syncs reach the player: a log whose first system call (or first
    interrupt from the local APIC) is moved one instruction later makes the replay stop
    with a divergence at the real one."""
    log = tmp_path / "native.log"
    _record(log)
    with log.open("rb") as stream:
        events = list(Reader(stream, str(log)))
    first = next(i for i, e in enumerate(events) if isinstance(e, taken))
    moved = 0
    for i in range(first - 1, -1, -1):  # the instruction count just before it
        event = events[i]
        if isinstance(event, Instruction):
            events[i] = Instruction(event.count + 1)
            moved = sum(e.count for e in events[:first] if isinstance(e, Instruction))
            break
    assert moved
    tampered = tmp_path / "tampered.log"
    tampered.write_bytes(encode_header() + b"".join(encode(e) for e in events))
    with pytest.raises(LogDivergence) as caught:
        _replay(tampered)
    assert caught.value.icount == moved - 1
    assert says in caught.value.actual


def test_what_the_guest_sends_out_comes_after_the_interrupts_before_it_in_the_log(
    tmp_path: Path,
) -> None:
    """Interrupts taken in C reach the recorder (which writes each to the file at once)
    before any OUT a device answers: a recorder killed right after the guest printed
    something leaves a log that covers the interrupts before it."""
    machines: list[Machine] = []
    writes: list[int] = []

    class Watching(Capture):
        def write(self, data: bytes) -> None:
            interrupts = machines[0].native_interrupts
            assert interrupts is not None
            writes.append(interrupts.waiting)
            super().write(data)

    fd = os.open(tmp_path / "log", os.O_WRONLY | os.O_CREAT)
    try:
        session = LiveInputs({0: FileSerialSource(SESSIONS["minikernel"])}, lambda: CLOCK_NS)
        machine = Machine(MachineConfig(memory_mb=64), Recorder(session, fd), [Watching()])
        machines.append(machine)
        try:
            machine.load(load_image(GUESTS / "minikernel.elf"))
            assert machine.run().reason is StopReason.EXIT
            assert machine.board.lapic.core.delivered > 0
        finally:
            machine.close()
    finally:
        os.close(fd)
    assert len(writes) > 100 and set(writes) == {0}


# A code segment whose base is not 0: unicorn leaves the block's linear address in EIP
# for its hooks, so a delivery at an IRQ window must push the offset in CS (the handler's
# IRET returns there).  Flat binary at 0x100000 (GNU as, AT&T):
#
#   mov $0x90000, %esp ; cli ; lgdt gdtr ; lidt idtr
#   ljmp $0x18, $(main - _start)         # CS base 0x100000 from here on
# main:
#   movl $0x1ff, 0xfee000f0 ; movl $0xb, 0xfee003e0      # APIC on; divide by 1
#   movl $0x20040, 0xfee00320 ; movl $20000, 0xfee00380  # periodic 0x40, 20 us
#   sti
# 1: call spin ; cmpl $20, count ; jb 1b
#   cli ; mov count, %ebx ; hlt
# spin: mov $30, %ecx ; 2: add %ecx, %eax ; jmp 3f ; 3: loop 2b ; ret
# handler: incl count ; movl $0, 0xfee000b0 ; iret      # EOI
# gdt: null, flat code 0x08, flat data 0x10, code 0x18 with base 0x100000
# idt: vector 0x40 -> 0x18:(handler - _start), an interrupt gate
CS_BASE_GUEST = (
    bytes.fromhex(
        "bc00000900fa0f0115980010000f011da8021000ea1b0000001800c705f000e0feff010000c705e0"
        "03e0fe0b000000c7052003e0fe40000200c7058003e0fe204e0000fbe811000000833dae02100014"
        "72f2fa8b1dae021000f4b91e00000001c8eb00e2fac3ff05ae021000c705b000e0fe00000000cf90"
        "0000000000000000ffff0000009acf00ffff00000092cf00ffff0000109acf001f00780010006690"
    )
    + bytes(8 * 0x40)  # the IDT up to vector 0x3f: absent gates
    + bytes.fromhex("66001800008e0000")  # vector 0x40: interrupt gate to 0x18:0x66
    + bytes.fromhex("0702a0001000")  # IDTR: the IDT at 0x1000a0
    + bytes(4)  # count
)


def _cs_base_walk(counter: str) -> tuple[list[tuple[object, ...]], str, int, int]:
    inputs = LiveInputs(clock=lambda: CLOCK_NS)
    machine = Machine(MachineConfig(memory_mb=16), inputs, [], counter=COUNTERS[counter])
    machine.load(parse_image(CS_BASE_GUEST, "cs-base", ImageFormat.FLAT, load_address=0x100000))
    stops: list[tuple[object, ...]] = []
    try:
        while (stop := machine.run(machine.icount + 37)).reason is StopReason.TARGET:
            stops.append((stop.icount, tuple(sorted(machine.cpu.registers().items()))))
            assert len(stops) < 10_000
        stops.append((stop.reason, stop.icount, machine.cpu.read("ebx")))
        return stops, machine.state_hash(), machine.board.lapic.core.delivered, len(stops)
    finally:
        machine.close()


def test_a_delivery_at_an_irq_window_pushes_the_offset_in_a_based_code_segment() -> None:
    native = _cs_base_walk("native")
    reference = _cs_base_walk("reference")
    assert native[0][-1][0] is StopReason.HALTED and native[0][-1][2] == 20  # 20 ticks taken
    assert native[2] > 0 and reference[2] == 0  # in C, and in Python
    assert native[:2] == reference[:2]


@pytest.mark.parametrize("counter", ["native", "reference"])
def test_an_initial_count_store_stops_the_engine_only_for_a_deadline_the_run_must_take(
    counter: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A one-shot kernel loads the timer's initial count at every tick (Linux: 137,000
    times in a boot).  The store reads back as written, so it settles at once unless its
    new deadline needs a stop: never with the native counter, whose block hook takes the
    deadline from the APIC's core; with the reference counter, when the deadline comes
    before the run's next stop.  The guest's output is QEMU's either way."""
    seen: list[tuple[bool, bool]] = []  # (stopped after it, its deadline before the run's stop)
    on_store = RegisterPages._on_store
    machines: list[Machine] = []

    def watched(self: RegisterPages, uc: Uc, access: int, addr: int, size: int, value: int,
                device: Device) -> bool:  # fmt: skip
        taken = on_store(self, uc, access, addr, size, value, device)
        if isinstance(device, LocalApic) and addr - device.base == TIMER_INITIAL:
            machine = machines[0]
            deadline = machine.clock.timers.get(device)
            due = deadline is not None and machine.clock.icount_at(deadline) < machine._next_stop
            seen.append((device in self._unsettled, due))  # settled at the stop after it
        return taken

    monkeypatch.setattr(RegisterPages, "_on_store", watched)
    machine, out = make_machine("apic", counter=counter, clock_ns=CLOCK_NS)
    machines.append(machine)
    try:
        stop = machine.run()
        assert (machine._native_lapic is not None) is (counter == "native")
    finally:
        machine.close()
    assert stop.reason is StopReason.EXIT
    assert out.data == (GUESTS.parent / "expected" / "apic.txt").read_bytes()
    assert len(seen) >= 2
    if counter == "native":
        assert not any(stopped for stopped, _ in seen)
    else:
        assert any(due for _, due in seen)  # the case is there
        assert all(stopped == due for stopped, due in seen)

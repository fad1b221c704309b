"""The native counter agrees exactly with the reference counter on every sample guest.

Both machines run the same guest with the same inputs, stopping every `STEP`
instructions and at every breakpoint hit; at each stop icount, EIP and every register
must be equal, and the final state hashes (registers + RAM + devices + time) too.
"""

from __future__ import annotations

import pytest

from rdebug.host.sources import LiveInputs
from rdebug.machine.cpu import EFLAGS_IF
from rdebug.machine.loader import ImageFormat, parse_image
from rdebug.machine.machine import Machine, MachineConfig, StopEvent, StopReason
from tests.conftest import COUNTERS, make_machine

STEP = 7919  # a prime, so stops fall at every phase of every loop
INPUTS = {"echo": b"hello\rq"}
#: Shorter workloads than the default build (the reference counter is slow).
PASSES = {"crc": ("crc_passes", 1), "memcopy": ("memcopy_passes", 1)}
CLOCK_NS = 1_764_000_000_000_000_000
BREAKPOINTS = {
    "timer": "isr_dispatch",
    "usermode": "isr_dispatch",
    "echo": "isr_dispatch",
    "disk": "isr_dispatch",
}


def _trace(guest: str, counter: str) -> tuple[list[tuple[object, ...]], str, bytes]:
    machine, out = make_machine(
        guest, counter=counter, serial_input=INPUTS.get(guest), clock_ns=CLOCK_NS
    )
    stops: list[tuple[object, ...]] = []
    try:
        if guest in PASSES:
            symbol, passes = PASSES[guest]
            machine.cpu.write_physical(machine.symbols[symbol], passes.to_bytes(4, "little"))
        if guest in BREAKPOINTS:
            machine.add_breakpoint(machine.symbols[BREAKPOINTS[guest]])
        while True:
            stop = machine.run(machine.icount + STEP)
            stops.append(_describe(machine, stop))
            if stop.reason not in (StopReason.TARGET, StopReason.BREAKPOINT):
                break
            assert len(stops) < 10_000
        return stops, machine.state_hash(), bytes(out.data)
    finally:
        machine.close()


def _describe(machine: Machine, stop: StopEvent) -> tuple[object, ...]:
    regs = machine.cpu.registers()
    return (stop.reason, stop.icount, stop.exit_code, tuple(sorted(regs.items())))


@pytest.mark.parametrize(
    "guest", ["hello", "timer", "echo", "clock", "usermode", "crc", "memcopy", "disk"]
)
def test_native_and_reference_counters_agree(guest: str) -> None:
    native = _trace(guest, "native")
    reference = _trace(guest, "reference")
    assert native[0][-1][0] is StopReason.EXIT
    assert len(native[0]) == len(reference[0])
    for mine, theirs in zip(native[0], reference[0], strict=True):
        assert mine == theirs
    assert native[1:] == reference[1:]


# An IRQ waiting while IF=0, and each way IF comes back: the native counter reads EFLAGS
# again only after a block that may set IF (STI, POPF, IRET...), so each must open the
# window at the same instruction as the reference counter's check at every instruction.
#
#   mov esp, 0x90000 ; cli
#   (the PIC: vectors 0x20.., IRQ5 alone unmasked; IDT entry 0x25: a gate to handler)
#   mov esi, 3
# round:
#   call spin ; pushf ; or dword [esp], 0x200 ; popf ; cli
#   call spin ; sti ; nop ; cli
#   call spin ; pushf ; or dword [esp], 0x200 ; push cs ; push 1f ; iret
# 1: cli ; dec esi ; jnz round
#   mov ebx, [count] ; hlt
# spin: mov ecx, 40 ; 2: add eax, ecx ; jmp 3f ; 3: loop 2b ; ret
# handler: inc dword [count] ; push eax ; mov al, 0x20 ; out 0x20, al ; pop eax ; iret
IF_GUEST = bytes.fromhex(
    "bc00000900fab011e620b020e621b004e621b001e621b0dfe621b889001000bfd0011000668907c1"
    "e81066894706668cc86689470266c74704008e0f011d9c001000be03000000e8310000009c810c24"
    "000200009dfae822000000fb90fae81a0000009c810c24000200000e6872001000cffa4e75d18b1d"
    "98001000f4b92800000001c8eb00e2fac3ff059800100050b020e62058cf669000000000ff07a800"
    "10008db600000000"
)
IF_STEP = 13


def _if_trace(counter: str) -> tuple[list[tuple[object, ...]], str, int]:
    inputs = LiveInputs(clock=lambda: 0)
    machine = Machine(MachineConfig(memory_mb=16), inputs, [], counter=COUNTERS[counter])
    machine.load(parse_image(IF_GUEST, "if-window", ImageFormat.FLAT, load_address=0x100000))
    stops: list[tuple[object, ...]] = []
    try:
        while True:
            stop = machine.run(machine.icount + IF_STEP)
            stops.append(_describe(machine, stop))
            if stop.reason is not StopReason.TARGET:
                break
            assert len(stops) < 10_000
            if not machine.cpu.read("eflags") & EFLAGS_IF and not machine.board.irq_pending():
                machine.set_irq(5, True)  # an edge: pending until IF lets it in
                machine.set_irq(5, False)
        return stops, machine.state_hash(), machine.cpu.read("ebx")
    finally:
        machine.close()


def test_an_irq_waiting_for_if_is_taken_where_each_way_of_setting_if_lets_it() -> None:
    native = _if_trace("native")
    reference = _if_trace("reference")
    assert native[0][-1][0] is StopReason.HALTED
    assert native[2] >= 9  # IRQs taken: one at least at each of the nine POPF, STI, IRET
    assert native == reference


@pytest.mark.parametrize("counter", ["native", "reference"])
def test_a_breakpoint_on_an_interrupt_handler_is_hit_at_every_delivery(counter: str) -> None:
    # The machine delivers IRQ0 at a stop, then resumes in the handler: a breakpoint on
    # its first instruction is a hit there (only a breakpoint the run stopped on is
    # stepped over when it resumes).
    machine, _ = make_machine("timer", counter=counter, clock_ns=CLOCK_NS)
    try:
        stub = machine.symbols["isr_stub_32"]  # IRQ0's entry in the IDT
        machine.add_breakpoint(stub)
        hits: list[int] = []
        while (stop := machine.run()).reason is StopReason.BREAKPOINT:
            assert machine.cpu.eip == stub
            assert not hits or stop.icount > hits[-1]
            hits.append(stop.icount)
            assert len(hits) < 1000
        assert stop.reason is StopReason.EXIT
        ticks = int.from_bytes(machine.cpu.read_physical(machine.symbols["ticks"], 4), "little")
        assert ticks > 10
        assert len(hits) == ticks
    finally:
        machine.close()


# Three rounds of: sti ; out dx, al (port 0x80, the last round 0xf4: isa-debug-exit) ;
# dec ecx ; jnz.  The OUT after STI is a translation block of its own (the interrupt
# shadow), so the exit's stop falls at the entry of the next block, which the earlier
# rounds made hot (the native hook's fast path must see the stop asked for).
#   mov dx, 0x80 ; mov ecx, 3
#   top: cmp ecx, 1 ; jne skip ; mov dx, 0xf4
#   skip: mov al, 2 ; sti ; out dx, al ; dec ecx ; jnz top ; jmp $
EXIT_AFTER_STI = bytes.fromhex("66ba8000b90300000083f901750466baf400b002fbee4975f0ebfe")


@pytest.mark.parametrize("counter", ["native", "reference"])
def test_a_stop_asked_for_by_the_last_instruction_of_a_block_is_taken_after_it(
    counter: str,
) -> None:
    inputs = LiveInputs(clock=lambda: CLOCK_NS)
    machine = Machine(MachineConfig(memory_mb=16), inputs, [], counter=COUNTERS[counter])
    try:
        image = parse_image(EXIT_AFTER_STI, "exit", ImageFormat.FLAT, load_address=0x100000)
        machine.load(image)
        stop = machine.run()
        assert (stop.reason, stop.exit_code, stop.icount) == (StopReason.EXIT, 5, 22)
        assert machine.cpu.eip == 0x100016  # after the OUT: the DEC never ran
        assert machine.cpu.read("ecx") == 1
    finally:
        machine.close()

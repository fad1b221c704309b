"""The counters on a hand-written snippet: exact counts, partial blocks, breakpoints."""

from __future__ import annotations

import ctypes
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdebug.errors import MachineError
from rdebug.machine import icount_binding
from rdebug.machine.counter import Counter, StopCause
from rdebug.machine.cpu import Cpu
from rdebug.machine.native_counter import NativeCounter
from tests.oracle.reference_counter import ReferenceCounter

# mov ecx,16 / l: inc eax; inc ebx; loop l / mov esi,0x3000; mov edi,0x4000; mov ecx,5;
# rep movsb / nop; nop; hlt
SNIPPET = bytes.fromhex("b9100000004043e2fcbe00300000bf00400000b905000000f3a49090f4")
BASE = 0x1000
#: 1 + 16*3 (loop) + 3 movs + 6 rep iterations (5 + the final check) + 3 = 61
TOTAL = 61


def _make(kind: type[NativeCounter] | type[ReferenceCounter]) -> tuple[Cpu, Counter]:
    cpu = Cpu(2)
    cpu.write_physical(BASE, SNIPPET)
    cpu.eip = BASE
    return cpu, kind(cpu)


@pytest.fixture(params=[NativeCounter, ReferenceCounter], ids=["native", "reference"])
def counter(request: pytest.FixtureRequest) -> Iterator[tuple[Cpu, Counter]]:
    cpu, counter = _make(request.param)
    yield cpu, counter
    counter.close()
    cpu.close()


def test_counts_every_instruction_start_including_rep_iterations(
    counter: tuple[Cpu, Counter],
) -> None:
    cpu, c = counter
    assert c.execute(1 << 40) is StopCause.HALTED
    assert c.icount == TOTAL
    assert cpu.eip == BASE + len(SNIPPET)


def test_breakpoint_stops_before_the_instruction_and_is_stepped_over_on_resume(
    counter: tuple[Cpu, Counter],
) -> None:
    cpu, c = counter
    loop = BASE + 5
    c.add_breakpoint(loop)
    hits = []
    while (cause := c.execute(1 << 40)) is StopCause.BREAKPOINT:
        assert cpu.eip == loop
        hits.append(c.icount)
    assert cause is StopCause.HALTED
    assert hits == [1 + 3 * i for i in range(16)]
    c.remove_breakpoint(loop)


@settings(max_examples=40, deadline=None)
@given(targets=st.lists(st.integers(min_value=0, max_value=TOTAL), min_size=1, max_size=8))
def test_any_sequence_of_targets_lands_exactly_as_the_reference(targets: list[int]) -> None:
    results = []
    for kind in (NativeCounter, ReferenceCounter):
        cpu, c = _make(kind)
        trace = []
        for target in sorted(targets):
            cause = c.execute(target) if target >= c.icount else None
            trace.append((cause, c.icount, cpu.eip, cpu.read("ecx"), cpu.read("eax")))
        results.append(trace)
        c.close()
        cpu.close()
    assert results[0] == results[1]


def _patching(jump: bytes) -> bytes:
    """Code at BASE that runs the block at 0x2000 three times through `jump` (to EAX =
    0x2000, returning by RET), each time first copying the 5 bytes at 0x3000 over it:
    the same size, other instructions.  `hlt` at the end."""
    code = bytes.fromhex("bb03000000")  # mov ebx, 3
    again = BASE + len(code)
    code += bytes.fromhex("b800200000")  # mov eax, 0x2000
    code += jump
    # mov esi, 0x3000; mov edi, 0x2000; mov ecx, 5; rep movsb; dec ebx
    code += bytes.fromhex("be00300000bf00200000b905000000f3a44b")
    code += b"\x75" + ((again - (BASE + len(code) + 2)) & 0xFF).to_bytes(1, "little")
    return code + b"\xf4"


@pytest.mark.parametrize(
    "jump",
    [bytes.fromhex("e8") + (0x2000 - (BASE + 15)).to_bytes(4, "little"), b"\xff\xd0"],
    ids=["call-direct", "call-eax"],
)
def test_code_rewritten_in_place_to_the_same_size_is_counted_as_it_is_now(jump: bytes) -> None:
    """Unicorn translates the block again after its bytes change; the counter's table
    held the old block's count (5) for the same address and size (4 now): it must
    check the code again whenever the engine translates a block it knows."""
    results = []
    for kind in (NativeCounter, ReferenceCounter):
        cpu = Cpu(2)
        cpu.write_physical(BASE, _patching(jump))
        cpu.write_physical(0x2000, bytes.fromhex("90909090c3"))  # 4 x nop; ret
        cpu.write_physical(0x3000, bytes.fromhex("b0019090c3"))  # mov al, 1; 2 x nop; ret
        cpu.write("esp", 0x8000)
        cpu.eip = BASE
        c = kind(cpu)
        assert c.execute(1 << 40) is StopCause.HALTED
        results.append((c.icount, cpu.eip, cpu.read("eax") & 0xFF))
        c.close()
        cpu.close()
    assert results[0] == results[1]
    assert results[1][0] == 1 + 3 * (1 + 1 + 3 + 6 + 1 + 1) + 5 + 4 + 4 + 1


def _two_spaces(rounds: int) -> bytes:
    """Code at BASE that turns on paging with 4 MiB pages and, `rounds` times, calls
    linear 0x400000 under each of two page directories: 0x10000 maps it to physical
    0x400000, 0x11000 to 0x800000 (the same size of code there, other instructions).
    The first 4 MiB are identity-mapped in both.  `hlt` at the end."""
    code = bytes.fromhex("0f20e083c8100f22e0")  # mov eax, cr4; or eax, PSE; mov cr4, eax
    code += bytes.fromhex("b8000001000f22d8")  # mov eax, 0x10000; mov cr3, eax
    code += bytes.fromhex("0f20c00d000000800f22c0")  # mov eax, cr0; or eax, PG; mov cr0, eax
    code += b"\xbb" + rounds.to_bytes(4, "little")  # mov ebx, rounds
    again = len(code)
    for directory in (0x10000, 0x11000):
        code += b"\xb8" + directory.to_bytes(4, "little") + bytes.fromhex("0f22d8")  # cr3
        code += bytes.fromhex("b900004000ffd1")  # mov ecx, 0x400000; call ecx
    code += b"\x4b\x75" + ((again - (len(code) + 3)) & 0xFF).to_bytes(1, "little")  # dec; jnz
    return code + b"\xf4"


@pytest.mark.parametrize("epoch", [0, (1 << 31) - 5], ids=["first-epochs", "tag-wraps"])
def test_code_at_one_address_in_two_address_spaces_is_counted_as_mapped(epoch: int) -> None:
    """Each CR3 load starts a new epoch: the block at 0x400000 that the recent cache
    holds from the other address space (5 instructions there, 4 here) must miss it, in
    the first epochs as when the epoch's tag in the cache wraps around to 0."""
    results = []
    for kind in (NativeCounter, ReferenceCounter):
        cpu = Cpu(16)
        cpu.write_physical(BASE, _two_spaces(6))
        for directory, target in ((0x10000, 0x400000), (0x11000, 0x800000)):
            # PDE 0: 0 (4 MiB, present, writable); PDE 1: `target`
            cpu.write_physical(directory, (0x83).to_bytes(4, "little"))
            cpu.write_physical(directory + 4, (target | 0x83).to_bytes(4, "little"))
        cpu.write_physical(0x400000, bytes.fromhex("90909090c3"))  # 4 x nop; ret
        cpu.write_physical(0x800000, bytes.fromhex("b0019090c3"))  # mov al, 1; 2 x nop; ret
        cpu.write("esp", 0x8000)
        cpu.eip = BASE
        c = kind(cpu)
        if isinstance(c, NativeCounter):
            c._st.epoch = epoch
            c._lib.rd_space_changed(c._st_addr)
        assert c.execute(1 << 40) is StopCause.HALTED
        results.append((c.icount, cpu.eip, cpu.read("eax") & 0xFF))
        c.close()
        cpu.close()
    assert results[0] == results[1]
    assert results[1][0] == 3 + 2 + 3 + 1 + 6 * (2 + 2 + 5 + 2 + 2 + 4 + 2) + 1


def test_a_binding_that_does_not_match_the_library_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The ctypes mirror of struct rd_counter and the built library must agree (an
    extension built from other sources would read and write the wrong fields)."""

    class Shorter(ctypes.Structure):
        _fields_ = icount_binding.CounterState._fields_[:-1]

    icount_binding.load_library()  # as built: no error
    monkeypatch.setattr(icount_binding, "CounterState", Shorter)
    with pytest.raises(MachineError, match="does not match its binding"):
        icount_binding.load_library()

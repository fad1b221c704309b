"""The LAPIC timer's current count as a guest reads it, with no memory hook.

The count is published into the register page by the instruction counter at every
branch boundary while the timer counts (machine/countdown.py, docs/machine.md): a read
returns the count as of the last branch boundary (or timer register store) at or before
it.  A tiny flat guest reads it twice per loop iteration (right after the loop's branch,
then 4 instructions later in the same block), first with the timer stopped, then, with
the very same translated code, once the timer counts:

- the values are exactly the counts at the loop's branch boundaries (both counters);
- code translated before the timer was armed reads fresh values (the stale read of the
  read-hook design: unicorn checks memory hooks when it translates);
- record/replay, and a stop at every icount (in the middle of blocks, just before a
  read) followed by a snapshot restore, give the straight run's values and state;
- no UC_HOOK_MEM_READ is ever installed;
- the native counter publishes lazily: only the reads (through the page's read alias,
  machine/vtlb.py) write the count, with the same values.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from unicorn import UC_HOOK_MEM_READ
from unicorn.unicorn_py3 import unicorn as _ucpy

from rdebug.host.sources import LiveInputs
from rdebug.machine.countdown import PublicationChoice
from rdebug.machine.inputs import ExternalInputs
from rdebug.machine.loader import ImageFormat, parse_image
from rdebug.machine.machine import Machine, MachineConfig, StopReason
from rdebug.machine.state import MachineState
from rdebug.replay.player import Player
from rdebug.replay.recorder import Recorder
from tests.conftest import COUNTERS, make_machine

BASE = 0x100000
BEFORE = 0x80000  # 4 pairs of reads, the timer stopped
AFTER = 0x80100  # 16 pairs of reads, the timer counting
PAIRS_AFTER = 16
INITIAL = 0x10000000
SHIFT = 7  # MachineConfig's default icount shift: 128 ns an instruction, divide by 1
LOOP = 10  # instructions per iteration of `reads`

# _start:
#   mov esp, 0x90000
#   mov dword [0xfee000f0], 0x1ff          ; SVR: APIC software-enabled
#   mov edi, BEFORE
#   mov ecx, 4
#   call reads                             ; translates `reads` (the timer is stopped)
#   mov dword [0xfee003e0], 0xb            ; divide by 1
#   mov dword [0xfee00320], 0x20040        ; LVT timer: periodic, masked, vector 0x40
#   mov dword [0xfee00380], INITIAL        ; the count starts here
#   mov edi, AFTER
#   mov ecx, 16
#   call reads                             ; the same translated code, the timer counting
#   cli
#   hlt
# reads:                                   ; a branch boundary each time round
#   mov eax, [0xfee00390]                  ; the count at this branch boundary
#   nop
#   nop
#   nop
#   mov edx, [0xfee00390]                  ; same block, no branch since: the same value
#   mov [edi], eax
#   mov [edi+4], edx
#   add edi, 8
#   dec ecx
#   jnz reads
#   ret
CODE = bytes.fromhex(
    "bc00000900 c705f000e0feff010000 bf00000800 b904000000 e82f000000"
    "c705e003e0fe0b000000 c7052003e0fe40000200 c7058003e0fe00000010"
    "bf00010800 b910000000 e802000000 fa f4"
    "a19003e0fe 90 90 90 8b159003e0fe 8907 895704 83c708 49 75e7 c3"
)


def _machine(counter: str, inputs: ExternalInputs | None = None) -> Machine:
    machine = Machine(
        MachineConfig(memory_mb=16, icount_shift=SHIFT),
        inputs if inputs is not None else LiveInputs(clock=lambda: 0),
        [],
        counter=COUNTERS[counter],
    )
    machine.load(parse_image(CODE, "countdown", ImageFormat.FLAT, load_address=BASE))
    return machine


def _reads(machine: Machine) -> tuple[list[int], list[int]]:
    """(the pairs read with the timer stopped, the pairs read while it counts), flat."""

    def words(addr: int, pairs: int) -> list[int]:
        data = machine.cpu.read_physical(addr, 8 * pairs)
        return [int.from_bytes(data[i : i + 4], "little") for i in range(0, len(data), 4)]

    return words(BEFORE, 4), words(AFTER, PAIRS_AFTER)


def _straight(counter: str) -> tuple[int, tuple[list[int], list[int]], str]:
    machine = _machine(counter)
    try:
        stop = machine.run()
        assert stop.reason is StopReason.HALTED, stop
        return stop.icount, _reads(machine), machine.state_hash()
    finally:
        machine.close()


@pytest.mark.parametrize("counter", ["native", "reference"])
def test_reads_are_the_count_at_the_last_branch_boundary(counter: str) -> None:
    _, (before, after), _ = _straight(counter)
    assert before == [0] * 8  # not counting yet: 0
    # The store of the initial count is instruction s; the first read comes 4
    # instructions later (mov edi, mov ecx, call: a branch boundary).
    expected = []
    for i in range(PAIRS_AFTER):
        count = INITIAL - ((4 + LOOP * i) << SHIFT)
        expected += [count, count]  # the second read: no branch boundary since the first
    assert after == expected


def test_native_and_reference_counters_agree() -> None:
    assert _straight("native") == _straight("reference")


def test_the_native_counter_publishes_only_where_the_guest_reads() -> None:
    """Lazily: the count is written into the page when a read goes through the page's
    alias (and when the machine stops), not at every branch boundary; here each timed
    read of a pair publishes (the second finds it done), the same values as the
    reference counter's at every boundary (above).  The minikernel, whose timer counts
    all along and which reads only the APIC's ID, publishes a few times per interrupt."""
    machine = _machine("native")
    try:
        assert machine.run().reason is StopReason.HALTED
        (countdown,) = machine.board.lapic.countdowns()
        assert countdown.lazy and 0 < countdown.publications <= PAIRS_AFTER + 2
    finally:
        machine.close()
    machine, _ = make_machine("minikernel", serial_input=b"crc 30\nexit 0\n", clock_ns=0)
    try:
        assert machine.run().reason is StopReason.EXIT
        (countdown,) = machine.board.lapic.countdowns()
        assert countdown.publications < machine.icount // 10_000
    finally:
        machine.close()


def test_record_and_replay_read_the_same_counts(tmp_path: Path) -> None:
    straight = _straight("native")
    log = tmp_path / "countdown.log"
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        recorder = Recorder(LiveInputs(clock=lambda: 0), fd)
        machine = _machine("native", recorder)
        try:
            stop = machine.run()
            recorded = (stop.icount, _reads(machine), machine.state_hash())
            recorder.finish(stop.icount)
        finally:
            machine.close()
    finally:
        os.close(fd)
    assert recorded == straight
    with log.open("rb") as stream:
        player = Player(stream, str(log))
        machine = _machine("native", player)
        try:
            stop = machine.run()
            assert (stop.icount, _reads(machine), machine.state_hash()) == straight
        finally:
            machine.close()


def _save(machine: Machine) -> tuple[MachineState, bytes]:
    return machine.save_state(), machine.cpu.read_physical(BEFORE, 0x10000)


def _restore(machine: Machine, saved: tuple[MachineState, bytes]) -> None:
    state, ram = saved
    machine.cpu.write_physical(BEFORE, ram)
    # Only the data pages were rewritten: the code's translations survive the restore.
    machine.load_state(state, rewritten=range(BEFORE >> 12, (BEFORE + len(ram)) >> 12))


@pytest.mark.parametrize("counter", ["native", "reference"])
def test_stops_and_restores_mid_block_read_what_a_straight_run_reads(counter: str) -> None:
    end, reads, state = _straight(counter)
    machine = _machine(counter)
    try:
        start = _save(machine)
        # Every icount from the last instructions with the timer stopped to the end: stops
        # in the middle of blocks, just before a read, between the two reads of a block.
        for k in range(40, end):
            _restore(machine, start)
            assert machine.run(k).reason is StopReason.TARGET
            at_k = _save(machine)
            stop = machine.run()
            assert (stop.icount, _reads(machine), machine.state_hash()) == (end, reads, state), k
            _restore(machine, at_k)  # a snapshot taken in the middle of a block
            stop = machine.run()
            assert (stop.icount, _reads(machine), machine.state_hash()) == (end, reads, state), k
    finally:
        machine.close()


def test_no_memory_read_hook_is_ever_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any UC_HOOK_MEM_READ would send the loads of every block translated while it
    exists through unicorn's slow path (issue 16)."""
    hook_types: list[int] = []
    real = _ucpy.uclib.uc_hook_add

    def spy(uch: object, handle: object, htype: int, *rest: object) -> int:
        hook_types.append(int(htype))
        return int(real(uch, handle, htype, *rest))

    monkeypatch.setattr(_ucpy.uclib, "uc_hook_add", spy)
    machine = _machine("native")
    try:
        stop = machine.run(60)  # the timer counts from icount 48
        assert stop.reason is StopReason.TARGET
        assert machine.board.lapic.countdown.armed
        assert machine.run().reason is StopReason.HALTED
    finally:
        machine.close()
    assert hook_types  # the spy saw the machine's hooks
    assert not [t for t in hook_types if t & UC_HOOK_MEM_READ]


# The choice between lazy and eager publication (PublicationChoice), on a guest that
# reads the count often, then not at all, then often again (the timer periodic with a
# period of 512 instructions, masked):
#
# _start:
#   mov esp, 0x90000
#   mov dword [0xfee000f0], 0x1ff          ; SVR: APIC software-enabled
#   mov dword [0xfee003e0], 0xb            ; divide by 1
#   mov dword [0xfee00320], 0x20040        ; LVT timer: periodic, masked, vector 0x40
#   mov dword [0xfee00380], 0x10000        ; 128 a count per instruction: 512 a period
#   xor ebx, ebx
#   mov ecx, 6000
# 1: mov eax, [0xfee00390]                 ; a read every 5 instructions
#   add ebx, eax
#   rol ebx, 3
#   dec ecx
#   jnz 1b
#   mov [0x80000], ebx                      ; what the reads added up to
#   mov ecx, 30000
# 2: dec ecx                                ; 60,000 instructions without a read
#   jnz 2b
#   xor ebx, ebx
#   mov ecx, 6000
# 3: (the loop of 1:)
#   mov [0x80004], ebx
#   cli
#   hlt
PHASES_CODE = bytes.fromhex(
    "bc00000900 c705f000e0feff010000 c705e003e0fe0b000000 c7052003e0fe40000200"
    "c7058003e0fe00000100 31db b970170000"
    "a19003e0fe 01c3 c1c303 49 75f3 891d00000800"
    "b930750000 49 75fd"
    "31db b970170000 a19003e0fe 01c3 c1c303 49 75f3 891d04000800 fa f4"
)
FREE_END = 90_000  # about where the read-free loop ends (it starts at ~30,000)
STEP = 1000  # the test stops the machine every STEP instructions


def _phases_machine(counter: str) -> Machine:
    machine = Machine(
        MachineConfig(memory_mb=16, icount_shift=SHIFT),
        LiveInputs(clock=lambda: 0),
        [],
        counter=COUNTERS[counter],
    )
    machine.load(parse_image(PHASES_CODE, "phases", ImageFormat.FLAT, load_address=BASE))
    return machine


def _phases_result(machine: Machine) -> tuple[int, bytes, str]:
    return machine.icount, machine.cpu.read_physical(0x80000, 8), machine.state_hash()


def _phases_straight(counter: str) -> tuple[int, bytes, str]:
    machine = _phases_machine(counter)
    try:
        assert machine.run().reason is StopReason.HALTED
        return _phases_result(machine)
    finally:
        machine.close()


@pytest.fixture
def quick_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows a test can cross with stops every STEP instructions."""
    monkeypatch.setattr(PublicationChoice, "WINDOW", 2000)
    monkeypatch.setattr(PublicationChoice, "RESAMPLE", 20_000)


@pytest.mark.usefixtures("quick_choice")
def test_publication_turns_eager_where_the_guest_reads_often_and_back() -> None:
    """Eager through the reading phases, lazy again through the read-free one; the
    reads add up to what the reference counter's (published at every boundary) and a
    straight native run's (no stop to choose at) add up to, the same final state."""
    reference = _phases_straight("reference")
    assert reference == _phases_straight("native")
    assert reference[1] != bytes(8)
    machine = _phases_machine("native")
    try:
        (countdown,) = machine.board.lapic.countdowns()
        modes: list[tuple[int, bool]] = []
        while (stop := machine.run(machine.icount + STEP)).reason is StopReason.TARGET:
            modes.append((stop.icount, countdown.lazy))
        assert stop.reason is StopReason.HALTED
        assert _phases_result(machine) == reference
    finally:
        machine.close()
    free = FREE_END
    assert [lazy for at, lazy in modes if 3000 <= at < 20_000] == [False] * 17
    assert all(lazy for at, lazy in modes if 70_000 <= at < free)
    assert not any(lazy for at, lazy in modes if free + 3000 <= at < free + 20_000)


@pytest.mark.usefixtures("quick_choice")
def test_restores_across_the_choice_read_what_a_straight_run_reads() -> None:
    """Snapshots taken while publishing eagerly and lazily, each restored into a
    machine publishing the other way (and the same way), run to the straight end."""
    reference = _phases_straight("reference")
    machine = _phases_machine("native")
    try:
        (countdown,) = machine.board.lapic.countdowns()
        saved: list[tuple[bool, int, MachineState, bytes]] = []
        while machine.run(machine.icount + STEP).reason is StopReason.TARGET:
            if machine.icount % 7000 == 0:
                state, ram = machine.save_state(), machine.cpu.read_physical(0x80000, 8)
                saved.append((countdown.lazy, machine.icount, state, ram))
        assert {lazy for lazy, *_ in saved} == {False, True}
        for _lazy, at, state, ram in saved:
            for other in saved:  # the mode the machine is in when it restores
                machine.cpu.write_physical(0x80000, ram)
                machine.load_state(other[2], rewritten=range(0x80, 0x81))
                machine.run(other[1] + 1)
                machine.cpu.write_physical(0x80000, ram)
                machine.load_state(state, rewritten=range(0x80, 0x81))
                assert machine.icount == at
                assert machine.run().reason is StopReason.HALTED
                assert _phases_result(machine) == reference, (at, other[1])
    finally:
        machine.close()

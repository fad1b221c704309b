"""Watchpoints under paging: unicorn matches memory hooks on physical addresses, the
machine must watch where the page tables map the watched linear range."""

from __future__ import annotations

import struct

import pytest

from rdebug.errors import MachineError
from rdebug.machine.cpu import CR0_PE, Cpu
from rdebug.machine.machine import StopReason
from rdebug.machine.watchpoints import WatchKind
from tests.conftest import make_machine

CODE = 0x200000  # identity-mapped by a 4 MiB page
PAGE_DIR = 0x300000
PAGE_TABLE = 0x301000
WATCHED = 0x80001004  # linear; its page maps to physical 0x305000
PHYSICAL = 0x305004


def test_a_watchpoint_on_a_high_linear_address_stops_at_the_write() -> None:
    machine, _ = make_machine("hello")
    cpu = machine.cpu
    try:
        directory = bytearray(4096)
        directory[0:4] = struct.pack("<I", 0x000000E3)  # 0-4 MiB: a 4 MiB page, present, RW
        directory[0x800:0x804] = struct.pack("<I", PAGE_TABLE | 3)  # 0x80000000-0x803FFFFF
        table = bytearray(4096)
        table[4:8] = struct.pack("<I", (PHYSICAL & ~0xFFF) | 3)  # 0x80001000 -> 0x305000
        cpu.write_physical(PAGE_DIR, bytes(directory))
        cpu.write_physical(PAGE_TABLE, bytes(table))
        code = (
            b"\xc7\x05"
            + struct.pack("<II", 0x80001000, 0x11111111)  # mov [0x80001000], ...
            + b"\xc7\x05"
            + struct.pack("<II", WATCHED, 0x22222222)  # mov [WATCHED], ...
            + b"\x90\x90\x90"
            + b"\xf4"  # hlt (IF=0: the run stops)
        )
        cpu.write_physical(CODE, code)
        cpu.write("cr3", PAGE_DIR)
        cpu.write("cr4", cpu.read("cr4") | 0x10)  # PSE
        cpu.write("cr0", cpu.read("cr0") | CR0_PE | 0x80000000)  # paging
        cpu.eip = CODE
        machine.counter.invalidate()

        machine.add_watchpoint(WATCHED, 4, WatchKind.WRITE)
        stop = machine.run(machine.icount + 1000)
        assert stop.reason is StopReason.WATCHPOINT
        assert stop.watch is not None and stop.watch.addr == WATCHED  # linear, as gdb set it
        assert cpu.read_physical(PHYSICAL, 4) == struct.pack("<I", 0x22222222)
        assert stop.watch.since <= 1 < machine.icount  # by the second store, not the first
    finally:
        machine.close()


USER = 0x400000  # the same linear address in two address spaces, other code in each


def _two_address_spaces(counter: str) -> tuple[int, StopReason]:
    """Run the same linear address under two page directories whose code there has the
    same size but not the same number of instructions; return the final icount."""
    machine, _ = make_machine("hello", counter=counter)
    cpu = machine.cpu
    try:
        user_a = b"\x90\x90\x90\x90\xc3"  # nop x4, ret: 5 instructions in 5 bytes
        user_b = b"\xb0\x01\xb3\x02\xc3"  # mov al, 1; mov bl, 2; ret: 3 in 5 bytes
        for i, (code_page, user) in enumerate(((0x310000, user_a), (0x311000, user_b))):
            directory = bytearray(4096)
            directory[0:4] = struct.pack("<I", 0x000000E3)  # 0-4 MiB identity (4 MiB page)
            directory[4:8] = struct.pack("<I", (0x320000 + i * 0x1000) | 3)
            table = bytearray(4096)
            table[0:4] = struct.pack("<I", code_page | 3)  # USER -> this space's code
            cpu.write_physical(0x300000 + i * 0x1000, bytes(directory))
            cpu.write_physical(0x320000 + i * 0x1000, bytes(table))
            cpu.write_physical(code_page, user)
        switch_and_call = [
            b"\xb8"
            + struct.pack("<I", 0x300000 + i * 0x1000)  # mov eax, directory i
            + b"\x0f\x22\xd8"  # mov cr3, eax
            + b"\xb9"
            + struct.pack("<I", USER)  # mov ecx, USER
            + b"\xff\xd1"  # call ecx
            for i in (0, 1, 0, 1)
        ]
        cpu.write_physical(CODE, b"".join(switch_and_call) + b"\xf4")  # ..., hlt
        cpu.write("cr3", 0x300000)
        cpu.write("cr4", cpu.read("cr4") | 0x10)
        cpu.write("cr0", cpu.read("cr0") | CR0_PE | 0x80000000)
        cpu.write("esp", 0x2F0000)
        cpu.eip = CODE
        machine.counter.invalidate()
        stop = machine.run(machine.icount + 1000)
        return machine.icount, stop.reason
    finally:
        machine.close()


def test_blocks_at_one_linear_address_in_two_address_spaces_count_their_own_code() -> None:
    """The instruction table is keyed by linear address and size: after a CR3 switch the
    entry must be checked against the code now mapped there (xv6 runs several programs
    at the same user addresses; a stale count made replays diverge)."""
    native = _two_address_spaces("native")
    reference = _two_address_spaces("reference")
    assert native == reference
    assert native[0] == 2 * (4 + 5) + 2 * (4 + 3) + 1  # 4 switch+call, 5 or 3 user, hlt


def _reference_pieces(cpu: Cpu, addr: int, length: int) -> list[tuple[int, int, int]]:
    """Page by page, as the machine did before (the slow, obviously right way)."""
    pieces: list[tuple[int, int, int]] = []
    linear, end = addr, addr + length
    while linear < end:
        n = min(end, (linear | 0xFFF) + 1) - linear
        physical = cpu.linear_to_physical(linear)
        if physical is None:
            physical = linear
        if pieces and pieces[-1][1] + pieces[-1][2] == physical:
            first, start, size = pieces[-1]
            pieces[-1] = (first, start, size + n)
        else:
            pieces.append((linear, physical, n))
        linear += n
    return pieces


def _paged(cpu: Cpu, scattered_tables: int = 0) -> None:
    """0-4 MiB: a 4 MiB page; 0x80000000: a table mapping 0x80001000 and 0x80003000
    apart; `scattered_tables` more tables from 0x40000000 mapping every page to a
    physical page out of order."""
    directory = bytearray(4096)
    directory[0:4] = struct.pack("<I", 0x000000E3)
    directory[0x800:0x804] = struct.pack("<I", PAGE_TABLE | 3)
    table = bytearray(4096)
    table[4:8] = struct.pack("<I", 0x305000 | 3)
    table[12:16] = struct.pack("<I", 0x307000 | 3)
    cpu.write_physical(PAGE_TABLE, bytes(table))
    for t in range(scattered_tables):
        where = 0x310000 + t * 0x1000
        entries = [((0x100 + (i * 7 + t) % 0x200) << 12) | 3 for i in range(1024)]
        cpu.write_physical(where, struct.pack("<1024I", *entries))
        index = 0x100 + t  # linear 0x40000000 + t * 4 MiB
        directory[index * 4 : index * 4 + 4] = struct.pack("<I", where | 3)
    cpu.write_physical(PAGE_DIR, bytes(directory))
    cpu.write("cr3", PAGE_DIR)
    cpu.write("cr4", cpu.read("cr4") | 0x10)  # PSE
    cpu.write("cr0", cpu.read("cr0") | CR0_PE | 0x80000000)


@pytest.mark.parametrize(
    ("addr", "length"),
    [(0x80000FFE, 0x5004), (0x3FFFFE, 8), (0x7FFFFF00, 0x2000), (0x80001004, 4), (0, 0x9000)],
)
def test_watched_pieces_match_a_page_by_page_walk(addr: int, length: int) -> None:
    machine, _ = make_machine("hello")
    try:
        _paged(machine.cpu)
        assert machine.cpu.physical_pieces(addr, length, 100) == _reference_pieces(
            machine.cpu, addr, length
        )
    finally:
        machine.close()


def test_a_watch_over_the_whole_address_space_is_cheap_and_bounded() -> None:
    """Issue 17, case 1: the whole 4 GiB costs a step per mapped page (2 here plus a
    4 MiB page), not a million steps; beyond 32 bits, empty, or too scattered to hook
    is refused with a message."""
    machine, _ = make_machine("hello")
    cpu = machine.cpu
    try:
        assert cpu.physical_pieces(0x100000, 0xFFFFFFFF - 0xFFFFF, 10) == [
            (0x100000, 0x100000, 0xFFF00000)
        ]  # paging off: one piece
        _paged(cpu)
        whole = cpu.physical_pieces(0, 1 << 32, 10)
        assert whole == _reference_pieces_by_directory(cpu)
        machine.add_watchpoint(0, 1 << 32, WatchKind.WRITE)
        machine.remove_watchpoint(0, 1 << 32, WatchKind.WRITE)
        for addr, length, message in [
            (0x100000, 0xFFFFFFFFFFFFFF, "32-bit"),
            (0x100000, 0xFFFFFFFF, "32-bit"),
            (1 << 32, 4, "32-bit"),
            (0x1000, 0, "empty"),
        ]:
            with pytest.raises(MachineError, match=message):
                machine.add_watchpoint(addr, length, WatchKind.WRITE)
        _paged(cpu, scattered_tables=5)  # 5 x 1024 pages, none next to the other
        with pytest.raises(MachineError, match="more than 4096 separate physical pieces"):
            machine.add_watchpoint(0x40000000, 5 << 22, WatchKind.ACCESS)
    finally:
        machine.close()


def _reference_pieces_by_directory(cpu: Cpu) -> list[tuple[int, int, int]]:
    """The whole space as the page-by-page walk sees it, one directory at a time (the
    unmapped ones merge with their neighbours, physical == linear)."""
    pieces: list[tuple[int, int, int]] = []
    for directory in range(1024):
        for piece in _reference_pieces(cpu, directory << 22, 1 << 22):
            if pieces and pieces[-1][1] + pieces[-1][2] == piece[1]:
                first, start, size = pieces[-1]
                pieces[-1] = (first, start, size + piece[2])
            else:
                pieces.append(piece)
    return pieces


def _three_address_spaces(cpu: Cpu) -> tuple[int, int, int]:
    """Page directories A and B mapping USER to a page of their own (0x305000, 0x306000),
    C mapping nothing there; each maps 0-4 MiB (the code) by a 4 MiB page."""
    spaces = []
    for i, user_page in enumerate((0x305000, 0x306000, None)):
        directory = bytearray(4096)
        directory[0:4] = struct.pack("<I", 0x000000E3)
        if user_page is not None:
            table = 0x320000 + i * 0x1000
            directory[4:8] = struct.pack("<I", table | 3)  # 0x400000-0x7FFFFF
            cpu.write_physical(table, struct.pack("<I", user_page | 3) + bytes(4092))
        cpu.write_physical(0x300000 + i * 0x1000, bytes(directory))
        spaces.append(0x300000 + i * 0x1000)
    cpu.write("cr4", cpu.read("cr4") | 0x10)
    cpu.write("cr3", spaces[0])
    cpu.write("cr0", cpu.read("cr0") | CR0_PE | 0x80000000)
    return spaces[0], spaces[1], spaces[2]


def test_a_user_watch_is_refused_where_no_page_maps_it_and_follows_its_process() -> None:
    """A process's memory under a multi-process kernel: a small range no page maps in the
    address space in force (a kernel thread's, another process's) is refused with a
    message (its hook would have watched whatever RAM sits at the linear address); set
    where it is mapped, the watch stays on that process's physical page, so a store to
    the same linear address in another address space does not stop."""
    machine, _ = make_machine("hello")
    cpu = machine.cpu
    try:
        space_a, space_b, space_c = _three_address_spaces(cpu)
        cpu.write("cr3", space_c)
        for length in (4, 0x2000):
            with pytest.raises(MachineError, match=r"no page of it is mapped .*CR3 0x302000"):
                machine.add_watchpoint(USER + 8, length, WatchKind.WRITE)
        assert machine.cpu.physical_pieces(USER + 8, 4, 10) == [(USER + 8, USER + 8, 4)]
        # a query's probes too (placed at the start of its span)
        with pytest.raises(MachineError, match="no page of it is mapped"):
            machine.probes.add(USER + 8, 4, True, True, lambda access: None)
        assert not machine.probes.active
        # a range with one mapped page is taken (the big ones as they were: see above)
        cpu.write("cr3", space_a)
        machine.add_watchpoint(USER + 0xFFC, 8, WatchKind.WRITE)
        machine.remove_watchpoint(USER + 0xFFC, 8, WatchKind.WRITE)

        def store(space: int, value: int) -> bytes:
            return (
                b"\xb8" + struct.pack("<I", space)  # mov eax, space
                + b"\x0f\x22\xd8"  # mov cr3, eax
                + b"\xc7\x05" + struct.pack("<II", USER + 8, value)  # mov [USER+8], value
            )  # fmt: skip

        code = store(space_b, 0x22222222) + store(space_a, 0x33333333) + b"\x90\x90\xf4"
        cpu.write_physical(CODE, code)
        cpu.eip = CODE
        machine.counter.invalidate()
        machine.add_watchpoint(USER + 8, 4, WatchKind.WRITE)  # in A, where it is mapped
        start = machine.icount
        stop = machine.run(start + 1000)
        assert stop.reason is StopReason.WATCHPOINT
        assert stop.watch is not None and stop.watch.addr == USER + 8
        # B's store ran (its page has the value) without stopping; A's store stopped
        assert cpu.read_physical(0x306008, 4) == struct.pack("<I", 0x22222222)
        assert cpu.read_physical(0x305008, 4) == struct.pack("<I", 0x33333333)
        assert 3 <= stop.watch.since - start <= 5 < machine.icount - start
    finally:
        machine.close()

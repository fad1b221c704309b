"""Watchpoints under paging: unicorn matches memory hooks on physical addresses, the
machine must watch where the page tables map the watched linear range."""

from __future__ import annotations

import struct

from rdebug.machine.cpu import CR0_PE
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

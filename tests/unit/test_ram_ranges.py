"""Cpu.written_ranges: every non-zero RAM byte lies in a range it reports, so the
snapshot encoder may skip the rest without reading it."""

from __future__ import annotations

import numpy as np

from rdebug.machine.cpu import Cpu
from rdebug.machine.pages import PAGE, nonzero_pages


def _nonzero_pages(cpu: Cpu) -> set[int]:
    ram = np.frombuffer(cpu.ram, dtype=np.uint8).reshape(-1, PAGE)
    return set(np.flatnonzero(ram.any(axis=1)).tolist())


def _covered_pages(cpu: Cpu) -> set[int]:
    return {
        page
        for start, end in cpu.written_ranges()
        for page in range(start // PAGE, -(-end // PAGE))
    }


def test_fresh_ram_has_nothing_written_and_writes_are_covered() -> None:
    cpu = Cpu(8)
    try:
        assert _covered_pages(cpu) <= set(range(cpu.ram_size // PAGE))
        assert _nonzero_pages(cpu) == set()
        for addr in (0, 0x7C00, 0x100000, 0x100FFF, 0x7FFFFF):
            cpu.write_physical(addr, b"\x5a")
        cpu.write_physical(0x200000, b"\x01")
        cpu.write_physical(0x200000, b"\x00")  # written, then zero again
        assert _nonzero_pages(cpu) == {0, 7, 256, 2047}
        assert _nonzero_pages(cpu) <= _covered_pages(cpu)
        assert all(0 <= s < e <= cpu.ram_size for s, e in cpu.written_ranges())
    finally:
        cpu.close()


def test_guest_stores_through_unicorn_are_covered() -> None:
    cpu = Cpu(4)
    try:
        # mov dword [0x300010], 0x12345678 ; hlt -- executed by unicorn, not written by us
        code = bytes.fromhex("c70510003000785634 12".replace(" ", "")) + b"\xf4"
        cpu.write_physical(0x1000, code)
        cpu.uc.emu_start(0x1000, 0x1000 + len(code) - 1)
        assert cpu.read_physical(0x300010, 4) == bytes.fromhex("78563412")
        assert _nonzero_pages(cpu) == {1, 0x300}
        assert _nonzero_pages(cpu) <= _covered_pages(cpu)
    finally:
        cpu.close()


def test_nonzero_pages_finds_every_page_with_a_set_byte_and_no_other() -> None:
    cpu = Cpu(8)
    try:
        npages = cpu.ram_size // PAGE
        assert nonzero_pages(cpu.ram_address, 0, npages) == []
        # first and last byte of a page, a byte in the middle, the very last byte of RAM
        for addr in (0x1000, 0x2FFF, 0x4123, cpu.ram_size - 1):
            cpu.write_physical(addr, b"\x80")
        cpu.write_physical(0x6000, b"\x01\x00\x02")
        cpu.write_physical(0x6000, b"\x00\x00\x00")  # set, then zero again
        expected = sorted(_nonzero_pages(cpu))
        assert expected == [1, 2, 4, npages - 1]
        assert nonzero_pages(cpu.ram_address, 0, npages) == expected
        assert nonzero_pages(cpu.ram_address, 2, 3) == [2, 4]  # pages 2..4 only
        assert nonzero_pages(cpu.ram_address, 5, 0) == []
    finally:
        cpu.close()

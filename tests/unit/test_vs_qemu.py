"""bench/vs_qemu.py's pure helpers: the table, the monitor answers it parses, the ELF patch.
(The benchmark itself is run by hand; nothing here measures time.)"""

from __future__ import annotations

import zlib

import pytest

from bench.vs_qemu import (
    Figure,
    format_table,
    format_value,
    parse_icount,
    parse_recorded,
    patched_elf,
)
from rdebug.machine.loader import parse_image
from tests.conftest import GUESTS


@pytest.mark.parametrize(
    ("text", "icount"),
    [
        ("Replaying execution '/tmp/x/r.bin': instruction count = 1000000000\n", 10**9),
        ("icount 999999998 of 1155111201 (86.6% of the recording)\nnearest ...", 999_999_998),
        ("icount 0 of 5 (0.0% of the recording)", 0),
        ("Record/replay is not active\n", None),
        ("replay_break: 1000\n", None),
    ],
)
def test_parse_icount(text: str, icount: int | None) -> None:
    assert parse_icount(text) == icount


def test_parse_recorded() -> None:
    assert parse_recorded("rdebug: recorded 144402201 instructions, 2 events, in t\n") == (
        144_402_201
    )
    assert parse_recorded("rdebug: error\n") is None


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (None, "s", "-"),
        (0.0123, "s", "12.3 ms"),
        (2.5, "s", "2.50 s"),
        (1234567.0, "B", "1,234,567 B"),
    ],
)
def test_format_value(value: float | None, unit: str, text: str) -> None:
    assert format_value(value, unit) == text


def test_ratio_is_rdebug_over_qemu_and_absent_without_both() -> None:
    assert Figure("a", "s", 2.0, 0.5).ratio == 0.25
    assert Figure("a", "s", None, 0.5).ratio is None
    assert Figure("a", "s", 2.0, None).ratio is None


def test_table_is_markdown_with_aligned_columns() -> None:
    table = format_table(
        [Figure("crc: run", "s", 0.5, 1.5, "x"), Figure("crc: log", "B", 1000.0, 19.0)]
    )
    lines = table.splitlines()
    cells = [[c.strip() for c in line.split("|")[1:-1]] for line in lines]
    assert cells[0] == ["figure", "QEMU", "rdebug", "rdebug/QEMU", "note"]
    assert cells[1] == ["--------", "-------:", "-----:", "----------:", "----"]
    assert cells[2] == ["crc: run", "500.0 ms", "1.50 s", "3", "x"]
    assert cells[3] == ["crc: log", "1,000 B", "19 B", "0.019", ""]
    assert len({len(line) for line in lines}) == 1  # padded: the columns line up
    assert lines[2].split("|")[2].startswith(" ")  # numbers are right-aligned


def test_patched_elf_changes_the_pass_count_only() -> None:
    data = (GUESTS / "crc.elf").read_bytes()
    addr = parse_image(data, "crc.elf").symbols["crc_passes"]
    patched = patched_elf(data, addr, 1234)
    image = parse_image(patched, "crc.elf")
    assert sum(a != b for a, b in zip(data, patched, strict=True)) <= 4
    assert zlib.crc32(patched) != zlib.crc32(data)
    segment = next(s for s in image.segments if s.paddr <= addr < s.paddr + len(s.data))
    offset = addr - segment.paddr
    assert segment.data[offset : offset + 4] == (1234).to_bytes(4, "little")
    with pytest.raises(ValueError, match="not in a loaded segment"):
        patched_elf(data, 0x10, 1)

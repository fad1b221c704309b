"""Guest image parsing: formats, boot protocol data, and malformed images."""

from __future__ import annotations

import struct

import pytest

from rdebug.errors import GuestImageError
from rdebug.machine.loader import (
    ImageFormat,
    StartMode,
    multiboot_info,
    parse_image,
)
from tests.conftest import GUESTS

HELLO = (GUESTS / "hello.elf").read_bytes()


def test_multiboot_elf_is_detected_with_its_symbols() -> None:
    image = parse_image(HELLO, "hello.elf")
    assert image.format is ImageFormat.MULTIBOOT
    assert image.multiboot and image.mode is StartMode.PROTECTED_FLAT
    assert image.entry == image.symbols["_start"] == 0x10000C
    assert all(seg.paddr >= 0x100000 for seg in image.segments)


def test_plain_elf_without_multiboot_header() -> None:
    image = parse_image(HELLO, "hello.elf", ImageFormat.ELF)
    assert image.format is ImageFormat.ELF and not image.multiboot


def test_boot_sector_is_entered_in_real_mode() -> None:
    image = parse_image((GUESTS / "bootsector.bin").read_bytes(), "bs")
    assert image.format is ImageFormat.BOOTSECTOR
    assert (image.mode, image.entry) == (StartMode.REAL, 0x7C00)


def test_flat_binary_needs_and_uses_a_load_address() -> None:
    with pytest.raises(GuestImageError, match="flat"):
        parse_image(b"\x90\xf4", "blob")
    image = parse_image(b"\x90\xf4", "blob", load_address=0x200000, entry=0x200001)
    assert image.format is ImageFormat.FLAT
    assert (image.segments[0].paddr, image.entry) == (0x200000, 0x200001)


def test_multiboot_aout_kludge_header() -> None:
    header_addr, load_addr = 0x100000, 0x100000
    flags = 1 << 16
    header = struct.pack(
        "<8I",
        0x1BADB002,
        flags,
        (-(0x1BADB002 + flags)) & 0xFFFFFFFF,
        header_addr,
        load_addr,
        0,
        0x101000,
        0x100020,
    )
    body = header + b"\x90" * 16
    image = parse_image(body, "kludge")
    assert image.format is ImageFormat.MULTIBOOT and image.entry == 0x100020
    assert image.segments[0].memsize == 0x1000  # bss up to bss_end_addr


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not an ELF"),
        (b"hello world", "not an ELF"),
        (HELLO[:40], "not an ELF"),
        (HELLO[:4] + b"\x02" + HELLO[5:], "64-bit"),
        (HELLO[:5] + b"\x02" + HELLO[6:], "big-endian"),
        (HELLO[:18] + struct.pack("<H", 62) + HELLO[20:], "not i386"),
        (HELLO[:16] + struct.pack("<H", 1) + HELLO[18:], "not an executable"),
        (HELLO[:300], "beyond the end"),
    ],
)
def test_malformed_images_are_refused_by_name(data: bytes, message: str) -> None:
    with pytest.raises(GuestImageError, match=message):
        parse_image(
            data, "bad.elf", ImageFormat.ELF if data.startswith(b"\x7fELF") else ImageFormat.AUTO
        )


def test_multiboot_info_describes_memory() -> None:
    pieces = dict(multiboot_info(64 << 20, "console=ttyS0"))
    info = pieces[0x9000]
    flags, mem_lower, mem_upper = struct.unpack_from("<III", info)
    assert flags & 1 and flags & (1 << 6)
    assert (mem_lower, mem_upper) == (639, (64 << 20) // 1024 - 1024)
    mmap_length, mmap_addr = struct.unpack_from("<II", info, 44)
    entries = pieces[mmap_addr]
    assert len(entries) == mmap_length
    regions = [struct.unpack_from("<IQQI", entries, off) for off in range(0, mmap_length, 24)]
    assert (0x100000, (64 << 20) - 0x100000, 1) in [(b, n, t) for _, b, n, t in regions]
    assert pieces[0x9500] == b"console=ttyS0\0"

"""The IDE IRQ14 path driven by real CPU code, as xv6's ide.c drives it.

The guest (hand-encoded below) unmasks IRQ14 through the slave PIC, enables INTRQ
(Device Control 0), probes for a slave drive (writes 0xF0 to the Device register and
reads Status), then:

1. WRITE MULTIPLE of 4 sectors with `rep outsl`, completion by IRQ14;
2. READ SECTORS of the same 4 sectors, one IRQ14 per sector, whose handler acknowledges
   it by reading Status and moves the sector with `rep insl`;
3. SET MULTIPLE MODE 4 (an IRQ14 without data), then READ MULTIPLE of 8 sectors: two
   IRQ14s, each moving a 4-sector DRQ block with one `rep insl`.

The main loop waits for each interrupt with `sti; hlt; cli`.  Both instruction
counters must agree on everything, to the state hash.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import pytest

from rdebug.host.sources import LiveInputs
from rdebug.machine.disks import OverlayDisk
from rdebug.machine.loader import ImageFormat, parse_image
from rdebug.machine.machine import Machine, MachineConfig, StopReason
from tests.conftest import COUNTERS, DISK_IMAGE, BytesImage

BASE = 0x100000
IDTR = 0x100F00
IDT = 0x101000
COUNT = 0x102000  # IRQ14s taken
BLOCK = 0x102004  # dwords the handler reads per interrupt
DSTPTR = 0x102008  # where the handler stores the next block
PROBE = 0x10200C  # Status read after selecting the (absent) slave
STAT = 0x102100  # Status read by the handler at each interrupt
SRC = 0x103000  # 4 sectors the guest writes
DST = 0x104000  # 12 sectors the guest reads
VECTOR = 0x2E  # IRQ14 on a slave PIC based at 0x28
SOURCE_DATA = bytes((i * 29 + (i >> 9) * 7 + 3) & 0xFF for i in range(4 * 512))


def _u32(value: int) -> bytes:
    return struct.pack("<I", value)


def _outb_dx(port: int, value: int) -> bytes:
    return b"\x66\xba" + struct.pack("<H", port) + bytes([0xB0, value, 0xEE])


def _command(lba: int, count: int, command: int) -> bytes:
    code = _outb_dx(0x1F6, 0xE0 | (lba >> 24) & 0x0F)
    for port, value in ((0x1F2, count), (0x1F3, lba & 0xFF), (0x1F4, lba >> 8 & 0xFF)):
        code += _outb_dx(port, value)
    code += _outb_dx(0x1F5, lba >> 16 & 0xFF)
    return code + _outb_dx(0x1F7, command)


def _wait_irqs(code: bytearray, count: int) -> None:
    """loop: cmp dword [COUNT], count; je done; sti; hlt; cli; jmp loop; done:"""
    loop = len(code)
    code += b"\x83\x3d" + _u32(COUNT) + bytes([count])
    code += b"\x74\x05"  # je done (over sti; hlt; cli; jmp)
    code += b"\xfb\xf4\xfa"
    code += b"\xeb" + bytes([(loop - (len(code) + 2)) & 0xFF])


def _program() -> bytes:
    code = bytearray(b"\xfc")  # cld
    code += b"\x0f\x01\x1d" + _u32(IDTR)  # lidt [IDTR]
    pic = [(0x20, 0x11), (0x21, 0x20), (0x21, 0x04), (0x21, 0x01), (0x21, 0xFB)]
    pic += [(0xA0, 0x11), (0xA1, 0x28), (0xA1, 0x02), (0xA1, 0x01), (0xA1, 0xBF)]
    for port, value in pic:
        code += bytes([0xB0, value, 0xE6, port])  # mov al, value; out port, al
    code += b"\xc7\x05" + _u32(DSTPTR) + _u32(DST)  # mov dword [DSTPTR], DST
    code += _outb_dx(0x3F6, 0x00)  # Device Control: nIEN clear
    code += _outb_dx(0x1F6, 0xF0)  # select the slave
    code += b"\x66\xba\xf7\x01\xec"  # mov dx, 0x1F7; in al, dx
    code += b"\xa2" + _u32(PROBE)  # mov [PROBE], al
    # 1. WRITE MULTIPLE, polled DRQ, data by rep outsl, completion by IRQ.
    code += _command(8, 4, 0xC5)
    poll = len(code)
    code += b"\xec\xa8\x08"  # in al, dx; test al, 8
    code += b"\x74" + bytes([(poll - (len(code) + 2)) & 0xFF])  # jz poll
    code += b"\xbe" + _u32(SRC) + b"\xb9" + _u32(512)  # mov esi, SRC; mov ecx, 512
    code += b"\x66\xba\xf0\x01\xf3\x6f"  # mov dx, 0x1F0; rep outsd
    _wait_irqs(code, 1)
    # 2. READ SECTORS: one sector per interrupt.
    code += b"\xc7\x05" + _u32(BLOCK) + _u32(128)
    code += _command(8, 4, 0x20)
    _wait_irqs(code, 5)
    # 3. SET MULTIPLE MODE 4, then READ MULTIPLE 8 sectors: 4 sectors per interrupt.
    code += _command(0, 4, 0xC6)
    _wait_irqs(code, 6)
    code += b"\xc7\x05" + _u32(BLOCK) + _u32(512)
    code += _command(0, 8, 0xC4)
    _wait_irqs(code, 8)
    code += b"\xb0\x00\xe6\xf4"  # exit
    handler = BASE + len(code)
    code += b"\x60"  # pushad
    code += b"\x66\xba\xf7\x01\xec"  # in al, 0x1F7: acknowledges INTRQ
    code += b"\x8b\x1d" + _u32(COUNT)  # mov ebx, [COUNT]
    code += b"\x88\x83" + _u32(STAT)  # mov [STAT + ebx], al
    code += b"\xa8\x08\x74\x18"  # test al, 8; jz skip (24 bytes)
    code += b"\x8b\x3d" + _u32(DSTPTR)  # mov edi, [DSTPTR]
    code += b"\x8b\x0d" + _u32(BLOCK)  # mov ecx, [BLOCK]
    code += b"\x66\xba\xf0\x01\xf3\x6d"  # mov dx, 0x1F0; rep insd
    code += b"\x89\x3d" + _u32(DSTPTR)  # mov [DSTPTR], edi
    code += b"\xff\x05" + _u32(COUNT)  # skip: inc dword [COUNT]
    code += b"\xb0\x20\xe6\xa0\xe6\x20"  # EOI to the slave, then the master
    code += b"\x61\xcf"  # popad; iret
    image = bytearray(SRC + len(SOURCE_DATA) - BASE)
    image[: len(code)] = code
    struct.pack_into("<HI", image, IDTR - BASE, (VECTOR + 1) * 8 - 1, IDT)
    gate = struct.pack("<HHBBH", handler & 0xFFFF, 0x08, 0, 0x8E, handler >> 16)
    image[IDT + VECTOR * 8 - BASE : IDT + (VECTOR + 1) * 8 - BASE] = gate
    image[SRC - BASE :] = SOURCE_DATA
    return bytes(image)


def _run(counter: str) -> tuple[Machine, OverlayDisk]:
    disk = OverlayDisk(BytesImage(DISK_IMAGE))
    machine = Machine(
        MachineConfig(memory_mb=4), LiveInputs(), [], [disk], counter=COUNTERS[counter]
    )
    machine.load(parse_image(_program(), "ide", ImageFormat.FLAT, load_address=BASE))
    stop = machine.run(2_000_000)
    assert stop.reason is StopReason.EXIT, stop
    return machine, disk


@pytest.fixture(scope="module")
def runs() -> Iterator[dict[str, tuple[Machine, OverlayDisk]]]:
    made = {counter: _run(counter) for counter in ("native", "reference")}
    yield made
    for machine, _ in made.values():
        machine.close()


@pytest.mark.parametrize("counter", ["native", "reference"])
def test_xv6_style_driver_through_irq14(
    runs: dict[str, tuple[Machine, OverlayDisk]], counter: str
) -> None:
    machine, disk = runs[counter]
    cpu = machine.cpu
    (count,) = struct.unpack("<I", cpu.read_physical(COUNT, 4))
    assert count == 8
    assert cpu.read_physical(PROBE, 1) == b"\x00"  # no slave: Status reads 0
    # write done; 4 sectors with DRQ; SET MULTIPLE done; 2 blocks with DRQ
    assert list(cpu.read_physical(STAT, 8)) == [0x50, 0x58, 0x58, 0x58, 0x58, 0x50, 0x58, 0x58]
    assert disk.read_sectors(8, 4) == SOURCE_DATA
    assert disk.read_sectors(7, 1) == DISK_IMAGE[7 * 512 : 8 * 512]
    assert cpu.read_physical(DST, 2048) == SOURCE_DATA
    assert cpu.read_physical(DST + 2048, 8 * 512) == DISK_IMAGE[: 8 * 512]
    (dstptr,) = struct.unpack("<I", cpu.read_physical(DSTPTR, 4))
    assert dstptr == DST + 12 * 512


def test_both_counters_agree(runs: dict[str, tuple[Machine, OverlayDisk]]) -> None:
    native, reference = runs["native"][0], runs["reference"][0]
    assert native.icount == reference.icount
    assert native.state_hash() == reference.state_hash()

"""IRQs are taken at the first boundary where IF=1, after the STI shadow, and nowhere else.

The guest (hand-encoded below) runs `sti; nop; cli` and then a long stretch with IF=0,
over and over, while the PIT fires IRQ0 at ~12 kHz.  Its IRQ0 handler records the
return address of every interrupt.  The only boundary where an IRQ may be taken is the
one after the `nop` (the `sti` shadow covers the `nop`), so every recorded address must
be that of the `cli`; and both instruction counters must agree to the last bit.
"""

from __future__ import annotations

import struct

import pytest

from rdebug.host.sources import LiveInputs
from rdebug.machine.loader import ImageFormat, parse_image
from rdebug.machine.machine import Machine, MachineConfig, StopReason
from tests.conftest import COUNTERS

BASE = 0x100000
IDT = 0x101000
IDTR = 0x100F00
COUNT = 0x102000
TABLE = 0x102004
LOOPS = 300


def _program() -> tuple[bytes, int]:
    """The guest, and the address of its `cli`."""
    code = bytearray()
    code += b"\x0f\x01\x1d" + struct.pack("<I", IDTR)  # lidt [IDTR]
    for port, value in ((0x20, 0x11), (0x21, 0x20), (0x21, 0x04), (0x21, 0x01), (0x21, 0xFE)):
        code += bytes([0xB0, value, 0xE6, port])  # mov al, value; out port, al (PIC init)
    for port, value in ((0x43, 0x34), (0x40, 100), (0x40, 0)):
        code += bytes([0xB0, value, 0xE6, port])  # PIT channel 0, mode 2, divisor 100
    code += b"\xb9" + struct.pack("<I", LOOPS)  # mov ecx, LOOPS
    loop = len(code)
    code += b"\xfb\x90"  # sti; nop
    cli = BASE + len(code)
    code += b"\xfa"  # cli
    code += b"\xba" + struct.pack("<I", 200)  # mov edx, 200
    code += b"\x4a\x75\xfd"  # busy: dec edx; jnz busy
    code += b"\x49"  # dec ecx
    code += b"\x75" + bytes([(loop - (len(code) + 2)) & 0xFF])  # jnz loop
    code += b"\xb0\x00\xe6\xf4"  # mov al, 0; out 0xf4, al  (exit)
    handler = BASE + len(code)
    code += b"\x50\x53"  # push eax; push ebx
    code += b"\x8b\x44\x24\x08"  # mov eax, [esp+8]   (the interrupted EIP)
    code += b"\x8b\x1d" + struct.pack("<I", COUNT)  # mov ebx, [COUNT]
    code += b"\x89\x04\x9d" + struct.pack("<I", TABLE)  # mov [TABLE + ebx*4], eax
    code += b"\xff\x05" + struct.pack("<I", COUNT)  # inc dword [COUNT]
    code += b"\xb0\x20\xe6\x20"  # EOI
    code += b"\x5b\x58\xcf"  # pop ebx; pop eax; iret
    image = bytearray(IDT + 0x21 * 8 - BASE)
    image[: len(code)] = code
    struct.pack_into("<HI", image, IDTR - BASE, 0x21 * 8 - 1, IDT)
    gate = struct.pack("<HHBBH", handler & 0xFFFF, 0x08, 0, 0x8E, handler >> 16)
    image[IDT + 0x20 * 8 - BASE : IDT + 0x21 * 8 - BASE] = gate
    return bytes(image), cli


@pytest.mark.parametrize("counter", ["native", "reference"])
def test_irq_is_taken_right_after_the_sti_shadow(counter: str) -> None:
    image, cli = _program()
    machine = Machine(MachineConfig(memory_mb=4), LiveInputs(), [], counter=COUNTERS[counter])
    try:
        machine.load(parse_image(image, "window", ImageFormat.FLAT, load_address=BASE))
        stop = machine.run()
        assert stop.reason is StopReason.EXIT, stop
        (count,) = struct.unpack("<I", machine.cpu.read_physical(COUNT, 4))
        returns = struct.unpack(f"<{count}I", machine.cpu.read_physical(TABLE, 4 * count))
    finally:
        machine.close()
    assert count > LOOPS // 2  # the timer really interrupted most stretches
    assert set(returns) == {cli}

"""machine/portregs.py: the byte registers shared with the native port hooks, and the
devices that keep theirs there (the native side: tests/integration/test_port_registers.py)."""

from __future__ import annotations

import pytest

from rdebug.errors import MachineError
from rdebug.machine.devices.cga import CRTC_DATA, CRTC_INDEX, Cga
from rdebug.machine.devices.ide import IdeController
from rdebug.machine.portregs import (
    Access,
    ByteAttribute,
    PortRegister,
    RegisterBytes,
    RegisterState,
)
from tests.unit.devices.conftest import FakeContext
from tests.unit.devices.test_ide import disk


class Holder:
    value = ByteAttribute(1)

    def __init__(self) -> None:
        self.registers = RegisterBytes(2)


def test_a_byte_attribute_lives_in_the_registers() -> None:
    holder = Holder()
    holder.value = 0xA5
    assert holder.registers[1] == 0xA5 and bytes(holder.registers.view) == b"\x00\xa5"
    holder.registers[1] = 7
    assert holder.value == 7
    assert isinstance(Holder.value, ByteAttribute)


@pytest.mark.parametrize("value", [-1, 256, 1 << 40, "1", None, 1.0])
def test_a_byte_attribute_refuses_what_is_not_a_byte(value: object) -> None:
    holder = Holder()
    with pytest.raises(TypeError, match="value"):
        holder.value = value  # type: ignore[assignment]
    assert holder.value == 0


def test_register_bytes_stay_in_bounds() -> None:
    cells = RegisterBytes(4)
    cells.load(b"\x01\x02", 2)
    assert bytes(cells.view) == b"\x00\x00\x01\x02"
    with pytest.raises(ValueError):
        cells.load(b"\x01\x02", 3)
    with pytest.raises(IndexError):
        cells.address(4)


def test_a_port_register_describes_itself_to_the_hooks() -> None:
    cells = RegisterBytes(19)
    plain = PortRegister(0x3D4, cells, 0, Access.READ | Access.WRITE, wmask=0x1F)
    indexed = PortRegister(0x3D5, cells, 1, Access.READ, index=0, valid=0xFFFF)
    st = RegisterState.from_address(plain.address)
    assert (st.port, st.flags, st.wmask, st.index) == (0x3D4, 3, 0x1F, None)
    assert st.cell == cells.address(0)
    st = RegisterState.from_address(indexed.address)
    assert (st.cell, st.index, st.valid) == (cells.address(1), cells.address(0), 0xFFFF)


def test_a_port_register_refuses_a_bad_description() -> None:
    cells = RegisterBytes(4)
    with pytest.raises(ValueError, match="port"):
        PortRegister(0x10000, cells, 0, Access.READ)
    with pytest.raises(ValueError, match="index"):
        PortRegister(0x10, cells, 1, Access.READ, index=0)
    with pytest.raises(IndexError):  # a file of 16 registers does not fit in 4 bytes
        PortRegister(0x10, cells, 1, Access.READ, index=0, valid=0xFFFF)


def test_the_ide_serves_its_task_file_only_with_a_drive(ctx: FakeContext) -> None:
    assert IdeController(ctx, None, None).port_registers() == ()
    ide = IdeController(ctx, disk(8, 0), None)
    ports = {r.port: Access(r.state.flags) for r in ide.port_registers()}
    rw = Access.READ | Access.WRITE
    assert ports == {
        0x1F1: Access.WRITE,
        0x1F2: rw,
        0x1F3: rw,
        0x1F4: rw,
        0x1F5: rw,
        0x1F6: Access.READ | Access.SAME,
        0x3F6: Access.SAME,
    }
    ide.io_write(0x1F3, 2, 0xBEEF)  # what the hooks read is what Python wrote
    assert bytes(ide.registers.view[2:4]) == b"\xef\xbe"


def test_a_malformed_ide_register_in_a_saved_state_is_refused(ctx: FakeContext) -> None:
    ide = IdeController(ctx, disk(8, 0), None)
    state = ide.save_state()
    state["lba_mid"] = 300
    with pytest.raises((TypeError, MachineError)):
        IdeController(ctx, disk(8, 0), None).load_state(state)


def test_the_cga_keeps_its_index_and_crtc_with_the_hooks(ctx: FakeContext) -> None:
    cga = Cga(ctx)
    cga.io_write(CRTC_INDEX, 1, 0x2E)  # masked to 5 bits
    cga.io_write(CRTC_DATA, 1, 0x42)
    assert cga.registers[0] == 0x0E and cga.registers[1 + 14] == 0x42
    assert cga.cursor() == 0x4200
    saved = cga.save_state()
    other = Cga(ctx)
    other.load_state(saved)
    assert bytes(other.registers.view) == bytes(cga.registers.view)
    with pytest.raises(TypeError):
        other.load_state({**saved, "crtc": b"\x00" * 17})

"""Cpu's register reads through unicorn's C entry point agree with the binding's."""

from __future__ import annotations

from unicorn import x86_const as X

from rdebug.machine.cpu import (
    CONTROL_REGISTERS,
    GENERAL_REGISTERS,
    TABLE_REGISTERS,
    Cpu,
    TableRegister,
)


def test_scalar_registers_match_the_binding() -> None:
    cpu = Cpu(2)
    try:
        for i, (name, regid) in enumerate(GENERAL_REGISTERS):
            if name in ("cs", "ss", "ds", "es", "fs", "gs"):
                continue  # loading selectors needs descriptors: read what reset left
            cpu.uc.reg_write(regid, 0xFFFFFFFF - i)
        cpu.uc.reg_write(X.UC_X86_REG_CR2, 0xDEADBEEF)
        # A 64-bit read of a wide value first: the next, narrower reads must not keep
        # its upper bytes.
        cpu.uc.reg_write(X.UC_X86_REG_XMM0, (1 << 128) - 1)
        assert cpu.gdb_register("xmm0") == (1 << 128) - 1
        for name, regid in GENERAL_REGISTERS + CONTROL_REGISTERS:
            assert cpu.read(name) == int(cpu.uc.reg_read(regid)), name
            assert cpu.gdb_register(name) == cpu.read(name)
        assert cpu.eip == int(cpu.uc.reg_read(X.UC_X86_REG_EIP))
        assert cpu.read("cs") <= 0xFFFF
    finally:
        cpu.close()


def test_table_registers_match_the_binding() -> None:
    cpu = Cpu(2)
    try:
        cpu.set_table_register("gdtr", TableRegister(0, 0x12345678, 0x27, 0))
        cpu.set_table_register("idtr", TableRegister(0, 0x9ABC0000, 0x7FF, 0))
        cpu.set_table_register("tr", TableRegister(0x28, 0x1000, 0x67, 0x8B00))
        cpu.table_register("tr")  # GDTR and IDTR reads after it must not keep its fields
        for name, regid in TABLE_REGISTERS:
            selector, base, limit, flags = cpu.uc.reg_read(regid)
            assert cpu.table_register(name) == TableRegister(selector, base, limit, flags)
        assert cpu.table_register("gdtr").base == 0x12345678
        assert cpu.table_register("idtr").limit == 0x7FF
    finally:
        cpu.close()

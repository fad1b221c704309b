"""Boot: place a loaded image in RAM and set the CPU up as its boot protocol says.

A boot sector starts in real mode at 0:7C00 with DL = 0x80 (the first hard disk), as a
BIOS leaves it.  A flat ELF or a multiboot kernel starts in 32-bit protected mode with a
flat GDT (code 0x08, data 0x10); a multiboot kernel also finds EAX = 0x2BADB002 and EBX
pointing at its multiboot information.  Both find the BIOS data area and the MP tables
in low memory.  A Linux bzImage is placed as the Linux boot protocol says (machine/
linux.py) and also finds ACPI tables.  The image itself comes from machine/loader.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rdebug.errors import MachineError
from rdebug.machine.acpi import acpi_tables
from rdebug.machine.cpu import CR0_PE, EFLAGS_RESERVED, Cpu, TableRegister
from rdebug.machine.loader import (
    GDT_ADDR,
    INITIAL_ESP,
    MULTIBOOT_BOOTLOADER_MAGIC,
    MULTIBOOT_INFO_ADDR,
    LoadedImage,
    StartMode,
    bios_data_area,
    flat_gdt,
    multiboot_info,
)
from rdebug.machine.mptable import mp_tables

if TYPE_CHECKING:
    from rdebug.machine.linux import LinuxBoot


def boot(cpu: Cpu, image: LoadedImage) -> None:
    """Write `image` and the firmware tables into RAM; set the registers it starts with."""
    if image.linux is not None:
        _boot_linux(cpu, image.linux)
        return
    for seg in image.segments:
        end = seg.paddr + max(seg.memsize, len(seg.data))
        if seg.paddr < 0 or end > cpu.ram_size:
            raise MachineError(
                f"the guest loads at {seg.paddr:#x}-{end:#x}, beyond the "
                f"{cpu.ram_size >> 20} MiB of RAM (use -m)"
            )
        cpu.write_physical(seg.paddr, seg.data)
        cpu.write_physical(seg.paddr + len(seg.data), bytes(seg.memsize - len(seg.data)))
    for paddr, data in [*bios_data_area(), *mp_tables()]:
        cpu.write_physical(paddr, data)
    if image.mode is StartMode.REAL:
        cr0 = cpu.read("cr0")
        cpu.write("cr0", cr0 & ~CR0_PE)
        for seg_name in ("cs", "ds", "es", "ss", "fs", "gs"):
            cpu.write(seg_name, 0)
        cpu.set_table_register("idtr", TableRegister(0, 0, 0x3FF, 0))
        cpu.write("esp", image.entry)
        cpu.write("edx", 0x80)  # booted from the first hard disk
    else:
        cpu.write_physical(GDT_ADDR, flat_gdt())
        cpu.set_table_register("gdtr", TableRegister(0, GDT_ADDR, len(flat_gdt()) - 1, 0))
        cpu.write("cs", 0x08)
        for seg_name in ("ds", "es", "ss", "fs", "gs"):
            cpu.write(seg_name, 0x10)
        cpu.write("esp", INITIAL_ESP)
        if image.multiboot:
            for paddr, data in multiboot_info(cpu.ram_size, image.cmdline):
                cpu.write_physical(paddr, data)
            cpu.write("eax", MULTIBOOT_BOOTLOADER_MAGIC)
            cpu.write("ebx", MULTIBOOT_INFO_ADDR)
    cpu.write("eflags", EFLAGS_RESERVED)
    cpu.eip = image.entry


def _boot_linux(cpu: Cpu, boot: LinuxBoot) -> None:
    """The Linux 32-bit boot protocol, with BIOS, MP and ACPI tables."""
    from rdebug.machine import linux  # noqa: PLC0415 - only for a Linux kernel (loader.py)

    placement = linux.place(boot, cpu.ram_size)
    for paddr, data in [*bios_data_area(), *mp_tables(), *acpi_tables(), *placement.writes]:
        cpu.write_physical(paddr, data)
    gdt = linux.boot_gdt()
    cpu.set_table_register("gdtr", TableRegister(0, linux.BOOT_GDT_ADDR, len(gdt) - 1, 0))
    cpu.write("cs", linux.BOOT_CS)
    for seg_name in ("ds", "es", "ss", "fs", "gs"):
        cpu.write(seg_name, linux.BOOT_DS)
    cpu.write("esi", placement.boot_params)
    for reg in ("eax", "ebx", "ecx", "edx", "edi", "ebp", "esp"):
        cpu.write(reg, 0)
    cpu.write("eflags", EFLAGS_RESERVED)
    cpu.eip = placement.entry

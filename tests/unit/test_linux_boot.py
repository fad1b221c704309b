"""The Linux boot protocol, the ACPI tables, kallsyms and symbol files, on synthetic
inputs (the real kernel is tests/integration/test_linux.py's)."""

from __future__ import annotations

import io
import itertools
import struct
import threading
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from rdebug.api import Session
from rdebug.cli import main
from rdebug.cli.parser import EXIT_LIMIT, EXIT_OK
from rdebug.errors import GuestImageError
from rdebug.machine import acpi, kallsyms, linux
from rdebug.machine.loader import ImageFormat, parse_image, symbol_file
from tests.linux_guest import INIT_SCRIPT, build_initramfs, synthetic_bzimage


def test_a_bzimage_is_detected_and_placed() -> None:
    initrd = b"070701" + bytes(1000)
    image = parse_image(synthetic_bzimage(), "vmlinuz", cmdline="console=ttyS0", initrd=initrd)
    assert image.format is ImageFormat.LINUX and image.linux is not None
    ram = 64 << 20
    placement = linux.place(image.linux, ram)
    writes = dict(placement.writes)
    assert writes[linux.KERNEL_ADDR] == b"\x90" * 4096
    assert writes[linux.CMDLINE_ADDR] == b"console=ttyS0\0"
    params = writes[linux.BOOT_PARAMS_ADDR]
    assert params[0x202:0x206] == b"HdrS" and params[0x210] == 0xFF  # type_of_loader
    assert struct.unpack_from("<I", params, 0x228)[0] == linux.CMDLINE_ADDR
    addr, size = struct.unpack_from("<II", params, 0x218)
    assert (addr, size) == (placement.initrd_addr, len(initrd))
    assert addr % 4096 == 0 and addr + size <= ram and writes[addr] == initrd
    entries = [struct.unpack_from("<QQI", params, 0x2D0 + 20 * i) for i in range(params[0x1E8])]
    assert entries[-1] == (0x100000, ram - 0x100000, 1)
    assert placement.entry == 0x100000 and placement.boot_params == linux.BOOT_PARAMS_ADDR


def _count_symbol_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make `linux.kernel_symbols` note the thread each call runs in."""
    threads: list[str] = []

    def read(data: bytes) -> linux.KernelSymbols:
        threads.append(threading.current_thread().name)
        return linux.KernelSymbols({"start_kernel": len(data)})

    monkeypatch.setattr(linux, "kernel_symbols", read)
    return threads


def test_a_kernels_symbols_are_read_once_asked_for_or_ahead_in_a_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reads = _count_symbol_reads(monkeypatch)
    data = synthetic_bzimage()
    image = parse_image(data, "vmlinuz")
    assert reads == []  # parsing reads nothing
    assert image.symbols["start_kernel"] == len(data)
    assert reads == ["rdebug-kernel-symbols"]
    ahead = parse_image(data, "vmlinuz")
    ahead.read_symbols_ahead()
    ahead.read_symbols_ahead()
    assert ahead.linux is not None
    assert ahead.linux.symbols.result().symbols == {"start_kernel": len(data)}
    assert dict(ahead.symbols) == {"start_kernel": len(data)}
    assert reads == ["rdebug-kernel-symbols"] * 2  # once per image


def test_a_failed_symbol_read_is_raised_to_whoever_asks(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(data: bytes) -> linux.KernelSymbols:
        raise ValueError("damaged")

    monkeypatch.setattr(linux, "kernel_symbols", fail)
    image = parse_image(synthetic_bzimage(), "vmlinuz")
    image.read_symbols_ahead()
    assert image.linux is not None
    with pytest.raises(ValueError, match="damaged"):
        image.linux.symbols.result()


def test_kernel_symbols_are_read_by_record_and_moving_sessions_only(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    reads = _count_symbol_reads(monkeypatch)
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(synthetic_bzimage())
    trace = tmp_path / "trace"
    limit = ["-m", "64", "--serial", "null", "--max-insns", "1000"]
    assert main(["run", *limit, str(kernel)]) == EXIT_LIMIT
    assert reads == []
    assert main(["record", "-o", str(trace), *limit, str(kernel)]) == EXIT_LIMIT
    assert reads == ["rdebug-kernel-symbols"]  # for the KASLR offset
    assert main(["replay", "--serial", "null", str(trace)]) == EXIT_OK
    assert len(reads) == 1  # a straight replay: none
    with Session(trace) as session:
        assert len(reads) == 1
        session.seek(500)  # the first move starts reading them
        assert session.symbols["start_kernel"] == len(synthetic_bzimage())
    assert reads == ["rdebug-kernel-symbols"] * 2


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (synthetic_bzimage(version=0x0204), "too old"),
        (synthetic_bzimage(loadflags=0), "zImage"),
        (synthetic_bzimage()[:0x300], "truncated"),
    ],
)
def test_bad_kernels_are_refused_clearly(image: bytes, message: str) -> None:
    with pytest.raises(GuestImageError, match=message):
        parse_image(image, "vmlinuz")


def test_an_initrd_is_for_linux_only_and_must_fit() -> None:
    with pytest.raises(GuestImageError, match="Linux kernels"):
        parse_image(b"\x90\xf4", "flat", ImageFormat.FLAT, load_address=0x100000, initrd=b"x")
    image = parse_image(synthetic_bzimage(), "vmlinuz", initrd=bytes(30 << 20))
    assert image.linux is not None
    with pytest.raises(GuestImageError, match="does not fit"):
        linux.place(image.linux, 32 << 20)


def test_acpi_tables_check_out() -> None:
    tables = dict(acpi.acpi_tables())
    rsdp = tables[acpi.RSDP_ADDR]
    assert rsdp.startswith(b"RSD PTR ") and sum(rsdp[:20]) & 0xFF == 0
    for addr in (acpi.RSDT_ADDR, acpi.FADT_ADDR, acpi.DSDT_ADDR, acpi.MADT_ADDR):
        table = tables[addr]
        assert struct.unpack_from("<I", table, 4)[0] == len(table)
        assert sum(table) & 0xFF == 0, table[:4]
    assert struct.unpack_from("<II", tables[acpi.RSDT_ADDR], 36) == (acpi.FADT_ADDR, acpi.MADT_ADDR)
    assert b"_S5_" in tables[acpi.DSDT_ADDR] and b"PCI0" in tables[acpi.DSDT_ADDR]
    # every table lies in the BIOS area the e820 map reserves, without overlaps
    spans = sorted((a, a + len(t)) for a, t in tables.items())
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))
    assert spans[0][0] >= linux.BIOS_AREA[0] and spans[-1][1] <= linux.BIOS_AREA[1]


def _kallsyms_blob(names: list[str], base: int) -> tuple[bytes, dict[str, int]]:
    """A kallsyms table as scripts/kallsyms lays it out, with two multi-char tokens."""
    tokens = [bytes([i]) for i in range(256)]
    tokens[0], tokens[1], tokens[2] = b"Tf", b"unc_", b"ti"

    def encode(text: bytes) -> bytes:
        out = bytearray()
        while text:
            for code in (0, 1, 2):
                if text.startswith(tokens[code]):
                    out.append(code)
                    text = text[len(tokens[code]) :]
                    break
            else:
                out.append(text[0])
                text = text[1:]
        return bytes(out)

    offsets = [0x40 * i + 0x10 for i in range(len(names))]
    encoded = [encode(b"T" + name.encode()) for name in names]
    names_blob = bytearray()
    markers = []
    for i, item in enumerate(encoded):
        if i % 256 == 0:
            markers.append(len(names_blob))
        names_blob += bytes([len(item)]) + item
    blob = bytearray(b"\xcc" * 64)
    blob += struct.pack(f"<{len(names)}i", *offsets) + struct.pack("<II", base, len(names))
    blob += names_blob + b"\0" * (-len(names_blob) % 4)
    blob += struct.pack(f"<{len(markers)}I", *markers)
    index, table = [], bytearray()
    for token in tokens:
        index.append(len(table))
        table += token + b"\0"
    blob += table + b"\0" * (-len(blob + table) % 4)
    blob += struct.pack("<256H", *index) + b"\xcc" * 64
    return bytes(blob), {name: base + off for name, off in zip(names, offsets, strict=True)}


def test_kallsyms_are_found_by_their_structure() -> None:
    names = [f"func_{i}" for i in range(300)] + ["start_kernel", "timer_interrupt"]
    blob, want = _kallsyms_blob(names, 0xC1000000)
    assert kallsyms.find_kallsyms(b"\x90" * 1000 + blob) == want
    with pytest.raises(kallsyms.NotFound):
        kallsyms.find_kallsyms(blob.replace(b"0\x001\x00", b"0\x00X\x00"))


def test_a_name_the_kernel_has_twice_keeps_both_addresses() -> None:
    """Static functions of different files share names (and a `static inline` whose
    address is taken is emitted once per file): each copy keeps an address of its own,
    or an address in the second copy would be named after the function before it."""
    names = ["func_a", "native_apic_mem_write", "func_b", "native_apic_mem_write", "func_c"]
    names += ["native_apic_mem_write"]
    blob, _ = _kallsyms_blob(names, 0xC1000000)
    found = kallsyms.find_kallsyms(blob)
    assert found["native_apic_mem_write"] == 0xC1000000 + 0x40 * 1 + 0x10
    assert found["native_apic_mem_write.2"] == 0xC1000000 + 0x40 * 3 + 0x10
    assert found["native_apic_mem_write.3"] == 0xC1000000 + 0x40 * 5 + 0x10
    assert found["func_c"] == 0xC1000000 + 0x40 * 4 + 0x10
    assert len(found) == len(names)


def test_a_symbol_elf_and_symbol_files_read_back() -> None:
    symbols = {"_text": 0xC1000000, "start_kernel": 0xC1000100, "_etext": 0xC1800000}
    symbols["jiffies"] = 0xC1C49D40
    elf = ELFFile(io.BytesIO(kallsyms.symbol_elf(symbols)))
    table = elf.get_section_by_name(".symtab")
    read = {s.name: (s["st_value"], s["st_info"]["type"]) for s in table.iter_symbols() if s.name}
    assert read["start_kernel"] == (0xC1000100, "STT_FUNC")
    assert read["jiffies"] == (0xC1C49D40, "STT_OBJECT")
    assert elf.get_section_by_name(".init.text") is None


def test_init_functions_are_functions_in_the_symbol_elf() -> None:
    """__init code sits after _etext ([_sinittext, _einittext)): without a code section
    there, gdb took `start_kernel` for data and `break start_kernel` said 'Function
    "start_kernel" not defined'."""
    symbols = {"_text": 0xC1000000, "kernel_init": 0xC1918670, "_etext": 0xC19256C0}
    symbols |= {"jiffies": 0xC1C49D40, "_sinittext": 0xC1D92000, "_einittext": 0xC1DE5811}
    symbols["start_kernel"] = 0xC1D929C1
    elf = ELFFile(io.BytesIO(kallsyms.symbol_elf(symbols)))
    init = elf.get_section_by_name(".init.text")
    assert init is not None and init["sh_type"] == "SHT_NOBITS"
    assert (init["sh_addr"], init["sh_size"]) == (0xC1D92000, 0xC1DE5811 - 0xC1D92000)
    assert init["sh_flags"] == 0x6  # SHF_ALLOC | SHF_EXECINSTR
    index = {section.name: i for i, section in enumerate(elf.iter_sections())}
    table = elf.get_section_by_name(".symtab")
    assert table["sh_link"] == index[".strtab"]
    assert elf["e_shstrndx"] == index[".shstrtab"]
    read = {
        s.name: (s["st_value"], s["st_info"]["type"], s["st_shndx"])
        for s in table.iter_symbols()
        if s.name
    }
    assert read["start_kernel"] == (0xC1D929C1, "STT_FUNC", index[".init.text"])
    assert read["kernel_init"] == (0xC1918670, "STT_FUNC", index[".text"])
    assert read["jiffies"] == (0xC1C49D40, "STT_OBJECT", "SHN_ABS")
    assert read["_einittext"][1:] == ("STT_OBJECT", "SHN_ABS")  # its end: not in it
    assert symbol_file(kallsyms.symbol_elf(symbols), "s.elf") == symbols
    assert symbol_file(kallsyms.symbol_elf(symbols), "s.elf")["jiffies"] == 0xC1C49D40
    assert symbol_file(b"c1000000 T _text\nc1000100 T start_kernel\n", "System.map") == {
        "_text": 0xC1000000,
        "start_kernel": 0xC1000100,
    }
    with pytest.raises(GuestImageError, match=r"System\.map:2"):
        symbol_file(b"c1000000 T _text\nnonsense\n", "System.map")


def _cpio_entries(archive: bytes) -> dict[str, tuple[int, bytes]]:
    """path -> (mode, data) of a cpio "newc" archive, read the way the kernel does."""
    entries: dict[str, tuple[int, bytes]] = {}
    at = 0
    while True:
        assert archive[at : at + 6] == b"070701"
        fields = [int(archive[at + 6 + 8 * i : at + 14 + 8 * i], 16) for i in range(13)]
        mode, size, name_size = fields[1], fields[6], fields[11]
        name_at = at + 110
        name = archive[name_at : name_at + name_size - 1].decode()
        data_at = (name_at + name_size + 3) & ~3
        if name == "TRAILER!!!":
            return entries
        entries[name] = (mode, archive[data_at : data_at + size])
        at = (data_at + size + 3) & ~3


def test_an_initramfs_with_a_tests_own_init_and_programs() -> None:
    default = build_initramfs(b"BUSYBOX")
    assert build_initramfs(b"BUSYBOX", INIT_SCRIPT, {}) == default  # the default, unchanged
    plain = _cpio_entries(default)
    assert plain["init"] == (0o100755, INIT_SCRIPT.encode())
    own = _cpio_entries(
        build_initramfs(b"BUSYBOX", "#!/bin/sh\n/bin/prog\n", {"bin/prog": b"\x7fELF..."})
    )
    assert own["init"] == (0o100755, b"#!/bin/sh\n/bin/prog\n")
    assert own["bin/prog"] == (0o100755, b"\x7fELF...")  # executable, in /bin
    assert own["bin/busybox"] == plain["bin/busybox"] and own["dev/console"][0] == 0o020600
    assert set(own) - set(plain) == {"bin/prog"}

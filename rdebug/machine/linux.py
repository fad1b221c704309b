"""The Linux/x86 boot protocol, 32-bit entry (the kernel's Documentation/arch/x86/boot.rst).

A bzImage starts with a real-mode setup part whose *setup header* (at 0x1F1, magic
"HdrS" at 0x202) says how to load the protected-mode kernel that follows it.  rdebug
has no BIOS to run the real-mode part, so it does what a 32-bit boot loader does:

- load the protected-mode kernel (the file after its `setup_sects + 1` sectors) at
  1 MiB, where it decompresses and relocates itself;
- build the "zero page" (`boot_params`): a copy of the setup header with the loader's
  fields filled in (`type_of_loader`, `cmd_line_ptr`, `ramdisk_image`/`ramdisk_size`),
  and an e820 memory map;
- place the command line and the initrd (as high as `initrd_addr_max` and the top of RAM
  allow);
- enter at `code32_start` in flat 32-bit protected mode with paging and interrupts off,
  CS = __BOOT_CS (0x10) and DS = ES = SS = __BOOT_DS (0x18) from a GDT of flat
  segments, ESI = the zero page, EBP = EDI = EBX = 0.

Parsing is pure (bytes in, a description out); `Machine.load` applies it once it knows
the size of RAM.  Knows nothing of devices, logs or gdb.
"""

from __future__ import annotations

import bz2
import io
import lzma
import struct
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from rdebug.errors import GuestImageError
from rdebug.machine import kallsyms
from rdebug.machine.loader import is_bzimage

SETUP_HEADER_OFFSET = 0x1F1
#: The oldest protocol with everything used here (cmdline_size, a relocatable kernel
#: description); every kernel since 2.6.22 speaks it.
MIN_PROTOCOL = 0x0206
LOADED_HIGH = 0x01  # loadflags: the protected-mode kernel goes at 1 MiB (a bzImage)
KEEP_SEGMENTS = 0x40
CAN_USE_HEAP = 0x80
TYPE_OF_LOADER = 0xFF  # "undefined" boot loader: the protocol's value for a new loader

KERNEL_ADDR = 0x100000
#: Where rdebug puts the zero page, the command line and the boot GDT (free low RAM,
#: below the EBDA and above the real-mode IVT/BDA).
BOOT_PARAMS_ADDR = 0x10000
CMDLINE_ADDR = 0x20000
BOOT_GDT_ADDR = 0x0500
BOOT_CS = 0x10
BOOT_DS = 0x18
#: Base memory a BIOS reports (639 KiB; the last KiB is the EBDA with the MP table).
BASE_MEMORY = 639 * 1024
#: The BIOS area (0xE0000-0xFFFFF: the MP table copy and the ACPI tables) is reserved.
BIOS_AREA = (0xE0000, 0x100000)

E820_RAM = 1
E820_RESERVED = 2
_E820_TABLE = 0x2D0
_E820_ENTRIES = 0x1E8
_E820_MAX = 128
_ALT_MEM_K = 0x1E0


@dataclass(frozen=True, slots=True)
class SetupHeader:
    """The fields of a bzImage's setup header a boot loader needs."""

    version: int
    setup_sects: int
    loadflags: int
    code32_start: int
    kernel_alignment: int
    initrd_addr_max: int
    cmdline_size: int
    init_size: int
    #: The header as it is in the file, from 0x1F1 to its end (copied into boot_params).
    raw: bytes


@dataclass(frozen=True, slots=True)
class LinuxBoot:
    """A parsed bzImage with its initrd and command line, not yet placed in RAM."""

    header: SetupHeader
    kernel: bytes  # the protected-mode kernel (loaded at 1 MiB)
    initrd: bytes | None
    cmdline: str
    #: Its symbols, read from the image (link-time addresses: see `kaslr_offset`).
    symbols: PendingSymbols


@dataclass(frozen=True, slots=True)
class Placement:
    """What to write where in physical memory, and the CPU's entry state."""

    writes: tuple[tuple[int, bytes], ...]
    entry: int
    boot_params: int
    initrd_addr: int | None


def parse_setup_header(data: bytes, name: str) -> SetupHeader:
    if not is_bzimage(data):
        raise GuestImageError(f"{name}: not a Linux kernel image (no 'HdrS' setup header)")
    (version,) = struct.unpack_from("<H", data, 0x206)
    if version < MIN_PROTOCOL:
        raise GuestImageError(
            f"{name}: Linux boot protocol {version >> 8}.{version & 0xFF:02d} is too old "
            f"(rdebug needs {MIN_PROTOCOL >> 8}.{MIN_PROTOCOL & 0xFF:02d}, Linux 2.6.22 or later)"
        )
    setup_sects = data[0x1F1] or 4
    loadflags = data[0x211]
    if not loadflags & LOADED_HIGH:
        raise GuestImageError(
            f"{name}: a zImage (loaded below 1 MiB); rdebug boots bzImage kernels only"
        )
    end = 0x202 + data[0x201]  # the 2-byte jump at 0x200 skips the header
    if len(data) < max(end, 0x264) or (setup_sects + 1) * 512 > len(data):
        raise GuestImageError(f"{name}: the Linux kernel image is truncated")
    (code32_start,) = struct.unpack_from("<I", data, 0x214)
    (initrd_addr_max,) = struct.unpack_from("<I", data, 0x22C)
    (kernel_alignment,) = struct.unpack_from("<I", data, 0x230)
    (cmdline_size,) = struct.unpack_from("<I", data, 0x238)
    init_size = struct.unpack_from("<I", data, 0x260)[0] if version >= 0x020A else 0
    return SetupHeader(
        version=version,
        setup_sects=setup_sects,
        loadflags=loadflags,
        code32_start=code32_start,
        kernel_alignment=kernel_alignment,
        initrd_addr_max=initrd_addr_max or 0x37FFFFFF,
        cmdline_size=cmdline_size or 255,
        init_size=init_size,
        raw=data[SETUP_HEADER_OFFSET:end],
    )


def parse_bzimage(data: bytes, name: str, initrd: bytes | None, cmdline: str) -> LinuxBoot:
    header = parse_setup_header(data, name)
    kernel = data[(header.setup_sects + 1) * 512 :]
    if not kernel:
        raise GuestImageError(f"{name}: the Linux kernel image has no protected-mode part")
    if len(cmdline.encode()) > header.cmdline_size:
        raise GuestImageError(
            f"--append: the command line is {len(cmdline.encode())} bytes, this kernel "
            f"takes at most {header.cmdline_size}"
        )
    return LinuxBoot(header, kernel, initrd, cmdline, PendingSymbols(data))


def e820_map(ram_size: int) -> list[tuple[int, int, int]]:
    """(base, length, type): base memory, the EBDA and BIOS area reserved, then RAM."""
    return [
        (0, BASE_MEMORY, E820_RAM),
        (BASE_MEMORY, 0xA0000 - BASE_MEMORY, E820_RESERVED),
        (BIOS_AREA[0], BIOS_AREA[1] - BIOS_AREA[0], E820_RESERVED),
        (KERNEL_ADDR, ram_size - KERNEL_ADDR, E820_RAM),
    ]


def place(boot: LinuxBoot, ram_size: int) -> Placement:
    """Lay the kernel, initrd, command line and zero page out in `ram_size` bytes of RAM."""
    header = boot.header
    kernel_end = KERNEL_ADDR + max(len(boot.kernel), header.init_size)
    if kernel_end > ram_size:
        raise GuestImageError(
            f"the Linux kernel needs RAM up to {kernel_end:#x} to decompress, beyond the "
            f"{ram_size >> 20} MiB of RAM (use -m)"
        )
    initrd_addr: int | None = None
    if boot.initrd is not None:
        top = min(header.initrd_addr_max + 1, ram_size)
        initrd_addr = (top - len(boot.initrd)) & ~0xFFF
        # Keep clear of where the kernel decompresses (it relocates to 16 MiB or so).
        if initrd_addr < max(kernel_end, 0x1000000 + header.init_size):
            raise GuestImageError(
                f"the initrd ({len(boot.initrd)} bytes) does not fit in RAM above the kernel "
                f"(use -m to give more than {ram_size >> 20} MiB)"
            )
    params = bytearray(4096)
    params[SETUP_HEADER_OFFSET : SETUP_HEADER_OFFSET + len(header.raw)] = header.raw
    params[0x210] = TYPE_OF_LOADER
    params[0x211] = (header.loadflags | CAN_USE_HEAP) & ~KEEP_SEGMENTS
    struct.pack_into("<H", params, 0x224, 0xFE00)  # heap_end_ptr (real-mode only; harmless)
    struct.pack_into("<I", params, 0x228, CMDLINE_ADDR)
    if initrd_addr is not None:
        assert boot.initrd is not None
        struct.pack_into("<II", params, 0x218, initrd_addr, len(boot.initrd))
    else:
        struct.pack_into("<II", params, 0x218, 0, 0)
    struct.pack_into("<I", params, _ALT_MEM_K, (ram_size - KERNEL_ADDR) >> 10)
    entries = e820_map(ram_size)
    assert len(entries) <= _E820_MAX
    params[_E820_ENTRIES] = len(entries)
    for i, (base, length, kind) in enumerate(entries):
        struct.pack_into("<QQI", params, _E820_TABLE + 20 * i, base, length, kind)
    writes: list[tuple[int, bytes]] = [
        (KERNEL_ADDR, boot.kernel),
        (BOOT_PARAMS_ADDR, bytes(params)),
        (CMDLINE_ADDR, boot.cmdline.encode() + b"\0"),
        (BOOT_GDT_ADDR, boot_gdt()),
    ]
    if initrd_addr is not None:
        assert boot.initrd is not None
        writes.append((initrd_addr, boot.initrd))
    return Placement(tuple(writes), header.code32_start, BOOT_PARAMS_ADDR, initrd_addr)


def boot_gdt() -> bytes:
    """null, unused, 0x10 flat 32-bit code (__BOOT_CS), 0x18 flat data (__BOOT_DS)."""
    return struct.pack("<QQQQ", 0, 0, 0x00CF9A000000FFFF, 0x00CF92000000FFFF)


# -- kernel symbols from the image itself --------------------------------------------------


def decompress_kernel(data: bytes) -> bytes | None:
    """The vmlinux ELF inside a bzImage (XZ, gzip or bzip2 payloads), or None."""
    if not is_bzimage(data) or struct.unpack_from("<H", data, 0x206)[0] < 0x0208:
        return None
    offset, length = struct.unpack_from("<II", data, 0x248)
    start = (data[0x1F1] or 4) * 512 + 512 + offset
    payload = data[start : start + length]
    try:
        if payload.startswith(b"\xfd7zXZ\x00"):
            return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(payload)
        if payload.startswith(b"\x1f\x8b"):
            return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(payload)
        if payload.startswith(b"BZh"):
            return bz2.BZ2Decompressor().decompress(payload)
    except (lzma.LZMAError, zlib.error, OSError, EOFError):
        return None
    return None  # LZMA, LZO, LZ4, zstd: not in Python's standard library


@dataclass(frozen=True, slots=True)
class KernelSymbols:
    """What a bzImage tells of its kernel's symbols, at link-time addresses."""

    symbols: dict[str, int]
    #: The kernel's version banner ("Linux version ...") and its link-time address: where
    #: the running kernel has it tells how far KASLR moved the kernel (`kaslr_offset`).
    banner: bytes = b""
    banner_addr: int = 0


class PendingSymbols:
    """`kernel_symbols(data)`, read when first asked for (`result`), or ahead of that in a
    thread of its own once `start` is called: decompressing the kernel takes ~0.4 s (the
    decompressor lets other threads run), which the guest's first instructions overlap.
    A plain run, which never asks, never pays for it."""

    def __init__(self, data: bytes) -> None:
        self._data: bytes | None = data
        self._symbols: KernelSymbols | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Begin reading in the background (once; a no-op after)."""
        with self._lock:
            if self._thread is None and self._data is not None:
                self._thread = threading.Thread(
                    target=self._read, name="rdebug-kernel-symbols", daemon=True
                )
                self._thread.start()

    def _read(self) -> None:
        data, self._data = self._data, None
        assert data is not None
        try:
            self._symbols = kernel_symbols(data)
        except BaseException as exc:  # handed to whoever asks (`result`)
            self._error = exc

    def result(self) -> KernelSymbols:
        self.start()
        assert self._thread is not None
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._symbols is not None
        return self._symbols


def kernel_symbols(data: bytes) -> KernelSymbols:
    """Link-time addresses of a bzImage's functions (kallsyms) and exported symbols
    (`__ksymtab`: e.g. `jiffies`), read from the image itself; none when it has none."""
    vmlinux = decompress_kernel(data)
    if vmlinux is None or not vmlinux.startswith(b"\x7fELF"):
        return KernelSymbols({})
    try:
        symbols = kallsyms.find_kallsyms(vmlinux)
    except kallsyms.NotFound:
        return KernelSymbols({})
    from elftools.common.exceptions import ELFError  # noqa: PLC0415 - slow: only when needed
    from elftools.elf.elffile import ELFFile  # noqa: PLC0415

    try:
        elf = ELFFile(io.BytesIO(vmlinux))
        sections = [
            (int(s["sh_addr"]), int(s["sh_offset"]), int(s["sh_size"]), s.name)
            for s in elf.iter_sections()
            if s["sh_type"] == "SHT_PROGBITS" and s["sh_addr"]
        ]
    except (ELFError, ValueError, struct.error):
        return KernelSymbols(symbols)

    def read_cstring(addr: int) -> bytes | None:
        for base, offset, size, _name in sections:
            if base <= addr < base + size:
                at = offset + addr - base
                return vmlinux[at : vmlinux.index(b"\0", at)]
        return None

    banner, banner_addr = b"", 0
    for base, offset, size, name in sections:
        if name in ("__ksymtab", "__ksymtab_gpl"):
            table = vmlinux[offset : offset + size]
            for symbol, addr in kallsyms.ksymtab(table, base, read_cstring):
                symbols.setdefault(symbol, addr)
        if name == ".rodata":
            at = vmlinux.find(b"Linux version ", offset, offset + size)
            if at >= 0:
                banner = vmlinux[at : vmlinux.index(b"\0", at)]
                banner_addr = base + at - offset
    return KernelSymbols(symbols, banner, banner_addr)


#: KASLR moves a 32-bit kernel by a multiple of its alignment, below 512 MiB.
_KASLR_LIMIT = 512 << 20


def kaslr_offset(
    info: KernelSymbols, alignment: int, read_linear: Callable[[int, int], bytes | None]
) -> int | None:
    """How far the running kernel is from its link-time addresses (0 without KASLR), by
    where its banner is now (through the page tables); None before it runs paged."""
    if not info.banner:
        return None
    for offset in range(0, _KASLR_LIMIT, max(alignment, 0x1000)):
        if read_linear(info.banner_addr + offset, len(info.banner)) == info.banner:
            return offset
    return None

"""Guest image loaders: multiboot ELF, plain ELF32, flat binary, boot sector.

A loader parses the image (untrusted input: every malformation is a `GuestImageError`)
and describes what to place in RAM and how the CPU starts; `Machine.load` applies it.
Knows nothing of devices, logs or gdb.
"""

from __future__ import annotations

import enum
import io
import struct
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rdebug.errors import GuestImageError

if TYPE_CHECKING:
    from rdebug.machine.linux import LinuxBoot

MULTIBOOT_MAGIC = 0x1BADB002
MULTIBOOT_BOOTLOADER_MAGIC = 0x2BADB002
MULTIBOOT_SEARCH = 8192
MULTIBOOT_AOUT_KLUDGE = 1 << 16

ELF_MAGIC = b"\x7fELF"
#: A Linux/x86 kernel image's setup header magic, at 0x202 (machine/linux.py, which is
#: imported only for such an image: it takes a while to load).
HDRS_MAGIC = b"HdrS"
EM_386 = 3
PT_LOAD = 1

BOOT_SECTOR_ADDR = 0x7C00
#: Where the loader puts its own structures (below the usual kernel load address).
GDT_ADDR = 0x0500
MULTIBOOT_INFO_ADDR = 0x9000
MULTIBOOT_MMAP_ADDR = 0x9100
LOADER_NAME_ADDR = 0x9400
CMDLINE_ADDR = 0x9500
INITIAL_ESP = 0x7000
#: Base memory a BIOS reports (639 KiB; the last KiB is the EBDA).
BASE_MEMORY_KIB = 639
EBDA_SEGMENT = 0x9FC0


class ImageFormat(enum.Enum):
    AUTO = "auto"
    MULTIBOOT = "multiboot"
    ELF = "elf"
    FLAT = "flat"
    BOOTSECTOR = "bootsector"
    LINUX = "linux"  # a Linux/x86 bzImage (machine/linux.py)


class StartMode(enum.Enum):
    PROTECTED_FLAT = "protected"  # 32-bit flat segments, CS=0x08, DS..SS=0x10, paging off
    REAL = "real"  # real mode, CS:IP = 0:entry


@dataclass(frozen=True, slots=True)
class Segment:
    """Bytes a guest image puts at a physical address (the rest of `memsize` zeroed)."""

    paddr: int
    data: bytes
    memsize: int  # >= len(data); the rest is zeroed (bss)


class LazySymbols(Mapping[str, int]):
    """Symbols computed on first use (an ELF symbol table; a Linux kernel's: see
    `linux.PendingSymbols`)."""

    def __init__(self, compute: Callable[[], Mapping[str, int]]) -> None:
        self._compute: Callable[[], Mapping[str, int]] | None = compute
        self._symbols: dict[str, int] = {}

    def _get(self) -> dict[str, int]:
        if self._compute is not None:
            self._symbols = dict(self._compute())
            self._compute = None
        return self._symbols

    def __getitem__(self, name: str) -> int:
        return self._get()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())

    def __contains__(self, name: object) -> bool:
        return name in self._get()


@dataclass(frozen=True, slots=True)
class LoadedImage:
    """What to place in RAM and how the CPU starts."""

    format: ImageFormat
    segments: tuple[Segment, ...]
    entry: int
    mode: StartMode
    multiboot: bool = False
    cmdline: str = ""
    symbols: Mapping[str, int] = field(default_factory=dict)
    #: A Linux kernel: placed by `Machine.load` once the size of RAM is known.
    linux: LinuxBoot | None = None

    def read_symbols_ahead(self) -> None:
        """Start reading the symbols in the background, for a caller that will want them
        (a Linux kernel's come from its compressed image: ~0.4 s, see
        `linux.PendingSymbols`); they are otherwise read when first used."""
        if self.linux is not None:
            self.linux.symbols.start()


def load_image(
    path: Path,
    fmt: ImageFormat = ImageFormat.AUTO,
    load_address: int | None = None,
    entry: int | None = None,
    cmdline: str = "",
    initrd: bytes | None = None,
) -> LoadedImage:
    """Parse the guest image at `path` (see `ImageFormat`)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise GuestImageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise GuestImageError(f"{path}: is a directory, not a guest image") from None
    except OSError as exc:
        raise GuestImageError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_image(data, str(path), fmt, load_address, entry, cmdline, initrd)


def parse_image(
    data: bytes,
    name: str,
    fmt: ImageFormat = ImageFormat.AUTO,
    load_address: int | None = None,
    entry: int | None = None,
    cmdline: str = "",
    initrd: bytes | None = None,
) -> LoadedImage:
    if fmt is ImageFormat.AUTO:
        if is_bzimage(data):
            fmt = ImageFormat.LINUX
        elif data.startswith(ELF_MAGIC):
            fmt = ImageFormat.MULTIBOOT if _multiboot_header(data) else ImageFormat.ELF
        elif _multiboot_header(data) is not None:
            fmt = ImageFormat.MULTIBOOT
        elif len(data) == 512 and data[510:512] == b"\x55\xaa":
            fmt = ImageFormat.BOOTSECTOR
        elif load_address is not None:
            fmt = ImageFormat.FLAT
        else:
            raise GuestImageError(
                f"{name}: not an ELF file, a multiboot image, a Linux bzImage or a boot sector "
                "(for a flat binary give --format flat --load-address ADDR)"
            )
    if fmt is ImageFormat.LINUX:
        from rdebug.machine.linux import parse_bzimage  # noqa: PLC0415 - see HDRS_MAGIC

        boot = parse_bzimage(data, name, initrd, cmdline)
        return LoadedImage(
            format=fmt,
            segments=(),
            entry=boot.header.code32_start,
            mode=StartMode.PROTECTED_FLAT,
            cmdline=cmdline,
            symbols=LazySymbols(lambda: boot.symbols.result().symbols),
            linux=boot,
        )
    if initrd is not None:
        raise GuestImageError(f"{name}: --initrd is for Linux kernels (bzImage) only")
    if fmt is ImageFormat.MULTIBOOT:
        return _load_multiboot(data, name, cmdline)
    if fmt is ImageFormat.ELF:
        return _load_elf(data, name, multiboot=False, cmdline=cmdline)
    if fmt is ImageFormat.FLAT:
        if load_address is None:
            raise GuestImageError(f"{name}: a flat binary needs --load-address")
        if not data:
            raise GuestImageError(f"{name}: the image is empty")
        return LoadedImage(
            format=fmt,
            segments=(Segment(load_address, data, len(data)),),
            entry=load_address if entry is None else entry,
            mode=StartMode.PROTECTED_FLAT,
        )
    if len(data) != 512 or data[510:512] != b"\x55\xaa":
        raise GuestImageError(f"{name}: a boot sector is 512 bytes ending in 55 AA")
    return LoadedImage(
        format=ImageFormat.BOOTSECTOR,
        segments=(Segment(BOOT_SECTOR_ADDR, data, 512),),
        entry=BOOT_SECTOR_ADDR,
        mode=StartMode.REAL,
    )


def is_bzimage(data: bytes) -> bool:
    """A Linux/x86 kernel image with a setup header (bzImage or zImage)."""
    return len(data) >= 0x206 and data[0x202:0x206] == HDRS_MAGIC


def _multiboot_header(data: bytes) -> tuple[int, int] | None:
    """(offset, flags) of a valid multiboot header in the first 8 KiB, if any."""
    limit = min(len(data), MULTIBOOT_SEARCH) - 12
    for off in range(0, limit + 1, 4):
        magic, flags, checksum = struct.unpack_from("<III", data, off)
        if magic == MULTIBOOT_MAGIC and (magic + flags + checksum) & 0xFFFFFFFF == 0:
            return off, flags
    return None


def _load_multiboot(data: bytes, name: str, cmdline: str) -> LoadedImage:
    header = _multiboot_header(data)
    if header is None:
        raise GuestImageError(f"{name}: no multiboot header in the first 8 KiB")
    off, flags = header
    if flags & 0xFFFC & ~MULTIBOOT_AOUT_KLUDGE & 0xFFFF:
        raise GuestImageError(f"{name}: multiboot header asks for unsupported features")
    if data.startswith(ELF_MAGIC) and not flags & MULTIBOOT_AOUT_KLUDGE:
        return _load_elf(data, name, multiboot=True, cmdline=cmdline)
    if not flags & MULTIBOOT_AOUT_KLUDGE:
        raise GuestImageError(f"{name}: multiboot image is neither ELF nor has load addresses")
    if len(data) < off + 32:
        raise GuestImageError(f"{name}: multiboot header is truncated")
    header_addr, load_addr, load_end, bss_end, entry = struct.unpack_from("<5I", data, off + 12)
    start = off - (header_addr - load_addr)
    if start < 0 or load_addr > header_addr:
        raise GuestImageError(f"{name}: inconsistent multiboot load addresses")
    end = len(data) if load_end == 0 else start + (load_end - load_addr)
    if end > len(data) or end < start:
        raise GuestImageError(f"{name}: multiboot load_end_addr lies beyond the file")
    body = data[start:end]
    memsize = max(len(body), (bss_end - load_addr) if bss_end else 0)
    return LoadedImage(
        format=ImageFormat.MULTIBOOT,
        segments=(Segment(load_addr, body, memsize),),
        entry=entry,
        mode=StartMode.PROTECTED_FLAT,
        multiboot=True,
        cmdline=cmdline,
    )


def _load_elf(data: bytes, name: str, multiboot: bool, cmdline: str) -> LoadedImage:
    if len(data) < 52 or not data.startswith(ELF_MAGIC):
        raise GuestImageError(f"{name}: not an ELF file")
    if data[4] != 1:
        raise GuestImageError(f"{name}: a 64-bit ELF; rdebug runs i386 (ELF32) guests")
    if data[5] != 1:
        raise GuestImageError(f"{name}: a big-endian ELF; rdebug runs i386 guests")
    (
        e_type,
        e_machine,
        _ver,
        e_entry,
        e_phoff,
        _shoff,
        _flags,
        _ehsize,
        e_phentsize,
        e_phnum,
        _shentsize,
        _shnum,
        _shstrndx,
    ) = struct.unpack_from("<HHIIIIIHHHHHH", data, 16)
    if e_machine != EM_386:
        raise GuestImageError(f"{name}: ELF for machine {e_machine}, not i386 (3)")
    if e_type not in (2, 3):
        raise GuestImageError(f"{name}: ELF type {e_type} is not an executable")
    if e_phnum == 0 or e_phentsize < 32 or e_phoff + e_phnum * e_phentsize > len(data):
        raise GuestImageError(f"{name}: ELF program headers are missing or truncated")
    segments = []
    for i in range(e_phnum):
        p_type, p_offset, _vaddr, p_paddr, p_filesz, p_memsz, _pflags, _align = struct.unpack_from(
            "<8I", data, e_phoff + i * e_phentsize
        )
        if p_type != PT_LOAD or p_memsz == 0:
            continue
        if p_filesz > p_memsz or p_offset + p_filesz > len(data):
            raise GuestImageError(f"{name}: ELF segment {i} lies beyond the end of the file")
        segments.append(Segment(p_paddr, data[p_offset : p_offset + p_filesz], p_memsz))
    if not segments:
        raise GuestImageError(f"{name}: ELF has no loadable segment")
    return LoadedImage(
        format=ImageFormat.MULTIBOOT if multiboot else ImageFormat.ELF,
        segments=tuple(segments),
        entry=e_entry,
        mode=StartMode.PROTECTED_FLAT,
        multiboot=multiboot,
        cmdline=cmdline,
        symbols=LazySymbols(lambda: elf_symbols(data)),  # pyelftools loads on first use
    )


def elf_symbols(data: bytes) -> dict[str, int]:
    """Function and object symbols of an ELF32 image (empty if it has none or is odd)."""
    # pyelftools takes a seventh of `rdebug run`'s start-up to import; running a guest
    # needs only the program headers (read above), so it loads when symbols are asked for.
    from elftools.common.exceptions import ELFError  # noqa: PLC0415
    from elftools.elf.elffile import ELFFile  # noqa: PLC0415
    from elftools.elf.sections import SymbolTableSection  # noqa: PLC0415

    out: dict[str, int] = {}
    try:
        elf = ELFFile(io.BytesIO(data))
        for section in elf.iter_sections():
            if not isinstance(section, SymbolTableSection):
                continue
            for sym in section.iter_symbols():
                kind = sym["st_info"]["type"]
                if (
                    sym.name
                    and kind in ("STT_FUNC", "STT_OBJECT", "STT_NOTYPE")
                    and sym["st_shndx"] != "SHN_UNDEF"
                ):
                    out.setdefault(sym.name, int(sym["st_value"]))
    except (ELFError, ValueError, struct.error):
        return {}
    return out


def multiboot_info(ram_size: int, cmdline: str) -> list[tuple[int, bytes]]:
    """The multiboot information structure and what it points to, as (paddr, bytes)."""
    mem_upper_kib = (ram_size - 0x100000) // 1024
    regions = [
        (0x0, BASE_MEMORY_KIB * 1024, 1),
        (BASE_MEMORY_KIB * 1024, 0xA0000 - BASE_MEMORY_KIB * 1024, 2),
        (0xF0000, 0x10000, 2),
        (0x100000, ram_size - 0x100000, 1),
    ]
    mmap = b"".join(struct.pack("<IQQI", 20, base, length, kind) for base, length, kind in regions)
    name = b"rdebug\0"
    flags = (1 << 0) | (1 << 2) | (1 << 6) | (1 << 9)
    info = bytearray(88)
    struct.pack_into("<III", info, 0, flags, BASE_MEMORY_KIB, mem_upper_kib)
    struct.pack_into("<I", info, 16, CMDLINE_ADDR)
    struct.pack_into("<II", info, 44, len(mmap), MULTIBOOT_MMAP_ADDR)
    struct.pack_into("<I", info, 64, LOADER_NAME_ADDR)
    return [
        (MULTIBOOT_INFO_ADDR, bytes(info)),
        (MULTIBOOT_MMAP_ADDR, mmap),
        (LOADER_NAME_ADDR, name),
        (CMDLINE_ADDR, cmdline.encode()[:255] + b"\0"),
    ]


def flat_gdt() -> bytes:
    """null, 0x08 flat 32-bit ring-0 code, 0x10 flat ring-0 data."""
    return struct.pack("<QQQ", 0, 0x00CF9A000000FFFF, 0x00CF92000000FFFF)


def bios_data_area() -> list[tuple[int, bytes]]:
    """What a BIOS leaves for kernels that look: base memory size and the EBDA segment."""
    return [(0x413, struct.pack("<H", BASE_MEMORY_KIB)), (0x40E, struct.pack("<H", EBDA_SEGMENT))]


def symbol_file(data: bytes, name: str) -> dict[str, int]:
    """The symbols of a System.map ("ADDRESS TYPE NAME" lines) or of an ELF file's symbol
    table (e.g. the vmlinux of a Linux `-dbg` package)."""
    if data.startswith(ELF_MAGIC):
        symbols = elf_symbols(data)
        if not symbols:
            raise GuestImageError(f"{name}: an ELF file without symbols")
        return symbols
    symbols = {}
    for number, line in enumerate(data.decode("ascii", "replace").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        bad = f"{name}:{number}: not a System.map line: {line[:60]!r}"
        try:
            addr = int(fields[0], 16)
        except ValueError:
            raise GuestImageError(bad) from None
        if len(fields) < 3 or not 0 <= addr <= 0xFFFFFFFF:
            raise GuestImageError(bad)
        symbols.setdefault(fields[2], addr)
    if not symbols:
        raise GuestImageError(f"{name}: no symbols (neither ELF nor System.map)")
    return symbols

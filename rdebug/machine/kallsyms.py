"""Kernel symbols from a Linux kernel image itself, with no System.map or debug package.

A kernel built with CONFIG_KALLSYMS (every distribution kernel) carries a compressed
table of its function names in `.rodata`, for oops backtraces and /proc/kallsyms.  There
is no pointer to it in the image: it is found by its structure, as kallsyms extractors
do (Linux 6.1 layout, CONFIG_KALLSYMS_BASE_RELATIVE, 32-bit):

    kallsyms_offsets        s32 per symbol: address - kallsyms_relative_base
    kallsyms_relative_base  u32
    kallsyms_num_syms       u32
    kallsyms_names          per symbol: length (1 byte, or 2 when >= 0x80), then
                            token numbers (the first token's first char is the type)
    kallsyms_markers        u32 per 256 symbols: offset of that symbol in the names
    kallsyms_token_table    256 NUL-terminated tokens
    kallsyms_token_index    256 u16: offset of each token in the table

The token table is found by the ten tokens that stand for the digits ("0", "1" ... "9",
each NUL-terminated: digits are never replaced by a pair); each table found before it is
checked against the next (the markers against the decoded names, the offsets' count
against num_syms), and a table that does not check out gives no symbols at all.

Also here: exported symbols from `__ksymtab` (position-relative entries: 32-bit
value and name offsets), which name the exported data (`jiffies`) that kallsyms leaves
out without CONFIG_KALLSYMS_ALL.

Pure: bytes in, symbols out.  Knows nothing of the machine.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator

_DIGITS = b"".join(b"%d\0" % i for i in range(10))
#: How far before the token table the other tables may start (bytes).
_SEARCH = 8 << 20


class NotFound(Exception):
    """No kallsyms table with a consistent structure in the bytes."""


def _token_table(blob: bytes, digits_at: int) -> tuple[int, list[bytes], int]:
    """(table start, the 256 tokens, end of the token index) around the digit tokens."""
    # The index follows the table (aligned); token '0' (0x30) sits at index[0x30].
    first = (digits_at + len(_DIGITS) + 1) & ~1  # u16-aligned
    for index_at in range(first, min(len(blob) - 512, digits_at + 4096), 2):
        index = struct.unpack_from("<256H", blob, index_at)
        if index[0] != 0 or index[0x30] > digits_at:
            continue
        start = digits_at - index[0x30]
        if any(b >= a for a, b in zip(index[1:], index, strict=False)):
            continue
        tokens = []
        for i in range(256):
            end = blob.find(b"\0", start + index[i])
            if i + 1 < 256 and end != start + index[i + 1] - 1:
                break
            tokens.append(blob[start + index[i] : end])
        else:
            if 0 <= index_at - (start + index[255] + len(tokens[255]) + 1) < 8:
                return start, tokens, index_at + 512
    raise NotFound("no kallsyms token index after the token table")


def _u32(blob: bytes, at: int) -> int:
    return int(struct.unpack_from("<I", blob, at)[0])


def _names(blob: bytes, start: int, count: int, end: int) -> tuple[list[bytes], list[int], int]:
    """`count` compressed names from `start`, each name's offset, and where they end."""
    names: list[bytes] = []
    offsets: list[int] = []
    at = start
    for _ in range(count):
        if at >= end:
            raise NotFound("kallsyms names run past the markers")
        offsets.append(at - start)
        length = blob[at]
        at += 1
        if length & 0x80:
            length = (length & 0x7F) | (blob[at] << 7)
            at += 1
        names.append(blob[at : at + length])
        at += length
    if at > end:
        raise NotFound("kallsyms names run past the token table")
    return names, offsets, at


def find_kallsyms(blob: bytes) -> dict[str, int]:
    """Every symbol of the kallsyms table in `blob` (name -> address), text and others.

    Raises `NotFound` when there is no table, or it does not check out.
    """
    digits_at = blob.find(_DIGITS)
    while digits_at >= 0:
        try:
            return _decode_at(blob, digits_at)
        except (NotFound, struct.error, IndexError):
            digits_at = blob.find(_DIGITS, digits_at + 1)
    raise NotFound("no kallsyms token table")


def _decode_at(blob: bytes, digits_at: int) -> dict[str, int]:
    import numpy as np  # noqa: PLC0415 (only a Linux guest needs it: `run` starts faster)

    table_at, tokens, _ = _token_table(blob, digits_at)
    # relative_base (a page-aligned kernel address) and num_syms, then the names, then
    # the markers; kallsyms_seqs_of_names (newer kernels) may sit before the tokens.
    lo = max(0, table_at - _SEARCH) & ~3
    words = np.frombuffer(blob, dtype="<u4", count=(table_at - lo) // 4, offset=lo)
    candidates = np.nonzero(
        (words[:-1] >= 0x40000000)
        & (words[:-1] & 0xFFF == 0)
        & (words[1:] > 0)
        & (words[1:] < 1 << 20)
    )[0]
    for index in candidates[::-1]:
        base_at = lo + 4 * int(index)
        base, count = struct.unpack_from("<II", blob, base_at)
        try:
            names, offsets, end = _names(blob, base_at + 8, count, table_at)
        except NotFound:
            continue
        markers_at = (end + 3) & ~3
        want = [offsets[i] for i in range(0, count, 256)]
        if list(struct.unpack_from(f"<{len(want)}I", blob, markers_at)) != want:
            continue
        values = struct.unpack_from(f"<{count}i", blob, base_at - 4 * count)
        symbols: dict[str, int] = {}
        for name, offset in zip(names, values, strict=True):
            text = b"".join(tokens[t] for t in name)
            _add(symbols, text[1:].decode("ascii", "replace"), (base + offset) & 0xFFFFFFFF)
        return symbols
    raise NotFound("no kallsyms_num_syms, names and markers before the token table")


def _add(symbols: dict[str, int], name: str, addr: int) -> None:
    """Add `name` at `addr`.  A kernel has one name several times (static functions of
    different files, a `static inline` emitted out of line in each file that takes its
    address: `native_apic_mem_write`): the first keeps the name, the next are `name.2`,
    `name.3`..., so that every address still finds its own function."""
    if symbols.get(name, addr) == addr:
        symbols[name] = addr
        return
    number = 2
    while f"{name}.{number}" in symbols and symbols[f"{name}.{number}"] != addr:
        number += 1
    symbols[f"{name}.{number}"] = addr


def ksymtab(
    section: bytes, section_addr: int, read_cstring: Callable[[int], bytes | None]
) -> Iterator[tuple[str, int]]:
    """(name, address) of each entry of a `__ksymtab` section of position-relative
    entries (value, name, namespace: s32 offsets from the field itself)."""
    for i in range(len(section) // 12):
        value, name, _namespace = struct.unpack_from("<iii", section, 12 * i)
        entry = section_addr + 12 * i
        text = read_cstring((entry + 4 + name) & 0xFFFFFFFF)
        if text:
            yield text.decode("ascii", "replace"), (entry + value) & 0xFFFFFFFF


#: Code besides [_text, _etext), by the kallsyms symbols that bound it: gdb breaks only
#: on FUNC symbols in a code section, and `start_kernel` and the other __init functions
#: are in .init.text, after _etext (freed once the kernel has booted).
_MORE_CODE = ((".init.text", "_sinittext", "_einittext"),)


def symbol_elf(symbols: dict[str, int]) -> bytes:
    """A minimal ELF32 file with nothing but `symbols`, for gdb's `file` command.

    The addresses between `_text` and `_etext` and between `_sinittext` and
    `_einittext` are functions in a `.text` or `.init.text` section without contents
    (gdb reads code from the target); the others are absolute data symbols.
    """
    code = [
        (
            ".text",
            symbols.get("_text", min(symbols.values(), default=0)),
            symbols.get("_etext", max(symbols.values(), default=0) + 1),
        )
    ]
    code += [
        (name, symbols[lo], symbols[hi])
        for name, lo, hi in _MORE_CODE
        if lo in symbols and hi in symbols and symbols[lo] < symbols[hi]
    ]
    shstrtab = b"\0" + b"".join(name.encode() + b"\0" for name, _, _ in code)
    names_at = [1]
    for name, _, _ in code[:-1]:
        names_at.append(names_at[-1] + len(name) + 1)
    symtab_index = 1 + len(code)  # then .strtab, .shstrtab
    symtab_name = len(shstrtab)
    shstrtab += b".symtab\0.strtab\0.shstrtab\0"
    strtab = bytearray(b"\0")
    symtab = bytearray(16)
    for name, addr in sorted(symbols.items(), key=lambda item: (item[1], item[0])):
        section = next((i for i, (_, lo, hi) in enumerate(code, 1) if lo <= addr < hi), 0)
        info = (1 << 4) | (2 if section else 1)  # GLOBAL, FUNC or OBJECT
        symtab += struct.pack("<IIIBBH", len(strtab), addr, 0, info, 0, section or 0xFFF1)
        strtab += name.encode("ascii", "replace") + b"\0"
    header_size, section_size = 52, 40
    symtab_at = header_size
    strtab_at = symtab_at + len(symtab)
    shstrtab_at = strtab_at + len(strtab)
    sections_at = (shstrtab_at + len(shstrtab) + 3) & ~3
    body = bytes(symtab) + bytes(strtab) + shstrtab
    body += b"\0" * (sections_at - header_size - len(body))
    sections = bytes(section_size)  # the null section
    for name_at, (_, lo, hi) in zip(names_at, code, strict=True):
        sections += struct.pack(
            "<10I", name_at, 8, 0x6, lo, 0, max(hi - lo, 0), 0, 0, 16, 0
        )  # code: NOBITS, AX
    sections += struct.pack(
        "<10I", symtab_name, 2, 0, 0, symtab_at, len(symtab), symtab_index + 1, 1, 4, 16
    )  # .symtab: SYMTAB, link .strtab, first global 1
    sections += struct.pack(
        "<10I", symtab_name + 8, 3, 0, 0, strtab_at, len(strtab), 0, 0, 1, 0
    )  # .strtab
    sections += struct.pack(
        "<10I", symtab_name + 16, 3, 0, 0, shstrtab_at, len(shstrtab), 0, 0, 1, 0
    )  # .shstrtab
    count = symtab_index + 3
    ident = b"\x7fELF\x01\x01\x01" + bytes(9)
    # ET_EXEC, EM_386, EV_CURRENT, no entry, no program headers, the section headers
    fields = (2, 3, 1, 0, 0, sections_at, 0, header_size, 0, 0, section_size, count, count - 1)
    header = ident + struct.pack("<HHIIIIIHHHHHH", *fields)
    return header + body + sections

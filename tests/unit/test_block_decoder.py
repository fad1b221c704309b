"""The block decoder in C (_decode.c) against the reference one over capstone's binding.

Every field of a `Block` steers the native counter (counts, branch boundaries, shadows,
the I/O hooks, the flag syncs), so the two decoders must agree on all of it: on every
block real guests run, on code read at any offset of their programs, in both code sizes,
and on instruction sequences built to hit each rule, prefixes and undecodable bytes
included.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from pathlib import Path

import pytest
from elftools.elf.constants import P_FLAGS
from elftools.elf.elffile import ELFFile
from hypothesis import given, settings
from hypothesis import strategies as st

from rdebug.errors import MachineError
from rdebug.machine import blocks
from rdebug.machine.blocks import Block, BlockDecoder
from rdebug.machine.machine import StopReason
from tests.conftest import GUESTS, make_machine
from tests.oracle.block_decoder import ReferenceBlockDecoder

_DECODER = BlockDecoder()
_REFERENCE = ReferenceBlockDecoder()

#: Encodings that hit each of the decoder's rules (and some that hit none).
_PIECES = (
    b"\xe4\x60",  # in al, 0x60
    b"\xec",  # in al, dx
    b"\xe6\x80",  # out 0x80, al
    b"\xef",  # out dx, eax
    b"\x6c",  # insb
    b"\xf3\x6d",  # rep insd
    b"\x66\x6f",  # outsw
    b"\xf3\x6e",  # rep outsb
    b"\x0f\x31",  # rdtsc
    b"\x0f\x01\xf9",  # rdtscp
    b"\x0f\xc7\x0e",  # cmpxchg8b [esi]
    b"\xf0\x0f\xc7\x0f",  # lock cmpxchg8b [edi]
    b"\x0f\x22\xd8",  # mov cr3, eax
    b"\x0f\x20\xc0",  # mov eax, cr0
    b"\x0f\x01\x38",  # invlpg [eax]
    b"\xfb",  # sti
    b"\x9d",  # popf
    b"\x66\x9d",  # popfw
    b"\xcf",  # iret
    b"\xcd\x80",  # int 0x80
    b"\xcc",  # int3
    b"\xce",  # into
    b"\xf1",  # int1
    b"\x0f\x34",  # sysenter
    b"\x0f\x35",  # sysexit
    b"\xea\x00\x10\x00\x00\x08\x00",  # ljmp 8:0x1000
    b"\x9a\x00\x10\x00\x00\x08\x00",  # lcall 8:0x1000
    b"\xeb\xfe",  # jmp $
    b"\x74\x02",  # je
    b"\x0f\x85\x00\x00\x00\x00",  # jne rel32
    b"\xe3\x00",  # jecxz
    b"\xe8\x00\x00\x00\x00",  # call
    b"\xff\xd0",  # call eax
    b"\xc3",  # ret
    b"\xcb",  # retf
    b"\xe2\xfe",  # loop
    b"\xf4",  # hlt
    b"\x17",  # pop ss
    b"\x8e\xd0",  # mov ss, ax
    b"\x8e\xd8",  # mov ds, ax
    b"\x89\x03",  # mov [ebx], eax
    b"\x01\xc8",  # add eax, ecx
    b"\x90",  # nop
    b"\x2e",  # a lone prefix
    b"\x66",
    b"\xf3",
    b"\x0f\x0b",  # ud2
    b"\x0f\xff",  # ud0 (cut short at the end of a block)
    b"\x0f\x0a",  # undecodable
    b"\xd6",  # salc (or undecodable)
)


def _compare(addr: int, code: bytes, code32: bool) -> Block:
    buffer = ctypes.create_string_buffer(code, len(code))
    block = _DECODER.decode_at(addr, ctypes.addressof(buffer), len(code), 0x1234, code32)
    assert block == _REFERENCE.decode_code(addr, code, 0x1234, code32)
    return block


@settings(max_examples=400, deadline=None)
@given(
    pieces=st.lists(st.sampled_from(_PIECES), min_size=1, max_size=24),
    addr=st.integers(0, 0xFFFFFFFF),
    code32=st.booleans(),
)
def test_built_code_decodes_as_the_reference_decodes_it(
    pieces: list[bytes], addr: int, code32: bool
) -> None:
    _compare(addr, b"".join(pieces), code32)


@settings(max_examples=400, deadline=None)
@given(code=st.binary(min_size=1, max_size=96), code32=st.booleans())
def test_random_bytes_decode_as_the_reference_decodes_them(code: bytes, code32: bool) -> None:
    _compare(0x7000, code, code32)


def _program_code(path: Path) -> list[bytes]:
    with path.open("rb") as stream:
        elf = ELFFile(stream)
        return [s.data() for s in elf.iter_segments() if s["p_flags"] & P_FLAGS.PF_X]


@pytest.mark.parametrize("guest", ["minikernel", "paging", "usermode", "sysenter", "apic"])
def test_a_guests_program_decodes_as_the_reference_decodes_it_at_any_offset(
    guest: str,
) -> None:
    decoded = 0
    for code in _program_code(GUESTS / f"{guest}.elf"):
        for start in range(0, len(code), 5):
            for code32 in (True, False):
                block = _compare(0x100000 + start, code[start : start + 64], code32)
                decoded += len(block.offsets)
    assert decoded > 1000


@pytest.mark.parametrize("guest", ["paging", "usermode", "sysenter", "apic", "timer"])
def test_every_block_a_guest_runs_decodes_as_the_reference_decodes_it(
    guest: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the native counter, code read from guest memory (page tables, CS base
    and code size as the run has them)."""
    seen: list[Block] = []
    differ: list[tuple[Block, Block]] = []
    decode_at = BlockDecoder.decode_at

    def checked(
        self: BlockDecoder, addr: int, code: int, size: int, cs_base: int, code32: bool
    ) -> Block:
        block = decode_at(self, addr, code, size, cs_base, code32)
        data = ctypes.string_at(code, size)
        reference = _REFERENCE.decode_code(addr, data, cs_base, code32)
        if block != reference:
            differ.append((block, reference))
        seen.append(block)
        return block

    monkeypatch.setattr(BlockDecoder, "decode_at", checked)
    machine, _out = make_machine(guest)
    try:
        stop = machine.run(machine.icount + 50_000_000)
    finally:
        machine.close()
    assert stop.reason is StopReason.EXIT
    assert differ == []
    assert len(seen) > 20


def test_a_missing_library_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blocks, "capstone_library", lambda: "/nonexistent/libcapstone.so")
    with pytest.raises(MachineError, match="cannot decode code with capstone's library: "):
        BlockDecoder()


def test_a_library_that_is_not_capstones_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    libc = ctypes.util.find_library("c")
    assert libc is not None
    monkeypatch.setattr(blocks, "capstone_library", lambda: libc)
    with pytest.raises(MachineError, match="is not capstone's library"):
        BlockDecoder()


def test_the_first_instruction_is_its_length_and_mnemonic() -> None:
    assert _DECODER.first_instruction(b"\x89\x03\x90", True) == (2, "mov")
    assert _DECODER.first_instruction(b"\x66\x89\x07", False) == (3, "mov")
    assert _DECODER.first_instruction(b"\xf3\xa5", True) == (2, "rep movsd")
    assert _DECODER.first_instruction(b"\x89", True) is None  # cut short


def test_the_library_is_the_one_capstones_binding_loads() -> None:
    import capstone  # noqa: PLC0415 - the binding, to compare with

    found = blocks.capstone_library()
    assert Path(found).resolve() == Path(capstone._cs._name).resolve()

"""The reference block decoder: the test oracle for machine/blocks.py's `BlockDecoder`.

The same rules as _decode.c (see machine/blocks.py), written over capstone's Python
binding one instruction at a time: slow, simple, and what the native decoder was
before it moved to C.  The tests hold the two to the same `Block` for real guests' code
and for random bytes; `ReferenceCounter` uses its helpers.  Not part of the runtime
package.
"""

from __future__ import annotations

import capstone

from rdebug.machine.blocks import Block

_IO_MNEMONICS = frozenset({"in", "out", "insb", "insw", "insd", "outsb", "outsw", "outsd"})
_SPECIAL_MNEMONICS = _IO_MNEMONICS | {"rdtsc", "rdtscp"}
_PREFIXES = frozenset({0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65, 0x66, 0x67, 0xF0, 0xF2, 0xF3})
#: A code hook at these (and at the block's start) makes unicorn store the flags
#: operation first (issue 14; _decode.c says why).
_FLAG_READERS = frozenset({"cmpxchg8b"})


#: Instructions that can set EFLAGS.IF (`Block.sets_if`).
_IF_SETTERS = frozenset(
    {
        "sti",
        "popf",
        "popfd",
        "popfw",
        "iret",
        "iretd",
        "iretw",
        "ljmp",
        "lcall",
        "int",
        "int1",
        "int3",
        "into",
        "sysenter",
        "sysexit",
    }
)


def opens_shadow(insn: bytes) -> bool:
    """True for STI, POP SS and MOV SS,r/m: the next instruction runs before any IRQ."""
    i = 0
    while i < len(insn) and insn[i] in _PREFIXES:
        i += 1
    if i >= len(insn):
        return False
    op = insn[i]
    if op in (0xFB, 0x17):
        return True
    return op == 0x8E and i + 1 < len(insn) and (insn[i + 1] >> 3) & 7 == 2


#: Instructions after which QEMU always ends a translation block: control transfers.
_BRANCH_MNEMONICS = frozenset(
    {
        "call",
        "lcall",
        "ret",
        "retf",
        "iret",
        "iretd",
        "iretw",
        "int",
        "int3",
        "into",
        "int1",
        "loop",
        "loope",
        "loopne",
        "hlt",
        "sysenter",
        "sysexit",
        "ljmp",
    }
)


def transfers_control(mnemonic: str) -> bool:
    """Jumps (all `j*`), calls, returns, INT/IRET, LOOP*, HLT: the branch boundaries."""
    last = mnemonic.rsplit(maxsplit=1)[-1] if mnemonic else ""
    return last.startswith("j") or last in _BRANCH_MNEMONICS


def is_hlt(insn: bytes) -> bool:
    i = 0
    while i < len(insn) and insn[i] in _PREFIXES:
        i += 1
    return i < len(insn) and insn[i] == 0xF4


class ReferenceBlockDecoder:
    """Decodes translation blocks with capstone's Python binding."""

    def __init__(self) -> None:
        self._cs32 = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_32)
        self._cs16 = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_16)

    def decode_code(self, addr: int, code: bytes, cs_base: int, code32: bool) -> Block:
        """The block whose `code` was read at linear `addr` under a CS of that base and
        default size (the native counter reads all three in one call)."""
        size = len(code)
        cs = self._cs32 if code32 else self._cs16
        offsets: list[int] = []
        after_io: list[int] = []
        specials: list[int] = []
        last_mnemonic = ""
        mmu = False
        sets_if = False
        flag_syncs: list[int] = []
        pos = 0
        for _addr, length, mnemonic, ops in cs.disasm_lite(code, addr):
            name = mnemonic.rsplit(maxsplit=1)[-1]
            if name in _FLAG_READERS and pos > 0:
                if not flag_syncs:
                    flag_syncs.append(addr)
                flag_syncs.append(addr + pos)
            if name == "invlpg" or (name == "mov" and ops.startswith("cr")):
                mmu = True
            if name in _SPECIAL_MNEMONICS:
                specials.append(len(offsets))
            if name in _IF_SETTERS:
                sets_if = True
            offsets.append(pos)
            last_mnemonic = mnemonic
            pos += length
            if name in _IO_MNEMONICS and pos < size:
                after_io.append(addr + pos)
        if pos < size:
            # capstone stopped at bytes it cannot decode: the engine raises #UD there,
            # so that instruction starts (and faults) as the block's last.
            offsets.append(pos)
            last_mnemonic = ""
        # the last instruction (the rest of the block: its end is the block's)
        last = code[offsets[-1] :] if offsets else b""
        branch = transfers_control(last_mnemonic)
        return Block(
            addr=addr,
            offsets=tuple(offsets),
            size=size,
            shadow=opens_shadow(last),
            halts=is_hlt(last),
            branch=branch,
            after_io=tuple(after_io),
            cs_base=cs_base,
            specials=tuple(specials),
            mmu=mmu,
            flag_syncs=tuple(flag_syncs),
            sets_if=sets_if,
        )

"""Block decoding: what the instruction counters need to know of a translation block.

Unicorn translates guest code in blocks and tells a block hook only a block's address
and size; `BlockDecoder` decodes the block's instructions with capstone (in the CPU's
current code size) into a `Block`: where each instruction starts, whether the block
ends in a control transfer (a *branch boundary*), an STI/MOV SS shadow or HLT, and
where its I/O and RDTSC instructions are.  Knows nothing of the engine's hooks.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import capstone

from rdebug.errors import MachineError
from rdebug.machine.cpu import Cpu


@dataclass(frozen=True, slots=True)
class Block:
    """What the counters need to know of one translation block."""

    addr: int
    #: Offset of each instruction from `addr`.
    offsets: tuple[int, ...]
    size: int
    #: The last instruction opens an STI / MOV SS / POP SS interrupt shadow.
    shadow: bool
    #: The last instruction is HLT.
    halts: bool
    #: The last instruction transfers control (see `transfers_control`).
    branch: bool
    #: Addresses of instructions that follow an I/O instruction inside the block.
    after_io: tuple[int, ...]
    #: CS base the block was decoded under (linear address = cs_base + eip).
    cs_base: int
    #: Indexes of the block's I/O and RDTSC instructions, in order (their hooks do not
    #: see a synced EIP: the counter tells them apart by their order in the block).
    specials: tuple[int, ...]
    #: Writes CR0/CR3/CR4 or runs INVLPG: the mappings of linear addresses may change.
    mmu: bool = False
    #: Where the engine must sync its lazily computed flags (see `_FLAG_READERS`): the
    #: block's first instruction and each flag-reading instruction after it, or nothing.
    flag_syncs: tuple[int, ...] = ()
    #: Holds an instruction that can set EFLAGS.IF (STI, POPF, IRET, a far transfer or
    #: INT n that may switch tasks, SYSENTER/SYSEXIT): while an IRQ waits for IF, the
    #: counter reads EFLAGS again only after such a block (see _icount.c).
    sets_if: bool = False

    @property
    def hooked(self) -> tuple[int, ...]:
        """Addresses the counter keeps a code hook on (`after_io` and `flag_syncs`)."""
        return (*self.after_io, *self.flag_syncs)

    def index(self, linear: int) -> int:
        """How many of the block's instructions lie before `linear` (inside or at end)."""
        return bisect.bisect_left(self.offsets, linear - self.addr)


_IO_MNEMONICS = frozenset({"in", "out", "insb", "insw", "insd", "outsb", "outsw", "outsd"})
_SPECIAL_MNEMONICS = _IO_MNEMONICS | {"rdtsc", "rdtscp"}
_PREFIXES = frozenset({0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65, 0x66, 0x67, 0xF0, 0xF2, 0xF3})
#: Instructions whose helper in unicorn 2.1.4 computes EFLAGS from the flags operation
#: stored in the CPU state without the translator storing the current one first.  Inside
#: a block, after an instruction that set flags, the stored operation is stale: after a
#: CMPXCHG8B that had run before (a retry loop), the stale operation says "the flags are
#: CC_SRC" while CC_SRC holds the last ADD's operand, so the flags become that operand --
#: a kernel pointer -- IF, DF and IOPL included, and every later engine stop writes them
#: into EFLAGS (Linux then takes interrupts with them off and crashes; issue 14).  A code
#: hook at the instruction makes unicorn store the current operation first (and one at
#: the block's first instruction resets its "stored already" shortcut, which starts
#: uninitialised).  The flags other than ZF it computes there can still differ from a
#: CPU's (docs/machine.md).
_FLAG_READERS = frozenset({"cmpxchg8b"})


#: Instructions that can set EFLAGS.IF (`Block.sets_if`): IF goes from 0 to 1 by no
#: other means (an interrupt or exception gate clears it or keeps it; one through a task
#: gate loads the new task's EFLAGS, and so may a far JMP or CALL).
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


class BlockDecoder:
    """Decodes translation blocks with capstone, in the CPU's current code size."""

    def __init__(self, cpu: Cpu) -> None:
        self._cpu = cpu
        self._cs32 = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_32)
        self._cs16 = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_16)

    def decode(self, addr: int, size: int) -> Block:
        """The block at linear `addr`, read through the CPU's page tables."""
        code = self._cpu.read_linear(addr, size)
        if code is None:
            raise MachineError(f"cannot read the code of the block at {addr:#x}")
        return self.decode_code(addr, code, self._cpu.cs_base(), self._cpu.code_is_32bit())

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

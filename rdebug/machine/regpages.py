"""Register pages: device registers mapped into the guest's physical memory (MMIO).

A device's register page is a host page mapped read-only at its physical address:
a guest read is a plain RAM read, and a store comes to a UC_HOOK_MEM_WRITE_PROT hook
(which costs nothing to other memory accesses, where any UC_HOOK_MEM_* hook would send
every guest load or store through unicorn's slow path).  A device may put a C hook in
front of the Python one for its most frequent stores (`Device.native_store_hook`: the
local APIC's EOIs).  A register whose value moves
with time is published into its page by the instruction counter (`Device.countdowns`,
machine/countdown.py): no read hook, ever.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from unicorn import UC_HOOK_MEM_WRITE_PROT, Uc
from unicorn.unicorn_py3.unicorn import uccallback

from rdebug.machine.blocks import BlockDecoder
from rdebug.machine.counter import Counter
from rdebug.machine.cpu import Cpu
from rdebug.machine.devices.base import Device
from rdebug.machine.vtlb import hook_add_native

#: Stores to a register page after which the run loop stops exactly (see _on_store).
_PLAIN_STORES = frozenset({"mov", "movd", "movnti"})
#: Code read from EIP to find the store (a block's instructions up to it).
_SEARCH_BYTES = 256


#: A store hook as the engine calls it (engine, access, address, size, value; no user data).
_STORE_FN = ctypes.CFUNCTYPE(
    ctypes.c_bool, ctypes.c_void_p, ctypes.c_int, ctypes.c_uint64, ctypes.c_int, ctypes.c_int64
)

#: Blocks whose stores are kept decoded (`_find_store`); forgotten all at once past it.
_PLANS_KEPT = 1024


@dataclass(frozen=True, slots=True)
class _Store:
    """A plain MOV to memory in a block, and how its address is formed."""

    offset: int  # of the instruction, from the block's start
    end: int  # of the instruction's last byte + 1
    base: tuple[str, int] | None  # (register, mask: 16-bit registers address too)
    index: tuple[str, int] | None
    scale: int
    disp: int
    segment: str


@dataclass(frozen=True, slots=True)
class _BlockPlan:
    """A block's code from a search's start, and its plain stores."""

    code: bytes
    stores: tuple[_Store, ...]


def _address_register(name: str | None) -> tuple[str, int] | None:
    """A register as `general_registers` names it, and the mask of `name`'s width."""
    if name is None:
        return None
    if name.startswith("e"):
        return name, 0xFFFFFFFF
    return "e" + name, 0xFFFF


class RegisterPages:
    """The register pages of `devices`, mapped on `cpu` for its lifetime.

    `emulating()` says whether the engine is running (a store made by the debugger
    between runs settles at once); `touched()` is called before each store reaches a
    device (the machine's run may have to stop where it would not have).
    """

    def __init__(
        self,
        cpu: Cpu,
        counter: Counter,
        devices: Sequence[Device],
        emulating: Callable[[], bool],
        touched: Callable[[], None] = lambda: None,
    ) -> None:
        self._cpu = cpu
        self._touched = touched
        self._counter = counter
        self._devices = devices
        self._emulating = emulating
        #: a device's store hook is running (its own stop request is redundant)
        self.in_store = False
        #: a device asked for a stop during the store hook running now
        self.stop_wanted = False
        #: the storing instruction's icount, once the store hook running now asked for it
        #: (the machine's now_ns: a device may ask several times, and nothing runs between)
        self.store_icount: int | None = None
        #: Register-page stores not yet settled, and (store eip, next eip) to skip to.
        self._unsettled: set[Device] = set()
        self._skip: tuple[int, int] | None = None
        #: capstone's binding with operand details, by 32-bit code (`_decode_block`)
        self._detailed: dict[bool, Any] = {}
        #: decoded blocks by (linear address, 32-bit code)
        self._plans: dict[tuple[int, bool], _BlockPlan] = {}
        self._decoder = BlockDecoder()
        #: the Python store hooks behind devices' C ones (kept alive with this object)
        self._fallbacks: list[object] = []
        for device in devices:
            for base, page in device.register_pages():
                cpu.map_register_page(base, page)
                self._hook(device, base)

    def _hook(self, device: Device, base: int) -> None:
        """The store hook of the page at `base`: the device's C one (its frequent stores)
        in front of `_on_store`, or `_on_store` alone."""
        uc = self._cpu.uc

        def on_store(uc: Uc, access: int, addr: int, size: int, value: int) -> bool:
            return self._on_store(uc, access, addr, size, value, device)

        fallback = uccallback(uc, _STORE_FN)(on_store)  # its exceptions stop the engine
        native = device.native_store_hook(base, ctypes.cast(fallback, ctypes.c_void_p).value or 0)
        if native is None:
            uc.hook_add(UC_HOOK_MEM_WRITE_PROT, self._on_store, device, base, base + 0xFFF)
            return
        self._fallbacks.append(fallback)
        fn, user = native
        hook_add_native(uc, UC_HOOK_MEM_WRITE_PROT, fn, user, base, base + 0xFFF)

    def _on_store(
        self, uc: Uc, access: int, addr: int, size: int, value: int, device: Device
    ) -> bool:
        """A guest store into a register page.

        Unicorn performs the store after this hook.  After a plain MOV the engine is
        stopped right behind it, where the device settles its page; the stop leaves EIP
        where the hook saw it (resuming would run from there again), so `settle` moves
        EIP to the next instruction.  Other instructions (string stores,
        read-modify-write) cannot be cut there: the page settles at the next block
        boundary.

        EIP is usually exact here, but not always: unicorn restores it from the host
        return address, and when that fails (seen in Linux, in a LAPIC timer interrupt
        taken while the kernel patches its code) EIP is still the start of the
        translation block.  Resuming there ran the block's first instructions twice (a
        `lea eax, [ecx+eax-0x3000]` before the store: a page fault at a bad address).
        So when EIP is a block's start, the store is looked for from there on
        (`_find_store`): the MOV whose destination is the stored address, with the
        registers as they are now (elsewhere EIP is exact: unicorn restored it).  The
        search is made only when something needs the store: the device asking for the
        time (its icount), or a stop after it; an EOI that settles at once needs neither.
        """
        value &= (1 << (8 * size)) - 1
        self._touched()
        # Only at a block's first instruction may EIP be stale (see above).
        search = self._emulating() and self._counter.at_block_start()
        found: list[tuple[int, int] | None] = []

        def store_found() -> tuple[int, int] | None:
            if not found:  # (the device leaves registers, code and page tables alone)
                found.append(self._find_store(addr))
            return found[0]

        def store_pc() -> int | None:
            store = store_found()
            return None if store is None else store[0]

        self.in_store = True
        self.stop_wanted = False
        self.store_icount = None
        if search:
            self._counter.executing(store_pc)  # the device's now_ns: the store's icount
        try:
            device.mmio_write(addr, size, value)
        finally:
            self.in_store = False
            self._counter.executing(None)
        if (
            self._emulating()
            and not self.stop_wanted
            and device.settles_before_store(addr, size, value)
        ):
            # Nothing for the run loop to do after this store (e.g. an EOI that lets no
            # other interrupt in): settle now, no stop (one per interrupt otherwise).
            device.mmio_settle()
            return True
        self._unsettled.add(device)
        if not self._emulating():
            return True
        store = store_found() if search else self._plain_store_at_eip()
        if store is None:
            self._counter.request_stop_soon()
        else:
            pc, next_eip = store
            # settle finds EIP where the hook saw it (the store, or a stale block start)
            self._skip = (self._cpu.eip, next_eip)
            self._counter.request_stop_after_current(pc)
        return True

    def _plain_store_at_eip(self) -> tuple[int, int] | None:
        """(linear address, next EIP) of the instruction at EIP if it is a plain MOV."""
        cpu = self._cpu
        cs_base, wide = cpu.code_segment()
        pc = (cs_base + cpu.eip) & 0xFFFFFFFF
        code = cpu.read_linear(pc, 16)
        if code is None:
            return None
        first = self._decoder.first_instruction(code, wide)
        if first is None or first[1] not in _PLAIN_STORES:
            return None
        return pc, (cpu.eip + first[0]) & (0xFFFFFFFF if wide else 0xFFFF)

    def _find_store(self, paddr: int) -> tuple[int, int] | None:
        """(linear address, next EIP) of the plain MOV storing to physical `paddr` now:
        the instruction at EIP, or (EIP stale at its block's start) a later one of the
        same block; None if there is none (another kind of store).

        The block's plain stores are decoded once per code address and kept while the
        code there stays the same (an interrupt handler's EOI store comes here on every
        interrupt): only their addresses are worked out again, from the registers."""
        cpu = self._cpu
        cs_base, wide = cpu.code_segment()
        mask = 0xFFFFFFFF if wide else 0xFFFF
        eip = cpu.eip
        start = (cs_base + eip) & 0xFFFFFFFF
        plan = self._plans.get((start, wide))
        if plan is not None and cpu.read_linear(start, len(plan.code)) != plan.code:
            plan = None
        if plan is None:
            code = cpu.read_linear(start, _SEARCH_BYTES)
            if code is None:
                return None
            plan = self._decode_block(code, wide)
            if len(self._plans) >= _PLANS_KEPT:
                self._plans.clear()
            self._plans[(start, wide)] = plan
        regs = cpu.general_registers()
        for store in plan.stores:
            linear = self._destination(store, regs, wide)
            if linear is not None and cpu.linear_to_physical(linear) == paddr:
                return (start + store.offset) & 0xFFFFFFFF, (eip + store.end) & mask
        return None

    def _decode_block(self, code: bytes, wide: bool) -> _BlockPlan:
        """The plain stores to memory in `code` up to the end of its block."""
        # capstone's binding, for the operands: only here, and only for a store found
        # at a stale EIP (its import loads every architecture capstone has, ~30 ms)
        import capstone  # noqa: PLC0415
        from capstone import x86  # noqa: PLC0415

        decoder = self._detailed.get(wide)
        if decoder is None:
            decoder = capstone.Cs(
                capstone.CS_ARCH_X86, capstone.CS_MODE_32 if wide else capstone.CS_MODE_16
            )
            decoder.detail = True
            self._detailed[wide] = decoder
        block_ends = (  # instruction groups that end a translation block
            capstone.CS_GRP_JUMP,
            capstone.CS_GRP_CALL,
            capstone.CS_GRP_RET,
            capstone.CS_GRP_INT,
            capstone.CS_GRP_IRET,
        )
        stores: list[_Store] = []
        offset = 0
        while insn := next(decoder.disasm(code[offset:], offset, 1), None):
            offset += insn.size
            if (
                insn.mnemonic in _PLAIN_STORES
                and insn.operands
                and insn.operands[0].type == x86.X86_OP_MEM
            ):
                mem = insn.operands[0].mem
                base = insn.reg_name(mem.base) if mem.base else None
                if mem.segment:
                    segment = insn.reg_name(mem.segment)
                else:
                    segment = "ss" if base in ("esp", "ebp", "sp", "bp") else "ds"
                stores.append(
                    _Store(
                        insn.address,
                        offset,
                        _address_register(base),
                        _address_register(insn.reg_name(mem.index) if mem.index else None),
                        mem.scale,
                        mem.disp,
                        segment,
                    )
                )
            if any(insn.group(g) for g in block_ends):
                break  # the block ends here
        return _BlockPlan(code[:offset], tuple(stores))

    def _destination(self, store: _Store, regs: dict[str, int], wide: bool) -> int | None:
        """The linear address `store` writes to, given the registers `regs`."""
        offset = store.disp
        if store.base is not None:
            offset += regs[store.base[0]] & store.base[1]
        if store.index is not None:
            offset += (regs[store.index[0]] & store.index[1]) * store.scale
        offset &= 0xFFFFFFFF if wide else 0xFFFF
        base = self._segment_base(regs[store.segment])
        return None if base is None else (base + offset) & 0xFFFFFFFF

    def _segment_base(self, selector: int) -> int | None:
        cpu = self._cpu
        if cpu.real_mode():
            return selector << 4
        desc = cpu.segment_descriptor(selector)
        return None if desc is None else desc[0]

    def settle(self) -> None:
        """After the engine stopped: step past a register store, settle the pages."""
        if self._skip is not None:
            store_eip, next_eip = self._skip
            self._skip = None
            if self._cpu.eip == store_eip:
                self._cpu.eip = next_eip
        for device in self._unsettled:
            device.mmio_settle()
        self._unsettled.clear()

    def forget(self) -> None:
        """Drop unsettled stores (the machine is returning to a saved state)."""
        self._unsettled.clear()
        self._skip = None

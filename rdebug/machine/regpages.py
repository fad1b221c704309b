"""Register pages: device registers mapped into the guest's physical memory (MMIO).

A device's register page is a host page mapped read-only at its physical address:
a guest read is a plain RAM read, and a store comes to a UC_HOOK_MEM_WRITE_PROT hook
(which costs nothing to other memory accesses, where any UC_HOOK_MEM_* hook would send
every guest load or store through unicorn's slow path).  Registers whose value moves
with time (`Device.hot_registers`) are computed at the exact reading instruction while
they do: the page walk refuses reads of their page (vtlb.py), the run loop publishes
them and runs that one instruction with the reads let through; a guest that reads the
page very often gets a read hook on them for a while instead (`sync_hot_registers`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import capstone
from unicorn import UC_HOOK_MEM_READ, UC_HOOK_MEM_WRITE_PROT, Uc

from rdebug.errors import MachineError
from rdebug.machine.counter import Counter
from rdebug.machine.cpu import Cpu
from rdebug.machine.devices.base import Device

#: Stores to a register page after which the run loop stops exactly (see _on_store).
_PLAIN_STORES = frozenset({"mov", "movd", "movnti"})
#: More refused reads of the hot page than this in BURST_WINDOW instructions...
BURST_READS = 32
BURST_WINDOW = 10_000_000
#: ...and a read hook serves the hot registers for this many instructions.
HOOK_SPAN = 1_000_000_000


class RegisterPages:
    """The register pages of `devices`, mapped on `cpu` for its lifetime.

    `emulating()` says whether the engine is running (a store made by the debugger
    between runs settles at once).
    """

    def __init__(
        self,
        cpu: Cpu,
        counter: Counter,
        devices: Sequence[Device],
        emulating: Callable[[], bool],
    ) -> None:
        self._cpu = cpu
        self._counter = counter
        self._devices = devices
        self._emulating = emulating
        #: a device's store hook is running (its own stop request is redundant)
        self.in_store = False
        #: a device asked for a stop during the store hook running now
        self.stop_wanted = False
        #: Register-page stores not yet settled, and (store eip, next eip) to skip to.
        self._unsettled: set[Device] = set()
        self._skip: tuple[int, int] | None = None
        self._hot: list[tuple[Device, range]] = []
        self._hot_hooks: dict[tuple[int, int], int] = {}
        #: (icount, device reads) at the start of the current window of BURST_WINDOW
        self._window = (0, 0)
        #: the read hook serves the hot registers until this icount
        self._hook_until: int | None = None
        self._cs32 = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_32)
        self._cs16 = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_16)
        for device in devices:
            for base, page in device.register_pages():
                cpu.map_register_page(base, page)
                cpu.uc.hook_add(UC_HOOK_MEM_WRITE_PROT, self._on_store, device, base, base + 0xFFF)

    def _on_store(
        self, uc: Uc, access: int, addr: int, size: int, value: int, device: Device
    ) -> bool:
        """A guest store into a register page (EIP is exact here, unlike in MMIO hooks).

        Unicorn performs the store after this hook.  After a plain MOV the engine is
        stopped right behind it, where the device settles its page; the stop leaves EIP
        at the store (resuming would store again), so `settle` moves EIP to the next
        instruction.  Other instructions (string stores, read-modify-write) cannot be
        cut there: the page settles at the next block boundary.
        """
        value &= (1 << (8 * size)) - 1
        self.in_store = True
        self.stop_wanted = False
        try:
            device.mmio_write(addr, size, value)
        finally:
            self.in_store = False
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
        next_eip = self._after_plain_store()
        if next_eip is None:
            self._counter.request_stop_soon()
        else:
            self._skip = (self._cpu.eip, next_eip)
            self._counter.request_stop_after_current()
        return True

    def _after_plain_store(self) -> int | None:
        """EIP of the instruction after the current one if it is a plain MOV store."""
        cpu = self._cpu
        code = cpu.read_linear(cpu.linear_pc(), 16)
        if code is None:
            return None
        wide = cpu.code_is_32bit()
        cs = self._cs32 if wide else self._cs16
        for _addr, length, mnemonic, _ops in cs.disasm_lite(code, 0, 1):
            if mnemonic in _PLAIN_STORES:
                return (cpu.eip + int(length)) & (0xFFFFFFFF if wide else 0xFFFF)
        return None

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

    def sync_hot_registers(self) -> None:
        """Compute the registers that move with time (only while they do) at the exact
        instruction that reads them, in one of two ways (the values are the same):

        - by default, the page walk refuses reads of their page: the engine stops before
          each reading instruction, which runs alone once they are published
          (`refresh_hot_registers`); nothing else slows down, but each read of the page
          (any register of it) costs two engine stops;
        - when the guest reads that page often (more than `BURST_READS` times in
          `BURST_WINDOW` instructions; xv6 reads the LAPIC ID at every lock), a read hook
          on those registers for the next `HOOK_SPAN` instructions: no stop, but every
          load and store translated meanwhile takes unicorn's slow path.
        """
        hot = [(device, r) for device in self._devices for r in device.hot_registers()]
        pages = {r.start & ~0xFFF for _device, r in hot}
        if len(pages) > 1:
            raise MachineError(f"registers computed on read in {len(pages)} pages: one at most")
        if not hot and self._hot:
            # They stopped moving: the page keeps their (now constant) value for reads.
            self._refresh()
        self._hot = hot
        icount = self._counter.icount
        reads = self._cpu.vtlb.device_reads
        if self._hook_until is not None and icount >= self._hook_until:
            self._hook_until = None
            self._window = (icount, reads)
        elif self._hook_until is None:
            start, first = self._window
            if icount < start or icount - start >= BURST_WINDOW:
                self._window = (icount, reads)
            elif reads - first > BURST_READS and hot:
                self._hook_until = icount + HOOK_SPAN
        hooked = self._hook_until is not None
        self._cpu.vtlb.set_device_page(pages.pop() if pages and not hooked else None)
        self._sync_hooks(hot if hooked else [])

    def _sync_hooks(self, hot: list[tuple[Device, range]]) -> None:
        wanted = {(r.start, r.stop - 1): device for device, r in hot}
        uc = self._cpu.uc
        changed = False
        for key in [k for k in self._hot_hooks if k not in wanted]:
            uc.hook_del(self._hot_hooks.pop(key))
            changed = True
        for key, device in wanted.items():
            if key not in self._hot_hooks:
                self._hot_hooks[key] = uc.hook_add(
                    UC_HOOK_MEM_READ, self._on_hot_read, device, key[0], key[1]
                )
                changed = True
        if changed:
            # Code translated before a hook was added does not call it; code translated
            # while one existed keeps the slow memory path: translate again.
            self._counter.invalidate()

    def _on_hot_read(
        self, uc: Uc, access: int, addr: int, size: int, value: int, device: Device
    ) -> None:
        device.mmio_refresh(addr, size)  # before the load: it reads the updated page

    @property
    def hooked(self) -> bool:
        """The hot registers are served by a read hook now (see `sync_hot_registers`)."""
        return bool(self._hot_hooks)

    def refresh_hot_registers(self) -> None:
        """Before an instruction that reads the hot page runs: its registers, as now."""
        self._refresh()

    def _refresh(self) -> None:
        for device, r in self._hot:
            device.mmio_refresh(r.start, r.stop - r.start)

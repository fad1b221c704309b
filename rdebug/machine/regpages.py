"""Register pages: device registers mapped into the guest's physical memory (MMIO).

A device's register page is a host page mapped read-only at its physical address:
a guest read is a plain RAM read, and a store comes to a UC_HOOK_MEM_WRITE_PROT hook
(which costs nothing to other memory accesses, where any UC_HOOK_MEM_* hook would send
every guest load or store through unicorn's slow path).  A register whose value moves
with time is published into its page by the instruction counter (`Device.countdowns`,
machine/countdown.py): no read hook, ever.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import capstone
from unicorn import UC_HOOK_MEM_WRITE_PROT, Uc

from rdebug.machine.counter import Counter
from rdebug.machine.cpu import Cpu
from rdebug.machine.devices.base import Device

#: Stores to a register page after which the run loop stops exactly (see _on_store).
_PLAIN_STORES = frozenset({"mov", "movd", "movnti"})


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

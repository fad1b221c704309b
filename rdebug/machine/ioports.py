"""Port I/O: the guest's IN and OUT, through the I/O permission check to a device.

Unicorn does not make the protected-mode permission check: without it ring 3 could
drive any device.  Intel SDM vol. 1, "I/O Permission Bit Map": CPL <= IOPL allows every
port; otherwise every bit of the TSS I/O bitmap that covers the access must be clear
(the bitmap's offset is the 16-bit field at TSS+0x66; bits beyond the TSS limit count as
set).  A refused access does nothing; the run loop turns it into a #GP(0) at the
instruction (`PortIo.fault_eip`).  The hooks run mid-block with the counter positioned
on the accessing instruction, so a device reads the exact virtual time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from unicorn import UC_HOOK_INSN, Uc
from unicorn import x86_const as X

from rdebug.machine.counter import Counter
from rdebug.machine.cpu import CR0_PE, Cpu
from rdebug.machine.devices.base import Device
from rdebug.machine.probes import PortAccess

log = logging.getLogger(__name__)


class PortIo:
    """The IN/OUT hooks of one CPU, dispatching to the devices of a port map.

    `after_access` runs after every access a device answered (an IRQ it raised may
    need the run loop at once).
    """

    def __init__(
        self,
        cpu: Cpu,
        counter: Counter,
        ports: Mapping[int, Device],
        after_access: Callable[[], None],
    ) -> None:
        self._cpu = cpu
        self._counter = counter
        self._ports = ports
        self._after_access = after_access
        #: EIP of an I/O instruction that ring 3 was not allowed to execute (#GP pending)
        self.fault_eip: int | None = None
        #: called with every access the guest made (answered or not), when set (machine/probes.py)
        self.probe: Callable[[PortAccess], None] | None = None
        cpu.uc.hook_add(UC_HOOK_INSN, self._on_in, None, 1, 0, X.UC_X86_INS_IN)
        cpu.uc.hook_add(UC_HOOK_INSN, self._on_out, None, 1, 0, X.UC_X86_INS_OUT)

    def _refuse(self, linear: int) -> None:
        """Ring 3 may not do this I/O: stop after it (the run loop raises #GP(0))."""
        self.fault_eip = (linear - self._cpu.cs_base()) & 0xFFFFFFFF
        self._counter.request_stop_after_current()

    def _probed(self, linear: int, port: int, size: int, out: bool, value: int) -> None:
        assert self.probe is not None
        self.probe(PortAccess(self._counter.current_icount(), linear, port, size, out, value))

    def _on_in(self, uc: Uc, port: int, size: int, _user: object) -> int:
        linear = self._counter.begin_special()
        try:
            if not io_allowed(self._cpu, port, size):
                self._refuse(linear)
                return self._cpu.read("eax") & ((1 << (8 * size)) - 1)  # EAX unchanged
            device = self._ports.get(port)
            if device is None:
                log.debug("IN %#x: no device", port)
                value = (1 << (8 * size)) - 1
            else:
                value = device.io_read(port, size) & ((1 << (8 * size)) - 1)
            if self.probe is not None:
                self._probed(linear, port, size, False, value)
            if device is not None:
                self._after_access()
            return value
        finally:
            self._counter.end_special()

    def _on_out(self, uc: Uc, port: int, size: int, value: int, _user: object) -> None:
        linear = self._counter.begin_special()
        try:
            if not io_allowed(self._cpu, port, size):
                self._refuse(linear)
                return
            if self.probe is not None:
                self._probed(linear, port, size, True, value & ((1 << (8 * size)) - 1))
            device = self._ports.get(port)
            if device is None:
                log.debug("OUT %#x <- %#x: no device", port, value)
                return
            device.io_write(port, size, value)
            self._after_access()
        finally:
            self._counter.end_special()


def io_allowed(cpu: Cpu, port: int, size: int) -> bool:
    """Whether an access of `size` bytes to `port` is allowed at the current CPL."""
    cpl = cpu.read("cs") & 3  # (one read: an I/O-heavy guest asks at every access)
    if not cpl or not cpu.read("cr0") & CR0_PE:
        return True
    if cpl <= (cpu.read("eflags") >> 12) & 3:
        return True
    tr = cpu.table_register("tr")
    if tr.limit < 0x67:
        return False
    raw = cpu.read_linear(tr.base + 0x66, 2)
    if raw is None:
        return False
    offset = int.from_bytes(raw, "little") + port // 8
    if offset + 1 > tr.limit:
        return False
    bits = cpu.read_linear(tr.base + offset, 2)
    if bits is None:
        return False
    mask = ((1 << size) - 1) << (port % 8)
    return not int.from_bytes(bits, "little") & mask

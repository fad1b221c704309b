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

import ctypes
from collections.abc import Callable, Mapping

from unicorn import UC_HOOK_INSN, Uc
from unicorn import x86_const as X
from unicorn.unicorn_py3.unicorn import uccallback

from rdebug.machine.counter import Counter
from rdebug.machine.cpu import CR0_PE, Cpu
from rdebug.machine.datawindow import DataWindow
from rdebug.machine.debuglog import debug
from rdebug.machine.devices.base import Device
from rdebug.machine.native import extension, function_address
from rdebug.machine.native_counter import NativeCounter
from rdebug.machine.portregs import PortRegister
from rdebug.machine.probes import PortAccess
from rdebug.machine.vtlb import hook_insn_native

#: Data windows the native port hooks serve (RD_PIO_WINDOWS in _icount.c).
_WINDOWS = 4
#: Port registers the native port hooks serve (RD_PIO_REGS in _icount.c).
_REGISTERS = 16
_OUT_FN = ctypes.CFUNCTYPE(
    None, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint32, ctypes.c_void_p
)
_IN_FN = ctypes.CFUNCTYPE(
    ctypes.c_uint32, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_void_p
)


class PortIoState(ctypes.Structure):
    """Mirror of struct rd_portio in _icount.c (the native IN/OUT hooks)."""

    _fields_ = (
        ("counter", ctypes.c_void_p),
        ("fallback_out", ctypes.c_void_p),
        ("fallback_in", ctypes.c_void_p),
        ("enabled", ctypes.c_uint32),
        ("cs_regid", ctypes.c_int32),
        ("nwindows", ctypes.c_uint32),
        ("nregs", ctypes.c_uint32),
        ("windows", ctypes.c_void_p * _WINDOWS),
        ("regs", ctypes.c_void_p * _REGISTERS),
        ("native", ctypes.c_uint64),
    )


class PortIo:
    """The IN/OUT hooks of one CPU, dispatching to the devices of a port map.

    `before_access` runs before every access a device answers (state kept elsewhere
    during a run, e.g. the PIT's ticks taken in C, must reach the device first);
    `after_access` after it (an IRQ it raised may need the run loop at once);
    `before_output` before every OUT a device answers (what
    the device sends out, to a terminal or a network, must come after everything the
    log will say happened before it).  With the native counter the hooks are C functions
    (`rd_in_hook`, `rd_out_hook`) that move the words of the devices' open data
    windows (machine/datawindow.py) and read and write their port registers
    (machine/portregs.py) themselves, and call the Python ones below for everything
    else.
    """

    def __init__(
        self,
        cpu: Cpu,
        counter: Counter,
        ports: Mapping[int, Device],
        after_access: Callable[[], None],
        before_output: Callable[[], None] = lambda: None,
        before_access: Callable[[], None] = lambda: None,
    ) -> None:
        self._cpu = cpu
        self._counter = counter
        self._ports = ports
        self._before_access = before_access
        self._after_access = after_access
        self._before_output = before_output
        #: EIP of an I/O instruction that ring 3 was not allowed to execute (#GP pending)
        self.fault_eip: int | None = None
        self._probe: Callable[[PortAccess], None] | None = None
        uc = cpu.uc
        self._native: PortIoState | None = None
        if not isinstance(counter, NativeCounter):
            uc.hook_add(UC_HOOK_INSN, self._on_in, None, 1, 0, X.UC_X86_INS_IN)
            uc.hook_add(UC_HOOK_INSN, self._on_out, None, 1, 0, X.UC_X86_INS_OUT)
            return
        windows: list[DataWindow] = []
        registers: list[PortRegister] = []
        for device in dict.fromkeys(ports.values()):  # each device once, in port order
            windows.extend(device.data_windows())
            for register in device.port_registers():
                if ports.get(register.port) is not device:
                    raise ValueError(f"{device.name}: port {register.port:#x} is not its own")
                registers.append(register)
        if len(windows) > _WINDOWS:
            raise ValueError(f"{len(windows)} data windows: the native hooks serve {_WINDOWS}")
        if len(registers) > _REGISTERS:
            raise ValueError(
                f"{len(registers)} port registers: the native hooks serve {_REGISTERS}"
            )
        native = self._native = PortIoState()
        native.counter = counter.state_address
        # the binding's exception guard: an error in a device stops the run and is raised
        self._out_fn = uccallback(uc, _OUT_FN)(self._on_out)
        self._in_fn = uccallback(uc, _IN_FN)(self._on_in)
        native.fallback_out = ctypes.cast(self._out_fn, ctypes.c_void_p).value
        native.fallback_in = ctypes.cast(self._in_fn, ctypes.c_void_p).value
        native.cs_regid = X.UC_X86_REG_CS
        native.nwindows = len(windows)
        for i, window in enumerate(windows):
            native.windows[i] = window.address
        native.nregs = len(registers)
        for i, register in enumerate(registers):
            native.regs[i] = register.address
        native.enabled = 1
        self._windows = windows  # the structs the C side points at
        self._registers = registers
        lib = extension()
        user = ctypes.addressof(native)
        self._hooks = [
            hook_insn_native(uc, function_address(lib, "rd_in_hook"), user, X.UC_X86_INS_IN),
            hook_insn_native(uc, function_address(lib, "rd_out_hook"), user, X.UC_X86_INS_OUT),
        ]

    @property
    def probe(self) -> Callable[[PortAccess], None] | None:
        """Called with every access the guest makes (answered or not), when set
        (machine/probes.py); the native hooks leave every access to Python meanwhile."""
        return self._probe

    @probe.setter
    def probe(self, sink: Callable[[PortAccess], None] | None) -> None:
        self._probe = sink
        if self._native is not None:
            self._native.enabled = int(sink is None)

    @property
    def native_accesses(self) -> int:
        """Accesses the native hooks moved without Python (statistics)."""
        return 0 if self._native is None else int(self._native.native)

    def _refuse(self, linear: int) -> None:
        """Ring 3 may not do this I/O: stop after it (the run loop raises #GP(0))."""
        self.fault_eip = (linear - self._cpu.cs_base()) & 0xFFFFFFFF
        self._counter.request_stop_after_current()

    def _probed(self, linear: int, port: int, size: int, out: bool, value: int) -> None:
        assert self._probe is not None
        self._probe(PortAccess(self._counter.current_icount(), linear, port, size, out, value))

    def _on_in(self, uc: Uc, port: int, size: int, _user: object) -> int:
        linear = self._counter.begin_special()
        try:
            if not io_allowed(self._cpu, port, size):
                self._refuse(linear)
                return self._cpu.read("eax") & ((1 << (8 * size)) - 1)  # EAX unchanged
            device = self._ports.get(port)
            if device is None:
                debug(__name__, "IN %#x: no device", port)
                value = (1 << (8 * size)) - 1
            else:
                self._before_access()
                value = device.io_read(port, size) & ((1 << (8 * size)) - 1)
            if self._probe is not None:
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
            if self._probe is not None:
                self._probed(linear, port, size, True, value & ((1 << (8 * size)) - 1))
            device = self._ports.get(port)
            if device is None:
                debug(__name__, "OUT %#x <- %#x: no device", port, value)
                return
            self._before_output()
            self._before_access()
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

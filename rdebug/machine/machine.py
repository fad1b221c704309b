"""The i386 PC: CPU + RAM + devices + the run loop, in exact instruction time.

`Machine.run(until_icount)` executes the guest and returns a `StopEvent` at an exact
instruction boundary.  Between stretches of execution the run loop *services* the
machine at the boundary it stopped at, always in this order:

    1. take host inputs (through the inputs seam) and hand them to the devices;
    2. fire device timers whose deadline has come, if at a branch boundary;
    3. wake a halted CPU (an IRQ it can take) or fast-forward its clock to the next timer;
    4. deliver an IRQ if the CPU can take one (IF=1, outside an STI/MOV SS shadow),
       or arm the counter to stop at the first boundary where it can.

Device timers fire at the first *branch boundary* at or after their deadline (the
position after a jump, call, return, INT, IRET, loop or HLT, or after an interrupt
delivery): such positions depend only on the instructions executed, so a timer fires at
the same icount in every run, without the cost of stopping inside a translation block.
Every other event that may make an IRQ deliverable stops the counter at that exact
boundary (an I/O access that raises an IRQ stops right after the instruction, IF opening
is watched by the counter), so a run that is resumed at any boundary services exactly as
a straight run passing through it would: the basis of deterministic replay and seeking.

Knows nothing of logs, snapshots files or gdb: non-determinism comes in only through
`ExternalInputs` (machine/inputs.py).
"""

from __future__ import annotations

import copy
import ctypes
import enum
import hashlib
import logging
import struct
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import capstone
from unicorn import (
    UC_HOOK_INSN,
    UC_HOOK_INSN_INVALID,
    UC_HOOK_INTR,
    UC_HOOK_MEM_READ,
    UC_HOOK_MEM_WRITE,
    UC_HOOK_MEM_WRITE_PROT,
    Uc,
    UcError,
)
from unicorn import x86_const as X
from unicorn.unicorn_py3 import unicorn as _ucpy

from rdebug.errors import GuestFault, MachineError
from rdebug.machine import linux
from rdebug.machine.acpi import acpi_tables
from rdebug.machine.counter import Counter, NativeCounter, ReferenceCounter, StopCause
from rdebug.machine.cpu import CR0_PE, EFLAGS_IF, EFLAGS_RESERVED, Cpu, TableRegister
from rdebug.machine.devices.acpi_pm import AcpiPm
from rdebug.machine.devices.base import Device, State
from rdebug.machine.devices.cga import Cga
from rdebug.machine.devices.i8042 import I8042, FastA20Port
from rdebug.machine.devices.ide import IdeController
from rdebug.machine.devices.ioapic import IoApic
from rdebug.machine.devices.lapic import LocalApic
from rdebug.machine.devices.misc import DebugExit, PostPort
from rdebug.machine.devices.ne2000 import FrameSink, Ne2000, NicConfig
from rdebug.machine.devices.pci import PciBus
from rdebug.machine.devices.pic import PicPair
from rdebug.machine.devices.pit import Pit, SystemControlPort
from rdebug.machine.devices.rtc import Rtc
from rdebug.machine.devices.uart import SerialBackend, Uart
from rdebug.machine.disks import OverlayDisk
from rdebug.machine.inputs import (
    AsyncInput,
    ExternalInputs,
    KeyInput,
    MouseInput,
    NetInput,
    SerialInput,
    SyncEvent,
)
from rdebug.machine.interrupts import ERROR_CODE_VECTORS, Interrupt, Source, deliver
from rdebug.machine.loader import (
    GDT_ADDR,
    INITIAL_ESP,
    MULTIBOOT_BOOTLOADER_MAGIC,
    MULTIBOOT_INFO_ADDR,
    LoadedImage,
    StartMode,
    bios_data_area,
    flat_gdt,
    multiboot_info,
)
from rdebug.machine.mptable import mp_tables
from rdebug.machine.sysenter import SYSENTER_LENGTH, sysenter

log = logging.getLogger(__name__)

#: The run loop regains control at least this often (in instructions, at a branch
#: boundary): for host input, and so that `interrupt()` (Ctrl-C) is noticed promptly
#: even by a guest that never stops for anything else.
CONTROL_INTERVAL = 1 << 22
#: How long (seconds) a halted CPU waits for host input before warping to its next timer.
IDLE_INPUT_WAIT = 0.01
#: The most IRQs delivered back to back at one boundary (trap gates keep IF set).
_MAX_NESTED_DELIVERIES = 16
#: Timer deadlines a halted CPU may skip without anything it could take before rdebug
#: calls it halted for good (e.g. the PIT ticking into a fully masked PIC).
_MAX_IDLE_FAST_FORWARDS = 1000

_INT_OPCODES = {0xCC: 3, 0xCE: 4, 0xF1: 1}
#: Stores to a register page after which the run loop stops exactly (see _on_mmio_write).
_PLAIN_STORES = frozenset({"mov", "movd", "movnti"})


class StopReason(enum.Enum):
    TARGET = "target"  # the requested icount was reached
    BREAKPOINT = "breakpoint"
    EXIT = "exit"  # the guest wrote the exit port
    HALTED = "halted"  # HLT with nothing that could ever wake the CPU
    SHUTDOWN = "shutdown"  # triple fault
    FAULT = "fault"  # the engine cannot go on (e.g. an access to unmapped memory)
    INTERRUPTED = "interrupted"  # `Machine.interrupt()` (Ctrl-C)
    END_OF_INPUT = "end-of-input"  # the inputs' horizon: e.g. a replay's recording ended
    WATCHPOINT = "watchpoint"  # a watched address was accessed (see StopEvent.watch)


class WatchKind(enum.Enum):
    WRITE = "write"
    READ = "read"
    ACCESS = "access"


@dataclass(frozen=True, slots=True)
class WatchHit:
    """A watched access made by one of the instructions in [since, the stop's icount)."""

    kind: WatchKind  # the watchpoint's kind
    addr: int  # the accessed (linear) address
    since: int


@dataclass(frozen=True, slots=True)
class StopEvent:
    reason: StopReason
    icount: int
    pc: int
    exit_code: int | None = None
    detail: str = ""
    watch: WatchHit | None = None


@dataclass(frozen=True, slots=True)
class MachineState:
    """Everything of a machine but its RAM, at an instruction boundary between runs."""

    cpu: bytes
    devices: dict[str, State]
    icount: int
    bias_ns: int
    halted: bool
    idle_fast_forwards: int
    waited: bool
    irq_check: bool
    branch_boundary: bool
    shadow: bool
    exit_code: int | None
    io_fault_eip: int | None
    #: sectors the guest wrote, per drive index (0 master, 1 slave)
    disks: dict[int, dict[int, bytes]]


@dataclass(frozen=True, slots=True)
class MachineConfig:
    memory_mb: int = 256
    icount_shift: int = 7
    #: "native" (fast, exact) or "reference" (slow, per-instruction; for cross-checks)
    counter: str = "native"
    #: An NE2000 on the ISA bus (network adapter 0), or none.
    nic: NicConfig | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.memory_mb <= 3072:
            raise MachineError(f"-m {self.memory_mb}: memory must be 1..3072 MiB")
        if self.memory_mb < 2:
            raise MachineError("-m: at least 2 MiB are needed (guests load at 1 MiB)")
        if not 0 <= self.icount_shift <= 10:
            raise MachineError(f"--icount-shift {self.icount_shift}: must be 0..10")
        if self.counter not in ("native", "reference"):
            raise MachineError(f"unknown instruction counter {self.counter!r}")


class Machine:
    """An i386 PC running one guest."""

    def __init__(
        self,
        config: MachineConfig,
        inputs: ExternalInputs,
        serial: Sequence[SerialBackend] = (),
        disks: Sequence[OverlayDisk | None] = (),
        net: FrameSink | None = None,
    ) -> None:
        """`net` receives the frames the NIC (if `config.nic`) transmits; None drops them."""
        self.config = config
        self.inputs = inputs
        self.cpu = Cpu(config.memory_mb)
        self.counter: Counter = (
            NativeCounter(self.cpu) if config.counter == "native" else ReferenceCounter(self.cpu)
        )
        self._uc: Uc = self.cpu.uc
        self.shift = config.icount_shift
        #: Virtual ns added by HLT fast-forwards: now_ns = (icount << shift) + bias_ns.
        self.bias_ns = 0
        self.halted = False
        self._idle_fast_forwards = 0
        self._waited = False  # a halted CPU waited for input since its last clock warp
        self._exit_code: int | None = None
        self._emulating = False
        self._target = 0
        self._timers: dict[Device, int] = {}
        self._interrupt = threading.Event()
        self._fault: GuestFault | None = None
        #: EIP of an I/O instruction that ring 3 was not allowed to execute (#GP pending)
        self._io_fault_eip: int | None = None
        self._watch_hooks: dict[tuple[int, int, WatchKind], list[int]] = {}
        self._watch_hit: WatchHit | None = None
        #: Register-page stores not yet settled, and (store eip, next eip) to skip to.
        self._mmio_unsettled: set[Device] = set()
        self._mmio_skip: tuple[int, int] | None = None
        self._in_mmio_store = False
        self._hot_hooks: dict[tuple[int, int], int] = {}
        self._cs32 = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_32)
        self._cs16 = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_16)

        backends: list[SerialBackend | None] = [*serial, None, None]  # None: dropped
        self.pic = PicPair(self)
        self.lapic = LocalApic(self)
        self.ioapic = IoApic(self, self.lapic)
        self.pit = Pit(self)
        self.port61 = SystemControlPort(self, self.pit)
        self.com1 = Uart(self, base=0x3F8, irq=4, backend=backends[0])
        self.com2 = Uart(self, base=0x2F8, irq=3, backend=backends[1])
        self.rtc = Rtc(self, host_time_ns=self._host_time_ns, memory_mb=config.memory_mb)
        self.post = PostPort(self)
        self.debug_exit = DebugExit(self)
        self.i8042 = I8042(self)
        self.port92 = FastA20Port(self)
        self.cga = Cga(self)
        self.pci = PciBus(self)
        self.acpi_pm = AcpiPm(self)
        self.disks = [*disks, None, None][:2]
        if len(disks) > 2:
            raise MachineError("at most two IDE drives (master and slave)")
        self.ide = IdeController(self, self.disks[0], self.disks[1]) if any(self.disks) else None
        self.devices: list[Device] = [
            self.pic,
            self.lapic,
            self.ioapic,
            self.pit,
            self.port61,
            self.com1,
            self.com2,
            self.rtc,
            self.post,
            self.debug_exit,
            *([self.ide] if self.ide else []),
            self.i8042,
            self.port92,
            self.cga,
            self.pci,
            self.acpi_pm,
        ]
        #: Network adapters by adapter id (the id in NetInput and the log's NET events).
        self.nics: list[Ne2000] = []
        if config.nic is not None:
            self.nics.append(Ne2000(self, config.nic, net))
            self.devices.append(self.nics[0])
        self._uarts = (self.com1, self.com2)
        self._ports: dict[int, Device] = {}
        for device in self.devices:
            for ports in device.ports:
                for port in ports:
                    if port in self._ports:
                        raise MachineError(
                            f"port {port:#x}: {device.name} and {self._ports[port].name}"
                        )
                    self._ports[port] = device
        for device in self.devices:
            device.reset()
        self._install_hooks()
        self._map_register_pages()
        self._map_open_bus()
        self.symbols: dict[str, int] = {}
        self._linux: linux.LinuxBoot | None = None

    # -- DeviceContext ---------------------------------------------------------------------

    def now_ns(self) -> int:
        icount = self.counter.current_icount() if self._emulating else self.counter.icount
        return (icount << self.shift) + self.bias_ns

    def set_timer(self, device: Device, deadline_ns: int | None) -> None:
        if deadline_ns is None:
            self._timers.pop(device, None)
            return
        self._timers[device] = deadline_ns
        if self._emulating and self._deadline_icount(deadline_ns) < self._target:
            self.request_stop()

    def set_irq(self, line: int, level: bool) -> None:
        """An ISA line goes to both interrupt controllers, as on a PC with an IOAPIC."""
        self.pic.set_irq(line, level)
        self.ioapic.set_irq(line, level)

    def request_stop(self) -> None:
        if self._emulating and not self._in_mmio_store:  # that store stops on its own
            self.counter.request_stop_after_current()

    def guest_exit(self, code: int) -> None:
        self._exit_code = code
        self.request_stop()

    # -- time --------------------------------------------------------------------------------

    @property
    def icount(self) -> int:
        return self.counter.icount

    def _deadline_icount(self, deadline_ns: int) -> int:
        """First icount at which virtual time reaches `deadline_ns` (ceil)."""
        delta = deadline_ns - self.bias_ns
        if delta <= 0:
            return 0
        return -(-delta >> self.shift)

    def _host_time_ns(self) -> int:
        # The exact instruction (an I/O hook runs mid-block): where the run was cut into
        # blocks must not change the icount a recording gives the host clock read.
        icount = self.counter.current_icount() if self._emulating else self.counter.icount
        return self.inputs.host_clock_ns(icount)

    # -- loading -----------------------------------------------------------------------------

    def load(self, image: LoadedImage) -> None:
        """Place `image` in RAM and set the CPU up as its boot protocol says."""
        if image.linux is not None:
            self._load_linux(image)
            return
        cpu = self.cpu
        for seg in image.segments:
            end = seg.paddr + max(seg.memsize, len(seg.data))
            if seg.paddr < 0 or end > cpu.ram_size:
                raise MachineError(
                    f"the guest loads at {seg.paddr:#x}-{end:#x}, beyond the "
                    f"{cpu.ram_size >> 20} MiB of RAM (use -m)"
                )
            cpu.write_physical(seg.paddr, seg.data)
            cpu.write_physical(seg.paddr + len(seg.data), bytes(seg.memsize - len(seg.data)))
        for paddr, data in [*bios_data_area(), *mp_tables()]:
            cpu.write_physical(paddr, data)
        self.symbols = dict(image.symbols)
        if image.mode is StartMode.REAL:
            cr0 = cpu.read("cr0")
            cpu.write("cr0", cr0 & ~CR0_PE)
            for seg_name in ("cs", "ds", "es", "ss", "fs", "gs"):
                cpu.write(seg_name, 0)
            cpu.set_table_register("idtr", TableRegister(0, 0, 0x3FF, 0))
            cpu.write("esp", image.entry)
            cpu.write("edx", 0x80)  # booted from the first hard disk
        else:
            cpu.write_physical(GDT_ADDR, flat_gdt())
            cpu.set_table_register("gdtr", TableRegister(0, GDT_ADDR, len(flat_gdt()) - 1, 0))
            cpu.write("cs", 0x08)
            for seg_name in ("ds", "es", "ss", "fs", "gs"):
                cpu.write(seg_name, 0x10)
            cpu.write("esp", INITIAL_ESP)
            if image.multiboot:
                for paddr, data in multiboot_info(cpu.ram_size, image.cmdline):
                    cpu.write_physical(paddr, data)
                cpu.write("eax", MULTIBOOT_BOOTLOADER_MAGIC)
                cpu.write("ebx", MULTIBOOT_INFO_ADDR)
        cpu.write("eflags", EFLAGS_RESERVED)
        cpu.eip = image.entry
        self.counter.invalidate()

    def _load_linux(self, image: LoadedImage) -> None:
        """The Linux 32-bit boot protocol (machine/linux.py), with BIOS, MP and ACPI tables."""
        assert image.linux is not None
        cpu = self.cpu
        placement = linux.place(image.linux, cpu.ram_size)
        for paddr, data in [
            *bios_data_area(),
            *mp_tables(),
            *acpi_tables(),
            *placement.writes,
        ]:
            cpu.write_physical(paddr, data)
        self.symbols = dict(image.symbols)
        self._linux = image.linux
        gdt = linux.boot_gdt()
        cpu.set_table_register("gdtr", TableRegister(0, linux.BOOT_GDT_ADDR, len(gdt) - 1, 0))
        cpu.write("cs", linux.BOOT_CS)
        for seg_name in ("ds", "es", "ss", "fs", "gs"):
            cpu.write(seg_name, linux.BOOT_DS)
        cpu.write("esi", placement.boot_params)
        for reg in ("eax", "ebx", "ecx", "edx", "edi", "ebp", "esp"):
            cpu.write(reg, 0)
        cpu.write("eflags", EFLAGS_RESERVED)
        cpu.eip = placement.entry
        self.counter.invalidate()

    def kernel_offset(self) -> int | None:
        """A Linux guest: how far KASLR moved its kernel from the link-time addresses of
        its symbols (0: not moved); None before the kernel runs paged, or no Linux."""
        if self._linux is None:
            return None
        return linux.kaslr_offset(
            self._linux.symbols, self._linux.header.kernel_alignment, self.cpu.read_linear
        )

    # -- breakpoints -------------------------------------------------------------------------

    def add_breakpoint(self, addr: int) -> None:
        self.counter.add_breakpoint(addr & 0xFFFFFFFF)

    def remove_breakpoint(self, addr: int) -> None:
        self.counter.remove_breakpoint(addr & 0xFFFFFFFF)

    def add_watchpoint(self, addr: int, length: int, kind: WatchKind) -> None:
        """Stop soon after an access to [addr, addr+length) (linear addresses).

        Watching costs speed: any memory hook sends every guest access through
        unicorn's slow path.  The stop lands at the next block boundary; its `watch`
        says which instructions may have made the access (the timeline finds which one).

        Unicorn matches memory hooks on *physical* addresses once paging is on, so the
        range is watched where the page tables in force now map it (a kernel's globals:
        the same in every address space); pages not mapped now are watched at their
        linear address, as with paging off.
        """
        key = (addr & 0xFFFFFFFF, length, kind)
        if key in self._watch_hooks or length <= 0:
            return
        types = {
            WatchKind.WRITE: UC_HOOK_MEM_WRITE,
            WatchKind.READ: UC_HOOK_MEM_READ,
            WatchKind.ACCESS: UC_HOOK_MEM_READ | UC_HOOK_MEM_WRITE,
        }[kind]
        self._watch_hooks[key] = [
            self._uc.hook_add(
                types, self._on_watched, (kind, linear - physical), physical, physical + n - 1
            )
            for linear, physical, n in self._watched_ranges(key[0], length)
        ]
        self.counter.invalidate()

    def _watched_ranges(self, addr: int, length: int) -> list[tuple[int, int, int]]:
        """(linear, physical, length) pieces of a linear range, physically contiguous."""
        pieces: list[tuple[int, int, int]] = []
        linear, end = addr, addr + length
        while linear < end:
            n = min(end, (linear | 0xFFF) + 1) - linear
            physical = self.cpu.linear_to_physical(linear)
            if physical is None:
                physical = linear
            if pieces and pieces[-1][1] + pieces[-1][2] == physical:
                first, start, size = pieces[-1]
                pieces[-1] = (first, start, size + n)
            else:
                pieces.append((linear, physical, n))
            linear += n
        return pieces

    def remove_watchpoint(self, addr: int, length: int, kind: WatchKind) -> None:
        handles = self._watch_hooks.pop((addr & 0xFFFFFFFF, length, kind), [])
        for handle in handles:
            self._uc.hook_del(handle)
        if handles:
            self.counter.invalidate()

    def _on_watched(
        self,
        uc: Uc,
        access: int,
        addr: int,
        size: int,
        value: int,
        watch: tuple[WatchKind, int],
    ) -> None:
        if self._watch_hit is None:
            kind, delta = watch
            since = self.counter.request_stop_soon()
            self._watch_hit = WatchHit(kind, (addr + delta) & 0xFFFFFFFF, since)

    # -- running -----------------------------------------------------------------------------

    def interrupt(self) -> None:
        """Stop a running `run` as soon as possible (any thread; e.g. on Ctrl-C)."""
        self._interrupt.set()
        self.counter.interrupt()

    def run(self, until_icount: int | None = None) -> StopEvent:
        """Run until `until_icount` (exact) or another stop; see `StopReason`."""
        until = (1 << 63) if until_icount is None else until_icount
        if until < self.icount:
            raise MachineError(f"icount {until} is in the past (now {self.icount})")
        # An interrupt() that came while no run was going stops this one at once: a
        # front end's Ctrl-C may arrive between the many runs of one long operation.
        shadow = self.counter.in_shadow()
        while True:
            if self._exit_code is not None:
                code, self._exit_code = self._exit_code, None
                self.inputs.synchronize(SyncEvent.SHUTDOWN, self.icount)
                return self._stop(StopReason.EXIT, exit_code=code)
            if self._interrupt.is_set():
                self._interrupt.clear()
                self.counter.clear_interrupt()
                return self._stop(StopReason.INTERRUPTED)
            if self.icount >= until:
                return self._stop(StopReason.TARGET)
            horizon = self.inputs.horizon()
            if horizon is not None and horizon <= self.icount and self.inputs.finished():
                # The inputs end here, before anything else happens at this icount: a
                # recording cut short (--max-insns, Ctrl-C) stopped before delivering the
                # interrupt or clock warp that was due, so its replay must too.
                return self._stop(StopReason.END_OF_INPUT)
            if self._io_fault_eip is not None:
                self._raise_io_fault()
                shadow = False
            stop = self._service(shadow)
            if stop is not None:
                return stop
            horizon = self.inputs.horizon()
            if (
                horizon is not None
                and horizon <= self.icount
                and (not self.halted or self.inputs.finished())
            ):
                # The inputs end here (or expect something the machine did not do).
                return self._stop(StopReason.END_OF_INPUT)
            if self.halted:
                continue
            hard = until if horizon is None else min(until, horizon)
            soft = min(self._next_deadline_icount(), self.icount + CONTROL_INTERVAL)
            self._target = min(hard, soft)
            self._emulating = True
            try:
                cause = self.counter.execute(hard, soft)
            except UcError as exc:
                # No memory hook watches for unmapped accesses (any memory hook would send
                # every guest load and store through unicorn's slow path): the engine's
                # error says what happened.
                self._emulating = False
                return self._stop(StopReason.FAULT, detail=f"{exc} at eip {self.cpu.eip:#x}")
            finally:
                self._emulating = False
                self._finish_mmio_stores()
            if self._fault is not None:
                fault, self._fault = self._fault, None
                self.inputs.synchronize(SyncEvent.RESET, self.icount)
                return self._stop(StopReason.SHUTDOWN, detail=str(fault))
            shadow = self.counter.in_shadow()
            if cause is StopCause.HALTED:
                self.halted = True
            if self._watch_hit is not None:
                hit, self._watch_hit = self._watch_hit, None
                return StopEvent(StopReason.WATCHPOINT, self.icount, self.cpu.eip, watch=hit)
            if cause is StopCause.BREAKPOINT:
                return self._stop(StopReason.BREAKPOINT)
            if cause is StopCause.INTERRUPTED:
                self._interrupt.clear()
                self.counter.clear_interrupt()
                return self._stop(StopReason.INTERRUPTED)

    def _stop(
        self, reason: StopReason, exit_code: int | None = None, detail: str = ""
    ) -> StopEvent:
        return StopEvent(reason, self.icount, self.cpu.eip, exit_code, detail)

    def _next_deadline_icount(self) -> int:
        if not self._timers:
            return 1 << 63
        return self._deadline_icount(min(self._timers.values()))

    def _service(self, shadow: bool) -> StopEvent | None:
        """Bring devices and interrupts up to date at the current boundary."""
        for item in self.inputs.take_async(self.icount):
            self._take_input(item)
            self._idle_fast_forwards = 0  # new input may need timers to reach the guest
        self._fire_timers()
        if self.halted:
            stop = self._wake_or_wait()
            if stop is not None or self.halted:
                return stop
            shadow = False
        self._deliver_irqs(shadow)
        self._sync_hot_registers()
        return None

    def _take_input(self, item: AsyncInput) -> None:
        match item:
            case SerialInput(port, data):
                if 0 <= port < len(self._uarts):
                    self._uarts[port].receive_host(data)
            case NetInput(adapter, data):
                if 0 <= adapter < len(self.nics):
                    self.nics[adapter].receive(data)
            case KeyInput(key, down):
                self.i8042.key_input(key, down)
            case MouseInput(dx, dy, buttons):
                self.i8042.mouse_input(dx, dy, buttons)

    def _fire_timers(self) -> None:
        if not (self.halted or self.counter.at_branch_boundary()):
            return  # the counter stops again at the next branch boundary
        icount = self.icount
        while self._timers:
            device, deadline = min(self._timers.items(), key=lambda kv: kv[1])
            if self._deadline_icount(deadline) > icount:
                return
            del self._timers[device]
            device.on_timer()

    def _wake_or_wait(self) -> StopEvent | None:
        """A halted CPU: wake it, move its clock to the next timer, or wait for input.

        While input may arrive, waiting for it (briefly) and warping the clock to the next
        timer alternate, so an idle guest's virtual time goes on at about the pace of the
        wall clock; the order of warps and inputs is deterministic in replay because
        every warp is reported to the inputs seam (and logged).
        """
        if_set = bool(self.cpu.read("eflags") & EFLAGS_IF)
        if if_set and self._irq_pending():
            self.halted = False
            self._idle_fast_forwards = 0
            self._waited = False
            return None
        if not if_set:
            return self._stop(StopReason.HALTED, detail="HLT with interrupts disabled")
        if self.inputs.more_expected() and not self._waited:
            self._waited = True
            self.inputs.wait(IDLE_INPUT_WAIT)
            return None
        self._waited = False
        if self._timers and self._idle_fast_forwards < _MAX_IDLE_FAST_FORWARDS:
            self._idle_fast_forwards += 1
            deadline = min(self._timers.values())
            now = self.now_ns()
            if deadline > now:
                self.inputs.synchronize(SyncEvent.CLOCK_WARP, self.icount)
                self.bias_ns += deadline - now
            self._fire_timers()
            return None
        if self.inputs.more_expected():
            self.inputs.wait(0.05)
            return None
        self._idle_fast_forwards = 0
        return self._stop(
            StopReason.HALTED, detail="HLT waiting for an interrupt that nothing will raise"
        )

    def _deliver_irqs(self, shadow: bool) -> None:
        for _ in range(_MAX_NESTED_DELIVERIES):
            if not self._irq_pending():
                self.counter.irq_check = False
                return
            if shadow or not self.cpu.read("eflags") & EFLAGS_IF:
                self.counter.irq_check = True
                return
            vector = self._irq_acknowledge()
            self.inputs.synchronize(SyncEvent.INTERRUPT, self.icount)
            self._deliver(Interrupt(vector, Source.EXTERNAL))
            shadow = False
        self.counter.irq_check = self._irq_pending()

    def _irq_pending(self) -> bool:
        """The CPU's INTR: from the LAPIC (IOAPIC, timer, self-IPI) or the 8259 through
        LINT0 in ExtINT mode; with the LAPIC software-disabled, the 8259 directly."""
        if not self.lapic.software_enabled:
            return self.pic.intr()
        return self.lapic.intr() or (self.lapic.extint_open() and self.pic.intr())

    def _irq_acknowledge(self) -> int:
        """The INTA cycle of whichever controller `_irq_pending` found."""
        if self.lapic.software_enabled and self.lapic.intr():
            return self.lapic.acknowledge()
        return self.pic.acknowledge()

    def _deliver(self, interrupt: Interrupt) -> None:
        try:
            deliver(self.cpu, interrupt)
        except GuestFault as fault:
            self._fault = fault
            if self._emulating:
                self.counter.request_stop_before_current()
            return
        if not self._emulating:
            self.counter.control_transferred()

    # -- engine hooks ----------------------------------------------------------------------

    def _install_hooks(self) -> None:
        uc = self._uc
        uc.hook_add(UC_HOOK_INSN, self._on_in, None, 1, 0, X.UC_X86_INS_IN)
        uc.hook_add(UC_HOOK_INSN, self._on_out, None, 1, 0, X.UC_X86_INS_OUT)
        uc.hook_add(UC_HOOK_INSN, self._on_cpuid, None, 1, 0, X.UC_X86_INS_CPUID)
        uc.hook_add(UC_HOOK_INTR, self._on_interrupt)
        uc.hook_add(UC_HOOK_INSN_INVALID, self._on_invalid)
        uc.hook_add(UC_HOOK_INSN, self._on_sysenter, None, 1, 0, X.UC_X86_INS_SYSENTER)
        # The binding refuses RDTSC/RDTSCP hooks: register them through its C entry point.
        self._tsc_fn = _INSN_FN(self._on_rdtsc)
        self._tscp_fn = _INSN_FN(self._on_rdtscp)
        self._tsc_hooks = [
            _hook_insn_ctypes(uc, self._tsc_fn, X.UC_X86_INS_RDTSC),
            _hook_insn_ctypes(uc, self._tscp_fn, X.UC_X86_INS_RDTSCP),
        ]

    def _map_register_pages(self) -> None:
        """Map the devices' register pages read-only; their stores come to a hook.

        A read-only page whose stores are caught by a UC_HOOK_MEM_WRITE_PROT hook costs
        nothing to other memory accesses (any UC_HOOK_MEM_* hook would send every guest
        load or store through unicorn's slow path); reads are plain RAM reads.
        """
        for device in self.devices:
            for base, page in device.register_pages():
                self.cpu.map_register_page(base, page)
                self._uc.hook_add(
                    UC_HOOK_MEM_WRITE_PROT, self._on_register_store, device, base, base + 0xFFF
                )

    def _map_open_bus(self) -> None:
        """Physical addresses with nothing behind them read as all-ones; writes vanish.

        That is what a PC's bus does (and QEMU): e.g. Linux's early microcode loader
        reads a physical address beyond RAM before paging is on.  The holes between RAM
        and the register pages are MMIO ranges (no cost to other accesses).
        """
        taken = sorted((begin, end + 1) for begin, end, _perms in self._uc.mem_regions())
        start = 0
        for begin, end in [*taken, (1 << 32, 1 << 32)]:
            if begin > start:
                self._uc.mmio_map(start, begin - start, _open_bus_read, None, _open_bus_write, None)
            start = max(start, end)

    def _on_register_store(
        self, uc: Uc, access: int, addr: int, size: int, value: int, device: Device
    ) -> bool:
        """A guest store into a register page (EIP is exact here, unlike in MMIO hooks).

        Unicorn performs the store after this hook.  After a plain MOV the engine is
        stopped right behind it, where the device settles its page; the stop leaves EIP
        at the store (resuming would store again), so `_finish_mmio_stores` moves EIP to
        the next instruction.  Other instructions (string stores, read-modify-write)
        cannot be cut there: the page settles at the next block boundary.
        """
        self._in_mmio_store = True
        try:
            device.mmio_write(addr, size, value & ((1 << (8 * size)) - 1))
        finally:
            self._in_mmio_store = False
        self._mmio_unsettled.add(device)
        if not self._emulating:
            return True
        next_eip = self._after_plain_store()
        if next_eip is None:
            self.counter.request_stop_soon()
        else:
            self._mmio_skip = (self.cpu.eip, next_eip)
            self.counter.request_stop_after_current()
        return True

    def _after_plain_store(self) -> int | None:
        """EIP of the instruction after the current one if it is a plain MOV store."""
        code = self.cpu.read_linear(self.cpu.linear_pc(), 16)
        if code is None:
            return None
        wide = self.cpu.code_is_32bit()
        cs = self._cs32 if wide else self._cs16
        for _addr, length, mnemonic, _ops in cs.disasm_lite(code, 0, 1):
            if mnemonic in _PLAIN_STORES:
                return (self.cpu.eip + int(length)) & (0xFFFFFFFF if wide else 0xFFFF)
        return None

    def _finish_mmio_stores(self) -> None:
        """After the engine stopped: step past a register store, settle the pages."""
        if self._mmio_skip is not None:
            store_eip, next_eip = self._mmio_skip
            self._mmio_skip = None
            if self.cpu.eip == store_eip:
                self.cpu.eip = next_eip
        for device in self._mmio_unsettled:
            device.mmio_settle()
        self._mmio_unsettled.clear()

    def _sync_hot_registers(self) -> None:
        """Hook reads of the registers that move with time (only while they do)."""
        wanted = {
            (r.start, r.stop - 1): device for device in self.devices for r in device.hot_registers()
        }
        changed = False
        for key in [k for k in self._hot_hooks if k not in wanted]:
            self._uc.hook_del(self._hot_hooks.pop(key))
            changed = True
        for key, device in wanted.items():
            if key not in self._hot_hooks:
                self._hot_hooks[key] = self._uc.hook_add(
                    UC_HOOK_MEM_READ, self._on_hot_read, device, key[0], key[1]
                )
                changed = True
        if changed:
            # Removed: back to unicorn's fast memory path.  Added: code translated
            # before the hook existed (e.g. a kernel's one register-read function, used
            # since boot) would go on reading the stale page without calling it.
            self.counter.invalidate()

    def _on_hot_read(
        self, uc: Uc, access: int, addr: int, size: int, value: int, device: Device
    ) -> None:
        device.mmio_refresh(addr, size)  # before the load: it reads the updated page

    def _io_allowed(self, port: int, size: int) -> bool:
        """The protected-mode I/O permission check (IOPL, then the TSS I/O bitmap).

        Unicorn does not make it: without it ring 3 could drive any device.
        """
        cpu = self.cpu
        if not cpu.read("cs") & 3 or not cpu.read("cr0") & CR0_PE:
            return True
        if cpu.read("cs") & 3 <= (cpu.read("eflags") >> 12) & 3:
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

    def _refuse_io(self, linear: int) -> None:
        """Ring 3 may not do this I/O: stop after it, then turn it into a #GP(0)."""
        self._io_fault_eip = (linear - self.cpu.cs_base()) & 0xFFFFFFFF
        self.counter.request_stop_after_current()

    def _raise_io_fault(self) -> None:
        eip, self._io_fault_eip = self._io_fault_eip, None
        assert eip is not None
        self.counter.icount = self.counter.icount - 1  # the instruction did not complete
        self.cpu.eip = eip
        self.inputs.synchronize(SyncEvent.EXCEPTION, self.icount)
        self._deliver(Interrupt(13, Source.EXCEPTION, 0))

    def _after_io(self) -> None:
        if self._exit_code is not None:
            return
        if self._irq_pending() and not self.counter.irq_check:
            self.counter.request_stop_after_current()

    def _on_in(self, uc: Uc, port: int, size: int, _user: object) -> int:
        linear = self.counter.begin_special()
        try:
            if not self._io_allowed(port, size):
                self._refuse_io(linear)
                return self.cpu.read("eax") & ((1 << (8 * size)) - 1)  # EAX unchanged
            device = self._ports.get(port)
            if device is None:
                log.debug("IN %#x: no device", port)
                return (1 << (8 * size)) - 1
            value = device.io_read(port, size) & ((1 << (8 * size)) - 1)
            self._after_io()
            return value
        finally:
            self.counter.end_special()

    def _on_out(self, uc: Uc, port: int, size: int, value: int, _user: object) -> None:
        linear = self.counter.begin_special()
        try:
            if not self._io_allowed(port, size):
                self._refuse_io(linear)
                return
            device = self._ports.get(port)
            if device is None:
                log.debug("OUT %#x <- %#x: no device", port, value)
                return
            device.io_write(port, size, value)
            self._after_io()
        finally:
            self.counter.end_special()

    def _on_cpuid(self, uc: Uc, _user: object) -> int:
        leaf = self.cpu.read("eax")
        eax, ebx, ecx, edx = cpuid(leaf)
        for name, value in (("eax", eax), ("ebx", ebx), ("ecx", ecx), ("edx", edx)):
            self.cpu.write(name, value)
        return 1

    def _on_sysenter(self, uc: Uc, _user: object) -> None:
        """Unicorn's SYSENTER only calls this hook, then adds 2 to EIP (machine/sysenter.py)."""
        if not sysenter(self.cpu):
            self.counter.exception_taken(faulting=True)
            self.inputs.synchronize(SyncEvent.EXCEPTION, self.counter.current_icount())
            self._deliver(Interrupt(13, Source.EXCEPTION, 0))
        self.cpu.eip = self.cpu.eip - SYSENTER_LENGTH

    def _on_rdtsc(self, _uc: int, _user: int) -> int:
        self._write_tsc()
        return 1

    def _on_rdtscp(self, _uc: int, _user: int) -> int:
        self._write_tsc()
        self.cpu.write("ecx", 0)
        return 1

    def _write_tsc(self) -> None:
        """A 1 GHz time-stamp counter in virtual time."""
        self.counter.begin_special()
        try:
            tsc = self.now_ns()
        finally:
            self.counter.end_special()
        self.cpu.write("eax", tsc & 0xFFFFFFFF)
        self.cpu.write("edx", (tsc >> 32) & 0xFFFFFFFF)

    def _on_interrupt(self, uc: Uc, intno: int, _user: object) -> None:
        pc = self.cpu.linear_pc()
        prev = self.counter.previous_instruction(pc)
        software = prev is not None and _is_int_instruction(self.cpu, prev, intno)
        self.counter.exception_taken(faulting=not software)
        self.inputs.synchronize(SyncEvent.EXCEPTION, self.counter.current_icount())
        error_code = self.cpu.take_exception_error_code()
        if software:
            self._deliver(Interrupt(intno, Source.SOFTWARE))
        else:
            code = error_code if intno in ERROR_CODE_VECTORS else None
            self._deliver(Interrupt(intno, Source.EXCEPTION, code))

    def _on_invalid(self, uc: Uc, _user: object) -> bool:
        self.counter.exception_taken(faulting=True)
        self.inputs.synchronize(SyncEvent.EXCEPTION, self.counter.current_icount())
        self.cpu.take_exception_error_code()
        self._deliver(Interrupt(6, Source.EXCEPTION))
        return True

    # -- state -------------------------------------------------------------------------------

    def device_states(self) -> dict[str, State]:
        return {device.name: copy.deepcopy(device.save_state()) for device in self.devices}

    def save_state(self) -> MachineState:
        """The machine's state but RAM (call between runs, never from a hook)."""
        if self._emulating:
            raise MachineError("cannot save the machine state while it runs")
        return MachineState(
            cpu=self.cpu.save_context(),
            devices=self.device_states(),
            icount=self.icount,
            bias_ns=self.bias_ns,
            halted=self.halted,
            idle_fast_forwards=self._idle_fast_forwards,
            waited=self._waited,
            irq_check=self.counter.irq_check,
            branch_boundary=self.counter.at_branch_boundary(),
            shadow=self.counter.in_shadow(),
            exit_code=self._exit_code,
            io_fault_eip=self._io_fault_eip,
            disks={i: d.save_state() for i, d in enumerate(self.disks) if d is not None},
        )

    def load_state(self, state: MachineState, rewritten: Iterable[int] | None = None) -> None:
        """Return to `state` (RAM is the caller's to restore, before or after).

        `rewritten`: the physical RAM pages the caller rewrote (None: maybe any); code
        translations are dropped only if code lives in them.
        """
        if self._emulating:
            raise MachineError("cannot load a machine state while it runs")
        self.cpu.restore_context(state.cpu)
        self._timers.clear()
        for device in self.devices:
            device.load_state(copy.deepcopy(state.devices[device.name]))  # re-arms timers
        self.bias_ns = state.bias_ns
        self.halted = state.halted
        self._idle_fast_forwards = state.idle_fast_forwards
        self._waited = state.waited
        self._exit_code = state.exit_code
        self._io_fault_eip = state.io_fault_eip
        self._fault = None
        self._watch_hit = None
        self._mmio_unsettled.clear()
        self._mmio_skip = None
        for index, disk in enumerate(self.disks):
            if disk is not None:
                disk.load_state(state.disks.get(index, {}))
        if rewritten is None:
            self.counter.invalidate()
        else:
            self.counter.memory_rewritten(rewritten)
        self.counter.restore_position(state.icount, state.branch_boundary, state.shadow)
        self.counter.irq_check = state.irq_check
        self._sync_hot_registers()

    def state_hash(self) -> str:
        """SHA-256 over registers, RAM, device state and virtual time."""
        h = hashlib.sha256()
        for name, value in sorted(self.cpu.system_state()):
            h.update(f"{name}={value:#x};".encode())
        h.update(f"icount={self.icount};bias={self.bias_ns};halted={self.halted};".encode())
        h.update(_canonical(self.device_states()))
        h.update(_canonical({d.name: self._timers[d] for d in self._timers}))
        for index, disk in enumerate(self.disks):
            if disk is not None:
                h.update(_canonical({str(index): {str(k): v for k, v in disk.written.items()}}))
        h.update(self.cpu.ram)
        return h.hexdigest()

    def close(self) -> None:
        self.counter.close()
        self.inputs.close()
        self.cpu.close()


# -- helpers --------------------------------------------------------------------------------

_INSN_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)


def _hook_insn_ctypes(uc: Uc, fn: ctypes._FuncPointer, insn: int) -> int:
    handle = ctypes.c_size_t()
    status = _ucpy.uclib.uc_hook_add(
        uc._uch,
        ctypes.byref(handle),
        UC_HOOK_INSN,
        ctypes.cast(fn, ctypes.c_void_p),
        ctypes.c_void_p(0),
        ctypes.c_uint64(1),
        ctypes.c_uint64(0),
        ctypes.c_int(insn),
    )
    if status != 0:
        raise UcError(status)
    return int(handle.value)


def _open_bus_read(uc: Uc, offset: int, size: int, _user: object) -> int:
    log.debug("read of %d bytes from physical address with nothing behind it", size)
    return (1 << (8 * size)) - 1


def _open_bus_write(uc: Uc, offset: int, size: int, value: int, _user: object) -> None:
    log.debug("write of %d bytes to physical address with nothing behind it", size)


def _is_int_instruction(cpu: Cpu, addr: int, vector: int) -> bool:
    """Is the instruction at linear `addr` an INT n / INT3 / INTO / INT1 raising `vector`?"""
    raw = cpu.read_linear(addr, 2)
    if raw is None:
        return False
    if raw[0] == 0xCD:
        return raw[1] == vector
    return _INT_OPCODES.get(raw[0]) == vector


def cpuid(leaf: int) -> tuple[int, int, int, int]:
    """The CPU rdebug presents: a family-6 Intel-compatible i686 with SSE2."""
    if leaf == 0:
        vendor = b"GenuineIntel"
        ebx, edx, ecx = struct.unpack("<III", vendor)
        return 1, ebx, ecx, edx
    if leaf == 1:
        # family 6, model 3, stepping 3; FPU VME DE PSE TSC MSR CX8 APIC SEP CMOV MMX FXSR
        # SSE SSE2
        features = 0
        for bit in (0, 1, 2, 3, 4, 5, 8, 9, 11, 15, 23, 24, 25, 26):
            features |= 1 << bit
        return 0x00000633, 0x00010000, 0, features
    if leaf == 0x80000000:
        return 0x80000000, 0, 0, 0
    return 0, 0, 0, 0


def _canonical(value: Mapping[str, object]) -> bytes:
    return repr(_sorted(value)).encode()


def _sorted(value: object) -> object:
    if isinstance(value, Mapping):
        return [(k, _sorted(value[k])) for k in sorted(value)]
    if isinstance(value, list | tuple):
        return [_sorted(v) for v in value]
    return value

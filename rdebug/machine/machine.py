"""The i386 PC: CPU + RAM + devices + the run loop, in exact instruction time.

`Machine.run(target)` executes the guest up to icount `target` (or another stop) and
returns a `StopEvent` at an exact instruction boundary.  Between stretches of execution
the run loop *services* the machine at the boundary it stopped at, always in this order:

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

The run loop is this module; the rest of the PC lives beside it: board.py (the devices,
their wiring, the port map), boot.py (the CPU as a boot protocol leaves it), clock.py
(virtual time and device timers), ioports.py (IN/OUT and the I/O permission check),
regpages.py (memory-mapped device registers), watchpoints.py, cpuid.py (CPUID, RDTSC),
state.py (what a snapshot keeps, the state hash), counter.py and native_counter.py (the
exact icount).

Knows nothing of logs, snapshots files or gdb: non-determinism comes in only through
`ExternalInputs` (machine/inputs.py).
"""

from __future__ import annotations

import copy
import enum
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from unicorn import UC_HOOK_INSN, UC_HOOK_INSN_INVALID, UC_HOOK_INTR, Uc, UcError
from unicorn import x86_const as X

from rdebug.errors import GuestFault, MachineError
from rdebug.machine.audio import AudioFormat
from rdebug.machine.board import Board
from rdebug.machine.boot import boot
from rdebug.machine.clock import NEVER, VirtualClock
from rdebug.machine.countdown import Countdown, PublicationChoice
from rdebug.machine.counter import Counter, CounterFactory, StopCause
from rdebug.machine.cpu import EFLAGS_IF, Cpu
from rdebug.machine.cpuid import CpuidTsc
from rdebug.machine.devices.base import Device, State
from rdebug.machine.devices.lapic import LocalApic
from rdebug.machine.devices.uart import SerialBackend
from rdebug.machine.disks import OverlayDisk
from rdebug.machine.inputs import ExternalInputs, SyncEvent
from rdebug.machine.interrupts import (
    ERROR_CODE_VECTORS,
    Interrupt,
    Source,
    deliver,
    is_int_instruction,
)
from rdebug.machine.intr import SYNC_EXTERNAL, NativeInterrupts
from rdebug.machine.ioports import PortIo
from rdebug.machine.loader import LoadedImage
from rdebug.machine.native_counter import NativeCounter
from rdebug.machine.openbus import map_open_bus
from rdebug.machine.probes import Delivery, MemoryProbes, PortAccess
from rdebug.machine.regpages import RegisterPages
from rdebug.machine.state import MachineState, state_hash
from rdebug.machine.sysenter import SYSENTER_LENGTH, sysenter
from rdebug.machine.ticker import NativeTicker
from rdebug.machine.vtlb import PageFault
from rdebug.machine.watchpoints import WatchHit, WatchKind, Watchpoints

if TYPE_CHECKING:
    from rdebug.machine import linux
    from rdebug.machine.devices.ne2000 import FrameSink, NicConfig
    from rdebug.machine.devices.sb16 import AudioSink, Sb16Config

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


@dataclass(frozen=True, slots=True)
class StopEvent:
    """Why and where `Machine.run` stopped (the icount and linear PC reached)."""

    reason: StopReason
    icount: int
    pc: int
    exit_code: int | None = None
    detail: str = ""
    watch: WatchHit | None = None


@dataclass(frozen=True, slots=True)
class MachineConfig:
    """The PC to build: memory, icount shift, and the optional ISA cards."""

    memory_mb: int = 256
    icount_shift: int = 7
    #: An NE2000 on the ISA bus (network adapter 0), or none.
    nic: NicConfig | None = None
    #: A Sound Blaster 16 on the ISA bus (sound card 0), or none.
    sound: Sb16Config | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.memory_mb <= 3072:
            raise MachineError(f"-m {self.memory_mb}: memory must be 1..3072 MiB")
        if self.memory_mb < 2:
            raise MachineError("-m: at least 2 MiB are needed (guests load at 1 MiB)")
        if not 0 <= self.icount_shift <= 10:
            raise MachineError(f"--icount-shift {self.icount_shift}: must be 0..10")


class Machine:
    """An i386 PC running one guest."""

    def __init__(
        self,
        config: MachineConfig,
        inputs: ExternalInputs,
        serial: Sequence[SerialBackend] = (),
        disks: Sequence[OverlayDisk | None] = (),
        net: FrameSink | None = None,
        counter: CounterFactory = NativeCounter,
        audio: AudioSink | None = None,
    ) -> None:
        """`net` receives the frames the NIC (if `config.nic`) transmits, `audio` the
        samples the sound card (if `config.sound`) plays; None drops them.

        `counter` makes the instruction counter (tests give the reference counter).
        """
        self.config = config
        self.inputs = inputs
        self.cpu = Cpu(config.memory_mb)
        self.counter: Counter = counter(self.cpu)
        self._uc: Uc = self.cpu.uc
        self.clock = VirtualClock(config.icount_shift)
        self.halted = False
        self._idle_fast_forwards = 0
        self._waited = False  # a halted CPU waited for input since its last clock warp
        self._exit_code: int | None = None
        self._emulating = False
        #: The nearest icount the counter's current `execute` may stop at (hard or soft).
        self._next_stop = 0
        self._interrupt = threading.Event()
        self._fault: GuestFault | None = None
        #: the LAPIC whose timer expiries and deliveries the counter takes in C (its
        #: timer is left out of the counter's soft target), if any (set below)
        self._native_lapic: LocalApic | None = None
        self.board = Board(
            self,
            memory_mb=config.memory_mb,
            host_time_ns=self._host_time_ns,
            serial=serial,
            disks=disks,
            nic=config.nic,
            net=net,
            memory=self.cpu,
            sound=config.sound,
            audio=audio,
            microphone=self._microphone,
        )
        self.devices = self.board.devices
        self.disks = self.board.disks
        self._watchpoints = Watchpoints(self.cpu, self.counter)
        #: memory access probes (machine/probes.py), for queries over a run
        self.probes = MemoryProbes(self.cpu, self.counter)
        self._interrupt_probe: Callable[[Delivery], None] | None = None
        self._native_interrupts: NativeInterrupts | None = None
        self._install_hooks()
        #: the PIT's idle expiries, taken by the native counter itself (machine/ticker.py)
        self._ticker: NativeTicker | None = None
        if isinstance(self.counter, NativeCounter) and NativeTicker.default_enabled:
            self._ticker = NativeTicker()
            self.counter.attach_ticker(self._ticker)
        self._register_pages = RegisterPages(
            self.cpu, self.counter, self.devices, lambda: self._emulating, self._device_touched
        )
        #: device counters the instruction counter publishes (machine/countdown.py)
        self._countdowns = [cd for device in self.devices for cd in device.countdowns()]
        for countdown in self._countdowns:
            countdown.set_clock(self.clock.shift, self.clock.bias_ns)
            self.counter.attach_countdown(countdown)
        #: the countdown whose page the guest reads through an alias while it is published
        #: lazily, and the choice between lazy and eager (machine/countdown.py)
        self._lazy_countdown: Countdown | None = None
        self._publication: PublicationChoice | None = None
        if isinstance(self.counter, NativeCounter) and len(self._countdowns) == 1:
            countdown = self._countdowns[0]
            for device in self.devices:
                for base, page in device.register_pages():
                    if page is countdown.page:
                        self.cpu.vtlb.read_through_countdown(base, countdown.address)
                        self._lazy_countdown = countdown
                        self._publication = PublicationChoice(
                            countdown,
                            self.counter.boundary_address,
                            self.cpu.vtlb.countdown_reads_through_alias,
                        )
        if isinstance(self.counter, NativeCounter) and self._native_interrupts is not None:
            lapic = self.board.lapic
            lapic.core.wire(self._native_interrupts.state_address, self.cpu.vtlb.state_address)
            self.counter.attach_lapic(lapic.core)
            self._native_lapic = lapic
        map_open_bus(self._uc)
        self.symbols: Mapping[str, int] = {}
        self._linux: linux.LinuxBoot | None = None

    @property
    def native_ticker(self) -> NativeTicker | None:
        """The PIT's idle expiries taken in C (None with a counter other than the native
        one, or with `NativeTicker.default_enabled` off)."""
        return self._ticker

    @property
    def native_interrupts(self) -> NativeInterrupts | None:
        """The native system-call path (None with a counter other than the native one)."""
        return self._native_interrupts

    @property
    def interrupt_probe(self) -> Callable[[Delivery], None] | None:
        """Called with every interrupt or exception delivered, when set."""
        return self._interrupt_probe

    @interrupt_probe.setter
    def interrupt_probe(self, probe: Callable[[Delivery], None] | None) -> None:
        self._interrupt_probe = probe
        if self._native_interrupts is not None:  # the probe sees every delivery in Python
            self._native_interrupts.native = probe is None and NativeInterrupts.default_native

    # -- DeviceContext ---------------------------------------------------------------------

    def now_ns(self) -> int:
        if not self._emulating:
            return self.clock.ns(self.counter.icount)
        pages = self._register_pages
        if not pages.in_store:
            return self.clock.ns(self.counter.current_icount())
        if pages.store_icount is None:  # (a LAPIC store asks three times)
            pages.store_icount = self.counter.current_icount()
        return self.clock.ns(pages.store_icount)

    def set_timer(self, device: Device, deadline_ns: int | None) -> None:
        self.clock.set_timer(device, deadline_ns)
        if device is self._native_lapic:
            return  # the counter has the deadline from its core (LocalApic._set_deadline)
        if (
            deadline_ns is not None
            and self._emulating
            and self.clock.icount_at(deadline_ns) < self._next_stop
        ):
            self.request_stop()

    def set_irq(self, line: int, level: bool) -> None:
        self.board.set_irq(line, level)

    def request_stop(self) -> None:
        if self._register_pages.in_store:
            self._register_pages.stop_wanted = True  # that store stops on its own
        elif self._emulating:
            self.counter.request_stop_after_current()

    def intr_raised(self) -> None:
        if not self._emulating:
            return  # the run loop delivers at the boundary it is at (`_deliver_irqs`)
        if self.cpu.read("eflags") & EFLAGS_IF:
            self.request_stop()  # to deliver right after this instruction
        else:
            # A stop after this instruction would only find IF=0 (an I/O or MMIO store
            # does not change it) and leave the counter watching for the window: so
            # watch now, and run on (one stop less per disk interrupt a kernel raises
            # with interrupts off).
            self.counter.irq_check = True

    def guest_exit(self, code: int) -> None:
        self._exit_code = code
        self.request_stop()

    # -- time --------------------------------------------------------------------------------

    @property
    def icount(self) -> int:
        return self.counter.icount

    def _host_time_ns(self) -> int:
        # The exact instruction (an I/O hook runs mid-block): where the run was cut into
        # blocks must not change the icount a recording gives the host clock read.
        icount = self.counter.current_icount() if self._emulating else self.counter.icount
        self._pass_native_syncs()
        return self.inputs.host_clock_ns(icount)

    def _microphone(self, fmt: AudioFormat, frames: int) -> bytes:
        # The exact instruction too: the card may take samples inside an I/O access (the
        # guest changing the rate or pausing mid-transfer).
        icount = self.counter.current_icount() if self._emulating else self.counter.icount
        self._pass_native_syncs()
        return self.inputs.audio_input(icount, fmt, frames)

    # -- loading -----------------------------------------------------------------------------

    def load(self, image: LoadedImage) -> None:
        """Place `image` in RAM and set the CPU up as its boot protocol says."""
        boot(self.cpu, image)
        self.symbols = image.symbols
        self._linux = image.linux
        self.counter.invalidate()

    def kernel_offset(self) -> int | None:
        """A Linux guest: how far KASLR moved its kernel from the link-time addresses of
        its symbols (0: not moved); None before the kernel runs paged, or no Linux."""
        if self._linux is None:
            return None
        from rdebug.machine import linux  # noqa: PLC0415 - only for a Linux kernel (loader.py)

        return linux.kaslr_offset(
            self._linux.symbols.result(),
            self._linux.header.kernel_alignment,
            self.cpu.read_linear,
        )

    # -- breakpoints and watchpoints ---------------------------------------------------------

    def add_breakpoint(self, addr: int) -> None:
        self.counter.add_breakpoint(addr & 0xFFFFFFFF)

    def remove_breakpoint(self, addr: int) -> None:
        self.counter.remove_breakpoint(addr & 0xFFFFFFFF)

    def add_watchpoint(self, addr: int, length: int, kind: WatchKind) -> None:
        """Stop soon after an access to [addr, addr+length) (linear addresses).

        The stop lands at the next block boundary; its `watch` says which instructions
        may have made the access.  See machine/watchpoints.py (watching costs speed).
        `MachineError` for a range that leaves the 32-bit space, is empty, or maps to
        too many physical pieces.
        """
        self._watchpoints.add(addr, length, kind)

    def remove_watchpoint(self, addr: int, length: int, kind: WatchKind) -> None:
        self._watchpoints.remove(addr, length, kind)

    # -- running -----------------------------------------------------------------------------

    def interrupt(self) -> None:
        """Stop a running `run` as soon as possible (any thread; e.g. on Ctrl-C)."""
        self._interrupt.set()
        self.counter.interrupt()

    def run(self, target: int | None = None) -> StopEvent:
        """Run until icount `target` (exact; None: no end) or another stop; see `StopReason`."""
        if target is None:
            target = NEVER
        if target < self.icount:
            raise MachineError(f"icount {target} is in the past (now {self.icount})")
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
            if self.icount >= target:
                return self._stop(StopReason.TARGET)
            horizon = self.inputs.horizon()
            if horizon is not None and horizon <= self.icount and self.inputs.finished():
                # The inputs end here, before anything else happens at this icount: a
                # recording cut short (--max-insns, Ctrl-C) stopped before delivering the
                # interrupt or clock warp that was due, so its replay must too.
                return self._stop(StopReason.END_OF_INPUT)
            if self._port_io.fault_eip is not None:
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
            hard = target if horizon is None else min(target, horizon)
            native_lapic = self._native_lapic
            native_timers: list[Device] = [] if native_lapic is None else [native_lapic]
            if self._wire_ticker():
                native_timers.append(self.board.pit)
            soft = min(
                self.clock.next_deadline_icount(skip=native_timers),
                self.icount + CONTROL_INTERVAL,
            )
            self._next_stop = min(hard, soft)
            for countdown in self._countdowns:
                countdown.set_clock(self.clock.shift, self.clock.bias_ns)  # warps move it
            self._cpuid_tsc.set_clock(self.clock.shift, self.clock.bias_ns)
            if native_lapic is not None:
                native_lapic.core.set_clock(self.clock.shift, self.clock.bias_ns)
                native_lapic.core.wired = self._interrupt_probe is None and bool(
                    self._native_interrupts and self._native_interrupts.native
                )
            self._emulating = True
            page_fault: PageFault | None = None
            self.cpu.vtlb.clear_fault()  # a refusal seen by a probe never became a fault
            try:
                cause = self.counter.execute(hard, soft)
            except UcError as exc:
                # No memory hook watches for unmapped accesses (any memory hook would send
                # every guest load and store through unicorn's slow path): the engine's
                # error says what happened, or the page walk refused an access (a #PF).
                self._emulating = False
                try:
                    page_fault = self.cpu.vtlb.take_fault()
                except MachineError as error:
                    return self._stop(StopReason.FAULT, detail=str(error))
                if page_fault is None:
                    return self._stop(StopReason.FAULT, detail=f"{exc} at eip {self.cpu.eip:#x}")
            finally:
                self._emulating = False
                if self._lazy_countdown is not None:
                    self._lazy_countdown.catch_up()
                if self._publication is not None:
                    self._publication.stopped(self.icount)
                try:
                    self._pass_native_syncs()  # a player may find a divergence here
                finally:
                    self._register_pages.settle()
                    if self._native_lapic is not None:
                        self._native_lapic.native_expiries_taken()
                    self._take_ticker_edges()
            if page_fault is not None:
                self._raise_page_fault(page_fault)
                shadow = False
                continue
            if self._fault is not None:
                fault, self._fault = self._fault, None
                self.inputs.synchronize(SyncEvent.RESET, self.icount)
                return self._stop(StopReason.SHUTDOWN, detail=str(fault))
            shadow = self.counter.in_shadow()
            if cause is StopCause.HALTED:
                self.halted = True
            if self._watchpoints.hit is not None:
                hit = self._watchpoints.take_hit()
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

    def _service(self, shadow: bool) -> StopEvent | None:
        """Bring devices and interrupts up to date at the current boundary."""
        for item in self.inputs.take_async(self.icount):
            self.board.take_input(item)
            self._idle_fast_forwards = 0  # new input may need timers to reach the guest
        self._fire_timers()
        if self.halted:
            stop = self._wake_or_wait()
            if stop is not None or self.halted:
                return stop
            shadow = False
        self._deliver_irqs(shadow)
        return None

    def _fire_timers(self) -> None:
        if not (self.halted or self.counter.at_branch_boundary()):
            return  # the counter stops again at the next branch boundary
        icount = self.icount
        while (device := self.clock.pop_due(icount)) is not None:
            device.on_timer()

    def _wake_or_wait(self) -> StopEvent | None:
        """A halted CPU: wake it, move its clock to the next timer, or wait for input.

        While input may arrive, waiting for it (briefly) and warping the clock to the next
        timer alternate, so an idle guest's virtual time goes on at about the pace of the
        wall clock; the order of warps and inputs is deterministic in replay because
        every warp is reported to the inputs seam (and logged).
        """
        if_set = bool(self.cpu.read("eflags") & EFLAGS_IF)
        if if_set and self.board.irq_pending():
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
        deadline = self.clock.next_deadline_ns()
        if deadline is not None and self._idle_fast_forwards < _MAX_IDLE_FAST_FORWARDS:
            self._idle_fast_forwards += 1
            now = self.now_ns()
            if deadline > now:
                self.inputs.synchronize(SyncEvent.CLOCK_WARP, self.icount)
                self.clock.warp(now, deadline)
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
            if not self.board.irq_pending():
                self.counter.irq_check = False
                return
            if shadow or not self.cpu.read("eflags") & EFLAGS_IF:
                self.counter.irq_check = True
                return
            vector = self.board.irq_acknowledge()
            self.inputs.synchronize(SyncEvent.INTERRUPT, self.icount)
            self._deliver(Interrupt(vector, Source.EXTERNAL))
            shadow = False
        self.counter.irq_check = self.board.irq_pending()

    def probe_ports(self, sink: Callable[[PortAccess], None] | None) -> None:
        """Call `sink` with every IN and OUT a device answers (None: stop)."""
        self._port_io.probe = sink

    def _deliver(self, interrupt: Interrupt) -> None:
        if self._interrupt_probe is not None:
            icount = self.counter.current_icount() if self._emulating else self.counter.icount
            self._interrupt_probe(
                Delivery(
                    icount,
                    interrupt.vector,
                    interrupt.source.value,
                    interrupt.error_code,
                    self.cpu.linear_pc(),
                )
            )
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
        self._port_io = PortIo(
            self.cpu,
            self.counter,
            self.board.ports,
            self._after_io,
            self._pass_native_syncs,
            self._take_ticker_edges,
        )
        self._cpuid_tsc = CpuidTsc(self.cpu, self.counter, self.now_ns)
        if isinstance(self.counter, NativeCounter):
            # system calls (INT n) taken in C; everything else comes to _on_interrupt
            self._native_interrupts = NativeInterrupts(
                uc, self.counter.state_address, self.cpu.vtlb.state_address, self._on_trap
            )
        else:
            uc.hook_add(UC_HOOK_INTR, self._on_interrupt)
        uc.hook_add(UC_HOOK_INSN_INVALID, self._on_invalid)
        uc.hook_add(UC_HOOK_INSN, self._on_sysenter, None, 1, 0, X.UC_X86_INS_SYSENTER)

    def _raise_io_fault(self) -> None:
        """An I/O access ring 3 was refused: the instruction did not complete, #GP(0)."""
        eip, self._port_io.fault_eip = self._port_io.fault_eip, None
        assert eip is not None
        self.counter.icount = self.counter.icount - 1  # the instruction did not complete
        self.cpu.eip = eip
        self.inputs.synchronize(SyncEvent.EXCEPTION, self.icount)
        self._deliver(Interrupt(13, Source.EXCEPTION, 0))

    def _raise_page_fault(self, fault: PageFault) -> None:
        """The page walk refused an access of the instruction at EIP: deliver its #PF."""
        self.counter.exception_taken(faulting=True)
        self.inputs.synchronize(SyncEvent.EXCEPTION, self.icount)
        self.cpu.write("cr2", fault.address)
        self._deliver(Interrupt(14, Source.EXCEPTION, fault.error_code))

    def _wire_ticker(self) -> bool:
        """Let the counter take the PIT's expiries in the run about to start, if each is
        an IRQ0 pulse that changes nothing now (machine/ticker.py)?"""
        ticker = self._ticker
        if ticker is None:
            return False
        pit = self.board.pit
        edges = pit.periodic_edges()
        deadline = self.clock.timers.get(pit)
        if edges is None or deadline is None or not self.board.isa_pulse_changes_nothing(0):
            ticker.unwire()
            return False
        start, period, edge = edges
        ticker.wire(
            start,
            period,
            edge,
            self.clock.icount_at(deadline),
            self.clock.shift,
            self.clock.bias_ns,
        )
        return True

    def _take_ticker_edges(self) -> None:
        """The PIT takes back the schedule the counter moved on, if it took expiries: after
        each run, and during one before any port access a device answers (the guest may
        program the PIT there: its new count must not be overwritten after the run by
        the edge of the schedule it replaced)."""
        if self._ticker is not None and (edge := self._ticker.edge_taken()) is not None:
            self.board.pit.edge_passed(edge)

    def _device_touched(self) -> None:
        """A device answered an I/O access or a register-page store during a run: its
        state (an interrupt controller's) may have changed, so the PIT's next expiry
        may matter; the counter stops for it again."""
        if self._ticker is not None:
            self._ticker.busy()

    def _after_io(self) -> None:
        """After an I/O access: tell the run loop if the CPU now has an IRQ to take."""
        self._device_touched()
        if self._exit_code is not None:
            return
        if self.board.irq_pending() and not self.counter.irq_check:
            self.intr_raised()

    def _pass_native_syncs(self) -> None:
        """Hand the inputs the interrupts taken in C since the last call (a recorder logs
        them, a player checks them), before anything later reaches them: after each engine
        run, and inside it before a host clock read, a microphone read, and an OUT a device
        answers (whatever it sends out comes after them in the log, as the recorder's flush
        policy promises for interrupts)."""
        if self._native_interrupts is not None:
            entries = self._native_interrupts.take_syncs()
            if entries:
                self.inputs.synchronize_all(
                    [
                        (SyncEvent.INTERRUPT, entry & ~SYNC_EXTERNAL)  # the LAPIC's (_lapic.c)
                        if entry & SYNC_EXTERNAL
                        else (SyncEvent.EXCEPTION, entry)
                        for entry in entries
                    ]
                )

    def _on_trap(self, intno: int) -> None:
        """An interrupt or exception the native hook left to Python."""
        self._on_interrupt(self._uc, intno, None)

    def _on_interrupt(self, uc: Uc, intno: int, _user: object) -> None:
        self._pass_native_syncs()
        pc = self.cpu.linear_pc()
        prev = self.counter.previous_instruction(pc)
        software = prev is not None and is_int_instruction(self.cpu, prev, intno)
        self.counter.exception_taken(faulting=not software)
        self.inputs.synchronize(SyncEvent.EXCEPTION, self.counter.current_icount())
        error_code = self.cpu.take_exception_error_code()
        if software:
            self._deliver(Interrupt(intno, Source.SOFTWARE))
        else:
            code = error_code if intno in ERROR_CODE_VECTORS else None
            self._deliver(Interrupt(intno, Source.EXCEPTION, code))

    def _on_sysenter(self, uc: Uc, _user: object) -> None:
        """Unicorn's SYSENTER only calls this hook, then adds 2 to EIP (machine/sysenter.py)."""
        self._pass_native_syncs()
        if not sysenter(self.cpu):
            self.counter.exception_taken(faulting=True)
            self.inputs.synchronize(SyncEvent.EXCEPTION, self.counter.current_icount())
            self._deliver(Interrupt(13, Source.EXCEPTION, 0))
        self.cpu.eip = self.cpu.eip - SYSENTER_LENGTH

    def _on_invalid(self, uc: Uc, _user: object) -> bool:
        self._pass_native_syncs()
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
            bias_ns=self.clock.bias_ns,
            halted=self.halted,
            idle_fast_forwards=self._idle_fast_forwards,
            waited=self._waited,
            irq_check=self.counter.irq_check,
            branch_boundary=self.counter.at_branch_boundary(),
            shadow=self.counter.in_shadow(),
            exit_code=self._exit_code,
            io_fault_eip=self._port_io.fault_eip,
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
        self.clock.clear()
        for device in self.devices:
            device.load_state(copy.deepcopy(state.devices[device.name]))  # re-arms timers
        self.clock.bias_ns = state.bias_ns
        self.halted = state.halted
        self._idle_fast_forwards = state.idle_fast_forwards
        self._waited = state.waited
        self._exit_code = state.exit_code
        self._port_io.fault_eip = state.io_fault_eip
        self._fault = None
        self._watchpoints.take_hit()
        self._register_pages.forget()
        for index, disk in enumerate(self.disks):
            if disk is not None:
                disk.load_state(state.disks.get(index, {}))
        if rewritten is None:
            self.counter.invalidate()
        else:
            self.counter.memory_rewritten(rewritten)
        self.counter.restore_position(state.icount, state.branch_boundary, state.shadow)
        self.counter.irq_check = state.irq_check

    def state_hash(self) -> str:
        """SHA-256 over registers, RAM, device state and virtual time."""
        return state_hash(
            registers=self.cpu.system_state(),
            icount=self.icount,
            bias_ns=self.clock.bias_ns,
            halted=self.halted,
            devices=self.device_states(),
            timers={d.name: ns for d, ns in self.clock.timers.items()},
            disks={i: d.written for i, d in enumerate(self.disks) if d is not None},
            ram=self.cpu.ram,
        )

    def close(self) -> None:
        self.counter.close()
        self.inputs.close()
        self.cpu.close()

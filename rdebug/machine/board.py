"""The PC's board: which devices it carries, how they are wired, and the I/O port map.

    ISA IRQ lines --+--> 8259 pair (PicPair) --INTR--> LAPIC LINT0 (ExtINT) --+
                    +--> IOAPIC -------------------------> LAPIC -------------+--> CPU INTR
    COM1 0x3F8 IRQ4, COM2 0x2F8 IRQ3, PIT 0x40 IRQ0, RTC 0x70 IRQ8, i8042 0x60/0x64
    IRQ1/12, IDE 0x1F0 IRQ14 (if a drive is attached), NE2000 (if configured), CGA text
    memory, port 0x61, port 0x92, POST port 0x80, the debug exit port, the ISA DMA pair
    (0x00-0x0F, 0x81-0x8F, 0xC0-0xDF), a Sound Blaster 16 (if configured: 0x220, IRQ 5,
    DMA 1 and 5), the PCI configuration ports 0xCF8-0xCFF (host and ISA bridges), the
    ACPI PM ports 0x600.

Host inputs taken by the run loop are handed to the device they are for here.  Knows
nothing of the engine, the counter or the run loop: devices see the machine only as a
`DeviceContext`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from rdebug.errors import MachineError
from rdebug.machine.devices.acpi_pm import AcpiPm
from rdebug.machine.devices.base import Device, DeviceContext
from rdebug.machine.devices.cga import Cga
from rdebug.machine.devices.dma import IsaDma, PhysicalMemory
from rdebug.machine.devices.i8042 import I8042, FastA20Port
from rdebug.machine.devices.ioapic import IoApic
from rdebug.machine.devices.lapic import LocalApic
from rdebug.machine.devices.misc import DebugExit, PostPort
from rdebug.machine.devices.pci import PciBus
from rdebug.machine.devices.pic import PicPair
from rdebug.machine.devices.pit import Pit, SystemControlPort
from rdebug.machine.devices.rtc import Rtc
from rdebug.machine.devices.uart import SerialBackend, Uart
from rdebug.machine.disks import OverlayDisk
from rdebug.machine.inputs import AsyncInput, KeyInput, MouseInput, NetInput, SerialInput

if TYPE_CHECKING:
    from rdebug.machine.devices.ide import IdeController
    from rdebug.machine.devices.ne2000 import FrameSink, Ne2000, NicConfig
    from rdebug.machine.devices.sb16 import AudioSink, Microphone, Sb16, Sb16Config


class Board:
    """The devices of one PC, reset to their power-on state."""

    def __init__(
        self,
        ctx: DeviceContext,
        *,
        memory_mb: int,
        host_time_ns: Callable[[], int],
        serial: Sequence[SerialBackend] = (),
        disks: Sequence[OverlayDisk | None] = (),
        nic: NicConfig | None = None,
        net: FrameSink | None = None,
        memory: PhysicalMemory,
        sound: Sb16Config | None = None,
        audio: AudioSink | None = None,
        microphone: Microphone,
    ) -> None:
        backends: list[SerialBackend | None] = [*serial, None, None]  # None: dropped
        self.pic = PicPair(ctx)
        self.lapic = LocalApic(ctx)
        self.ioapic = IoApic(ctx, self.lapic)
        self.pit = Pit(ctx)
        self.port61 = SystemControlPort(ctx, self.pit)
        self.com1 = Uart(ctx, base=0x3F8, irq=4, backend=backends[0])
        self.com2 = Uart(ctx, base=0x2F8, irq=3, backend=backends[1])
        self.rtc = Rtc(ctx, host_time_ns=host_time_ns, memory_mb=memory_mb)
        self.post = PostPort(ctx)
        self.debug_exit = DebugExit(ctx)
        self.i8042 = I8042(ctx)
        self.port92 = FastA20Port(ctx)
        self.cga = Cga(ctx)
        self.dma = IsaDma(ctx, memory)
        self.pci = PciBus(ctx)
        self.acpi_pm = AcpiPm(ctx)
        self.disks = [*disks, None, None][:2]
        if len(disks) > 2:
            raise MachineError("at most two IDE drives (master and slave)")
        self.ide: IdeController | None = None
        if any(self.disks):
            from rdebug.machine.devices.ide import IdeController  # noqa: PLC0415 - with a drive

            self.ide = IdeController(ctx, self.disks[0], self.disks[1])
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
            self.dma,
            self.pci,
            self.acpi_pm,
        ]
        #: Network adapters by adapter id (the id in NetInput and the log's NET events).
        self.nics: list[Ne2000] = []
        if nic is not None:
            from rdebug.machine.devices.ne2000 import Ne2000  # noqa: PLC0415 - only with a NIC

            self.nics.append(Ne2000(ctx, nic, net))
            self.devices.append(self.nics[0])
        #: The sound card, if any (its microphone is the inputs seam's).
        self.sb16: Sb16 | None = None
        if sound is not None:
            from rdebug.machine.devices.sb16 import Sb16  # noqa: PLC0415 - with a sound card

            self.sb16 = Sb16(ctx, self.dma, sound, audio, microphone)
            self.devices.append(self.sb16)
        self._uarts = (self.com1, self.com2)
        #: The I/O port map: which device answers each port.
        self.ports: dict[int, Device] = {}
        for device in self.devices:
            for ports in device.ports:
                for port in ports:
                    if port in self.ports:
                        raise MachineError(
                            f"port {port:#x}: {device.name} and {self.ports[port].name}"
                        )
                    self.ports[port] = device
        for device in self.devices:
            device.reset()

    def set_irq(self, line: int, level: bool) -> None:
        """An ISA line goes to both interrupt controllers, as on a PC with an IOAPIC."""
        self.pic.set_irq(line, level)
        self.ioapic.set_irq(line, level)

    def isa_pulse_changes_nothing(self, line: int) -> bool:
        """Would a pulse on ISA line `line` change neither interrupt controller (both
        already hold its edge, masked)?  Then a periodic timer's expiry there is idle."""
        return self.pic.pulse_changes_nothing(line) and self.ioapic.pulse_changes_nothing(line)

    def irq_pending(self) -> bool:
        """The CPU's INTR: from the LAPIC (IOAPIC, timer, self-IPI) or the 8259 through
        LINT0 in ExtINT mode; with the LAPIC software-disabled, the 8259 directly."""
        if not self.lapic.software_enabled:
            return self.pic.intr()
        return self.lapic.intr() or (self.lapic.extint_open() and self.pic.intr())

    def irq_acknowledge(self) -> int:
        """The INTA cycle of whichever controller `irq_pending` found: the vector."""
        if self.lapic.software_enabled and self.lapic.intr():
            return self.lapic.acknowledge()
        return self.pic.acknowledge()

    def take_input(self, item: AsyncInput) -> None:
        """Hand a host input to its device (inputs for absent devices are dropped)."""
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

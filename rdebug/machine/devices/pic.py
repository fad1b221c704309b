"""8259A programmable interrupt controller pair: master at 0x20/0x21, slave at 0xA0/0xA1.

Owns both chips' registers (`irr`, `isr`, `imr`), their ICW1-ICW4 / OCW1-OCW3
programming state, the AT cascade (the slave's INT output wired to master IR2, the ISA
bus IRQ2 pin wired to slave IR1 = IRQ9) and the INTA cycle that turns a request into a
vector.  It knows nothing of the CPU: the machine asks `intr()` and calls `acknowledge()`
when it delivers; nor of the devices behind the 16 lines, which it sees only as levels.

Edge-triggered inputs (the default) latch a rising edge into `irr` and keep it until the
INTA cycle, as QEMU's i8259 does, so a device may pulse a line high then low.
Level-triggered inputs (ICW1 LTIM) make `irr` follow the line.

Reference: Intel 8259A datasheet (231468), "Programming the 8259A"; QEMU hw/intc/i8259.c.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum

from rdebug.machine.devices.base import (
    BOOL,
    INT,
    ByteDevice,
    DeviceContext,
    Field,
    State,
    Stateful,
    StateValue,
    enum_codec,
    fields,
)

MASTER_PORTS = range(0x20, 0x22)
SLAVE_PORTS = range(0xA0, 0xA2)
#: Master input the slave's INT output is wired to on a PC/AT.
CASCADE_IRQ = 2
#: Slave input (IRQ9) the ISA bus IRQ2 pin is redirected to on a PC/AT.
REDIRECTED_IRQ2 = 9

# ICW1 (A0=0, D4=1) bits.
_ICW1_IC4 = 0x01  # ICW4 needed
_ICW1_SNGL = 0x02  # single (no ICW3)
_ICW1_LTIM = 0x08  # level triggered mode
_ICW1_INIT = 0x10
# ICW4 bits.
_ICW4_AEOI = 0x02  # automatic end of interrupt
_ICW4_SFNM = 0x10  # special fully nested mode
# OCW3 (A0=0, D4=0, D3=1) bits.
_OCW3_RIS = 0x01  # read ISR (1) or IRR (0) ...
_OCW3_RR = 0x02  # ... when RR is set
_OCW3_P = 0x04  # poll command
_OCW3_SELECT = 0x08
_OCW3_SMM = 0x20  # special mask mode on (1) / off (0) ...
_OCW3_ESMM = 0x40  # ... when ESMM is set


class _InitStep(Enum):
    """Which initialization command word the chip's A0=1 port expects next."""

    READY = "ready"  # normal operation: A0=1 writes are OCW1 (IMR)
    ICW2 = "icw2"
    ICW3 = "icw3"
    ICW4 = "icw4"


class _Ocw2(Enum):
    """OCW2 commands, keyed by the R, SL, EOI bits (D7-D5)."""

    ROTATE_AEOI_CLEAR = 0b000
    NON_SPECIFIC_EOI = 0b001
    NOP = 0b010
    SPECIFIC_EOI = 0b011
    ROTATE_AEOI_SET = 0b100
    ROTATE_NON_SPECIFIC_EOI = 0b101
    SET_PRIORITY = 0b110
    ROTATE_SPECIFIC_EOI = 0b111


class _Chip(Stateful):
    """One 8259A.  Plain state; `PicPair` wires two of them together."""

    def __init__(self, *, master: bool) -> None:
        self.master = master
        #: Inputs whose request follows the pin level whatever LTIM says (the cascade).
        self.level_inputs = 1 << CASCADE_IRQ if master else 0
        self.lines = 0  # IR0-IR7 pin levels
        self.irr = 0  # Interrupt Request Register
        self.isr = 0  # In-Service Register
        self.imr = 0xFF  # Interrupt Mask Register (OCW1)
        self.icw1 = 0
        self.icw2 = 0
        self.icw3 = 0
        self.icw4 = 0
        self.init_step = _InitStep.READY
        self.priority_add = 0  # IR with the highest priority (rotation); 0 = IR0
        self.read_isr = False  # OCW3 RR/RIS: the A0=0 read returns ISR, else IRR
        self.poll = False  # OCW3 P: the next read is a poll
        self.special_mask = False  # OCW3 SMM
        self.rotate_on_aeoi = False  # OCW2 R in AEOI mode
        self.power_on()

    def power_on(self) -> None:
        """Power-on state: as after ICW1 with LTIM=0, all inputs masked.

        The datasheet leaves the power-on state undefined; everything masked means an
        unprogrammed PIC never delivers a vector nobody chose.
        """
        self.lines = 0
        self._initialize(0)
        self.init_step = _InitStep.READY
        self.imr = 0xFF
        # The PC/AT wiring, so that a guest that skips ICW3 still cascades.
        self.icw3 = 1 << CASCADE_IRQ if self.master else CASCADE_IRQ

    # -- inputs -------------------------------------------------------------------------

    def _level_triggered(self, mask: int) -> bool:
        return bool(self.icw1 & _ICW1_LTIM) or bool(self.level_inputs & mask)

    def set_input(self, irq: int, level: bool) -> None:
        mask = 1 << irq
        if self._level_triggered(mask):
            self.irr = self.irr | mask if level else self.irr & ~mask
        elif level and not self.lines & mask:
            self.irr |= mask  # rising edge latched until INTA
        self.lines = self.lines | mask if level else self.lines & ~mask

    # -- priority resolver --------------------------------------------------------------

    def _priority(self, mask: int) -> int:
        """Priority (0 = highest, 8 = none) of the best request in `mask`."""
        for priority in range(8):
            if mask & (1 << ((priority + self.priority_add) & 7)):
                return priority
        return 8

    def pending(self) -> int | None:
        """The IR the chip would raise INT for now, or None."""
        priority = self._priority(self.irr & ~self.imr)
        if priority == 8:
            return None
        in_service = self.isr
        if self.special_mask:
            in_service &= ~self.imr  # SMM: masked in-service levels do not inhibit
        if self.master and self.icw4 & _ICW4_SFNM:
            in_service &= ~(1 << CASCADE_IRQ)  # SFNM: the slave may nest
        if priority < self._priority(in_service):
            return (priority + self.priority_add) & 7
        return None

    def cascades(self, irq: int) -> bool:
        """True when a slave supplies the vector for `irq` (ICW1 SNGL=0, ICW3 bit set)."""
        return self.master and not self.icw1 & _ICW1_SNGL and bool(self.icw3 & (1 << irq))

    def vector(self, irq: int) -> int:
        return (self.icw2 & 0xF8) | irq  # ICW2 T7-T3, 8086 mode

    def intack(self, irq: int) -> None:
        """INTA for `irq`: set its ISR bit (unless AEOI), clear its edge-latched IRR bit."""
        mask = 1 << irq
        if self.icw4 & _ICW4_AEOI:
            if self.rotate_on_aeoi:
                self.priority_add = (irq + 1) & 7
        else:
            self.isr |= mask
        if not self._level_triggered(mask):
            self.irr &= ~mask

    # -- register access ----------------------------------------------------------------

    def _initialize(self, icw1: int) -> None:
        """ICW1: reset the edge sense, IMR, ISR, priorities, special mask, status read."""
        self.icw1 = icw1
        self.irr = self.lines if icw1 & _ICW1_LTIM else self.lines & self.level_inputs
        self.isr = 0
        self.imr = 0
        self.icw2 = 0
        self.icw4 = 0  # "if IC4 = 0, all functions selected in ICW4 are set to zero"
        self.priority_add = 0
        self.read_isr = False
        self.poll = False
        self.special_mask = False
        self.rotate_on_aeoi = False
        self.init_step = _InitStep.ICW2

    def write_command(self, value: int) -> None:
        """A0=0 write: ICW1, OCW2 or OCW3."""
        if value & _ICW1_INIT:
            self._initialize(value)
        elif value & _OCW3_SELECT:
            if value & _OCW3_P:
                self.poll = True
            if value & _OCW3_RR:
                self.read_isr = bool(value & _OCW3_RIS)
            if value & _OCW3_ESMM:
                self.special_mask = bool(value & _OCW3_SMM)
        else:
            self._ocw2(_Ocw2(value >> 5), value & 7)

    def _ocw2(self, command: _Ocw2, level: int) -> None:
        match command:
            case _Ocw2.ROTATE_AEOI_CLEAR | _Ocw2.ROTATE_AEOI_SET:
                self.rotate_on_aeoi = command is _Ocw2.ROTATE_AEOI_SET
            case _Ocw2.NON_SPECIFIC_EOI | _Ocw2.ROTATE_NON_SPECIFIC_EOI:
                priority = self._priority(self.isr)
                if priority != 8:
                    irq = (priority + self.priority_add) & 7
                    self.isr &= ~(1 << irq)
                    if command is _Ocw2.ROTATE_NON_SPECIFIC_EOI:
                        self.priority_add = (irq + 1) & 7
            case _Ocw2.SPECIFIC_EOI | _Ocw2.ROTATE_SPECIFIC_EOI:
                self.isr &= ~(1 << level)
                if command is _Ocw2.ROTATE_SPECIFIC_EOI:
                    self.priority_add = (level + 1) & 7
            case _Ocw2.SET_PRIORITY:
                self.priority_add = (level + 1) & 7  # `level` becomes the lowest
            case _Ocw2.NOP:
                pass

    def write_data(self, value: int) -> None:
        """A0=1 write: ICW2, ICW3, ICW4 during initialization, else OCW1 (IMR)."""
        match self.init_step:
            case _InitStep.READY:
                self.imr = value
            case _InitStep.ICW2:
                self.icw2 = value
                if not self.icw1 & _ICW1_SNGL:
                    self.init_step = _InitStep.ICW3
                elif self.icw1 & _ICW1_IC4:
                    self.init_step = _InitStep.ICW4
                else:
                    self.init_step = _InitStep.READY
            case _InitStep.ICW3:
                self.icw3 = value
                self.init_step = _InitStep.ICW4 if self.icw1 & _ICW1_IC4 else _InitStep.READY
            case _InitStep.ICW4:
                self.icw4 = value
                self.init_step = _InitStep.READY

    def read_poll(self) -> int:
        """OCW3 poll: 0x80 | level of the best request (acknowledged), or 0."""
        self.poll = False
        irq = self.pending()
        if irq is None:
            return 0
        self.intack(irq)
        return 0x80 | irq

    state_fields = (
        *fields(INT, "lines", "irr", "isr", "imr", "icw1", "icw2", "icw3", "icw4"),
        Field("init_step", enum_codec(_InitStep)),
        *fields(INT, "priority_add"),
        *fields(BOOL, "read_isr", "poll", "special_mask", "rotate_on_aeoi"),
    )


def _mapping(value: StateValue) -> Mapping[str, StateValue]:
    if not (isinstance(value, dict)):
        raise TypeError("malformed pic device state")
    return value


class PicPair(ByteDevice):
    """The PC/AT master + slave 8259A pair, one device named "pic".

    The machine routes ISA line levels in with `set_irq`, watches `intr()` (the master's
    INT pin) and runs the INTA cycle with `acknowledge()`.  When INT rises the PIC tells
    the run loop (`ctx.intr_raised()`) so the interrupt can be taken at the next
    instruction boundary where the CPU can take it.
    """

    name = "pic"
    ports = (MASTER_PORTS, SLAVE_PORTS)

    def __init__(self, ctx: DeviceContext) -> None:
        super().__init__(ctx)
        self.master = _Chip(master=True)
        self.slave = _Chip(master=False)
        self._int_out = False
        self._isa_lines = 0  # levels driven by devices on ISA IRQ0-15

    def reset(self) -> None:
        self.master.power_on()
        self.slave.power_on()
        # The ISA lines are wires driven by the devices: keep their levels, latch no edge.
        self.master.lines = self._isa_lines & 0xFF & ~(1 << CASCADE_IRQ)
        redirected = 1 << (REDIRECTED_IRQ2 - 8) if self._isa_lines & (1 << CASCADE_IRQ) else 0
        self.slave.lines = (self._isa_lines >> 8) | redirected
        self._update()

    # -- the machine's side ---------------------------------------------------------------

    def set_irq(self, line: int, level: bool) -> None:
        """Drive ISA interrupt line `line` (0-15).  Line 2 is the AT's redirected IRQ9."""
        if not 0 <= line < 16:
            raise ValueError(f"ISA IRQ line out of range: {line}")
        mask = 1 << line
        self._isa_lines = self._isa_lines | mask if level else self._isa_lines & ~mask
        self._route(line)
        self._update()

    def pulse_changes_nothing(self, line: int) -> bool:
        """Would a pulse on ISA line `line` (up, then down) leave the chips as they are?
        True when the line is low and its edge-triggered input already holds a request
        (which it keeps until an INTA that picks it, so a second edge adds nothing).
        Only the master's own inputs are answered (a slave line moves the cascade)."""
        mask = 1 << line
        if not 0 <= line < 8 or line == CASCADE_IRQ or self._isa_lines & mask:
            return False
        chip = self.master
        return (
            not chip._level_triggered(mask)
            and bool(chip.irr & mask)
            and not chip.lines & mask
            and self._int_out == (chip.pending() is not None)
        )

    def intr(self) -> bool:
        """The master's INT output: an unmasked request beats everything in service."""
        return self._int_out

    def acknowledge(self) -> int:
        """The INTA cycle: the vector to deliver, with IRR/ISR updated.

        Call only when `intr()` is true.  If the request went away in between (a level
        input dropped), the chip answers as the 8259A does with a spurious IR7 vector and
        no ISR bit set; a spurious slave request (IRQ15) leaves master IR2 in service.
        """
        irq = self.master.pending()
        if irq is None:
            vector = self.master.vector(7)  # spurious IRQ7
        elif self.master.cascades(irq):
            slave_irq = self.slave.pending()
            if slave_irq is None:
                vector = self.slave.vector(7)  # spurious IRQ15
            else:
                vector = self.slave.vector(slave_irq)
                self.slave.intack(slave_irq)
            self.master.intack(irq)
        else:
            vector = self.master.vector(irq)
            self.master.intack(irq)
        self._update()
        return vector

    # -- the guest's side -----------------------------------------------------------------

    def _chip(self, port: int) -> _Chip | None:
        if port in MASTER_PORTS:
            return self.master
        if port in SLAVE_PORTS:
            return self.slave
        return None

    def _read_byte(self, port: int) -> int:
        chip = self._chip(port)
        if chip is None:
            return 0xFF
        if chip.poll:  # OCW3 poll: the read is the INTA
            value = chip.read_poll()
            self._update()
            return value
        if port & 1:
            return chip.imr  # OCW1
        return chip.isr if chip.read_isr else chip.irr

    def _write_byte(self, port: int, value: int) -> None:
        chip = self._chip(port)
        if chip is None:
            return
        if port & 1:
            chip.write_data(value)
        else:
            chip.write_command(value)
        self._update()

    # -- wiring ---------------------------------------------------------------------------

    def _route(self, line: int) -> None:
        """Feed ISA line `line`'s level to the chip input it is wired to."""
        level = bool(self._isa_lines & (1 << line))
        if line in (CASCADE_IRQ, REDIRECTED_IRQ2):
            self.slave.set_input(REDIRECTED_IRQ2 - 8, self._isa_lines & 0x0204 != 0)
        elif line < 8:
            self.master.set_input(line, level)
        else:
            self.slave.set_input(line - 8, level)

    def _update(self) -> None:
        """Propagate the slave's INT to master IR2, then recompute the master's INT."""
        self.master.set_input(CASCADE_IRQ, self.slave.pending() is not None)
        int_out = self.master.pending() is not None
        if int_out and not self._int_out:
            self.ctx.intr_raised()
        self._int_out = int_out

    # -- snapshots ------------------------------------------------------------------------

    state_fields = fields(INT, "_isa_lines")

    def save_state(self) -> State:
        return {
            **super().save_state(),
            "master": self.master.save_state(),
            "slave": self.slave.save_state(),
        }

    def load_state(self, state: Mapping[str, StateValue]) -> None:
        super().load_state(state)
        self.master.load_state(_mapping(state["master"]))
        self.slave.load_state(_mapping(state["slave"]))
        self._int_out = self.master.pending() is not None

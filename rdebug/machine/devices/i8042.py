"""i8042 keyboard controller with a PS/2 keyboard and a PS/2 mouse (the aux port).

Owns the controller (data port 0x60, status/command port 0x64, the command byte and the
rest of its 32 bytes of RAM, the output port with the A20 gate), the one-byte output
buffer, the keyboard and the mouse as PS/2 devices (their command sets, their reply
queues), and the host input waiting to be "typed": scan code bytes and mouse reports.
It does not know where host input comes from (the machine calls `key_input` /
`mouse_input` at an exact icount) nor the interrupt controller: IRQ1 and IRQ12 are
levels on `ctx.set_irq` (high while the output buffer holds a byte from that port and
the command byte enables its interrupt, as QEMU's i8042 drives them).

Timing model: the controller executes commands at once (IBF is never seen).  Replies to
commands enter the output buffer as soon as it is empty.  After the guest reads the data
port, the next byte enters only `BYTE_GAP_NS` of virtual time later, so every byte makes
its own rising edge on the IRQ line; host input (keys, mouse packets) flows through the
same gap, so typing has a steady virtual pace however fast the host delivered it.  Keys
wait while the keyboard interface is disabled (command byte bit 4, 0xAD) or the keyboard
does not scan (0xF5); mouse reports wait until the guest enabled the aux interface and
data reporting (0xF4), as a real mouse's movements would only start being reported then.

Scan codes: the keyboard always produces scan code set 1 (what the controller's set-2
translation, command byte bit 6, gives: what every i386 teaching kernel decodes); a
request to change the set is acknowledged and ignored.  Host keys are set-1 make codes,
0xE0xx for the E0-prefixed ones; a break is the make code with bit 7 set.

Mouse packets (stream mode, 1:1 scaling): byte 0 = buttons (bit 0 left, 1 right,
2 middle) | 0x08 | X sign 0x10 | Y sign 0x20 | X overflow 0x40 | Y overflow 0x80, then
the low 8 bits of dx and dy; y grows upwards, as PS/2 reports it.  A move beyond
-256..255 is clamped with its overflow bit set.

Reset: command 0xFE (pulse output port bit 0), an output port write clearing bit 0, and
port 0x92 bit 0 power the machine off (`ctx.guest_exit(0)`), as QEMU's -no-reboot does:
rdebug has no firmware to reboot into.  The A20 gate (output port bit 1, port 0x92 bit 1,
0xDD/0xDF) reads back what was written but does not mask address line 20: A20 is always
enabled, as a multiboot loader leaves it.

Reference: IBM PC/AT Technical Reference, "Keyboard Controller"; the PS/2 mouse and
keyboard command sets as documented by Adam Chapweske; QEMU hw/input/pckbd.c, ps2.c.
"""

from __future__ import annotations

from collections.abc import Mapping

from rdebug.machine.devices.base import (
    BOOL,
    BUFFER,
    INT,
    OPT_INT,
    Codec,
    Device,
    DeviceContext,
    Field,
    State,
    StateValue,
    fields,
    state_bytes,
    state_int,
)

DATA_PORT = 0x60
STATUS_PORT = 0x64
FAST_A20_PORT = 0x92
KBD_IRQ = 1
AUX_IRQ = 12
#: Virtual time between a data port read and the next byte entering the output buffer.
BYTE_GAP_NS = 250_000

# Status register bits.
STAT_OBF = 0x01
STAT_IBF = 0x02
STAT_SYS = 0x04
STAT_A2 = 0x08  # the last write went to the command port
STAT_UNLOCKED = 0x10  # keyboard not inhibited (the key lock is open)
STAT_AUXB = 0x20  # the output buffer holds a byte from the mouse

# Command byte bits.
CMD_KBD_INT = 0x01
CMD_AUX_INT = 0x02
CMD_SYS = 0x04
CMD_KBD_DISABLE = 0x10
CMD_AUX_DISABLE = 0x20
CMD_XLATE = 0x40
#: The command byte a BIOS leaves (SeaBIOS writes 0x61; the system flag is set by POST).
INITIAL_COMMAND_BYTE = CMD_XLATE | CMD_AUX_DISABLE | CMD_SYS | CMD_KBD_INT

# Output port bits.
OUT_RESET = 0x01  # 0 = reset the CPU
OUT_A20 = 0x02
OUT_IRQ1 = 0x10
OUT_IRQ12 = 0x20
INITIAL_OUTPUT_PORT = OUT_RESET | OUT_A20

# PS/2 replies.
ACK = 0xFA
RESEND = 0xFE
SELF_TEST_PASSED = 0xAA
MOUSE_ID = 0x00

_KBD_DEFAULT_TYPEMATIC = 0x2B
_MOUSE_DEFAULT_RATE = 100
_MOUSE_DEFAULT_RESOLUTION = 2  # 4 counts/mm

# Controller commands that take a data byte: where the next 0x60 write goes.
_EXPECT_RAM = "ram"  # 0x60-0x7F: internal RAM byte (0x60: the command byte)
_EXPECT_OUTPUT_PORT = "output-port"  # 0xD1
_EXPECT_KBD_OUT = "kbd-out"  # 0xD2: as if the keyboard sent it
_EXPECT_AUX_OUT = "aux-out"  # 0xD3: as if the mouse sent it
_EXPECT_AUX = "aux"  # 0xD4: to the mouse
_EXPECTS = (_EXPECT_RAM, _EXPECT_OUTPUT_PORT, _EXPECT_KBD_OUT, _EXPECT_AUX_OUT, _EXPECT_AUX)


def _load_expect(value: StateValue) -> str | None:
    if value is not None and value not in _EXPECTS:
        raise TypeError(f"malformed i8042 state: expect {value!r}")
    return value if isinstance(value, str) else None


#: The controller's pending command byte expectation (one of _EXPECTS, or None).
_EXPECT = Codec(_load_expect)


class I8042(Device):
    """The keyboard controller at 0x60/0x64 with its keyboard (IRQ1) and mouse (IRQ12)."""

    name = "i8042"
    ports = (range(DATA_PORT, DATA_PORT + 1), range(STATUS_PORT, STATUS_PORT + 1))

    def __init__(self, ctx: DeviceContext) -> None:
        super().__init__(ctx)
        self._host_keys = bytearray()  # scan code bytes typed on the host, not yet sent
        self._host_mouse: list[tuple[int, int, int]] = []  # (dx, dy, buttons) reports
        self._deadline: int | None = None  # the timer armed for the next byte
        self._init_registers()

    def _init_registers(self) -> None:
        self.ram = bytearray(32)
        self.ram[0] = INITIAL_COMMAND_BYTE
        self.output_port = INITIAL_OUTPUT_PORT
        self.a2 = False
        self.expect: str | None = None  # what the next data port write is for
        self.ram_index = 0
        self.obf = False
        self.ob = 0
        self.ob_aux = False
        self.ready_ns = 0  # no byte enters the output buffer before this time
        self._ctrl_q = bytearray()  # controller replies
        self._kbd_q = bytearray()  # keyboard replies
        self._aux_q = bytearray()  # mouse replies
        self._packet_q = bytearray()  # the rest of a movement packet
        # The keyboard.
        self.kbd_scanning = True
        self.kbd_expect = 0  # the command waiting for its parameter byte (0: none)
        self.kbd_leds = 0
        self.kbd_typematic = _KBD_DEFAULT_TYPEMATIC
        self.kbd_set = 2
        # The mouse.
        self.aux_expect = 0
        self.aux_reporting = False
        self.aux_remote = False
        self.aux_scaling2 = False
        self.aux_rate = _MOUSE_DEFAULT_RATE
        self.aux_resolution = _MOUSE_DEFAULT_RESOLUTION
        self.aux_buttons = 0
        self.last_host_aux = False  # the last host byte was the mouse's
        self._irq1 = False
        self._irq12 = False

    def reset(self) -> None:
        self._init_registers()
        self._deadline = None
        self.ctx.set_timer(self, None)
        self._update_irqs()

    @property
    def command_byte(self) -> int:
        return self.ram[0]

    # -- host input -----------------------------------------------------------------------

    def key_input(self, key: int, down: bool) -> None:
        """A key went down or up on the host: `key` is its set-1 make code (0xE0xx: E0)."""
        code = key & 0x7F | (0 if down else 0x80)
        if key >> 8 == 0xE0:
            self._host_keys += bytes((0xE0, code))
        else:
            self._host_keys.append(code)
        self._pump()

    def mouse_input(self, dx: int, dy: int, buttons: int) -> None:
        """The host mouse moved by (dx, dy) (y up) with `buttons` held (bit 0 left, 1 right,
        2 middle)."""
        self._host_mouse.append((dx, dy, buttons & 0x07))
        self._pump()

    def host_pending(self) -> bool:
        """Host input is still waiting to reach the guest."""
        return bool(self._host_keys or self._host_mouse)

    # -- the guest's side -----------------------------------------------------------------

    def io_read(self, port: int, size: int) -> int:
        fill = (1 << (8 * size)) - 256
        if port == STATUS_PORT:
            return self.status() | fill
        value = self.ob
        if self.obf:
            self.obf = False
            self.ready_ns = self.ctx.now_ns() + BYTE_GAP_NS
            self._update_irqs()
            self._pump()
        return value | fill

    def io_write(self, port: int, size: int, value: int) -> None:
        del size
        value &= 0xFF
        if port == STATUS_PORT:
            self.a2 = True
            self._controller_command(value)
        else:
            self.a2 = False
            self._data_write(value)
        self._update_irqs()
        self._pump(reply=True)

    def status(self) -> int:
        value = STAT_UNLOCKED
        if self.obf:
            value |= STAT_OBF
            if self.ob_aux:
                value |= STAT_AUXB
        if self.command_byte & CMD_SYS:
            value |= STAT_SYS
        if self.a2:
            value |= STAT_A2
        return value

    def _controller_command(self, command: int) -> None:
        self.expect = None
        if 0x20 <= command <= 0x3F:
            self._ctrl_q.append(self.ram[command - 0x20])
        elif 0x60 <= command <= 0x7F:
            self.expect, self.ram_index = _EXPECT_RAM, command - 0x60
        elif command == 0xA7:
            self.ram[0] |= CMD_AUX_DISABLE
        elif command == 0xA8:
            self.ram[0] &= ~CMD_AUX_DISABLE
        elif command in (0xA9, 0xAB):  # aux / keyboard interface test: no error
            self._ctrl_q.append(0x00)
        elif command == 0xAA:  # self test: passed; the command byte is kept, as QEMU
            self._ctrl_q.append(0x55)
        elif command == 0xAD:
            self.ram[0] |= CMD_KBD_DISABLE
        elif command == 0xAE:
            self.ram[0] &= ~CMD_KBD_DISABLE
        elif command == 0xC0:  # input port: keyboard not inhibited
            self._ctrl_q.append(0x80)
        elif command == 0xD0:
            self._ctrl_q.append(self._output_port_value())
        elif command == 0xD1:
            self.expect = _EXPECT_OUTPUT_PORT
        elif command == 0xD2:
            self.expect = _EXPECT_KBD_OUT
        elif command == 0xD3:
            self.expect = _EXPECT_AUX_OUT
        elif command == 0xD4:
            self.expect = _EXPECT_AUX
        elif command == 0xDD:
            self.output_port &= ~OUT_A20
        elif command == 0xDF:
            self.output_port |= OUT_A20
        elif command >= 0xF0 and not command & OUT_RESET:  # pulse output port bit 0
            self.ctx.guest_exit(0)
        # Anything else (0xF1, 0xFF "pulse nothing", unknown commands) is ignored.

    def _output_port_value(self) -> int:
        value = self.output_port & ~(OUT_IRQ1 | OUT_IRQ12)
        if self._irq1:
            value |= OUT_IRQ1
        if self._irq12:
            value |= OUT_IRQ12
        return value

    def _data_write(self, value: int) -> None:
        expect, self.expect = self.expect, None
        if expect == _EXPECT_RAM:
            self.ram[self.ram_index] = value
        elif expect == _EXPECT_OUTPUT_PORT:
            self.output_port = value & ~(OUT_IRQ1 | OUT_IRQ12)
            if not value & OUT_RESET:
                self.ctx.guest_exit(0)
        elif expect == _EXPECT_KBD_OUT:
            self._kbd_q.append(value)
        elif expect == _EXPECT_AUX_OUT:
            self._aux_q.append(value)
        elif expect == _EXPECT_AUX:
            self._aux_write(value)
        else:
            self._kbd_write(value)

    # -- the keyboard ---------------------------------------------------------------------

    def _kbd_write(self, value: int) -> None:
        reply = self._kbd_q
        pending, self.kbd_expect = self.kbd_expect, 0
        if pending == 0xED:
            self.kbd_leds = value & 0x07
            reply.append(ACK)
            return
        if pending == 0xF3:
            self.kbd_typematic = value & 0x7F
            reply.append(ACK)
            return
        if pending == 0xF0:
            reply.append(ACK)
            if value == 0:
                reply.append(0x41 if self.command_byte & CMD_XLATE else self.kbd_set)
            elif value in (1, 2, 3):
                self.kbd_set = value
            return
        if value in (0xED, 0xF3, 0xF0):
            self.kbd_expect = value
            reply.append(ACK)
        elif value == 0xEE:  # echo
            reply.append(0xEE)
        elif value == 0xF2:  # identify: an MF2 keyboard (translated id 0x41)
            reply += bytes((ACK, 0xAB, 0x41 if self.command_byte & CMD_XLATE else 0x83))
        elif value == 0xF4:
            self.kbd_scanning = True
            reply.append(ACK)
        elif value in (0xF5, 0xF6):  # disable / enable, both restoring the defaults
            self.kbd_scanning = value == 0xF6
            self.kbd_typematic = _KBD_DEFAULT_TYPEMATIC
            self.kbd_set = 2
            reply.append(ACK)
        elif value == 0xFF:  # reset: ACK, then the self-test result
            self._kbd_q.clear()
            self.kbd_scanning = True
            self.kbd_leds = 0
            self.kbd_typematic = _KBD_DEFAULT_TYPEMATIC
            self.kbd_set = 2
            reply += bytes((ACK, SELF_TEST_PASSED))
        elif 0xF7 <= value <= 0xFD or value == 0xFE:  # set-3 key types, resend
            reply.append(ACK)
        else:
            reply.append(RESEND)

    # -- the mouse ------------------------------------------------------------------------

    def _aux_write(self, value: int) -> None:
        reply = self._aux_q
        pending, self.aux_expect = self.aux_expect, 0
        if pending == 0xF3:
            self.aux_rate = value
            reply.append(ACK)
            return
        if pending == 0xE8:
            self.aux_resolution = value & 0x03
            reply.append(ACK)
            return
        if value in (0xF3, 0xE8):
            self.aux_expect = value
            reply.append(ACK)
        elif value in (0xE6, 0xE7):
            self.aux_scaling2 = value == 0xE7
            reply.append(ACK)
        elif value == 0xE9:  # status request
            status = (
                (0x40 if self.aux_remote else 0)
                | (0x20 if self.aux_reporting else 0)
                | (0x10 if self.aux_scaling2 else 0)
                | (0x04 if self.aux_buttons & 1 else 0)  # left
                | (0x02 if self.aux_buttons & 4 else 0)  # middle
                | (0x01 if self.aux_buttons & 2 else 0)  # right
            )
            reply += bytes((ACK, status, self.aux_resolution, self.aux_rate))
        elif value in (0xEA, 0xF0):  # stream / remote mode
            self.aux_remote = value == 0xF0
            reply.append(ACK)
        elif value == 0xEB:  # read data: a packet with no movement
            reply.append(ACK)
            reply += _packet(0, 0, self.aux_buttons)  # (movement is not accumulated)
        elif value in (0xEC, 0xEE):  # wrap mode is not modelled: stay in normal mode
            reply.append(ACK)
        elif value == 0xF2:
            reply += bytes((ACK, MOUSE_ID))
        elif value == 0xF4:
            self.aux_reporting = True
            reply.append(ACK)
        elif value in (0xF5, 0xF6):
            self._aux_defaults()
            reply.append(ACK)
        elif value == 0xFF:
            self._aux_q.clear()
            self._aux_defaults()
            self.aux_remote = False
            reply += bytes((ACK, SELF_TEST_PASSED, MOUSE_ID))
        elif value == 0xFE:
            reply.append(ACK)
        else:
            reply.append(RESEND)

    def _aux_defaults(self) -> None:
        self.aux_reporting = False
        self.aux_scaling2 = False
        self.aux_rate = _MOUSE_DEFAULT_RATE
        self.aux_resolution = _MOUSE_DEFAULT_RESOLUTION

    # -- the output buffer ----------------------------------------------------------------

    def _kbd_enabled(self) -> bool:
        return not self.command_byte & CMD_KBD_DISABLE

    def _aux_enabled(self) -> bool:
        return not self.command_byte & CMD_AUX_DISABLE

    def _pump(self, reply: bool = False) -> None:
        """Move the next byte into an empty output buffer, or wait for its time.

        `reply`: the guest just wrote a command, whose first reply byte may enter at once
        (the write makes the new edge); everything else waits for `ready_ns`.
        """
        if self.obf:
            return
        source = self._next_source()
        if source is None:
            self._arm(None)
            return
        queue, aux, is_reply = source
        if self.ctx.now_ns() < self.ready_ns and not (reply and is_reply):
            self._arm(self.ready_ns)
            return
        self._arm(None)
        if not is_reply:
            self.last_host_aux = aux
        self.ob = queue.pop(0)
        self.ob_aux = aux
        self.obf = True
        self._update_irqs()

    def _next_source(self) -> tuple[bytearray, bool, bool] | None:
        """The queue the next byte comes from, whether it is the aux port's, and whether
        it holds replies to the guest's commands.

        Replies come first (controller, keyboard, mouse).  The two host streams, typed
        keys and mouse packets, are independent devices: when both have a byte ready
        they take turns, byte by byte (the guest tells them apart by AUXB).
        """
        if self._ctrl_q:
            return self._ctrl_q, False, True
        if self._kbd_q and self._kbd_enabled():
            return self._kbd_q, False, True
        if self._aux_q and self._aux_enabled():
            return self._aux_q, True, True
        keys = bool(self._host_keys) and self._kbd_enabled() and self.kbd_scanning
        mouse = self._aux_enabled() and self._mouse_ready()
        if keys and not (mouse and not self.last_host_aux):
            return self._host_keys, False, False
        if mouse:
            return self._packet_q, True, False
        return None

    def _mouse_ready(self) -> bool:
        """A packet byte is ready (making the next packet from a host report if needed)."""
        while not self._packet_q and self._host_mouse and self.aux_reporting:
            dx, dy, buttons = self._host_mouse.pop(0)
            self.aux_buttons = buttons
            if not self.aux_remote:  # remote mode: only the buttons are kept
                self._packet_q += _packet(dx, dy, buttons)
        return bool(self._packet_q)

    def _arm(self, deadline: int | None) -> None:
        if deadline != self._deadline:
            self._deadline = deadline
            self.ctx.set_timer(self, deadline)

    def on_timer(self) -> None:
        self._deadline = None
        self._pump()

    def _update_irqs(self) -> None:
        irq1 = self.obf and not self.ob_aux and bool(self.command_byte & CMD_KBD_INT)
        irq12 = self.obf and self.ob_aux and bool(self.command_byte & CMD_AUX_INT)
        self._irq1 = self.drive_irq(KBD_IRQ, irq1, self._irq1)
        self._irq12 = self.drive_irq(AUX_IRQ, irq12, self._irq12)

    # -- snapshots ------------------------------------------------------------------------

    state_fields = (
        *fields(BUFFER, "ram"),
        *fields(INT, "output_port"),
        *fields(BOOL, "a2"),
        Field("expect", _EXPECT),
        *fields(INT, "ram_index"),
        *fields(BOOL, "obf"),
        *fields(INT, "ob"),
        *fields(BOOL, "ob_aux"),
        *fields(INT, "ready_ns"),
        *fields(BUFFER, "_ctrl_q", "_kbd_q", "_aux_q", "_packet_q", "_host_keys"),
        *fields(BOOL, "kbd_scanning"),
        *fields(INT, "kbd_expect", "kbd_leds", "kbd_typematic", "kbd_set", "aux_expect"),
        *fields(BOOL, "aux_reporting", "aux_remote", "aux_scaling2"),
        *fields(INT, "aux_rate", "aux_resolution", "aux_buttons"),
        *fields(BOOL, "last_host_aux", "_irq1", "_irq12"),
        Field("_deadline", OPT_INT, key="timer"),
    )

    def save_state(self) -> State:
        return {
            **super().save_state(),
            "host_mouse": [[dx, dy, b] for dx, dy, b in self._host_mouse],
        }

    def load_state(self, state: Mapping[str, StateValue]) -> None:
        if len(state_bytes(state["ram"])) != 32:
            raise TypeError("malformed i8042 state: RAM is 32 bytes")
        mouse = state["host_mouse"]
        if not isinstance(mouse, list):
            raise TypeError("malformed i8042 state: host_mouse")
        reports: list[tuple[int, int, int]] = []
        for item in mouse:
            if not isinstance(item, list) or len(item) != 3:
                raise TypeError("malformed i8042 state: host_mouse")
            reports.append((state_int(item[0]), state_int(item[1]), state_int(item[2])))
        super().load_state(state)
        self._host_mouse = reports
        self.ctx.set_timer(self, self._deadline)


class FastA20Port(Device):
    """Port 0x92, "system control port A": bit 1 the A20 gate, bit 0 a fast reset.

    The A20 bit reads back what was written (A20 is always enabled, see the module
    docstring); setting bit 0 powers the machine off like the i8042's reset pulse.
    """

    name = "port92"
    ports = (range(FAST_A20_PORT, FAST_A20_PORT + 1),)

    def __init__(self, ctx: DeviceContext) -> None:
        super().__init__(ctx)
        self.value = OUT_A20

    def reset(self) -> None:
        self.value = OUT_A20

    def io_read(self, port: int, size: int) -> int:
        return self.value | ((1 << (8 * size)) - 256)

    def io_write(self, port: int, size: int, value: int) -> None:
        self.value = value & OUT_A20
        if value & 0x01:
            self.ctx.guest_exit(0)

    state_fields = (Field("value", Codec(lambda value: state_int(value) & OUT_A20)),)


def _packet(dx: int, dy: int, buttons: int) -> bytes:
    """A 3-byte PS/2 movement packet; moves beyond 9 bits are clamped with overflow set."""
    head = 0x08 | buttons & 0x07
    if not -256 <= dx <= 255:
        head |= 0x40
        dx = max(-256, min(255, dx))
    if not -256 <= dy <= 255:
        head |= 0x80
        dy = max(-256, min(255, dy))
    if dx < 0:
        head |= 0x10
    if dy < 0:
        head |= 0x20
    return bytes((head, dx & 0xFF, dy & 0xFF))

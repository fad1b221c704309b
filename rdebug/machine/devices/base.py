"""What every device is, and the services the machine gives it.

A device sees the machine only through `DeviceContext`: the virtual clock, the ISA
interrupt lines, and a way to ask the run loop to stop.  It knows nothing of unicorn,
logs or gdb.  Time is virtual: `ctx.now_ns()` is `(icount << shift) + bias` (the bias
grows only when a halted CPU is fast-forwarded to the next timer), so a device that
schedules its work through `ctx.set_timer` behaves the same on every run.
"""

from __future__ import annotations

import enum
import mmap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

if TYPE_CHECKING:
    from rdebug.machine.countdown import Countdown
    from rdebug.machine.datawindow import DataWindow
    from rdebug.machine.portregs import PortRegister

StateValue = int | bool | bytes | str | None | list["StateValue"] | dict[str, "StateValue"]
State = dict[str, StateValue]


class DeviceContext(Protocol):
    """The machine, as a device may see it."""

    def now_ns(self) -> int:
        """Virtual time now, exact to the instruction (also inside an I/O access)."""
        ...

    def set_timer(self, device: Device, deadline_ns: int | None) -> None:
        """Call `device.on_timer()` once virtual time reaches `deadline_ns`.

        One timer per device: a new deadline replaces the old one, None cancels it.
        """
        ...

    def set_irq(self, line: int, level: bool) -> None:
        """Drive ISA interrupt line `line` (0-15) high or low."""
        ...

    def request_stop(self) -> None:
        """Ask the run loop to regain control at the next instruction boundary."""
        ...

    def intr_raised(self) -> None:
        """The interrupt controller's INTR output rose: the run loop must take the
        interrupt at the first instruction boundary where the CPU can (IF=1, outside an
        STI or MOV SS shadow), and may stop at the next one for it."""
        ...

    def guest_exit(self, code: int) -> None:
        """The guest asked to power off with exit status `code` (stops the run)."""
        ...


@dataclass(frozen=True, slots=True)
class Codec:
    """How one kind of attribute is written into a saved state and read back from it."""

    load: Callable[[StateValue], Any]
    #: None: the attribute's value is saved as it is
    save: Callable[[Any], StateValue] | None = None


@dataclass(frozen=True, slots=True)
class Field:
    """One item of a saved state: attribute `attr`, saved under `key` (default: the
    attribute's name without its leading underscore).  A `default` is read where the key
    is absent (states saved before the field existed)."""

    attr: str
    codec: Codec
    key: str = ""
    default: StateValue = None
    required: bool = True

    def __post_init__(self) -> None:
        if not self.key:
            object.__setattr__(self, "key", self.attr.lstrip("_"))


def fields(codec: Codec, *attrs: str) -> tuple[Field, ...]:
    """Fields of one kind, each saved under its attribute's name (less a leading `_`)."""
    return tuple(Field(attr, codec) for attr in attrs)


class Stateful:
    """Something whose state is its `state_fields`, declared once for save and load.

    `save_state` returns plain data (ints, bools, bytes, str, lists, dicts) that
    `load_state` takes back; save -> load -> save must give the same value.  A class
    with state that is not a plain field extends both (calling these first or last).
    """

    state_fields: ClassVar[tuple[Field, ...]] = ()
    # `state_fields` as plain tuples (snapshots and restores are on the seek path)
    _save_plan: ClassVar[tuple[tuple[str, str, Callable[[Any], StateValue] | None], ...]] = ()
    _load_plan: ClassVar[tuple[tuple[str, str, Callable[[StateValue], Any], bool, Any], ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._save_plan = tuple((f.key, f.attr, f.codec.save) for f in cls.state_fields)
        cls._load_plan = tuple(
            (f.key, f.attr, f.codec.load, f.required, f.default) for f in cls.state_fields
        )

    def save_state(self) -> State:
        state: State = {}
        for key, attr, save in self._save_plan:
            value = getattr(self, attr)
            state[key] = value if save is None else save(value)
        return state

    def load_state(self, state: Mapping[str, StateValue]) -> None:
        """Restore what `save_state` returned (timers are re-armed by the device)."""
        for key, attr, load, required, default in self._load_plan:
            setattr(self, attr, load(state[key] if required else state.get(key, default)))


class Device(Stateful):
    """Base class of every device on the I/O bus.

    Subclasses set `name`, `ports` and `state_fields` and override what they implement.
    """

    name: str = "device"
    #: I/O port ranges this device answers.
    ports: tuple[range, ...] = ()

    def __init__(self, ctx: DeviceContext) -> None:
        self.ctx = ctx

    def reset(self) -> None:
        """Power-on state."""

    def io_read(self, port: int, size: int) -> int:
        """Value read by IN from `port` (`size` is 1, 2 or 4 bytes)."""
        return (1 << (8 * size)) - 1

    def io_write(self, port: int, size: int, value: int) -> None:
        """OUT of `value` to `port`."""

    def on_timer(self) -> None:
        """The deadline given to `ctx.set_timer` has been reached."""

    # -- memory-mapped registers ----------------------------------------------------------
    #
    # A device with memory-mapped registers keeps them in host pages that the machine maps
    # read-only at their physical addresses: a guest *read* is a plain memory read (no
    # callback: the LAPIC ID is read every few dozen instructions by some kernels), a
    # *write* calls `mmio_write` before the store lands in the page, and `mmio_settle`
    # once the instruction is done, to put the page back to what the registers read as
    # (write-only, read-only and self-clearing registers).  A register whose value moves
    # with time is a `Countdown` (listed by `countdowns`): the instruction counter writes
    # it into its page at every branch boundary while it moves (no read hook).

    def register_pages(self) -> tuple[tuple[int, mmap.mmap], ...]:
        """(physical base, 4 KiB host page) of each register page (none by default)."""
        return ()

    def mmio_write(self, addr: int, size: int, value: int) -> None:
        """A guest store of `size` bytes at physical `addr` in one of the pages."""

    def mmio_settle(self) -> None:
        """The store(s) reported by `mmio_write` landed: rewrite what they changed."""

    def settles_before_store(self, addr: int, size: int, value: int) -> bool:
        """True if the page, settled now (before the store lands), already holds `value`
        at `addr`: the machine then settles at once and lets the guest run on, with no
        stop after the store, unless the store asked for one (a timer due before the
        run's next stop, an interrupt to deliver: `DeviceContext.set_timer`,
        `intr_raised`)."""
        del addr, size, value
        return False

    def native_store_hook(self, base: int, fallback: int) -> tuple[int, int] | None:
        """A C UC_HOOK_MEM_WRITE_PROT callback for the register page at `base` that takes
        the device's most frequent stores itself: (its address, its user data address).
        It passes every other store, unchanged, to the C function at `fallback` (the
        machine's Python store hook, called as the engine calls the hook, without the user
        data).  None (the default): every store goes to the Python hook."""
        del base, fallback
        return None

    def countdowns(self) -> tuple[Countdown, ...]:
        """The counters in this device's register pages that the instruction counter
        publishes (see machine/countdown.py); the same objects for the device's life."""
        return ()

    def data_windows(self) -> tuple[DataWindow, ...]:
        """The data ports whose PIO blocks the native port hooks may move while the
        device keeps them open (see machine/datawindow.py); the same objects for the
        device's life."""
        return ()

    def port_registers(self) -> tuple[PortRegister, ...]:
        """The byte registers the native port hooks may read and write themselves (see
        machine/portregs.py); the same objects for the device's life."""
        return ()

    def drive_irq(self, line: int, level: bool, driven: bool) -> bool:
        """Drive ISA line `line` to `level`, telling the machine only of a change from
        `driven` (the level this device drove last).  Returns `level`: keep it."""
        if level != driven:
            self.ctx.set_irq(line, level)
        return level


class ByteDevice(Device):
    """A device of byte-wide registers: a 16- or 32-bit IN/OUT is that many byte
    accesses to consecutive ports, the lowest first (as the ISA bus splits them)."""

    def io_read(self, port: int, size: int) -> int:
        value = 0
        for i in range(size):
            value |= self._read_byte(port + i) << (8 * i)
        return value

    def io_write(self, port: int, size: int, value: int) -> None:
        for i in range(size):
            self._write_byte(port + i, (value >> (8 * i)) & 0xFF)

    def _read_byte(self, port: int) -> int:
        return 0xFF

    def _write_byte(self, port: int, value: int) -> None:
        pass


# -- reading saved state back (it may come from a file: wrong types raise, never assert) --


def state_int(value: StateValue) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer in a device state, got {value!r}")
    return value


def state_opt_int(value: StateValue) -> int | None:
    return None if value is None else state_int(value)


def state_bytes(value: StateValue) -> bytes:
    if not isinstance(value, bytes):
        raise TypeError(f"expected bytes in a device state, got {type(value).__name__}")
    return value


#: An int attribute.
INT = Codec(state_int)
#: An int attribute that may be None.
OPT_INT = Codec(state_opt_int)
#: A bool attribute.
BOOL = Codec(bool)
#: A bytes attribute.
BYTES = Codec(state_bytes)
#: A bytearray attribute (saved as bytes).
BUFFER = Codec(lambda value: bytearray(state_bytes(value)), bytes)

E = TypeVar("E", bound=enum.Enum)


def enum_codec(kind: type[E]) -> Codec:
    """An attribute holding a member of enum `kind` (saved as its value)."""
    return Codec(kind, lambda member: member.value)

"""What every device is, and the services the machine gives it.

A device sees the machine only through `DeviceContext`: the virtual clock, the ISA
interrupt lines, and a way to ask the run loop to stop.  It knows nothing of unicorn,
logs or gdb.  Time is virtual: `ctx.now_ns()` is `(icount << shift) + bias` (the bias
grows only when a halted CPU is fast-forwarded to the next timer), so a device that
schedules its work through `ctx.set_timer` behaves the same on every run.
"""

from __future__ import annotations

import mmap
from collections.abc import Mapping
from typing import Protocol

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

    def guest_exit(self, code: int) -> None:
        """The guest asked to power off with exit status `code` (stops the run)."""
        ...


class Device:
    """Base class of every device on the I/O bus.

    Subclasses set `name` and `ports` and override what they implement.  `save_state`
    returns plain data (ints, bools, bytes, str, lists, dicts) that `load_state` takes
    back; save -> load -> save must give the same value.
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
    # (write-only, read-only and self-clearing registers).  Registers whose value moves
    # with time are listed by `hot_registers`: their reads call `mmio_refresh` first.

    def register_pages(self) -> tuple[tuple[int, mmap.mmap], ...]:
        """(physical base, 4 KiB host page) of each register page (none by default)."""
        return ()

    def mmio_write(self, addr: int, size: int, value: int) -> None:
        """A guest store of `size` bytes at physical `addr` in one of the pages."""

    def mmio_settle(self) -> None:
        """The store(s) reported by `mmio_write` landed: rewrite what they changed."""

    def settles_before_store(self, addr: int, size: int, value: int) -> bool:
        """True if the page, settled now (before the store lands), already holds `value`
        at `addr` and the store changes nothing that moves with time: the machine then
        settles at once and lets the guest run on, with no stop after the store."""
        del addr, size, value
        return False

    def hot_registers(self) -> tuple[range, ...]:
        """Physical addresses whose reads must call `mmio_refresh` now."""
        return ()

    def mmio_refresh(self, addr: int, size: int) -> None:
        """About to read `size` bytes at `addr` (in `hot_registers`): update the page."""

    def save_state(self) -> State:
        return {}

    def load_state(self, state: Mapping[str, StateValue]) -> None:
        """Restore what `save_state` returned (timers are re-armed by the device)."""


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

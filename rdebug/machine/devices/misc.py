"""Small ports with no state worth the name: the POST port 0x80 and isa-debug-exit.

Owns only their port decoding.  Knows nothing of what exiting means to the run loop:
`DebugExit` reports the guest's request through `ctx.guest_exit`.
"""

from __future__ import annotations

from rdebug.machine.devices.base import Device, DeviceContext

POST_PORT = 0x80
DEBUG_EXIT_IOBASE = 0xF4
DEBUG_EXIT_IOSIZE = 4


class PostPort(Device):
    """Port 0x80, the POST diagnostic port (and the classic I/O delay).

    Writes are accepted and dropped; reads see a floating bus (all ones).
    """

    name = "post"
    ports = (range(POST_PORT, POST_PORT + 1),)


class DebugExit(Device):
    """QEMU's isa-debug-exit: a write of value V exits the guest with status (V << 1) | 1.

    The value is the width of the access (OUTB, OUTW, OUTL) at any port of the range;
    reads see a floating bus (all ones).

    >>> class Ctx:
    ...     def guest_exit(self, code: int) -> None:
    ...         print("exit", code)
    >>> DebugExit(Ctx()).io_write(0xF4, 1, 0x10)
    exit 33
    """

    name = "debug-exit"

    def __init__(
        self,
        ctx: DeviceContext,
        iobase: int = DEBUG_EXIT_IOBASE,
        iosize: int = DEBUG_EXIT_IOSIZE,
    ) -> None:
        super().__init__(ctx)
        self.ports = (range(iobase, iobase + iosize),)

    def io_write(self, port: int, size: int, value: int) -> None:
        value &= (1 << (8 * size)) - 1
        self.ctx.guest_exit((value << 1) | 1)

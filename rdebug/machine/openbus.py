"""Open bus: physical addresses with nothing behind them read as all-ones; writes vanish.

That is what a PC's bus does (and QEMU): e.g. Linux's early microcode loader reads a
physical address beyond RAM before paging is on, which unicorn would refuse as an access
to unmapped memory.  The holes between RAM and the device register pages become MMIO
ranges whose reads return all-ones: no cost to other accesses (no memory hook), the
same result in every run, and a debug log line for each access.
"""

from __future__ import annotations

from unicorn import Uc

from rdebug.machine.debuglog import debug


def map_open_bus(uc: Uc) -> None:
    """Fill every unmapped part of the 4 GiB physical address space (call last; what
    is mapped above it, such as machine/vtlb.py's read alias, stays as it is)."""
    taken = sorted(
        (begin, min(end + 1, 1 << 32)) for begin, end, _perms in uc.mem_regions() if begin < 1 << 32
    )
    start = 0
    for begin, end in [*taken, (1 << 32, 1 << 32)]:
        if begin > start:
            uc.mmio_map(start, begin - start, _read, start, _write, start)
        start = max(start, end)


def _read(uc: Uc, offset: int, size: int, base: int) -> int:
    debug(
        __name__, "read of %d bytes at physical %#x: nothing there (all-ones)", size, base + offset
    )
    return (1 << (8 * size)) - 1


def _write(uc: Uc, offset: int, size: int, value: int, base: int) -> None:
    debug(
        __name__, "write of %d bytes at physical %#x: nothing there (dropped)", size, base + offset
    )

"""What a LAPIC ID read costs: a Python MMIO callback per read against rdebug's register
page (read-only RAM, stores caught by a write-protection hook), and what the timer's
current-count read hook costs every other memory access while the timer counts.

The guest is a flat loop: `mov eax, [0xFEE00020]` (the LAPIC ID, as xv6's mycpu() does),
a store to RAM, `dec ecx; jnz`, READS times, then `out 0xF4` (exit).

    python bench/lapic.py [--reads 1000000] [--rounds 3]

Variants:
- `mmio`: raw unicorn, the LAPIC page as `mmio_map` with a Python read callback;
- `page`: raw unicorn, the page as read-only RAM + UC_HOOK_MEM_WRITE_PROT (rdebug's design);
- `page+hot`: `page` plus the UC_HOOK_MEM_READ rdebug adds on the current count (0x390)
  while the LAPIC timer counts (any memory hook sends every access through the slow path);
- `machine`: the whole rdebug machine (counter, devices) running the same loop.
"""

from __future__ import annotations

import argparse
import ctypes
import mmap
import statistics
import time

from unicorn import (
    UC_ARCH_X86,
    UC_HOOK_MEM_READ,
    UC_HOOK_MEM_WRITE_PROT,
    UC_MODE_32,
    UC_PROT_READ,
    Uc,
)

from rdebug.host.sources import LiveInputs
from rdebug.machine.loader import ImageFormat, parse_image
from rdebug.machine.machine import Machine, MachineConfig

LAPIC = 0xFEE00000
CODE_ADDR = 0x100000


def _loop(reads: int) -> bytes:
    return (
        bytes.fromhex("b9")
        + reads.to_bytes(4, "little")  # mov ecx, reads
        + bytes.fromhex("a12000e0fe")  # loop: mov eax, [0xFEE00020]
        + bytes.fromhex("a300800000")  # mov [0x8000], eax
        + bytes.fromhex("4975f3")  # dec ecx; jnz loop
        + bytes.fromhex("b000e6f4")  # mov al, 0; out 0xF4, al
        + b"\xf4"
    )


def _raw(code: bytes, variant: str) -> float:
    uc = Uc(UC_ARCH_X86, UC_MODE_32)
    uc.mem_map(0, 0x200000)
    uc.mem_write(CODE_ADDR, code)
    keep: list[object] = []
    if variant == "mmio":
        uc.mmio_map(LAPIC, 0x1000, lambda _uc, _off, _size, _u: 0, None, lambda *_a: None, None)
    else:
        page = mmap.mmap(-1, 0x1000)
        ptr = ctypes.c_char.from_buffer(page)
        keep += [page, ptr]
        uc.mem_map_ptr(LAPIC, 0x1000, UC_PROT_READ, ctypes.addressof(ptr))
        uc.hook_add(UC_HOOK_MEM_WRITE_PROT, lambda *_a: True, None, LAPIC, LAPIC + 0xFFF)
        if variant == "page+hot":
            uc.hook_add(UC_HOOK_MEM_READ, lambda *_a: None, None, LAPIC + 0x390, LAPIC + 0x393)
    end = CODE_ADDR + len(code) - 5  # stop before the exit port
    start = time.perf_counter()
    uc.emu_start(CODE_ADDR, end)
    return time.perf_counter() - start


def _machine(code: bytes) -> float:
    machine = Machine(MachineConfig(memory_mb=4), LiveInputs())
    try:
        machine.load(parse_image(code, "loop", ImageFormat.FLAT, load_address=CODE_ADDR))
        start = time.perf_counter()
        stop = machine.run()
        elapsed = time.perf_counter() - start
        assert stop.exit_code == 1, stop
        return elapsed
    finally:
        machine.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    code = _loop(args.reads)
    variants = ["mmio", "page", "page+hot", "machine"]
    times: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(args.rounds):  # interleaved, so load changes hit every variant
        for variant in variants:
            run = _machine(code) if variant == "machine" else _raw(code, variant)
            times[variant].append(run)
    base = statistics.median(times["page"])
    print(f"{args.reads} LAPIC ID reads (+1 store each), median of {args.rounds}:")
    for variant in variants:
        median = statistics.median(times[variant])
        per_read = median / args.reads * 1e9
        ratio = median / base
        print(f"  {variant:9s} {median:7.3f} s  {per_read:7.1f} ns/iteration  {ratio:5.2f}x")


if __name__ == "__main__":
    main()

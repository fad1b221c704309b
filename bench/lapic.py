"""What a LAPIC ID read costs: a Python MMIO callback per read against rdebug's register
page (read-only RAM, stores caught by a write-protection hook), what a current-count
read hook would cost every other memory access while the timer counts, and what a read
of the LAPIC page costs rdebug while its timer counts (no hook: a refused TLB fill).

The guest is a flat loop: `mov eax, [0xFEE00020]` (the LAPIC ID, as xv6's mycpu() does),
a store to RAM, `dec ecx; jnz`, READS times, then `out 0xF4` (exit).

    python bench/lapic.py [--reads 1000000] [--rounds 3]

Variants:
- `mmio`: raw unicorn, the LAPIC page as `mmio_map` with a Python read callback;
- `page`: raw unicorn, the page as read-only RAM + UC_HOOK_MEM_WRITE_PROT (rdebug's design);
- `page+hot`: `page` plus a UC_HOOK_MEM_READ on the current count (0x390), as rdebug
  had while the LAPIC timer counted (any memory hook sends every access through the slow
  path);
- `machine`: the whole rdebug machine (counter, devices) running the same loop;
- `machine+timer`: the same after programming the LAPIC timer (periodic, masked), so it
  counts all along: every read of the LAPIC page stops the engine before the reading
  instruction (the current count is computed there) and runs it alone; READS / 50
  iterations (ns/iteration and the ratio are per iteration).
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


#: divide by 1; LVT timer masked + periodic; initial count 0xFFFFFFFF: counts for ever
_TIMER = bytes.fromhex(
    "c705e003e0fe0b000000" "c7052003e0fe00000300" "c7058003e0feffffffff"
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
    timer_reads = max(1, args.reads // 50)
    timer_code = _TIMER + _loop(timer_reads)
    variants = ["mmio", "page", "page+hot", "machine", "machine+timer"]
    iterations = {v: timer_reads if v == "machine+timer" else args.reads for v in variants}
    times: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(args.rounds):  # interleaved, so load changes hit every variant
        for variant in variants:
            if variant == "machine":
                run = _machine(code)
            elif variant == "machine+timer":
                run = _machine(timer_code)
            else:
                run = _raw(code, variant)
            times[variant].append(run)
    base = statistics.median(times["page"]) / args.reads
    print(f"{args.reads} LAPIC ID reads (+1 store each), median of {args.rounds}:")
    for variant in variants:
        median = statistics.median(times[variant])
        per_read = median / iterations[variant]
        ratio = per_read / base
        print(
            f"  {variant:13s} {iterations[variant]:8d} {median:7.3f} s "
            f" {per_read * 1e9:8.1f} ns/iteration  {ratio:7.2f}x"
        )


if __name__ == "__main__":
    main()

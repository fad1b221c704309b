"""Guest speed of rdebug's machine against raw unicorn, measured side by side.

For each workload guest (`crc`: CPU-bound, `memcopy`: store-heavy) this script

1. boots the guest on rdebug's `Machine` (native instruction counter, all devices and
   hooks in place) up to the global label `workload_begin`, with the guest's pass count
   (`crc_passes` / `memcopy_passes` in .data) raised so that a run lasts long enough;
2. copies RAM and the CPU registers into a bare unicorn engine (no hooks at all, the same
   RAM size mapped at 0) and times `emu_start(workload_begin, until=workload_end)`;
3. times the Machine running the same stretch, from a fresh boot, up to `workload_end`;

interleaved, several rounds, and prints guest MIPS of both and their ratio, from the
median and from the best round of each (shared machines are noisy: the best round is
the least disturbed).  The instruction count of the stretch is the Machine's exact icount
difference.

4. whole process, as a user runs it: `rdebug run -m 256 --serial null G.elf` on the
   guest with the same pass count patched into the ELF, wall time from the process's
   start to its exit (Python start-up, boot and all); its MIPS count the workload's
   instructions only (the boot adds a few thousand).

    python bench/speed.py [--rounds 5] [--crc-passes N] [--memcopy-passes N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from unicorn import UC_ARCH_X86, UC_MODE_32, UC_PROT_ALL, Uc
from unicorn import x86_const as X

from rdebug.host.sources import LiveInputs
from rdebug.machine.loader import LoadedImage, load_image
from rdebug.machine.machine import Machine, MachineConfig, StopReason

ROOT = Path(__file__).resolve().parent.parent
GUESTS = ROOT / "sample_guests" / "build"
MEMORY_MB = 256

_REGS = (
    ("eax", X.UC_X86_REG_EAX),
    ("ebx", X.UC_X86_REG_EBX),
    ("ecx", X.UC_X86_REG_ECX),
    ("edx", X.UC_X86_REG_EDX),
    ("esi", X.UC_X86_REG_ESI),
    ("edi", X.UC_X86_REG_EDI),
    ("ebp", X.UC_X86_REG_EBP),
    ("esp", X.UC_X86_REG_ESP),
    ("eflags", X.UC_X86_REG_EFLAGS),
)
_SEGS = (
    ("cs", X.UC_X86_REG_CS),
    ("ss", X.UC_X86_REG_SS),
    ("ds", X.UC_X86_REG_DS),
    ("es", X.UC_X86_REG_ES),
    ("fs", X.UC_X86_REG_FS),
    ("gs", X.UC_X86_REG_GS),
)


@dataclass(frozen=True)
class Workload:
    name: str
    passes_symbol: str
    passes: int


def _boot_to_begin(image: LoadedImage, passes_symbol: str, passes: int) -> Machine:
    machine = Machine(MachineConfig(memory_mb=MEMORY_MB), LiveInputs(), [])
    machine.load(image)
    machine.cpu.write_physical(image.symbols[passes_symbol], passes.to_bytes(4, "little"))
    begin = image.symbols["workload_begin"]
    machine.add_breakpoint(begin)
    stop = machine.run()
    if stop.reason is not StopReason.BREAKPOINT or machine.cpu.eip != begin:
        raise SystemExit(f"{image}: did not reach workload_begin ({stop})")
    machine.remove_breakpoint(begin)
    return machine


def _raw_engine(machine: Machine) -> Uc:
    """A hook-free unicorn engine in the state `machine` is in now."""
    cpu = machine.cpu
    uc = Uc(UC_ARCH_X86, UC_MODE_32)
    uc.mem_map(0, cpu.ram_size, UC_PROT_ALL)
    uc.mem_write(0, bytes(cpu.ram))
    uc.reg_write(X.UC_X86_REG_GDTR, cpu.uc.reg_read(X.UC_X86_REG_GDTR))
    uc.reg_write(X.UC_X86_REG_IDTR, cpu.uc.reg_read(X.UC_X86_REG_IDTR))
    for cr in (X.UC_X86_REG_CR0, X.UC_X86_REG_CR3, X.UC_X86_REG_CR4):
        uc.reg_write(cr, cpu.uc.reg_read(cr))
    for _, regid in _SEGS:
        uc.reg_write(regid, cpu.uc.reg_read(regid))
    for _, regid in _REGS:
        uc.reg_write(regid, cpu.uc.reg_read(regid))
    return uc


def patched_elf(data: bytes, symbol_addr: int, value: int) -> bytes:
    """`data` (an ELF32) with the dword at virtual address `symbol_addr` set to `value`
    in the file, so that both emulators (and rdebug's trace copy) see the same guest."""
    out = bytearray(data)
    (phoff,) = struct.unpack_from("<I", out, 28)
    phentsize, phnum = struct.unpack_from("<HH", out, 42)
    for i in range(phnum):
        _, offset, vaddr, _, filesz, _, _, _ = struct.unpack_from("<8I", out, phoff + i * phentsize)
        if vaddr <= symbol_addr < vaddr + filesz:
            struct.pack_into("<I", out, offset + symbol_addr - vaddr, value)
            return bytes(out)
    raise ValueError(f"address {symbol_addr:#x} is not in a loaded segment")


@dataclass(frozen=True)
class Result:
    insns: int
    raw_times: list[float]
    rd_times: list[float]
    #: wall seconds of `rdebug run` as a whole process, per round
    whole_times: list[float]

    def mips(self, times: list[float], pick: str) -> float:
        seconds = statistics.median(times) if pick == "median" else min(times)
        return self.insns / seconds / 1e6


def whole_run(elf: Path) -> float:
    """Wall seconds of `rdebug run` on `elf`, a whole process (bytecode cached), run in
    this tree (`python -m` looks in the working directory first)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    argv = [sys.executable, "-m", "rdebug", "run", "-m", str(MEMORY_MB), "--serial", "null"]
    t0 = time.perf_counter()
    proc = subprocess.run([*argv, str(elf)], capture_output=True, check=False, env=env, cwd=ROOT)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 1:
        raise SystemExit(f"rdebug run {elf.name}: status {proc.returncode}: {proc.stderr[-300:]!r}")
    return elapsed


def measure(workload: Workload, rounds: int, whole: bool = False) -> Result:
    image = load_image(GUESTS / f"{workload.name}.elf")
    begin, end = image.symbols["workload_begin"], image.symbols["workload_end"]
    raw_times: list[float] = []
    rd_times: list[float] = []
    whole_times: list[float] = []
    insns = 0
    tmp = tempfile.TemporaryDirectory(prefix="speed")
    elf = Path(tmp.name) / f"{workload.name}.elf"
    data = (GUESTS / f"{workload.name}.elf").read_bytes()
    elf.write_bytes(patched_elf(data, image.symbols[workload.passes_symbol], workload.passes))
    for _ in range(rounds):
        machine = _boot_to_begin(image, workload.passes_symbol, workload.passes)
        uc = _raw_engine(machine)
        t0 = time.perf_counter()
        uc.emu_start(begin, end)
        raw_times.append(time.perf_counter() - t0)
        raw_eax = uc.reg_read(X.UC_X86_REG_EAX)
        del uc

        start = machine.icount
        machine.add_breakpoint(end)
        t0 = time.perf_counter()
        stop = machine.run()
        rd_times.append(time.perf_counter() - t0)
        if stop.reason is not StopReason.BREAKPOINT:
            raise SystemExit(f"{workload.name}: rdebug did not reach workload_end ({stop})")
        if machine.cpu.read("eax") != raw_eax:
            raise SystemExit(f"{workload.name}: raw unicorn and rdebug disagree on eax")
        insns = machine.icount - start
        machine.close()
        if whole:
            whole_times.append(whole_run(elf))
    tmp.cleanup()
    return Result(insns, raw_times, rd_times, whole_times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--crc-passes", type=int, default=4000)
    parser.add_argument("--memcopy-passes", type=int, default=1000)
    parser.add_argument(
        "--no-whole", action="store_true", help="skip the whole-process `rdebug run`"
    )
    args = parser.parse_args(argv)
    workloads = [
        Workload("crc", "crc_passes", args.crc_passes),
        Workload("memcopy", "memcopy_passes", args.memcopy_passes),
    ]
    print(
        f"{'workload':10} {'instructions':>14} {'round':>7} {'raw MIPS':>10} "
        f"{'rdebug MIPS':>12} {'ratio':>6} {'rdebug run (process)':>21} {'ratio':>6}"
    )
    for workload in workloads:
        result = measure(workload, args.rounds, whole=not args.no_whole)
        for pick in ("median", "best"):
            raw = result.mips(result.raw_times, pick)
            rd = result.mips(result.rd_times, pick)
            line = (
                f"{workload.name:10} {result.insns:>14,} {pick:>7} {raw:>10.1f} "
                f"{rd:>12.1f} {rd / raw:>6.2f}"
            )
            if result.whole_times:
                whole = result.mips(result.whole_times, pick)
                line += f" {whole:>16.1f} MIPS {whole / raw:>6.2f}"
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A stock Debian i386 Linux boot to power-off: rdebug run/record/replay against QEMU.

The kernel (linux-image-686) and the busybox initramfs are tests/linux_guest.py's (the
system's package manager fetches them once).  /init runs its commands and powers off
(`poweroff -f`: ACPI S5).  Each mode is timed from process start to exit, as a user
sees it:

- `rdebug run`, `rdebug record -o TRACE`, `rdebug replay TRACE` (the instruction count
  is the recording's);
- `qemu-system-i386 -icount shift=7` (deterministic virtual time, like rdebug's) and
  plain QEMU (TCG, no icount), on the same kernel, initramfs and command line, with
  `-no-reboot`.

    python3 bench/linux.py [--append "console=ttyS0 cryptomgr.notests"] [--rounds 1]

The default command line is plain `console=ttyS0` (the kernel's crypto self-tests run:
over half of the boot's instructions); `cryptomgr.notests` skips them.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script
from tests.linux_guest import INIT_DONE, linux_guest

ROOT = Path(__file__).resolve().parent.parent


def _timed(argv: list[str], out: Path) -> tuple[float, subprocess.CompletedProcess[bytes]]:
    start = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, cwd=ROOT, timeout=7200, check=False)
    elapsed = time.perf_counter() - start
    text = out.read_bytes() if out.exists() else result.stdout
    if INIT_DONE.encode() not in text:
        sys.exit(f"{argv[:3]}: /init did not finish: {result.stderr.decode()[-2000:]}")
    return elapsed, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--append", default="console=ttyS0")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("-m", dest="memory_mb", type=int, default=256)
    args = parser.parse_args()
    guest = linux_guest()
    qemu = shutil.which("qemu-system-i386")
    boot = ["--initrd", str(guest.initramfs), "--append", args.append, "-m", str(args.memory_mb)]
    times: dict[str, list[float]] = {}
    icount = 0
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            rdebug = [sys.executable, "-m", "rdebug"]
            serial = ["--serial", f"file:{work / 'run.txt'}"]
            t, _ = _timed([*rdebug, "run", str(guest.kernel), *boot, *serial], work / "run.txt")
            times.setdefault("rdebug run", []).append(t)
            trace = work / "trace"
            serial = ["--serial", f"file:{work / 'rec.txt'}"]
            t, result = _timed(
                [*rdebug, "record", str(guest.kernel), "-o", str(trace), *boot, *serial],
                work / "rec.txt",
            )
            times.setdefault("rdebug record", []).append(t)
            match = re.search(rb"recorded (\d+) instructions", result.stderr)
            icount = int(match[1]) if match else 0
            serial = ["--serial", f"file:{work / 'replay.txt'}"]
            t, _ = _timed([*rdebug, "replay", str(trace), *serial], work / "replay.txt")
            times.setdefault("rdebug replay", []).append(t)
            if (work / "rec.txt").read_bytes() != (work / "replay.txt").read_bytes():
                sys.exit("replay's transcript differs from the recording's")
            if qemu is None:
                continue
            for name, extra in (("qemu -icount shift=7", ["-icount", "shift=7"]), ("qemu", [])):
                out = work / f"{name.split()[0]}{len(extra)}.txt"
                argv = [
                    qemu,
                    "-kernel",
                    str(guest.kernel),
                    "-initrd",
                    str(guest.initramfs),
                    "-append",
                    args.append,
                    "-m",
                    str(args.memory_mb),
                    "-display",
                    "none",
                    "-monitor",
                    "none",
                    "-serial",
                    f"file:{out}",
                    "-no-reboot",
                    *extra,
                ]
                t, _ = _timed(argv, out)
                times.setdefault(name, []).append(t)
    print(f"kernel {guest.kernel.name} ({guest.version}), append {args.append!r}")
    print(f"boot to power-off: {icount:.3e} instructions (the recording's count)")
    reference = statistics.median(times["qemu -icount shift=7"]) if qemu else None
    print(f"{'mode':<22}{'wall s':>9}{'MIPS':>9}{'vs icount QEMU':>16}")
    for name, values in times.items():
        wall = statistics.median(values)
        ratio = f"{wall / reference:.1f}x" if reference else "-"
        print(f"{name:<22}{wall:>9.1f}{icount / wall / 1e6:>9.1f}{ratio:>16}")


if __name__ == "__main__":
    main()

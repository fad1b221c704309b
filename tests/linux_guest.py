"""A stock Debian i386 kernel and a busybox initramfs, for the Linux tests and bench/linux.py.

Nothing of it is committed: the kernel (`linux-image-686`, Linux 6.1, non-PAE) and
`busybox-static:i386` come from the system's package manager at test time
(`apt-get download`; the machine must have the i386 architecture added:
`dpkg --add-architecture i386 && apt-get update`, as .ci/run does) and are cached in
~/.cache/rdebug/linux/, keyed by package version.  The initramfs (a cpio "newc" archive)
is built here, in Python.

    python3 -m tests.linux_guest     # fetch (or reuse) them; print the paths

Its /init mounts proc, sysfs and a tmpfs, runs a few commands (processes, a pipe, a file
on the tmpfs), prints INIT_DONE, then either powers off (`poweroff -f`) or, when the
command line has `rdebug.shell`, runs a shell on the console (commands typed with
--serial-input; `poweroff -f` ends it).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from rdebug.gdb import Gdb

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rdebug" / "linux"
KERNEL_META = "linux-image-686:i386"
BUSYBOX = "busybox-static:i386"
#: The line /init prints once its commands ran.
INIT_DONE = "rdebug-linux-init-done"

INIT_SCRIPT = f"""#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs tmpfs /tmp
echo "init: pid $$, kernel $(uname -r)"
echo "a line on the tmpfs" > /tmp/file
cat /tmp/file | tr a-z A-Z
sleep 0.1 &
wait
echo "processes: $(ps | wc -l), pipe: $(seq 1 100 | grep -c 7)"
grep -E '^ *(0|LOC):' /proc/interrupts
echo {INIT_DONE}
if grep -q rdebug.shell /proc/cmdline; then
    exec sh
fi
poweroff -f
"""

APPLETS = (
    *("sh", "cat", "echo", "mount", "umount", "ps", "wc", "seq", "grep", "tr", "sleep"),
    *("uname", "poweroff", "reboot", "ls", "dmesg", "head", "tail", "true", "false"),
    *("sync", "mkdir", "rm"),
)


class Unavailable(Exception):
    """The package manager cannot give the packages (offline, no i386 architecture)."""


@dataclass(frozen=True, slots=True)
class LinuxGuest:
    kernel: Path
    initramfs: Path
    version: str  # the kernel package's version


def _run(argv: list[str], cwd: Path | None = None) -> str:
    try:
        result = subprocess.run(
            argv, cwd=cwd, capture_output=True, text=True, timeout=600, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Unavailable(f"{argv[0]}: {exc}") from None
    if result.returncode != 0:
        raise Unavailable(f"{' '.join(argv)}: {result.stderr.strip()[-400:]}")
    return result.stdout


def _candidate(package: str) -> tuple[str, str]:
    """(the package a metapackage depends on, or itself; its candidate version)."""
    if package == KERNEL_META:
        out = _run(["apt-cache", "depends", package])
        for raw in out.splitlines():
            line = raw.strip()
            if line.startswith("Depends: linux-image-"):
                package = line.split()[1]
                if ":" not in package:
                    package += ":i386"
                break
        else:
            raise Unavailable(f"apt-cache depends {KERNEL_META}: no linux-image dependency")
    out = _run(["apt-cache", "policy", package])
    for line in out.splitlines():
        if line.strip().startswith("Candidate:"):
            version = line.split(":", 1)[1].strip()
            if version and version != "(none)":
                return package, version
    raise Unavailable(
        f"apt-cache policy {package}: no candidate (add the architecture: "
        "dpkg --add-architecture i386 && apt-get update)"
    )


def _fetch(package: str) -> Path:
    """The extracted package (cached by name and version)."""
    name, version = _candidate(package)
    key = f"{name.split(':')[0]}_{version}".replace(":", "%3a").replace("/", "_")
    target = CACHE / key
    if (target / ".done").exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        work = Path(tmp)
        os.chmod(work, 0o755)  # apt's sandbox user must be able to write here
        _run(["apt-get", "download", "-q", f"{name}={version}"], cwd=work)
        debs = list(work.glob("*.deb"))
        if len(debs) != 1:
            raise Unavailable(f"apt-get download {name}: got {len(debs)} files")
        tree = work / "tree"
        _run(["dpkg-deb", "-x", str(debs[0]), str(tree)])
        (tree / ".version").write_text(version)
        if (target / ".done").exists():
            return target  # another suite fetched it meanwhile: theirs is in use
        if target.exists():
            shutil.rmtree(target)  # a fetch that died half-way
        tree.rename(target)
        (target / ".done").write_text("")
    return target


def cpio_newc(entries: list[tuple[str, int, bytes, int]]) -> bytes:
    """A cpio "newc" archive of (path, mode, data, rdev) entries (the initramfs format)."""
    out = bytearray()
    for ino, (path, mode, data, rdev) in enumerate([*entries, ("TRAILER!!!", 0, b"", 0)], 1):
        name = path.encode() + b"\0"
        fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev >> 8, rdev & 0xFF, len(name), 0)
        out += b"070701" + b"".join(b"%08X" % f for f in fields) + name
        out += b"\0" * (-len(out) % 4) + data
        out += b"\0" * (-len(out) % 4)
    return bytes(out)


def build_initramfs(
    busybox: bytes, init: str = INIT_SCRIPT, files: Mapping[str, bytes] | None = None
) -> bytes:
    """The initramfs: busybox and its applets, /dev/console, `init` as /init, and
    `files` (path in the archive, e.g. "bin/prog": its bytes; executable, in a directory
    the archive has: bin, tmp, root) after it."""
    directory, regular, link, char = 0o040755, 0o100755, 0o120777, 0o020600
    entries: list[tuple[str, int, bytes, int]] = [
        (d, directory, b"", 0) for d in ("bin", "dev", "proc", "sys", "tmp", "root")
    ]
    entries.append(("dev/console", char, b"", (5 << 8) | 1))
    entries.append(("dev/null", 0o020666, b"", (1 << 8) | 3))
    entries.append(("bin/busybox", regular, busybox, 0))
    entries += [(f"bin/{applet}", link, b"busybox", 0) for applet in APPLETS]
    entries.append(("init", regular, init.encode(), 0))
    entries += [(path, regular, data, 0) for path, data in sorted((files or {}).items())]
    return cpio_newc(entries)


def linux_guest(init: str = INIT_SCRIPT, files: Mapping[str, bytes] | None = None) -> LinuxGuest:
    """Fetch (or reuse) the kernel and busybox; (re)build the initramfs next to them.

    `init` and `files` make another initramfs (`build_initramfs`): a test's own /init
    and programs; the default one is the guest described above."""
    kernel_tree = _fetch(KERNEL_META)
    kernels = sorted((kernel_tree / "boot").glob("vmlinuz-*"))
    if len(kernels) != 1:
        raise Unavailable(f"{kernel_tree}/boot: expected one vmlinuz, found {len(kernels)}")
    busybox_tree = _fetch(BUSYBOX)
    busybox = busybox_tree / "bin" / "busybox"
    image = build_initramfs(busybox.read_bytes(), init, files)
    # named by its content and written whole: suites run side by side (a stress run, a
    # checkout with another /init) never read one another's half-written archive
    initramfs = busybox_tree / f"initramfs-{hashlib.sha256(image).hexdigest()[:16]}.cpio"
    if not initramfs.exists():
        with tempfile.NamedTemporaryFile(dir=busybox_tree, delete=False) as part:
            part.write(image)
        os.replace(part.name, initramfs)
    version = (kernel_tree / ".version").read_text()
    return LinuxGuest(kernels[0], initramfs, version)


def synthetic_bzimage(version: int = 0x020F, loadflags: int = 0x01, setup_sects: int = 4) -> bytes:
    """A tiny bzImage (setup header, NOPs as its kernel) for tests of the loader."""
    data = bytearray(512 * (setup_sects + 1) + 4096)
    data[0x1F1] = setup_sects
    struct.pack_into("<H", data, 0x1FE, 0xAA55)
    data[0x201] = 0x6A  # the jump over the header
    data[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", data, 0x206, version)
    data[0x211] = loadflags
    struct.pack_into("<I", data, 0x214, 0x100000)  # code32_start
    struct.pack_into("<I", data, 0x22C, 0x7FFFFFFF)  # initrd_addr_max
    struct.pack_into("<I", data, 0x230, 0x1000000)  # kernel_alignment
    struct.pack_into("<I", data, 0x238, 2047)  # cmdline_size
    struct.pack_into("<I", data, 0x260, 0x20000)  # init_size
    data[512 * (setup_sects + 1) :] = b"\x90" * 4096  # the protected-mode kernel
    return bytes(data)


if __name__ == "__main__":
    try:
        guest = linux_guest()
    except Unavailable as exc:
        print(f"linux_guest: {exc}", file=sys.stderr)
        sys.exit(2)
    print(f"kernel {guest.kernel}\ninitramfs {guest.initramfs}\nversion {guest.version}")


def gdb_icount(gdb: Gdb) -> int:
    """The replay position gdb is at, from rdebug's monitor command."""
    text = gdb.command("monitor info replay").console
    return int(text.split("icount", 1)[1].split()[0])


def watch_values(console: str) -> tuple[str, str]:
    """The values of gdb's "Old value = A / New value = B" watchpoint report."""
    old = [line for line in console.splitlines() if line.startswith("Old value")]
    new = [line for line in console.splitlines() if line.startswith("New value")]
    assert old and new, console
    return old[-1].split("=")[-1].strip(), new[-1].split("=")[-1].strip()

#!/usr/bin/env python3
"""Run build/minikernel.elf under QEMU with a scripted session and print (or check) what
it wrote to COM1: the reference for sample_guests/expected/minikernel*.txt.

    ./minikernel/qemu_session.py NAME            print the session's COM1 output
    ./minikernel/qemu_session.py NAME --update   write expected/minikernel-NAME.txt
    ./minikernel/qemu_session.py NAME --check    compare with it (exit status 1 if not)

Sessions (SESSIONS below): COM1 lines typed one after another, keys sent to the PS/2
keyboard through the QEMU monitor, and an IDE slave made by slave_image().  The guest
echoes a line when it reads it, so the output does not depend on when input arrives.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
ELF = HERE / "build" / "minikernel.elf"

#: name -> (COM1 input, keyboard text typed after the `key` command, slave disk or not)
SESSIONS = {
    "shell": (b"help\nps\nrun\nfault\ndisk\ndisk\ncrc 3\nbogus\nexit 0\n", "", True),
    "key": (b"key\nexit\n", "hi kbd 42\n", False),
}

_KEYS = {" ": "spc", "\n": "ret", "-": "minus", ".": "dot", ",": "comma", "/": "slash"}


def slave_image(sectors: int = 2048) -> bytes:
    """The IDE slave the tests use: sector 0 holds "MINIDISK" and the counter 41."""
    return b"MINIDISK" + (41).to_bytes(4, "little") + bytes(sectors * 512 - 12)


def run(name: str) -> tuple[int, bytes]:
    serial_in, keys, with_disk = SESSIONS[name]
    with tempfile.TemporaryDirectory() as tmp:
        monitor = Path(tmp) / "monitor.sock"
        command = [
            "qemu-system-i386", "-kernel", str(ELF), "-m", "224", "-display", "none",
            "-serial", "stdio", "-monitor", f"unix:{monitor},server,nowait",
            "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
            "-icount", "shift=7", "-no-reboot",
        ]
        if with_disk:
            disk = Path(tmp) / "slave.img"
            disk.write_bytes(slave_image())
            command += ["-drive", f"file={disk},if=ide,index=1,format=raw"]
        qemu = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert qemu.stdin is not None
        time.sleep(1)
        qemu.stdin.write(serial_in)
        qemu.stdin.flush()
        if keys:
            time.sleep(1)
            with socket.socket(socket.AF_UNIX) as mon:
                mon.connect(str(monitor))
                for ch in keys:
                    mon.sendall(f"sendkey {_KEYS.get(ch, ch)}\n".encode())
                    time.sleep(0.05)
        out, _ = qemu.communicate(timeout=60)
        return qemu.returncode, out


def main() -> int:
    name = sys.argv[1]
    status, out = run(name)
    expected = HERE / "expected" / f"minikernel-{name}.txt"
    if "--update" in sys.argv:
        expected.write_bytes(out)
    if "--check" in sys.argv:
        ok = status == 1 and expected.read_bytes() == out
        print(f"{'ok  ' if ok else 'FAIL'} minikernel-{name} (status {status})")
        return 0 if ok else 1
    if "--update" not in sys.argv:
        sys.stdout.buffer.write(out)
    return 0 if status == 1 else 1


if __name__ == "__main__":
    sys.exit(main())

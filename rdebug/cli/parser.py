"""The `rdebug` command line's arguments: subcommands, options, their help, exit statuses."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import NoReturn

from rdebug.api import DriveSpec, ImageFormat, NicConfig, drive_spec
from rdebug.errors import UsageError

EXIT_OK = 0
EXIT_ERROR = 2  # rdebug could not do what was asked (bad input, bad option, divergence)
EXIT_GUEST_CRASHED = 3  # triple fault, or an access the machine cannot emulate
EXIT_LIMIT = 4  # --max-insns reached
EXIT_INCOMPLETE = 6  # the log stops abruptly: replayed up to its last complete event
EXIT_INTERRUPTED = 130

STATUS_EPILOG = """\
exit status:
  the guest's own status when it writes V to the exit port 0xF4: (V << 1) | 1
  0    the guest powered off (ACPI S5, e.g. Linux's poweroff) or reset the machine (a
       reboot: rdebug does not reboot), or halted for good (HLT nothing can wake){replay_end}
  2    rdebug could not do it (missing or malformed image or trace, bad option{divergence})
  3    the guest crashed the machine (triple fault, code fetched from nowhere)
  4    --max-insns reached{incomplete}
  130  interrupted (Ctrl-C)
"""


def _epilog(replay: bool = False) -> str:
    return STATUS_EPILOG.format(
        replay_end=", or the replay reached the end of the recording" if replay else "",
        divergence=", replay divergence" if replay else "",
        incomplete="\n  6    the log stops abruptly (recorder killed): replayed up to its "
        "last complete event"
        if replay
        else "",
    )


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rdebug",
        description="Run, record and replay i386 guests, and debug them backwards.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    raw = argparse.RawDescriptionHelpFormatter

    run = sub.add_parser(
        "run",
        help="run a guest on the emulated PC",
        description="Run a guest (multiboot ELF, ELF32, flat binary or boot sector) on the "
        "emulated i386 PC. COM1 goes to the terminal unless --serial says otherwise.",
        epilog=_epilog(),
        formatter_class=raw,
    )
    run.add_argument("guest", type=Path, metavar="GUEST", help="the guest image")
    _add_machine_options(run)
    _add_serial_options(run, inputs=True)
    _add_net_options(run)
    _add_max_insns(run)
    run.add_argument(
        "--gdb",
        default=None,
        metavar="[HOST:]PORT",
        help="let gdb drive the run (forward only: record, then replay --gdb, to go back)",
    )

    record = sub.add_parser(
        "record",
        help="run a guest and record every input into a trace folder",
        description="Run a guest like 'rdebug run' and record every non-deterministic "
        "input (serial bytes, host clock reads) with the instruction count where it "
        "entered, into the trace folder TRACE (which must be new). 'rdebug replay "
        "TRACE' then reproduces the run exactly, with no input source.",
        epilog=_epilog(),
        formatter_class=raw,
    )
    record.add_argument("guest", type=Path, metavar="GUEST", help="the guest image")
    record.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        metavar="TRACE",
        help="the trace folder to create",
    )
    _add_machine_options(record)
    _add_serial_options(record, inputs=True)
    _add_net_options(record)
    _add_max_insns(record)

    replay = sub.add_parser(
        "replay",
        help="replay a recorded trace",
        description="Replay the trace folder TRACE: the same machine and guest, every "
        "recorded input at the exact instruction it entered at. Reads no input.",
        epilog=_epilog(replay=True),
        formatter_class=raw,
    )
    replay.add_argument("trace", type=Path, metavar="TRACE", help="a folder made by record")
    _add_serial_options(replay, inputs=False)
    replay.add_argument(
        "--net-output",
        type=Path,
        default=None,
        metavar="FILE",
        help="write the frames the guest's NIC sends to FILE (a pcap capture, stamped "
        "in virtual time); otherwise they are dropped",
    )
    replay.add_argument(
        "--gdb",
        default=None,
        metavar="[HOST:]PORT",
        help="serve the replay to gdb instead of running it (forward and backward: "
        "reverse-stepi, reverse-continue); HOST defaults to 127.0.0.1",
    )
    replay.add_argument(
        "--checkpoint-budget",
        type=_int,
        default=512,
        metavar="MB",
        help="memory for the in-memory checkpoints that make going backward fast "
        "(default 512 MiB; with --gdb)",
    )

    dumper = sub.add_parser(
        "dump",
        help="print the events of a trace's log",
        description="Print every event of the replay log with the icount at which it "
        "happened (like QEMU's replay-dump.py), or a count per kind with --summary.",
    )
    dumper.add_argument(
        "trace", type=Path, metavar="TRACE", help="a trace folder, or a replay log file"
    )
    dumper.add_argument("--summary", action="store_true", help="count the events per kind")

    repl = sub.add_parser(
        "repl",
        help="debug a recorded trace interactively (or run debugger commands from a file)",
        description="An interactive debugger on the recording TRACE: step and continue "
        "both ways, breakpoints and watchpoints by symbol, memory and registers, the "
        "recorded events (interrupts, inputs) and jumps to them, named snapshots, gdb on "
        "the same replay. 'help' at the prompt lists the commands.",
        epilog="exit status: 0, or 2 when TRACE cannot be opened or (with -x or --batch) a "
        "command fails",
    )
    repl.add_argument("trace", type=Path, metavar="TRACE", help="a folder made by record")
    repl.add_argument(
        "-x",
        dest="script",
        type=Path,
        default=None,
        metavar="FILE",
        help="run the commands in FILE first (stop at the first failing one)",
    )
    repl.add_argument(
        "--batch",
        action="store_true",
        help="no prompt: run -x FILE (or the commands on standard input) and exit",
    )
    repl.add_argument(
        "--history",
        type=Path,
        default=None,
        metavar="FILE",
        help="the command history file (default ~/.rdebug_history)",
    )
    repl.add_argument(
        "--checkpoint-budget",
        type=_int,
        default=512,
        metavar="MB",
        help="memory for the in-memory checkpoints (default 512 MiB)",
    )

    snaps = sub.add_parser(
        "snapshots",
        help="list a trace's named snapshots",
        description="List the named snapshots kept in the trace (qcow2 internal snapshots "
        "in TRACE/snapshots.qcow2) with their icounts.",
    )
    snaps.add_argument("trace", type=Path, metavar="TRACE", help="a folder made by record")
    return parser


def _add_machine_options(parser: argparse.ArgumentParser) -> None:
    """The options that describe the machine and how the image is loaded."""
    parser.add_argument(
        "-m",
        dest="memory_mb",
        type=_int,
        default=256,
        metavar="MB",
        help="guest RAM in MiB, 2-3072 (default 256; xv6-style kernels assume 224)",
    )
    parser.add_argument(
        "--icount-shift",
        type=_int,
        default=7,
        metavar="N",
        help="virtual time: each instruction takes 2**N ns (default 7)",
    )
    parser.add_argument(
        "--format",
        choices=[f.value for f in ImageFormat],
        default="auto",
        help="image format (default: detect multiboot, ELF, a Linux bzImage or boot sector)",
    )
    parser.add_argument(
        "--load-address",
        type=_int,
        default=None,
        metavar="ADDR",
        help="where a flat binary is loaded (and entered, unless --entry)",
    )
    parser.add_argument(
        "--entry", type=_int, default=None, metavar="ADDR", help="entry point of a flat binary"
    )
    parser.add_argument(
        "--append",
        default="",
        metavar="CMDLINE",
        help="the kernel command line (multiboot, Linux: e.g. 'console=ttyS0')",
    )
    parser.add_argument(
        "--initrd",
        type=Path,
        default=None,
        metavar="FILE",
        help="a Linux kernel's initial RAM disk (e.g. a cpio archive); kept in the trace",
    )
    parser.add_argument(
        "--drive",
        action="append",
        default=[],
        metavar="file=PATH[,format=raw|qcow2][,index=N]",
        help="an IDE disk (index 0 master, 1 slave). The image is never written: the "
        "guest's writes stay in memory (record keeps them in TRACE/diskN.qcow2)",
    )


def _add_serial_options(parser: argparse.ArgumentParser, inputs: bool) -> None:
    parser.add_argument(
        "--serial",
        default="stdio",
        metavar="stdio|null|file:PATH",
        help="where COM1 goes: the terminal"
        + (" (and input from it)" if inputs else "")
        + ", nowhere, or a file (default: stdio)",
    )
    if inputs:
        parser.add_argument(
            "--serial-input",
            type=Path,
            default=None,
            metavar="FILE",
            help="bytes fed to COM1's receiver, one at a time at the line's pace, once "
            "the guest has enabled reception",
        )
    _add_device_input_options(parser, inputs)


def _add_device_input_options(parser: argparse.ArgumentParser, inputs: bool) -> None:
    """--keyboard-input / --mouse-input (replay accepts them only to refuse them clearly)."""
    if not inputs:
        for option in ("--keyboard-input", "--mouse-input", "--serial-input"):
            parser.add_argument(option, type=Path, default=None, help=argparse.SUPPRESS)
        return
    parser.add_argument(
        "--keyboard-input",
        type=Path,
        default=None,
        metavar="FILE",
        help="text typed on the PS/2 keyboard (US layout; Shift for capitals and "
        "symbols, a newline is Enter), one scan code byte at a time at a steady virtual "
        "pace, while the guest has the keyboard enabled",
    )
    parser.add_argument(
        "--mouse-input",
        type=Path,
        default=None,
        metavar="FILE",
        help="PS/2 mouse reports, one line 'dx dy buttons' each (y up; buttons: 1 left, "
        "2 right, 4 middle), sent once the guest enabled the mouse",
    )


def _add_net_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--nic",
        default=None,
        metavar="ne2k_isa[,iobase=0x300][,irq=9][,mac=52:54:00:12:34:56]",
        help="an NE2000 network card on the ISA bus (recorded with the trace)",
    )
    parser.add_argument(
        "--netdev",
        default=None,
        metavar="socket,udp=HOST:PORT,localaddr=HOST:PORT|none",
        help="the NIC's host network: Ethernet frames over UDP, one per datagram, sent "
        "to udp= and received at localaddr= (port 0: any free port, printed), as QEMU's "
        "-netdev socket; or none (default)",
    )


def parse_nic(text: str) -> NicConfig:
    """`ne2k_isa[,iobase=N][,irq=N][,mac=XX:XX:XX:XX:XX:XX]` (QEMU's -nic, one model)."""
    option = f"--nic {text}"
    model, _, rest = text.partition(",")
    if model.removeprefix("model=") != "ne2k_isa":
        raise UsageError(f"{option}: unknown model {model!r} (rdebug has ne2k_isa)")
    fields: dict[str, str] = {}
    for part in rest.split(",") if rest else []:
        key, sep, value = part.partition("=")
        if not sep or not value or key in fields or key not in ("iobase", "irq", "mac"):
            raise UsageError(f"{option}: expected iobase=N, irq=N or mac=MAC, not {part!r}")
        fields[key] = value
    try:
        config = NicConfig()
        iobase = int(fields["iobase"], 0) if "iobase" in fields else config.iobase
        irq = int(fields["irq"], 0) if "irq" in fields else config.irq
        mac = config.mac
        if "mac" in fields:
            octets = fields["mac"].split(":")
            if len(octets) != 6 or not all(len(o) == 2 for o in octets):
                raise ValueError(f"mac {fields['mac']!r}: expected six hex octets a:b:c:d:e:f")
            mac = bytes.fromhex("".join(octets))
        return NicConfig(iobase, irq, mac)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None


def _add_max_insns(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-insns",
        type=_int,
        default=None,
        metavar="N",
        help="stop after N guest instructions (exit status 4)",
    )


def gdb_address(text: str) -> tuple[str, int]:
    """`--gdb [HOST:]PORT` (HOST defaults to 127.0.0.1)."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host = "127.0.0.1"
    try:
        number = int(port)
    except ValueError:
        raise UsageError(f"--gdb {text!r}: expected [HOST:]PORT") from None
    if not 0 <= number <= 65535:
        raise UsageError(f"--gdb {text!r}: the port must be 0..65535")
    return host or "127.0.0.1", number


def parse_drive(text: str, taken: set[int]) -> DriveSpec:
    """`--drive file=PATH[,format=raw|qcow2][,index=N]` (QEMU's -drive, the options rdebug
    has); `taken`: the drive indexes already given (this one is added)."""
    option = f"--drive {text!r}"
    fields: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            key, value = "file", part
        if key not in ("file", "format", "index") or key in fields or not value:
            raise UsageError(f"{option}: expected file=PATH[,format=raw|qcow2][,index=N]")
        fields[key] = value
    if "file" not in fields:
        raise UsageError(f"{option}: no file=PATH")
    if "index" in fields:
        if fields["index"] not in ("0", "1"):
            raise UsageError(f"{option}: index must be 0 (master) or 1 (slave)")
        index = int(fields["index"])
    else:
        index = min({0, 1} - taken, default=2)
    if index in taken or index > 1:
        raise UsageError(f"{option}: IDE drive {index} is already taken (two at most)")
    spec = drive_spec(index, Path(fields["file"]), fields.get("format"), option)
    taken.add(index)
    return spec

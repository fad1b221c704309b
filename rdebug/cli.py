"""The `rdebug` command line: run, record, replay, repl, dump, snapshots.

Every `RdebugError` becomes one line on stderr and a non-zero exit status; a traceback
means a bug in rdebug.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import termios
import time
import tty
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import BinaryIO, NoReturn

from rdebug.api import Session
from rdebug.errors import FormatError, RdebugError, UsageError
from rdebug.gdb_target import LiveTarget, SessionTarget
from rdebug.gdbstub.server import GdbServer
from rdebug.host.keys import ListInputSource, parse_mouse_script, text_to_keys
from rdebug.host.netdev import NetInputs, PcapWriter, SocketNetdev, UdpNetdev, parse_netdev
from rdebug.host.sources import FileSerialSource, LiveInputs, StreamSerialSource
from rdebug.machine.devices.ne2000 import FrameSink, NicConfig
from rdebug.machine.inputs import ExternalInputs, InputSource, SerialSource
from rdebug.machine.loader import ImageFormat, LoadedImage, parse_image
from rdebug.machine.machine import Machine, MachineConfig, StopEvent, StopReason
from rdebug.replay.dump import dump
from rdebug.replay.player import Ending, Player
from rdebug.replay.recording import record
from rdebug.replay.trace import (
    DriveSpec,
    GuestSpec,
    Trace,
    open_disks,
    parse_drive,
    sha256,
)
from rdebug.snapshots.named import SnapshotFile

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


def _nic_config(args: argparse.Namespace) -> NicConfig | None:
    if args.nic is None:
        if args.netdev is not None and parse_netdev(args.netdev) != parse_netdev("none"):
            raise UsageError(f"--netdev {args.netdev}: no NIC to attach it to (add --nic ne2k_isa)")
        return None
    return parse_nic(args.nic)


@contextlib.contextmanager
def _netdev(
    args: argparse.Namespace, inputs: ExternalInputs
) -> Iterator[tuple[ExternalInputs, FrameSink | None]]:
    """The live inputs with the NIC's received frames, and where its sent frames go."""
    spec = None if args.netdev is None else parse_netdev(args.netdev)
    if not isinstance(spec, SocketNetdev):
        yield inputs, None
        return
    udp = UdpNetdev(spec)
    print(
        f"rdebug: netdev socket: receiving at {udp.local[0]}:{udp.local[1]}, sending to "
        f"{spec.udp[0]}:{spec.udp[1]}",
        file=sys.stderr,
        flush=True,
    )
    net_inputs = NetInputs(inputs, {0: udp})
    try:
        yield net_inputs, udp
    finally:
        udp.close()
        if net_inputs.dropped:
            print(
                f"rdebug: netdev socket: {net_inputs.dropped} frames dropped at the host "
                f"(the guest was not taking them fast enough)",
                file=sys.stderr,
            )


def _add_max_insns(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-insns",
        type=_int,
        default=None,
        metavar="N",
        help="stop after N guest instructions (exit status 4)",
    )


# -- shared pieces --------------------------------------------------------------------------


class _SerialOut:
    """COM1's output: flushed at every write (a terminal) or at line ends (a file, so
    that `tail -f` follows a long run)."""

    def __init__(self, stream: BinaryIO, flush: bool) -> None:
        self._stream = stream
        self._flush = flush

    def write(self, data: bytes) -> None:
        self._stream.write(data)
        if self._flush or b"\n" in data:
            self._stream.flush()


@contextlib.contextmanager
def _serial_backend(spec: str) -> Iterator[_SerialOut | None]:
    if spec == "stdio":
        yield _SerialOut(sys.stdout.buffer, flush=True)
    elif spec == "null":
        yield None
    elif spec.startswith("file:") and len(spec) > 5:
        path = Path(spec[5:])
        try:
            stream = path.open("wb")
        except OSError as exc:
            raise UsageError(f"--serial {spec}: cannot write {path}: {exc.strerror}") from None
        with stream:
            yield _SerialOut(stream, flush=False)
    else:
        raise UsageError(f"--serial {spec!r}: expected stdio, null or file:PATH")


@contextlib.contextmanager
def _terminal_cbreak(enabled: bool) -> Iterator[None]:
    """Keys reach the guest one at a time, unechoed; Ctrl-C still interrupts."""
    if not enabled:
        yield
        return
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


@contextlib.contextmanager
def _interrupt_on_sigint(machine: Machine) -> Iterator[None]:
    def handler(_signum: int, _frame: FrameType | None) -> None:
        machine.interrupt()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _read_guest(
    args: argparse.Namespace,
) -> tuple[bytes, GuestSpec, LoadedImage, bytes | None]:
    """The image, how it was given, the parsed image, and the initrd's bytes if any."""
    path: Path = args.guest
    initrd: bytes | None = None
    if args.initrd is not None:
        try:
            initrd = args.initrd.read_bytes()
        except OSError as exc:
            raise UsageError(f"--initrd {args.initrd}: {exc.strerror}") from None
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, not a guest image") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror}") from None
    spec = GuestSpec(
        name=path.name,
        source=str(path.resolve()),
        sha256=sha256(data),
        format=args.format,
        load_address=args.load_address,
        entry=args.entry,
        append=args.append,
        initrd=None if args.initrd is None else str(args.initrd.resolve()),
        initrd_sha256=None if initrd is None else sha256(initrd),
    )
    image = parse_image(
        data,
        str(path),
        ImageFormat(args.format),
        args.load_address,
        args.entry,
        args.append,
        initrd,
    )
    return data, spec, image, initrd


def _machine_config(args: argparse.Namespace) -> MachineConfig:
    if args.max_insns is not None and args.max_insns < 0:
        raise UsageError("--max-insns must not be negative")
    return MachineConfig(
        memory_mb=args.memory_mb,
        icount_shift=args.icount_shift,
        nic=_nic_config(args),
    )


def _live_inputs(args: argparse.Namespace) -> tuple[LiveInputs, bool]:
    """The live inputs for run/record, and whether they read the terminal."""
    sources: dict[int, SerialSource] = {}
    if args.serial_input is not None:
        try:
            sources[0] = FileSerialSource(args.serial_input.read_bytes())
        except OSError as exc:
            raise UsageError(f"--serial-input {args.serial_input}: {exc.strerror}") from None
    devices = _device_inputs(args)
    if args.serial == "stdio" and args.serial_input is None and _stdin_readable():
        sources[0] = StreamSerialSource(sys.stdin.buffer)
        return LiveInputs(sources, input_sources=devices), sys.stdin.isatty()
    return LiveInputs(sources, input_sources=devices), False


def _device_inputs(args: argparse.Namespace) -> list[InputSource]:
    """The keyboard and mouse sources of --keyboard-input and --mouse-input."""
    sources: list[InputSource] = []
    if args.keyboard_input is not None:
        text = _read_text(args.keyboard_input, "--keyboard-input")
        try:
            sources.append(ListInputSource(text_to_keys(text)))
        except ValueError as exc:
            raise UsageError(f"--keyboard-input {args.keyboard_input}: {exc}") from None
    if args.mouse_input is not None:
        text = _read_text(args.mouse_input, "--mouse-input")
        try:
            sources.append(ListInputSource(parse_mouse_script(text)))
        except ValueError as exc:
            raise UsageError(f"--mouse-input {args.mouse_input}: {exc}") from None
    return sources


def _read_text(path: Path, option: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{option} {path}: not UTF-8 text") from None
    except OSError as exc:
        raise UsageError(f"{option} {path}: {exc.strerror}") from None


def _stdin_readable() -> bool:
    try:
        sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    return not sys.stdin.closed


def _execute(
    machine: Machine, image: LoadedImage | None, until: int | None, terminal: bool
) -> StopEvent:
    if image is not None:
        machine.load(image)
    with _terminal_cbreak(terminal), _interrupt_on_sigint(machine):
        return machine.run(until)


def _report(stop: StopEvent) -> int:
    sys.stdout.flush()
    if stop.reason is StopReason.EXIT:
        assert stop.exit_code is not None
        return stop.exit_code
    if stop.reason is StopReason.HALTED:
        print(f"rdebug: guest halted at icount {stop.icount}: {stop.detail}", file=sys.stderr)
        return EXIT_OK
    if stop.reason is StopReason.TARGET:
        print(f"rdebug: stopped at icount {stop.icount} (--max-insns)", file=sys.stderr)
        return EXIT_LIMIT
    if stop.reason is StopReason.INTERRUPTED:
        print(f"rdebug: interrupted at icount {stop.icount}", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(
        f"rdebug: guest crashed at icount {stop.icount}: {stop.detail or stop.reason.value}",
        file=sys.stderr,
    )
    return EXIT_GUEST_CRASHED


# -- commands -------------------------------------------------------------------------------


def _drives(args: argparse.Namespace) -> tuple[DriveSpec, ...]:
    taken: set[int] = set()
    return tuple(parse_drive(text, taken) for text in args.drive)


def cmd_run(args: argparse.Namespace) -> int:
    _, _, image, _ = _read_guest(args)
    config = _machine_config(args)
    disks = open_disks(_drives(args), check=False)
    live, terminal = _live_inputs(args)
    with _serial_backend(args.serial) as backend, _netdev(args, live) as (inputs, net):
        machine = Machine(config, inputs, [backend] if backend else [], disks, net)
        try:
            if args.gdb is not None:
                machine.load(image)
                return _serve_live(machine, args)
            stop = _execute(machine, image, args.max_insns, terminal)
        finally:
            machine.close()
    return _report(stop)


def _serve_live(machine: Machine, args: argparse.Namespace) -> int:
    host, port = _gdb_address(args.gdb)
    server = GdbServer(LiveTarget(machine, args.guest if args.guest.exists() else None), host, port)
    try:
        address = server.listen()
    except OSError as exc:
        raise UsageError(f"--gdb {args.gdb}: cannot listen: {exc.strerror}") from None
    print(
        f"rdebug: {args.guest} is waiting for gdb; attach with:\n"
        f"  gdb -ex 'set architecture i386' -ex 'target remote {address[0]}:{address[1]}' "
        f"{args.guest}",
        file=sys.stderr,
        flush=True,
    )

    def stop_serving(_signum: int, _frame: FrameType | None) -> None:
        machine.interrupt()
        server.close()

    previous = signal.signal(signal.SIGINT, stop_serving)
    try:
        with server:
            server.serve_forever()
    finally:
        signal.signal(signal.SIGINT, previous)
    return EXIT_OK


def cmd_record(args: argparse.Namespace) -> int:
    data, spec, image, initrd = _read_guest(args)
    del image  # parsed to refuse a bad image before anything is created
    config = _machine_config(args)
    drives = _drives(args)
    live, terminal = _live_inputs(args)
    with _serial_backend(args.serial) as backend, _netdev(args, live) as (inputs, net):
        recording = record(
            args.output,
            data,
            spec,
            config,
            inputs,
            serial=[backend] if backend else [],
            drives=drives,
            net=net,
            run=lambda machine: _execute(machine, None, args.max_insns, terminal),
            initrd=initrd,
        )
    status = _report(recording.stop)
    print(
        f"rdebug: recorded {recording.stop.icount} instructions, {recording.events} events, "
        f"in {recording.trace.path}",
        file=sys.stderr,
    )
    return status


def _gdb_address(text: str) -> tuple[str, int]:
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


def cmd_replay_gdb(args: argparse.Namespace) -> int:
    host, port = _gdb_address(args.gdb)
    if args.checkpoint_budget <= 0:
        raise UsageError("--checkpoint-budget must be positive")
    session = Session(args.trace, args.checkpoint_budget << 20)
    try:
        server = GdbServer(SessionTarget(session), host, port)
        try:
            address = server.listen()
        except OSError as exc:
            raise UsageError(f"--gdb {args.gdb}: cannot listen: {exc.strerror}") from None
        guest = session.trace.gdb_symbols()
        print(
            f"rdebug: replaying {args.trace} ({session.end_icount} instructions); attach with:\n"
            f"  gdb -ex 'set architecture i386' -ex 'target remote {address[0]}:{address[1]}' "
            f"{guest}",
            file=sys.stderr,
            flush=True,
        )
        offset = session.trace.info.guest.kernel_offset
        if offset is not None:
            print(
                f"rdebug: the Linux kernel runs {offset:#x} from its link-time addresses "
                f"(KASLR); a vmlinux with DWARF loads with: symbol-file -o {offset:#x} vmlinux",
                file=sys.stderr,
                flush=True,
            )

        def stop_serving(_signum: int, _frame: FrameType | None) -> None:
            session.interrupt()
            server.close()

        previous = signal.signal(signal.SIGINT, stop_serving)
        try:
            with server:
                server.serve_forever()  # gdb may detach and attach again
        finally:
            signal.signal(signal.SIGINT, previous)
        print("rdebug: stopped serving gdb", file=sys.stderr)
    finally:
        session.close()
    return EXIT_OK


def cmd_replay(args: argparse.Namespace) -> int:
    for option in ("keyboard_input", "mouse_input", "serial_input"):
        if getattr(args, option) is not None:
            name = "--" + option.replace("_", "-")
            raise UsageError(
                f"replay takes no {name}: the trace's log carries every input of the "
                "recording (keys, mouse, serial bytes)"
            )
    if args.gdb is not None:
        if args.net_output is not None:
            raise UsageError("--net-output: not with --gdb")
        return cmd_replay_gdb(args)
    trace = Trace.open(args.trace)
    if args.net_output is not None and trace.info.nic is None:
        raise UsageError(f"--net-output: {args.trace} was recorded without a NIC")
    image = trace.loaded_guest()
    try:
        log = trace.log_path.open("rb")
    except OSError as exc:
        raise FormatError(f"{trace.log_path}: cannot read: {exc.strerror}") from None
    disks = open_disks(trace.info.drives, check=True)
    with log, _serial_backend(args.serial) as backend, _net_output(args.net_output) as net:
        player = Player(log, str(trace.log_path))
        serial = [backend] if backend else []
        machine = Machine(trace.info.machine_config(), player, serial, disks, net)
        try:
            stop = _execute(machine, image, None, terminal=False)
        finally:
            machine.close()
    return _replay_status(stop, player, trace)


@contextlib.contextmanager
def _net_output(path: Path | None) -> Iterator[FrameSink | None]:
    if path is None:
        yield None
        return
    writer, stream = PcapWriter.open(path)
    with stream:
        yield writer


_STOP_WORDS = {
    StopReason.END_OF_INPUT: "stopped there without doing it",
    StopReason.HALTED: "halted for good",
    StopReason.SHUTDOWN: "triple-faulted",
    StopReason.FAULT: "crashed",
}


def _replay_status(stop: StopEvent, player: Player, trace: Trace) -> int:
    sys.stdout.flush()
    if stop.reason in _STOP_WORDS:
        detail = f" ({stop.detail})" if stop.detail else ""
        player.verify_end(
            stop.icount, f"{_STOP_WORDS[stop.reason]} at icount {stop.icount}{detail}"
        )
    if stop.reason is StopReason.END_OF_INPUT:
        where = f"icount {stop.icount}"
        if player.ending is Ending.TRUNCATED:
            print(
                f"rdebug: {trace.log_path} stops abruptly (no END event: the recorder was "
                f"stopped); replayed up to its last complete event, at {where}",
                file=sys.stderr,
            )
            return EXIT_INCOMPLETE
        if player.ending is Ending.DAMAGED:
            raise FormatError(f"{player.damage}; replayed up to {where}")
        how = f" ({player.host_stop.name.lower().replace('_', ' ')})" if player.host_stop else ""
        print(f"rdebug: end of the recording at {where}{how}", file=sys.stderr)
        return EXIT_OK
    return _report(stop)


def cmd_dump(args: argparse.Namespace) -> int:
    path: Path = args.trace
    log_path = Trace.open(path).log_path if path.is_dir() else path
    try:
        stream = log_path.open("rb")
    except OSError as exc:
        raise UsageError(f"{log_path}: cannot read: {exc.strerror}") from None
    with stream:
        ending = dump(stream, str(log_path), sys.stdout, summary=args.summary)
    sys.stdout.flush()
    if ending is not None:
        print(f"rdebug: {ending}", file=sys.stderr)
        return EXIT_INCOMPLETE
    return EXIT_OK


def cmd_snapshots(args: argparse.Namespace) -> int:
    trace = Trace.open(args.trace)
    rows = SnapshotFile(trace.snapshots_path).list()
    print(f"{'name':<24} {'icount':>14} {'state size':>12}  date")
    for snap in rows:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(snap.date_sec))
        icount = "-" if snap.icount is None else str(snap.icount)
        print(f"{snap.name:<24} {icount:>14} {snap.vm_state_size:>12}  {when}")
    return EXIT_OK


def cmd_repl(args: argparse.Namespace) -> int:
    from rdebug import repl  # noqa: PLC0415 - prompt_toolkit only for this command

    if args.checkpoint_budget <= 0:
        raise UsageError("--checkpoint-budget must be positive")
    return repl.main(
        args.trace, args.script, args.batch, args.history, args.checkpoint_budget << 20
    )


_COMMANDS = {
    "run": cmd_run,
    "record": cmd_record,
    "replay": cmd_replay,
    "dump": cmd_dump,
    "snapshots": cmd_snapshots,
    "repl": cmd_repl,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return _COMMANDS[args.command](args)
    except RdebugError as exc:
        print(f"rdebug: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

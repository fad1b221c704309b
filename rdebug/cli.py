"""The `rdebug` command line.

Every `RdebugError` becomes one line on stderr and a non-zero exit status; a traceback
means a bug in rdebug.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import termios
import tty
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import BinaryIO, NoReturn

from rdebug.errors import RdebugError, UsageError
from rdebug.machine.inputs import FileSerialSource, LiveInputs, SerialSource, StreamSerialSource
from rdebug.machine.loader import ImageFormat, load_image
from rdebug.machine.machine import Machine, MachineConfig, StopReason

EXIT_ERROR = 2  # rdebug could not do what was asked (bad input, bad option)
EXIT_GUEST_CRASHED = 3  # triple fault, or an access the machine cannot emulate
EXIT_LIMIT = 4  # --max-insns reached
EXIT_INTERRUPTED = 130

RUN_EPILOG = """\
exit status:
  the guest's own status when it writes V to the exit port 0xF4: (V << 1) | 1
  0    the guest halted for good (HLT that nothing can wake)
  2    rdebug could not run it (missing or malformed image, bad option)
  3    the guest crashed the machine (triple fault, access to unmapped memory)
  4    --max-insns reached
  130  interrupted (Ctrl-C)
"""


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
    run = sub.add_parser(
        "run",
        help="run a guest on the emulated PC",
        description="Run a guest (multiboot ELF, ELF32, flat binary or boot sector) on the "
        "emulated i386 PC. COM1 goes to the terminal unless --serial says otherwise.",
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("guest", type=Path, metavar="GUEST", help="the guest image")
    add_machine_options(run)
    run.add_argument(
        "--max-insns",
        type=_int,
        default=None,
        metavar="N",
        help="stop after N guest instructions (exit status 4)",
    )
    return parser


def add_machine_options(parser: argparse.ArgumentParser) -> None:
    """The options that describe the machine and its serial port (shared by commands)."""
    parser.add_argument(
        "--serial",
        default="stdio",
        metavar="stdio|null|file:PATH",
        help="where COM1 goes: the terminal (and input from it), nowhere, or a file "
        "(default: stdio)",
    )
    parser.add_argument(
        "--serial-input",
        type=Path,
        default=None,
        metavar="FILE",
        help="bytes fed to COM1's receiver, one at a time at the line's pace, once the "
        "guest has enabled reception",
    )
    parser.add_argument(
        "-m",
        dest="memory_mb",
        type=_int,
        default=256,
        metavar="MB",
        help="guest RAM in MiB (default 256)",
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
        help="image format (default: detect multiboot, ELF or boot sector)",
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
        "--append", default="", metavar="CMDLINE", help="the multiboot command line"
    )
    parser.add_argument(
        "--counter",
        choices=["native", "reference"],
        default="native",
        help=argparse.SUPPRESS,  # the slow reference counter, for cross-checks
    )


class _SerialOut:
    def __init__(self, stream: BinaryIO, flush: bool) -> None:
        self._stream = stream
        self._flush = flush

    def write(self, data: bytes) -> None:
        self._stream.write(data)
        if self._flush:
            self._stream.flush()


@contextlib.contextmanager
def _serial_backend(spec: str) -> Iterator[tuple[_SerialOut | None, bool]]:
    """(backend, reads the terminal) for --serial."""
    if spec == "stdio":
        yield _SerialOut(sys.stdout.buffer, flush=True), True
    elif spec == "null":
        yield None, False
    elif spec.startswith("file:") and len(spec) > 5:
        path = Path(spec[5:])
        try:
            stream = path.open("wb")
        except OSError as exc:
            raise UsageError(f"--serial {spec}: cannot write {path}: {exc.strerror}") from None
        with stream:
            yield _SerialOut(stream, flush=False), False
    else:
        raise UsageError(f"--serial {spec!r}: expected stdio, null or file:PATH")


@contextlib.contextmanager
def _terminal_cbreak(enabled: bool) -> Iterator[None]:
    """Keys reach the guest one at a time, unechoed; Ctrl-C still interrupts."""
    fd = sys.stdin.fileno() if enabled else -1
    if not enabled or not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def cmd_run(args: argparse.Namespace) -> int:
    image = load_image(
        args.guest, ImageFormat(args.format), args.load_address, args.entry, args.append
    )
    config = MachineConfig(
        memory_mb=args.memory_mb, icount_shift=args.icount_shift, counter=args.counter
    )
    if args.max_insns is not None and args.max_insns < 0:
        raise UsageError("--max-insns must not be negative")
    sources: dict[int, SerialSource] = {}
    if args.serial_input is not None:
        try:
            sources[0] = FileSerialSource(args.serial_input.read_bytes())
        except OSError as exc:
            raise UsageError(f"--serial-input {args.serial_input}: {exc.strerror}") from None
    with _serial_backend(args.serial) as (backend, reads_terminal):
        if reads_terminal and args.serial_input is None and sys.stdin.isatty():
            sources[0] = StreamSerialSource(sys.stdin.buffer)
        machine = Machine(config, LiveInputs(sources), [backend] if backend else [])
        try:
            machine.load(image)
            with (
                _terminal_cbreak(0 in sources and isinstance(sources[0], StreamSerialSource)),
                _interrupt_on_sigint(machine),
            ):
                stop = machine.run(args.max_insns)
        finally:
            machine.close()
    return _report(stop.reason, stop.icount, stop.exit_code, stop.detail)


def _report(reason: StopReason, icount: int, exit_code: int | None, detail: str) -> int:
    sys.stdout.flush()
    if reason is StopReason.EXIT:
        assert exit_code is not None
        return exit_code
    if reason is StopReason.HALTED:
        print(f"rdebug: guest halted at icount {icount}: {detail}", file=sys.stderr)
        return 0
    if reason is StopReason.TARGET:
        print(f"rdebug: stopped at icount {icount} (--max-insns)", file=sys.stderr)
        return EXIT_LIMIT
    if reason is StopReason.INTERRUPTED:
        print(f"rdebug: interrupted at icount {icount}", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"rdebug: guest crashed at icount {icount}: {detail or reason.value}", file=sys.stderr)
    return EXIT_GUEST_CRASHED


@contextlib.contextmanager
def _interrupt_on_sigint(machine: Machine) -> Iterator[None]:
    def handler(_signum: int, _frame: FrameType | None) -> None:
        machine.interrupt()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command == "run":
            return cmd_run(args)
        raise UsageError(f"unknown command {args.command!r}")
    except RdebugError as exc:
        print(f"rdebug: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

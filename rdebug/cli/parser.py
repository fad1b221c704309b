"""The `rdebug` command line's arguments: subcommands, options, their help, exit statuses.

Imports nothing heavy (`rdebug --help` must start fast): the Session API is imported by
the function that needs it.  The same tree gives the shell completions and the man page.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeAlias

from rdebug.cli import query_args
from rdebug.errors import UsageError

if TYPE_CHECKING:
    from rdebug.api import DriveSpec, NicConfig, Sb16Config

    _Subcommands: TypeAlias = argparse._SubParsersAction[Any]

#: The image formats of `--format` (rdebug.api.ImageFormat's values).
IMAGE_FORMATS = ("auto", "multiboot", "elf", "flat", "bootsector")
#: `--gdb` with no port: QEMU's `-s`.
DEFAULT_GDB_PORT = "1234"

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
  130  interrupted (Ctrl-C); 143 by SIGTERM, 129 by SIGHUP (stopped the same way: a
       recording is finished and replays to the icount printed)
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


class _Version(argparse.Action):
    """--version: print rdebug's version and exit."""

    def __init__(self, option_strings: list[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        print(f"rdebug {rdebug_version()}")
        parser.exit()


def rdebug_version() -> str:
    from rdebug import __version__  # noqa: PLC0415

    return __version__


TRACE_HELP = "a folder made by record, or a recording's name in the store (default: the latest)"


def _int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line, every subcommand in it; with `command`, only that one's (what
    `rdebug COMMAND ...` parses: ~2 ms of start-up less than all thirteen)."""
    parser = _Parser(
        prog="rdebug",
        description="Run, record and replay i386 guests, and debug them backwards.",
        epilog="'rdebug help COMMAND' (or 'rdebug COMMAND --help') explains a command. "
        "Recordings made without -o go to $XDG_DATA_HOME/rdebug (~/.local/share/rdebug); "
        "a command that takes a TRACE takes none to mean the latest.",
    )
    parser.add_argument("--version", action=_Version, help="print rdebug's version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, add in _COMMANDS.items():
        if command in (None, name):
            add(sub)
    for subparser in sub.choices.values():  # file names complete GUEST, TRACE and FILE
        for action in subparser._actions:
            if action.metavar in ("GUEST", "TRACE", "FILE"):
                action.complete = FILES  # type: ignore[attr-defined]
    return parser


def _add_run(sub: _Subcommands) -> None:
    run = sub.add_parser(
        "run",
        help="run a guest on the emulated PC",
        description="Run a guest (multiboot ELF, ELF32, flat binary or boot sector) on the "
        "emulated i386 PC. COM1 goes to the terminal unless --serial says otherwise.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("guest", type=Path, metavar="GUEST", help="the guest image")
    _add_machine_options(run)
    _add_serial_options(run, inputs=True)
    _add_net_options(run)
    _add_audio_options(run, inputs=True)
    _add_max_insns(run)
    run.add_argument(
        "--gdb",
        nargs="?",
        const=DEFAULT_GDB_PORT,
        default=None,
        metavar="[HOST:]PORT",
        help="let gdb drive the run (forward only: record, then replay --gdb, to go back); "
        f"no port: {DEFAULT_GDB_PORT} (QEMU's -s), 0: any free one; rdebug ends with the "
        "guest, with its exit status",
    )


def _add_record(sub: _Subcommands) -> None:
    record = sub.add_parser(
        "record",
        help="run a guest and record every input into a trace folder",
        description="Run a guest like 'rdebug run' and record every non-deterministic "
        "input (serial bytes, host clock reads) with the instruction count where it "
        "entered, into the trace folder TRACE (which must be new), or without -o into a "
        "new folder of the trace store ($XDG_DATA_HOME/rdebug/GUEST-N, by default "
        "~/.local/share/rdebug), whose latest-trace then points at it. 'rdebug replay "
        "[TRACE]' then reproduces the run exactly, with no input source; 'rdebug gdb' "
        "debugs it.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    record.add_argument("guest", type=Path, metavar="GUEST", help="the guest image")
    record.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        metavar="TRACE",
        help="the trace folder to create (default: a new one in the trace store)",
    )
    _add_machine_options(record)
    _add_serial_options(record, inputs=True)
    _add_net_options(record)
    _add_audio_options(record, inputs=True)
    _add_max_insns(record)


def _add_replay(sub: _Subcommands) -> None:
    replay = sub.add_parser(
        "replay",
        help="replay a recorded trace",
        description="Replay the trace folder TRACE: the same machine and guest, every "
        "recorded input at the exact instruction it entered at. Reads no input.",
        epilog=_epilog(replay=True),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_trace(replay)
    _add_serial_options(replay, inputs=False)
    replay.add_argument(
        "--net-output",
        type=Path,
        default=None,
        metavar="FILE",
        help="write the frames the guest's NIC sends to FILE (a pcap capture, stamped "
        "in virtual time); otherwise they are dropped",
    )
    _add_audio_options(replay, inputs=False)
    replay.add_argument(
        "--gdb",
        nargs="?",
        const=DEFAULT_GDB_PORT,
        default=None,
        metavar="[HOST:]PORT",
        help="serve the replay to gdb instead of running it (forward and backward: "
        "reverse-stepi, reverse-continue); HOST defaults to 127.0.0.1, no port means "
        f"{DEFAULT_GDB_PORT} (QEMU's -s), 0 any free one. Ctrl-C stops serving (status "
        "130). 'rdebug gdb' does this and starts gdb too",
    )
    _add_at(replay)
    _add_budget(replay, " (with --gdb)")


def _add_gdb(sub: _Subcommands) -> None:
    gdb = sub.add_parser(
        "gdb",
        help="replay a trace with gdb already attached (rr replay)",
        description="Replay TRACE (default: the latest recording), serve it to gdb on a "
        "free loopback port and start the system's gdb attached to it, with the guest's "
        "symbols and architecture. Everything after -- goes to gdb (e.g. -- -batch -ex "
        "'break main' -ex continue, or -- -x script.gdb). gdb's Ctrl-C stops the guest; "
        "reverse-stepi, reverse-continue and watchpoints work both ways.",
        epilog="exit status: gdb's own; 2 when the trace cannot be opened or gdb cannot be started",
    )
    _add_trace(gdb)
    gdb.add_argument(
        "--serial",
        default="stdio",
        metavar="stdio|null|file:PATH",
        help="where COM1 goes as gdb drives the replay (each byte once, when the replay "
        "first passes it): the terminal, nowhere, or a file (default: stdio)",
    )
    _add_at(gdb)
    _add_budget(gdb, "")
    gdb.add_argument(
        "--gdb-command",
        default="gdb",
        metavar="GDB",
        help="the gdb to start (default: gdb on the PATH)",
    )


def _add_ls(sub: _Subcommands) -> None:
    lister = sub.add_parser(
        "ls",
        help="list the recordings in the trace store",
        description="List the recordings in the trace store ($XDG_DATA_HOME/rdebug, by "
        "default ~/.local/share/rdebug), oldest first: name, guest, instructions, recorded "
        "events, size, date, and whether the recording ended cleanly ('cut' when the "
        "recorder was killed). The latest is marked with *.",
    )
    lister.add_argument(
        "folders",
        nargs="*",
        type=Path,
        metavar="TRACE",
        help="list these trace folders instead",
    )


def _add_dump(sub: _Subcommands) -> None:
    dumper = sub.add_parser(
        "dump",
        help="print the events of a trace's log",
        description="Print every event of the replay log with the icount at which it "
        "happened (like QEMU's replay-dump.py), or a count per kind with --summary.",
    )
    dumper.add_argument(
        "trace",
        nargs="?",
        type=Path,
        default=None,
        metavar="TRACE",
        help="a trace folder, a replay log file, or a recording's name in the store "
        "(default: the latest)",
    )
    dumper.add_argument("--summary", action="store_true", help="count the events per kind")


def _add_repl(sub: _Subcommands) -> None:
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
    _add_trace(repl)
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
    _add_budget(repl, "")


def _add_snapshots(sub: _Subcommands) -> None:
    snaps = sub.add_parser(
        "snapshots",
        help="list a trace's named snapshots",
        description="List the named snapshots kept in the trace (qcow2 internal snapshots "
        "in TRACE/snapshots.qcow2) with their icounts.",
    )
    _add_trace(snaps)


def _add_query(sub: _Subcommands) -> None:
    query_args.add_query(sub, _int)


def _add_help(sub: _Subcommands) -> None:
    helper = sub.add_parser(
        "help",
        help="explain a command (the same as COMMAND --help)",
        description="Print the help of COMMAND, or the list of commands.",
    )
    helper.add_argument("topic", nargs="?", metavar="COMMAND", help="a command")


def _add_completion(sub: _Subcommands) -> None:
    completion = sub.add_parser(
        "completion",
        help="print the shell completion script for bash or zsh",
        description="Print the completion script of SHELL (made from this command line's "
        "own description, with shtab). bash: 'source <(rdebug completion bash)' (or save "
        "it in ~/.local/share/bash-completion/completions/rdebug); zsh: save it as _rdebug "
        "in a folder of $fpath.",
    )
    completion.add_argument("shell", choices=("bash", "zsh"), metavar="SHELL", help="bash or zsh")


def _add_man(sub: _Subcommands) -> None:
    sub.add_parser(
        "man",
        help="print rdebug's manual page (roff)",
        description="Print the manual page, made from this command line's own description: "
        "'rdebug man > rdebug.1; man -l rdebug.1'.",
    )


#: Each subcommand and what adds it, in the order `rdebug --help` lists them.
_COMMANDS: dict[str, Callable[[_Subcommands], None]] = {
    "run": _add_run,
    "record": _add_record,
    "replay": _add_replay,
    "gdb": _add_gdb,
    "ls": _add_ls,
    "dump": _add_dump,
    "repl": _add_repl,
    "snapshots": _add_snapshots,
    "query": _add_query,
    "report": query_args.add_report,
    "help": _add_help,
    "completion": _add_completion,
    "man": _add_man,
}
#: The commands a parser of their own parses (`build_parser(command)`); help, man and
#: completion show the others.
ALONE = frozenset(_COMMANDS) - {"help", "man", "completion"}

#: What shtab completes a file argument with (shtab.FILE, without importing shtab here).
FILES = {"bash": "_shtab_compgen_files", "zsh": "_files", "tcsh": "f"}


def _add_trace(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "trace", nargs="?", type=Path, default=None, metavar="TRACE", help=TRACE_HELP
    )


def _add_at(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--at",
        nargs="+",
        default=None,
        metavar=("ICOUNT|event", "N"),
        help="start there instead of at the beginning: an instruction count, or a recorded "
        "event's number (as the REPL's 'events' numbers them)",
    )


def _add_budget(parser: argparse.ArgumentParser, when: str) -> None:
    parser.add_argument(
        "--checkpoint-budget",
        type=_int,
        default=512,
        metavar="MB",
        help="memory for the in-memory checkpoints that make going backward fast "
        f"(default 512 MiB{when})",
    )


def parse_at(words: list[str] | None) -> tuple[str, int] | None:
    """`--at ICOUNT` or `--at event N`: ("icount", N) or ("event", N)."""
    if words is None:
        return None
    try:
        if len(words) == 1 and words[0] != "event":
            return "icount", _nonnegative(words[0])
        if len(words) == 2 and words[0] == "event":
            return "event", _nonnegative(words[1])
    except ValueError:
        pass
    raise UsageError(f"--at {' '.join(words)}: expected ICOUNT or event N")


def _nonnegative(text: str) -> int:
    value = int(text, 0)
    if value < 0:
        raise ValueError(text)
    return value


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
        choices=IMAGE_FORMATS,
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


def _add_audio_options(parser: argparse.ArgumentParser, inputs: bool) -> None:
    """--sound, --audio-input, --audio-output (replay takes only --audio-output)."""
    output_help = (
        "write what the guest plays on the sound card to FILE (a WAV file in the format it "
        "first plays; samples in another format are converted to it)"
    )
    if not inputs:
        parser.add_argument("--audio-input", type=Path, default=None, help=argparse.SUPPRESS)
        parser.add_argument(
            "--audio-output", type=Path, default=None, metavar="FILE.wav", help=output_help
        )
        return
    parser.add_argument(
        "--sound",
        default=None,
        metavar="sb16[,iobase=0x220][,irq=5][,dma=1][,dma16=5]",
        help="a Sound Blaster 16 on the ISA bus (recorded with the trace; implied by "
        "--audio-input and --audio-output)",
    )
    parser.add_argument(
        "--audio-input",
        type=Path,
        default=None,
        metavar="FILE.wav",
        help="the sound card's microphone: the samples of a PCM WAV file (8-bit unsigned or "
        "16/24/32-bit signed, any rate and channels), from its first one on as the guest "
        "records, converted to the format it programs; silence after the end",
    )
    parser.add_argument(
        "--audio-output", type=Path, default=None, metavar="FILE.wav", help=output_help
    )


def parse_sound(text: str) -> Sb16Config:
    """`sb16[,iobase=N][,irq=N][,dma=N][,dma16=N]` (QEMU's -device sb16 properties)."""
    from rdebug.api import Sb16Config  # noqa: PLC0415 - not for --help

    option = f"--sound {text}"
    model, _, rest = text.partition(",")
    if model.removeprefix("model=") != "sb16":
        raise UsageError(f"{option}: unknown sound card {model!r} (rdebug has sb16)")
    fields: dict[str, int] = {}
    for part in rest.split(",") if rest else []:
        key, sep, value = part.partition("=")
        if not sep or key in fields or key not in ("iobase", "irq", "dma", "dma16"):
            raise UsageError(f"{option}: expected iobase=N, irq=N, dma=N or dma16=N, not {part!r}")
        try:
            fields[key] = int(value, 0)
        except ValueError:
            raise UsageError(f"{option}: {key}={value!r} is not a number") from None
    try:
        return Sb16Config(**fields)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None


def parse_nic(text: str) -> NicConfig:
    """`ne2k_isa[,iobase=N][,irq=N][,mac=XX:XX:XX:XX:XX:XX]` (QEMU's -nic, one model)."""
    from rdebug.api import NicConfig  # noqa: PLC0415 - not for --help

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
    from rdebug.api import drive_spec  # noqa: PLC0415 - not for --help

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

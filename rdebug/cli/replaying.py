"""`rdebug replay` (straight through, or served to gdb), `gdb`, `ls`, `dump`, `snapshots`,
`repl`: the commands on a recording."""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from rdebug import api
from rdebug.api import FrameSink, Session, Trace, Where
from rdebug.cli import store
from rdebug.cli.parser import (
    EXIT_ERROR,
    EXIT_INCOMPLETE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    gdb_address,
    parse_at,
)
from rdebug.cli.running import audio_output, report
from rdebug.cli.serving import serve
from rdebug.errors import RdebugError, UsageError
from rdebug.gdb_target import SessionTarget, attach_hint, listen
from rdebug.host import terminal
from rdebug.host.netdev import PcapWriter
from rdebug.host.serial import serial_output


def _trace_after_at(args: argparse.Namespace) -> None:
    """`--at event 3 TRACE`: argparse gave TRACE to --at (it takes one or two words)."""
    if args.at and args.trace is None:
        wanted = 2 if args.at[0] == "event" else 1
        if len(args.at) == wanted + 1:
            args.trace = Path(args.at.pop())


def cmd_replay(args: argparse.Namespace) -> int:
    _trace_after_at(args)
    if args.trace is not None and args.trace.name.isdigit() and not args.trace.exists():
        raise UsageError(f"{args.trace}: no such trace folder (a port? --gdb {args.trace})")
    args.trace = store.resolve(args.trace)
    for option in ("keyboard_input", "mouse_input", "serial_input", "audio_input"):
        if getattr(args, option) is not None:
            name = "--" + option.replace("_", "-")
            raise UsageError(
                f"replay takes no {name}: the trace's log carries every input of the "
                "recording (keys, mouse, serial bytes, microphone samples)"
            )
    if args.gdb is not None:
        for option in ("net_output", "audio_output"):
            if getattr(args, option) is not None:
                raise UsageError(f"--{option.replace('_', '-')}: not with --gdb")
        return _replay_gdb(args)
    if args.at is not None:
        raise UsageError("--at: with --gdb (or 'rdebug gdb', or 'rdebug repl')")
    trace = Trace.open(args.trace)
    if args.net_output is not None and trace.info.nic is None:
        raise UsageError(f"--net-output: {args.trace} was recorded without a NIC")
    if args.audio_output is not None and trace.info.sound is None:
        raise UsageError(f"--audio-output: {args.trace} was recorded without a sound card")
    with (
        serial_output(args.serial) as serial,
        _net_output(args.net_output) as net,
        audio_output(args.audio_output) as audio,
    ):
        session = Session(args.trace, serial=serial, net=net, audio=audio)
        try:
            with terminal.on_stop_signals(session.interrupt) as caught:
                played = session.play()
        finally:
            session.close()
    stop = played.stop
    sys.stdout.flush()
    if stop.where is not Where.END:
        return report(stop, caught)
    where = f"icount {stop.icount}"
    if not played.complete:
        print(
            f"rdebug: {trace.log_path} stops abruptly (no END event: the recorder was "
            f"stopped); replayed up to its last complete event, at {where}",
            file=sys.stderr,
        )
        return EXIT_INCOMPLETE
    how = f" ({played.host_stop})" if played.host_stop else ""
    print(f"rdebug: end of the recording at {where}{how}", file=sys.stderr)
    if sys.stderr.isatty():
        print(
            f"rdebug: to debug it: 'rdebug gdb {args.trace}' (gdb attached, backwards too) "
            f"or 'rdebug repl {args.trace}'",
            file=sys.stderr,
        )
    return EXIT_OK


@contextlib.contextmanager
def _travel_session(args: argparse.Namespace) -> Iterator[Session]:
    """The session `replay --gdb` and `gdb` serve: COM1 where --serial says, at --at."""
    at = parse_at(args.at)
    if args.checkpoint_budget <= 0:
        raise UsageError("--checkpoint-budget must be positive")
    with serial_output(args.serial) as serial:
        session = Session(args.trace, args.checkpoint_budget << 20, serial=serial)
        try:
            if at is not None:
                _go(session, *at)
            yield session
        finally:
            session.close()


def _go(session: Session, what: str, number: int) -> None:
    if what == "event":
        session.goto_event(number)
    elif number > session.end_icount:
        raise UsageError(
            f"--at {number}: past the end of the recording (icount {session.end_icount})"
        )
    else:
        session.seek(number)


def _replay_gdb(args: argparse.Namespace) -> int:
    host, port = gdb_address(args.gdb)
    with _travel_session(args) as session:
        server, address = listen(SessionTarget(session), host, port, f"--gdb {args.gdb}")

        def announce() -> None:
            print(
                f"rdebug: replaying {args.trace} ({session.end_icount} instructions"
                f"{_position(session)}); attach with:\n"
                + attach_hint(address, session.trace.gdb_symbols()),
                file=sys.stderr,
                flush=True,
            )
            offset = session.trace.info.guest.kernel_offset
            if offset is not None:
                print(
                    f"rdebug: the Linux kernel runs {offset:#x} from its link-time addresses "
                    f"(KASLR); a vmlinux with DWARF loads with: symbol-file -o {offset:#x} "
                    "vmlinux",
                    file=sys.stderr,
                    flush=True,
                )

        with server:
            # gdb may detach and come back
            interrupted = serve(server, session.interrupt, announce=announce)
    if interrupted:
        print("rdebug: stopped serving gdb", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK


def _position(session: Session) -> str:
    return f", starting at icount {session.icount}" if session.icount else ""


def cmd_gdb(args: argparse.Namespace) -> int:
    """`rdebug gdb`: the replay served on a free loopback port, gdb started attached."""
    _trace_after_at(args)
    args.trace = store.resolve(args.trace)
    debugger = shutil.which(args.gdb_command)
    if debugger is None:
        raise UsageError(
            f"{args.gdb_command}: no such program (install gdb, or name one with --gdb-command)"
        )
    with _travel_session(args) as session:
        server, address = listen(SessionTarget(session), "127.0.0.1", 0, "rdebug gdb")
        with server:
            server.start()  # gdb drives the session from the server's thread
            command = [
                debugger,
                "-q",
                "-ex",
                "set architecture i386",
                "-ex",
                f"target remote {address[0]}:{address[1]}",
                str(session.trace.gdb_symbols()),
                *args.gdb_args,
            ]
            # Ctrl-C is gdb's (it stops the guest through the stub), not ours
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
            try:
                status = subprocess.run(command, check=False).returncode
            except OSError as exc:
                raise UsageError(f"{debugger}: cannot start: {exc.strerror}") from None
            finally:
                signal.signal(signal.SIGINT, previous)
    return status if status >= 0 else 128 - status


def cmd_ls(args: argparse.Namespace) -> int:
    """`rdebug ls`: the recordings of the store (or the folders given), one a line."""
    folders = [store.resolve(p) for p in args.folders] or store.recordings()
    if not folders:
        print(f"rdebug: no recordings in {store.store_dir()} yet", file=sys.stderr)
        return EXIT_OK
    latest = store.latest()
    print(
        f"  {'name':<24} {'guest':<16} {'instructions':>13} {'events':>7} {'size':>9}  "
        f"{'date':<19}  end"
    )
    status = EXIT_OK
    for folder in folders:
        mark = "*" if latest is not None and folder.resolve() == latest else " "
        try:
            row = api.summarize(folder)
        except UsageError as exc:
            print(f"rdebug: {exc}", file=sys.stderr)
            status = EXIT_ERROR
            continue
        except RdebugError as exc:
            print(f"{mark} {folder.name:<24} unreadable: {exc}")
            continue
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row.mtime))
        print(
            f"{mark} {folder.name:<24} {row.guest:<16} {row.instructions:>13} "
            f"{row.events:>7} {_size(row.size):>9}  {when}  {'clean' if row.complete else 'cut'}"
        )
    return status


def _size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    scaled = size / 1024
    for unit in ("KiB", "MiB"):
        if scaled < 1024:
            return f"{scaled:.1f} {unit}"
        scaled /= 1024
    return f"{scaled:.1f} GiB"


@contextlib.contextmanager
def _net_output(path: Path | None) -> Iterator[FrameSink | None]:
    if path is None:
        yield None
        return
    writer, stream = PcapWriter.open(path)
    with stream:
        yield writer


def cmd_dump(args: argparse.Namespace) -> int:
    args.trace = store.resolve(args.trace)
    ending = api.dump_log(args.trace, sys.stdout, summary=args.summary)
    sys.stdout.flush()
    if ending is not None:
        print(f"rdebug: {ending}", file=sys.stderr)
        return EXIT_INCOMPLETE
    return EXIT_OK


def cmd_snapshots(args: argparse.Namespace) -> int:
    args.trace = store.resolve(args.trace)
    rows = api.snapshots(args.trace)
    print(f"{'name':<24} {'icount':>14} {'state size':>12}  date")
    for snap in rows:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(snap.date_sec))
        icount = "-" if snap.icount is None else str(snap.icount)
        print(f"{snap.name:<24} {icount:>14} {snap.vm_state_size:>12}  {when}")
    return EXIT_OK


def cmd_repl(args: argparse.Namespace) -> int:
    from rdebug import repl  # noqa: PLC0415 - prompt_toolkit only for this command

    args.trace = store.resolve(args.trace)
    if args.checkpoint_budget <= 0:
        raise UsageError("--checkpoint-budget must be positive")
    return repl.main(
        args.trace, args.script, args.batch, args.history, args.checkpoint_budget << 20
    )


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "replay": cmd_replay,
    "gdb": cmd_gdb,
    "ls": cmd_ls,
    "dump": cmd_dump,
    "snapshots": cmd_snapshots,
    "repl": cmd_repl,
}

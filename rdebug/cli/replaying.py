"""`rdebug replay` (straight through, or served to gdb), `dump`, `snapshots`, `repl`."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from rdebug import api
from rdebug.api import FrameSink, Session, Trace, Where
from rdebug.cli.parser import EXIT_INCOMPLETE, EXIT_OK, gdb_address
from rdebug.cli.running import report
from rdebug.errors import UsageError
from rdebug.gdb_target import SessionTarget, attach_hint, listen
from rdebug.host import terminal
from rdebug.host.netdev import PcapWriter
from rdebug.host.serial import serial_output


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
        return _replay_gdb(args)
    trace = Trace.open(args.trace)
    if args.net_output is not None and trace.info.nic is None:
        raise UsageError(f"--net-output: {args.trace} was recorded without a NIC")
    with serial_output(args.serial) as serial, _net_output(args.net_output) as net:
        session = Session(args.trace, serial=serial, net=net)
        try:
            with terminal.on_sigint(session.interrupt):
                played = session.play()
        finally:
            session.close()
    stop = played.stop
    sys.stdout.flush()
    if stop.where is not Where.END:
        return report(stop)
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
    return EXIT_OK


def _replay_gdb(args: argparse.Namespace) -> int:
    host, port = gdb_address(args.gdb)
    if args.checkpoint_budget <= 0:
        raise UsageError("--checkpoint-budget must be positive")
    session = Session(args.trace, args.checkpoint_budget << 20)
    try:
        server, address = listen(SessionTarget(session), host, port, f"--gdb {args.gdb}")
        print(
            f"rdebug: replaying {args.trace} ({session.end_icount} instructions); attach with:\n"
            + attach_hint(address, session.trace.gdb_symbols()),
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


@contextlib.contextmanager
def _net_output(path: Path | None) -> Iterator[FrameSink | None]:
    if path is None:
        yield None
        return
    writer, stream = PcapWriter.open(path)
    with stream:
        yield writer


def cmd_dump(args: argparse.Namespace) -> int:
    ending = api.dump_log(args.trace, sys.stdout, summary=args.summary)
    sys.stdout.flush()
    if ending is not None:
        print(f"rdebug: {ending}", file=sys.stderr)
        return EXIT_INCOMPLETE
    return EXIT_OK


def cmd_snapshots(args: argparse.Namespace) -> int:
    rows = api.snapshots(args.trace)
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

"""`rdebug run` and `rdebug record`: a guest running live, its inputs from the host."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from rdebug.api import (
    DriveSpec,
    Guest,
    LiveSession,
    MachineConfig,
    Stop,
    Where,
    record,
)
from rdebug.cli import store
from rdebug.cli.parser import (
    EXIT_GUEST_CRASHED,
    EXIT_INTERRUPTED,
    EXIT_LIMIT,
    EXIT_OK,
    gdb_address,
    parse_drive,
    parse_nic,
    parse_sound,
)
from rdebug.errors import UsageError
from rdebug.host import terminal
from rdebug.host.keys import ListInputSource, parse_mouse_script, text_to_keys
from rdebug.host.serial import serial_output
from rdebug.host.sources import FileSerialSource, LiveInputs, StreamSerialSource

if TYPE_CHECKING:
    from rdebug.api import NicConfig, Sb16Config
    from rdebug.host.netdev import NetInputs, UdpNetdev
    from rdebug.host.wav import WavSpeaker


@contextlib.contextmanager
def audio_output(path: Path | None) -> Iterator[WavSpeaker | None]:
    """The guest's speaker to FILE.wav (host/wav.py and numpy load only when asked for)."""
    if path is None:
        yield None
        return
    from rdebug.host import wav  # noqa: PLC0415 - numpy, only with a WAV

    with wav.audio_output(path) as speaker:
        yield speaker


def cmd_run(args: argparse.Namespace) -> int:
    guest = _read_guest(args)
    config = _machine_config(args)
    live, reads_terminal = _live_inputs(args)
    with (
        serial_output(args.serial) as serial,
        _netdev(args, live) as (inputs, net),
        audio_output(args.audio_output) as audio,
    ):
        session = LiveSession.start(
            guest, config, inputs, serial=serial, drives=_drives(args), net=net, audio=audio
        )
        caught = terminal.Caught()
        try:
            if args.gdb is not None:
                return _serve_live(session, args)
            stop = _run(session, args.max_insns, reads_terminal, caught)
        finally:
            session.close()
    return report(stop, caught)


def cmd_record(args: argparse.Namespace) -> int:
    guest = _read_guest(args)
    config = _machine_config(args)
    drives = _drives(args)
    live, reads_terminal = _live_inputs(args)
    output = store.new_trace_path(args.guest) if args.output is None else args.output
    caught = terminal.Caught()
    if args.output is None:
        output.parent.mkdir(parents=True, exist_ok=True)
    with (
        serial_output(args.serial) as serial,
        _netdev(args, live) as (inputs, net),
        audio_output(args.audio_output) as audio,
    ):
        recording = record(
            output,
            guest,
            config,
            inputs,
            serial=serial,
            drives=drives,
            net=net,
            audio=audio,
            run=lambda session: _run(session, args.max_insns, reads_terminal, caught),
        )
    store.mark_latest(recording.path)
    status = report(recording.stop, caught)
    print(
        f"rdebug: recorded {recording.stop.icount} instructions, {recording.events} events, "
        f"in {recording.path}",
        file=sys.stderr,
    )
    return status


def report(stop: Stop, caught: terminal.Caught | None = None) -> int:
    """Say how a run ended (on stderr, unless the guest exited); the exit status.
    `caught`: the signal that interrupted it, if one did."""
    sys.stdout.flush()
    if stop.where is Where.EXITED:
        assert stop.exit_code is not None
        return stop.exit_code
    if stop.where is Where.HALTED:
        print(f"rdebug: guest halted at icount {stop.icount}: {stop.detail}", file=sys.stderr)
        return EXIT_OK
    if stop.where is Where.TARGET:
        print(f"rdebug: stopped at icount {stop.icount} (--max-insns)", file=sys.stderr)
        return EXIT_LIMIT
    if stop.where is Where.INTERRUPTED:
        print(
            f"rdebug: interrupted at icount {stop.icount}{terminal.named(caught)}",
            file=sys.stderr,
        )
        return terminal.exit_status(caught)
    print(
        f"rdebug: guest crashed at icount {stop.icount}: {stop.detail or stop.cause}",
        file=sys.stderr,
    )
    return EXIT_GUEST_CRASHED


def _run(
    session: LiveSession, target: int | None, reads_terminal: bool, caught: terminal.Caught
) -> Stop:
    with (
        terminal.cbreak(reads_terminal),
        terminal.on_stop_signals(session.interrupt, caught),
    ):
        return session.run(target)


def _serve_live(session: LiveSession, args: argparse.Namespace) -> int:
    # the stub only for --gdb (it takes a while to load)
    from rdebug.cli.serving import serve  # noqa: PLC0415
    from rdebug.gdb_target import LiveTarget, attach_hint, listen  # noqa: PLC0415

    host, port = gdb_address(args.gdb)
    exec_file = args.guest if args.guest.exists() else None
    target = LiveTarget(session, exec_file)
    server, address = listen(target, host, port, f"--gdb {args.gdb}")

    def announce() -> None:
        print(
            f"rdebug: {args.guest} is waiting for gdb; attach with:\n"
            + attach_hint(address, args.guest),
            file=sys.stderr,
            flush=True,
        )

    with server:
        # gdb may detach and attach again, until the guest ends
        interrupted = serve(server, session.interrupt, lambda: target.ended is not None, announce)
    if interrupted:
        print("rdebug: stopped serving gdb", file=sys.stderr)
        return EXIT_INTERRUPTED
    if target.ended is not None:
        return report(target.ended)
    return EXIT_OK


# -- the machine and its inputs, from the options -------------------------------------------


def _read_guest(args: argparse.Namespace) -> Guest:
    return Guest.read(
        args.guest, args.format, args.load_address, args.entry, args.append, args.initrd
    )


def _drives(args: argparse.Namespace) -> tuple[DriveSpec, ...]:
    taken: set[int] = set()
    return tuple(parse_drive(text, taken) for text in args.drive)


def _machine_config(args: argparse.Namespace) -> MachineConfig:
    if args.max_insns is not None and args.max_insns < 0:
        raise UsageError("--max-insns must not be negative")
    return MachineConfig(
        memory_mb=args.memory_mb,
        icount_shift=args.icount_shift,
        nic=_nic_config(args),
        sound=_sound_config(args),
    )


def _sound_config(args: argparse.Namespace) -> Sb16Config | None:
    """`--sound`, or the default card when a WAV file is given for it."""
    if args.sound is not None:
        return parse_sound(args.sound)
    if args.audio_input is not None or args.audio_output is not None:
        from rdebug.api import Sb16Config  # noqa: PLC0415 - only with a sound card

        return Sb16Config()
    return None


def _nic_config(args: argparse.Namespace) -> NicConfig | None:
    if args.nic is None:
        if args.netdev is not None:
            from rdebug.host.netdev import parse_netdev  # noqa: PLC0415 - only with --netdev

            if parse_netdev(args.netdev) != parse_netdev("none"):
                raise UsageError(
                    f"--netdev {args.netdev}: no NIC to attach it to (add --nic ne2k_isa)"
                )
        return None
    return parse_nic(args.nic)


def _live_inputs(args: argparse.Namespace) -> tuple[LiveInputs, bool]:
    """The live inputs for run/record, and whether they read the terminal."""
    sources: dict[int, FileSerialSource | StreamSerialSource] = {}
    if args.serial_input is not None:
        try:
            sources[0] = FileSerialSource(args.serial_input.read_bytes())
        except OSError as exc:
            raise UsageError(f"--serial-input {args.serial_input}: {exc.strerror}") from None
    devices = _device_inputs(args)
    mic = None
    if args.audio_input is not None:
        from rdebug.host.wav import WavMicrophone  # noqa: PLC0415 - numpy, only with a WAV

        mic = WavMicrophone.open(args.audio_input)
    reads_terminal = False
    if args.serial == "stdio" and args.serial_input is None and terminal.stdin_readable():
        sources[0] = StreamSerialSource(sys.stdin.buffer)
        reads_terminal = sys.stdin.isatty()
    return LiveInputs(dict(sources), input_sources=devices, microphone=mic), reads_terminal


def _device_inputs(args: argparse.Namespace) -> list[ListInputSource]:
    """The keyboard and mouse sources of --keyboard-input and --mouse-input."""
    sources: list[ListInputSource] = []
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


@contextlib.contextmanager
def _netdev(
    args: argparse.Namespace, inputs: LiveInputs
) -> Iterator[tuple[LiveInputs | NetInputs, UdpNetdev | None]]:
    """The live inputs with the NIC's received frames, and where its sent frames go."""
    if args.netdev is None:
        yield inputs, None
        return
    from rdebug.host.netdev import (  # noqa: PLC0415 - the host network only with --netdev
        NetInputs,
        SocketNetdev,
        UdpNetdev,
        parse_netdev,
    )

    spec = parse_netdev(args.netdev)
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

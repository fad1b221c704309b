"""The `rdebug` command line: run, record, replay, gdb, repl, ls, dump, snapshots, query,
report, help, completion, man.

`parser` holds the arguments and their help, `running` the live subcommands (run,
record), `replaying` the ones on a trace, `querying` query and report, `serving` the
gdb server's loop, `store` the trace store, `manpage` the manual page and completions;
the host wiring (terminal, Ctrl-C, serial output, network) is the host package's.  A
command's module is imported only when it runs (`rdebug --help` starts fast).  Every
`RdebugError` becomes one line on stderr and a non-zero exit status; a traceback means
a bug in rdebug.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Sequence

from rdebug.cli.parser import ALONE, EXIT_ERROR, build_parser
from rdebug.errors import RdebugError, UsageError

__all__ = ["build_parser", "main"]

#: Commands whose positional arguments a stray PORT is often meant for.
_GDB_COMMANDS = ("run", "replay")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command `argv` (default: the process's arguments); its exit status.

    Without `argv` this is the program (`rdebug`, `python -m rdebug`), whose start-up
    is mostly imports.  What they make (classes, functions, the libraries' tables) lives
    until the process exits, so the garbage collector stays off while the command's
    modules load (its passes over them took ~8 ms of a tiny guest's ~0.2 s run); then
    they are frozen out of its sight (`gc.freeze`: its later passes skip them, and so do
    the interpreter's last ones at exit, ~20 ms) and it is switched back on before the
    command runs.  The exit still tears the modules down, flushes the streams and runs
    the exit handlers; objects left in reference cycles are not finalized, which Python
    never promises at exit (and every file rdebug writes is closed by then).
    """
    if argv is not None:
        return _main(argv, program=False)
    # numpy (checkpoints, WAV) uses no BLAS here, but OpenBLAS starts a thread per core
    # on import that spins for ~0.1 s of CPU, time taken from the guest on a small machine
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    gc.disable()
    try:
        return _main(None, program=True)
    finally:
        gc.freeze()


def _started(program: bool) -> None:
    """The command's modules are loaded and it starts (see `main`)."""
    if program:
        gc.freeze()
        gc.enable()


def _main(argv: Sequence[str] | None, program: bool) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    try:
        # `rdebug COMMAND ...` needs COMMAND's parser only; anything before it (--help,
        # --version, a typo) gets the whole command line
        parser = build_parser(words[0] if words and words[0] in ALONE else None)
        gdb_args: list[str] = []
        if "--" in words and _command(words) == "gdb":
            at = words.index("--")
            words, gdb_args = words[:at], words[at + 1 :]
        args, extra = parser.parse_known_args(words)
        if extra:
            raise UsageError(_unrecognized(args.command, extra))
        args.gdb_args = gdb_args
        return _run(parser, args, program)
    except RdebugError as exc:
        print(f"rdebug: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:
        # a closed pipe (`rdebug dump T | head -1`) is a normal end; stdout is gone
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def _command(words: list[str]) -> str | None:
    return next((w for w in words if not w.startswith("-")), None)


def _unrecognized(command: str, extra: list[str]) -> str:
    text = f"unrecognized arguments: {' '.join(extra)}"
    if command in _GDB_COMMANDS and extra[0].isdigit():
        return f"{text} (to serve gdb on a port: --gdb {extra[0]})"
    return f"{text} (see 'rdebug {command} --help')"


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace, program: bool) -> int:
    command: str = args.command
    if command == "help":
        if args.topic is None:
            parser.print_help()
            return 0
        parser.parse_args([args.topic, "--help"])  # prints it and exits (or says unknown)
        return 0
    if command in ("man", "completion"):
        from rdebug.cli import manpage  # noqa: PLC0415 - only the command that runs

        text = (
            manpage.manpage(parser) if command == "man" else manpage.completion(parser, args.shell)
        )
        sys.stdout.write(text)
        return 0
    if command in ("run", "record"):
        from rdebug.cli import running  # noqa: PLC0415 - only the command that runs

        _started(program)
        return running.cmd_run(args) if command == "run" else running.cmd_record(args)
    if command in ("query", "report"):
        from rdebug.cli import querying  # noqa: PLC0415 - only the command that runs

        _started(program)
        return querying.cmd_query(args) if command == "query" else querying.cmd_report(args)
    from rdebug.cli import replaying  # noqa: PLC0415 - only the command that runs

    _started(program)
    return replaying.COMMANDS[command](args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

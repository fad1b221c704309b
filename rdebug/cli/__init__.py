"""The `rdebug` command line: run, record, replay, gdb, repl, ls, dump, snapshots, help,
completion, man.

`parser` holds the arguments and their help, `running` the live subcommands (run,
record), `replaying` the ones on a trace, `serving` the gdb server's loop, `store` the
trace store, `manpage` the manual page and completions; the host wiring (terminal,
Ctrl-C, serial output, network) is the host package's.  A command's module is imported
only when it runs (`rdebug --help` starts fast).  Every `RdebugError` becomes one line
on stderr and a non-zero exit status; a traceback means a bug in rdebug.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from rdebug.cli.parser import EXIT_ERROR, build_parser
from rdebug.errors import RdebugError, UsageError

__all__ = ["build_parser", "main"]

#: Commands whose positional arguments a stray PORT is often meant for.
_GDB_COMMANDS = ("run", "replay")


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser()
        gdb_args: list[str] = []
        if "--" in words and _command(words) == "gdb":
            at = words.index("--")
            words, gdb_args = words[:at], words[at + 1 :]
        args, extra = parser.parse_known_args(words)
        if extra:
            raise UsageError(_unrecognized(args.command, extra))
        args.gdb_args = gdb_args
        return _run(parser, args)
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


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
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

        return running.cmd_run(args) if command == "run" else running.cmd_record(args)
    from rdebug.cli import replaying  # noqa: PLC0415 - only the command that runs

    return replaying.COMMANDS[command](args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

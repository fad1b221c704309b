"""The `rdebug` command line: run, record, replay, repl, dump, snapshots.

`parser` holds the arguments and their help, `running` the live subcommands (run,
record), `replaying` the ones on a trace; the host wiring (terminal, Ctrl-C, serial
output, network) is the host package's.  Every `RdebugError` becomes one line on stderr
and a non-zero exit status; a traceback means a bug in rdebug.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from rdebug.cli.parser import EXIT_ERROR, build_parser
from rdebug.cli.replaying import cmd_dump, cmd_repl, cmd_replay, cmd_snapshots
from rdebug.cli.running import cmd_record, cmd_run
from rdebug.errors import RdebugError

__all__ = ["build_parser", "main"]

_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
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

"""`rdebug query` (one query over a trace, as a table or JSON) and `rdebug report` (the
trace's timeline as one self-contained HTML page); their arguments are query_args.py's."""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rdebug.cli.parser import EXIT_INTERRUPTED, EXIT_OK
from rdebug.errors import UsageError

if TYPE_CHECKING:  # the engine is imported when a command runs, not for --help
    from rdebug import api
    from rdebug.commands import RunQuery


def _command(args: argparse.Namespace) -> RunQuery:
    """The command-language query the arguments ask for (the same checks as the REPL's)."""
    if args.what not in ("interrupts", "exceptions") and len(args.target) != 1:
        what = {"calls": "FUNCTION", "io": "PORT[-PORT]"}.get(args.what, "ADDR|SYMBOL")
        raise UsageError(f"query {args.what}: one {what} (see 'rdebug query --help')")
    words = [args.what, *args.target]
    if args.what == "accesses":
        words += [str(args.length), args.kind]
    elif args.what == "history":
        words.append(str(args.length))
    elif args.what == "calls":
        words.append(str(args.nargs))
    elif args.what == "io" and args.direction:
        words.append(args.direction)
    if args.start is not None:
        words += ["--from", str(args.start)]
    if args.stop is not None:
        words += ["--to", str(args.stop)]
    from rdebug.commands import RunQuery, parse  # noqa: PLC0415 - see the imports

    command = parse(" ".join(_quote(word) for word in words))
    assert isinstance(command, RunQuery)
    return command


def _quote(word: str) -> str:
    return "'" + word.replace("'", "'\"'\"'") + "'"


@contextmanager
def _interruptible(session: api.Session) -> Iterator[None]:
    """Ctrl-C stops the running query (the rows so far are kept)."""

    def stop(_signum: int, _frame: object) -> None:
        session.interrupt()

    previous = signal.signal(signal.SIGINT, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def cmd_query(args: argparse.Namespace) -> int:
    from rdebug import api  # noqa: PLC0415 - see the imports
    from rdebug.monitor import Debugger  # noqa: PLC0415

    command = _command(args)
    with api.open(args.trace) as session, _interruptible(session):
        debugger = Debugger(session, rows_shown=None)
        query = debugger.start_query(command)
        if args.json:
            out = sys.stdout
            out.write("[")
            count = 0
            for count, row in enumerate(query, 1):
                out.write(("," if count > 1 else "") + "\n  " + json.dumps(dataclasses.asdict(row)))
            out.write("\n]\n" if count else "]\n")
        else:
            for line in debugger.query_lines(command):
                sys.stdout.write(line)
            assert debugger.last_query is not None
            query = debugger.last_query
        sys.stdout.flush()
        if query.interrupted:
            print(f"rdebug: interrupted at icount {query.position}", file=sys.stderr)
            return EXIT_INTERRUPTED
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from rdebug import api, report  # noqa: PLC0415 - see the imports

    histories: list[tuple[str, int]] = []
    for spec in args.history:
        name, _, length = spec.partition(":")
        try:
            histories.append((name, int(length, 0) if length else 4))
        except ValueError:
            raise UsageError(f"--history {spec!r}: LEN is a number") from None
    with api.open(args.trace) as session, _interruptible(session):
        try:
            page = report.build(session, histories)
        except report.ReportInterrupted as exc:
            print(f"rdebug: {exc}: no page written", file=sys.stderr)
            return EXIT_INTERRUPTED
    try:
        args.output.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{args.output}: cannot write: {exc.strerror}") from None
    print(f"rdebug: wrote {args.output}", file=sys.stderr)
    return EXIT_OK

"""The arguments of `rdebug query` and `rdebug report` (carried out in querying.py)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

QUERIES = ("accesses", "history", "calls", "interrupts", "exceptions", "io")

QUERY_EPILOG = """\
examples:
  rdebug query TRACE accesses balance --kind write
  rdebug query TRACE history ticks --from 1000000 --to 5000000 --json
  rdebug query TRACE calls frame_alloc --nargs 0
  rdebug query TRACE interrupts 0x31 0x34
  rdebug query TRACE io 0x3f8-0x3ff --direction out

--json prints a list of row objects, each with an "icount" field (see docs/queries.md).

exit status: 0; 2 when TRACE cannot be opened or the query is malformed; 130 when
interrupted (Ctrl-C): the rows found so far are printed (the JSON list is complete)
"""


def add_query(sub: argparse._SubParsersAction[Any], number: Callable[[str], int]) -> None:
    """The `query` subcommand (`number` parses an integer argument)."""
    query = sub.add_parser(
        "query",
        help="ask a trace a question: accesses, history, calls, interrupts, exceptions, io",
        description="Replay the span once and print every row of one query, each with the\n"
        "icount it happened at: accesses ADDR|SYMBOL (the instruction, size, value before\n"
        "and after), history ADDR|SYMBOL (every change of the value), calls FUNCTION\n"
        "(arguments, caller, return icount and EAX), interrupts or exceptions [VECTOR...],\n"
        "io PORT[-PORT].",
        epilog=QUERY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    query.add_argument("trace", type=Path, metavar="TRACE", help="a folder made by record")
    query.add_argument("what", choices=QUERIES, metavar="QUERY", help=", ".join(QUERIES))
    query.add_argument(
        "target",
        nargs="*",
        metavar="ARG",
        help="ADDR|SYMBOL (accesses, history), FUNCTION (calls), VECTOR... (interrupts, "
        "exceptions), PORT[-PORT] (io)",
    )
    query.add_argument("--length", type=number, default=4, metavar="N", help="bytes (default 4)")
    query.add_argument(
        "--kind", choices=("write", "read", "access"), default="write", help="accesses: which"
    )
    query.add_argument(
        "--nargs", type=number, default=4, metavar="N", help="calls: stack arguments (default 4)"
    )
    query.add_argument("--direction", choices=("in", "out"), default=None, help="io: which")
    query.add_argument(
        "--from", dest="start", type=number, default=None, metavar="I", help="from icount I"
    )
    query.add_argument(
        "--to", dest="stop", type=number, default=None, metavar="J", help="to icount J (excluded)"
    )
    query.add_argument("--json", action="store_true", help="a JSON list of row objects")


def add_report(sub: argparse._SubParsersAction[Any]) -> None:
    """The `report` subcommand."""
    report = sub.add_parser(
        "report",
        help="write a trace's timeline as one self-contained HTML page",
        description="Replay TRACE once and write one HTML file (no network, no external "
        "assets) with its timeline: interrupts and exceptions per vector and the inputs "
        "along icount, their rates over time, the named snapshots and recorded "
        "checkpoints, and the history of the variables given with --history, zoomable "
        "(mouse wheel; double-click resets).",
        epilog="exit status: 0; 2 when TRACE cannot be opened, a --history symbol is "
        "unknown or OUT cannot be written; 130 when interrupted (Ctrl-C: no page written)",
    )
    report.add_argument("trace", type=Path, metavar="TRACE", help="a folder made by record")
    report.add_argument("-o", "--output", type=Path, required=True, metavar="OUT")
    report.add_argument(
        "--history",
        action="append",
        default=[],
        metavar="SYMBOL[:LEN]",
        help="also plot this variable's value over time (repeatable)",
    )

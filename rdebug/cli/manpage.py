"""`rdebug man`: the manual page in roff, made from the argparse tree (`build_parser`),
so that it says what `--help` says; and `rdebug completion SHELL` (shtab, same tree)."""

from __future__ import annotations

import argparse
import re

from rdebug.cli.parser import rdebug_version


def _roff(text: str) -> str:
    """Plain text made safe for roff: backslashes, and lines that start with . or '."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return re.sub(r"^([.'])", r"\\&\1", text, flags=re.MULTILINE)


def _usage(parser: argparse.ArgumentParser) -> str:
    usage = parser.format_usage().removeprefix("usage: ").strip()
    return " ".join(usage.split())


def _options(parser: argparse.ArgumentParser) -> list[str]:
    lines: list[str] = []
    for action in parser._actions:
        if action.help == argparse.SUPPRESS or isinstance(action, argparse._SubParsersAction):
            continue
        if action.option_strings:
            names = ", ".join(action.option_strings)
            if action.nargs != 0:
                metavar = action.metavar or action.dest.upper()
                names += " " + (metavar if isinstance(metavar, str) else " ".join(metavar))
        else:
            names = str(action.metavar or action.dest)
        help_text = (action.help or "") % {"default": action.default, "prog": parser.prog}
        lines += [".TP", f"\\fB{_roff(names)}\\fR", _roff(help_text)]
    return lines


def manpage(parser: argparse.ArgumentParser) -> str:
    """The roff source of rdebug(1)."""
    out = [
        f'.TH RDEBUG 1 "" "rdebug {rdebug_version()}" "User Commands"',
        ".SH NAME",
        "rdebug \\- " + _roff(parser.description or ""),
        ".SH SYNOPSIS",
        f"\\fBrdebug\\fR {_roff(_usage(parser).removeprefix('rdebug '))}",
        ".SH DESCRIPTION",
        _roff(parser.epilog or ""),
        ".SH OPTIONS",
        *_options(parser),
        ".SH COMMANDS",
    ]
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in sub.choices.items():
        out += [
            ".SS " + _roff(f"rdebug {name}"),
            f"\\fB{_roff(_usage(command))}\\fR",
            ".PP",
            _roff(command.description or ""),
        ]
        out += _options(command)
        if command.epilog:
            out += [".PP", ".nf", _roff(command.epilog.strip()), ".fi"]
    out += [
        ".SH FILES",
        ".TP",
        "\\fI$XDG_DATA_HOME/rdebug\\fR (\\fI~/.local/share/rdebug\\fR)",
        "The trace store: recordings made without \\-o, and \\fIlatest\\-trace\\fR.",
        ".SH SEE ALSO",
        "\\fBgdb\\fR(1), \\fBqemu\\-system\\-i386\\fR(1)",
    ]
    return "\n".join(out) + "\n"


def completion(parser: argparse.ArgumentParser, shell: str) -> str:
    """The completion script of `shell` (bash or zsh) for `parser`."""
    import shtab  # noqa: PLC0415 - only for this command

    return str(shtab.complete(parser, shell))

"""The command line's parser: a command's own parser (what `rdebug COMMAND ...` builds)
is that command's part of the whole one (what --help, man and completion show)."""

from __future__ import annotations

import argparse

import pytest

from rdebug.cli.parser import ALONE, build_parser


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _described(action: argparse.Action) -> tuple[object, ...]:
    return (
        type(action),
        action.option_strings,
        action.dest,
        action.nargs,
        action.const,
        action.default,
        action.type,
        action.choices,
        action.required,
        action.help,
        action.metavar,
        getattr(action, "complete", None),
    )


@pytest.mark.parametrize("command", sorted(ALONE))
def test_a_commands_own_parser_is_its_part_of_the_whole(command: str) -> None:
    whole = _subcommands(build_parser())[command]
    own = _subcommands(build_parser(command))
    assert list(own) == [command]
    assert own[command].format_help() == whole.format_help()
    assert [_described(a) for a in own[command]._actions] == [_described(a) for a in whole._actions]


def test_only_help_man_and_completion_need_the_whole_parser() -> None:
    assert set(_subcommands(build_parser())) == ALONE | {"help", "man", "completion"}

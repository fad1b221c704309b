"""The command language for gdb users: `print` over symbols, registers and memory, `info
registers REG`, `info line` (DWARF), `help COMMAND` (a paragraph and an example each),
and Tab's event kinds as `help events` lists them.  Every value is checked against the
Session's own reading of the same state."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document

import rdebug
from rdebug import commands, expr, monitor
from rdebug.api import Session
from rdebug.repl import Completions, Repl
from tests.conftest import ROOT, record_cli


@pytest.fixture(scope="module")
def bug_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return record_cli("bug", tmp_path_factory.mktemp("print") / "bug", "--serial", "null")


@pytest.fixture
def debugger(bug_trace: Path) -> Iterator[monitor.Debugger]:
    with rdebug.open(bug_trace) as session:
        session.add_breakpoint("timer_irq")
        session.cont()  # in the handler, DWARF line info here
        session.remove_breakpoint("timer_irq")
        yield monitor.Debugger(session)


def word(session: Session, addr: int, size: int = 4, signed: bool = True) -> int:
    return int.from_bytes(session.read_memory(addr, size), "little", signed=signed)


def test_print_reads_what_the_session_reads(debugger: monitor.Debugger) -> None:
    session = debugger.session
    acct = session.address("acct")
    esp = session.registers["esp"]
    expected = {
        "p sample_index": str(word(session, session.address("sample_index"))),
        "p/x acct": hex(word(session, acct, signed=False)),
        "print &acct": f"(int*) {acct:#x} <acct>",
        "p *(int*)(&acct + 4)": str(word(session, acct + 16)),  # int* + 4: 16 bytes on
        "p/x *(unsigned short*)($esp + 4)": hex(word(session, esp + 4, 2, signed=False)),
        "p *(char*)$esp": f"{word(session, esp, 1)} {expr.char(word(session, esp, 1, False))}",
        "p/x $eax": hex(session.registers["eax"]),
        "p $eip == timer_irq": "0",  # timer_irq is the int stored there, not its address
        "p $eip - (unsigned)&timer_irq": "0",
        "p -7 / 2": "-3",
        "p -7 % 2": "-1",
        "p (unsigned char)0x1ff": "255 '\\377'",
        "p/c 65": "65 'A'",
        "p (char)10": "10 '\\n'",
        "p/t 10": "1010",
        "p ~0": "-1",
        "p/u ~0": "4294967295",
        "p (1 + 2) * 3 << 1": "18",
        "p 2 > 1 && 1 >= 1 || 0": "1",
    }
    for number, (line, value) in enumerate(expected.items(), 1):
        assert debugger.execute(line) == f"${number} = {value}\n", line


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("p nosuch", "no symbol 'nosuch'"),
        ("p 1 +", "expected more"),
        ("p 1 / 0", "division by zero"),
        ("p $nosuch", "no register '$nosuch'"),
        ("p *(int*)0xfffffff0", "cannot read memory at 0xfffffff0"),
        ("p &3", "cannot take the address"),
        ("p/z 1", "unknown format 'z'"),
        ("p", "usage: print"),
    ],
)
def test_print_says_what_is_wrong(debugger: monitor.Debugger, line: str, message: str) -> None:
    answer = debugger.execute(line)
    assert answer.startswith("error: ") and message in answer, answer


def test_info_registers_named_and_info_line(debugger: monitor.Debugger) -> None:
    regs = debugger.session.registers
    answer = debugger.execute("info registers eax $eip cr0")
    rows = [line.split() for line in answer.splitlines()]
    assert rows[0] == ["eax", hex(regs["eax"]), str(regs["eax"])]
    assert rows[1] == ["eip", hex(regs["eip"]), hex(regs["eip"]), "<timer_irq>"]
    assert rows[2][0] == "cr0" and int(rows[2][1], 16) == regs["cr0"]
    assert "no register 'xyz'" in debugger.execute("info registers xyz")
    source = ROOT / "sample_guests" / "src" / "bug.c"
    lines = source.read_text().splitlines()
    where = debugger.execute("info line").splitlines()
    path, number = where[0].split(": ")[0].rsplit(":", 1)
    assert path.endswith("src/bug.c") and "timer_irq" in lines[int(number) - 1 - 1 : int(number)][0]
    assert where[1].startswith(number)
    debugger.session.seek(0)  # _start, in assembly: no line there
    assert debugger.execute("info line").startswith("no line information")


def test_help_has_a_paragraph_and_an_example_for_every_command() -> None:
    for name in commands.HELP:
        text = commands.help_text(name)
        usage, paragraph, example = text.strip().split("\n\n")
        assert usage == commands.HELP[name].split(" -- ")[0], name
        assert paragraph and example.startswith("Example: "), name
        commands.parse(example.removeprefix("Example: ").split(", then ")[0])  # it parses
    assert commands.help_text("p/x") == commands.help_text("print")


def test_tab_offers_the_event_kinds_help_lists(debugger: monitor.Debugger) -> None:
    repl = Repl(debugger.session)
    offered = [
        c.text
        for c in Completions(repl).get_completions(Document("events "), CompleteEvent())
        if not c.text.startswith("--")
    ]
    listed = commands.HELP["events"].split("KIND is ")[1].replace(" or ", ", ").split(", ")
    assert offered == listed == commands.EVENT_KINDS

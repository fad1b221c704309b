"""The machine's debug messages: through `logging` once it is imported, dropped before."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from rdebug.machine.debuglog import debug


def test_a_message_reaches_the_logger_configured_for_it(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="rdebug.machine.ioports")
    debug("rdebug.machine.ioports", "IN %#x: no device", 0x1F7)
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        ("rdebug.machine.ioports", logging.DEBUG, "IN 0x1f7: no device")
    ]


def test_a_message_before_logging_is_imported_imports_nothing() -> None:
    code = (
        "import sys\n"
        "from rdebug.machine.debuglog import debug\n"
        "debug('rdebug.machine.ioports', 'IN %#x: no device', 0x1f7)\n"
        "print('logging' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert (result.stdout, result.stderr) == ("False\n", "")

"""`rdebug report` on the minikernel's trace, opened in a real headless Chromium: the page
renders with one mark per interrupt, exception, input and snapshot, its script runs
without a console error, it needs nothing from the network, and a screenshot shows it."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import pytest

from rdebug import api
from tests.conftest import ROOT
from tests.integration.test_minikernel import files, trace  # noqa: F401 - fixtures

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")  # .ci/run installs it


def _chromium(*args: str | Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None, "chromium is not installed (apt-get install chromium)"
    # a profile of its own: two suites at once (or a leftover Chromium) never share one
    with tempfile.TemporaryDirectory(prefix="rdebug-chromium-") as profile:
        return _chromium_in(profile, *args)


def _chromium_in(profile: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [
            CHROMIUM,
            f"--user-data-dir={profile}",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
            *map(str, args),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def page(trace: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    out = tmp_path_factory.mktemp("report") / "report.html"
    result = subprocess.run(
        [sys.executable, "-m", "rdebug", "report", trace, "-o", out, "--history", "ticks"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return out


def test_the_page_is_self_contained(page: Path) -> None:
    text = page.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", text)
    assert "<link" not in text and "@import" not in text and "url(" not in text


def test_the_page_renders_every_mark_without_console_errors(
    page: Path,
    trace: Path,  # noqa: F811
) -> None:
    with api.open(trace) as session:
        deliveries = list(session.interrupts(exceptions=True))
        irqs = sum(row.source == "external" for row in deliveries)
        raised = len(deliveries) - irqs
        inputs = len(list(session.inputs()))
        snapshots = len(list(session.events("checkpoint"))) + len(session.snapshots())
        ticks = len(list(session.history("ticks")))
    assert irqs >= 5 and raised >= 10 and inputs >= 1 and ticks >= 3
    result = _chromium("--dump-dom", page.as_uri())
    dom = result.stdout
    assert dom.count('class="mark irq"') == irqs
    assert dom.count('class="mark exception"') == raised
    assert dom.count('class="mark input"') == inputs
    assert dom.count('class="mark snapshot"') == snapshots
    assert f'data-changes="{ticks}"' in dom
    # the script ran: it counted the marks it zooms, and the axis shows the icount span
    total = irqs + raised + inputs + snapshots
    assert f'data-drawn="{total}"' in dom, dom[:2000]
    with api.open(trace) as session:
        end = session.end_icount
    assert f'<span id="hi">{end:,}</span>' in dom
    console = [line for line in result.stderr.splitlines() if "CONSOLE" in line]
    # the page's one message and nothing else: an uncaught error, console.error or a
    # failed load would each add a CONSOLE line (headless Chromium logs them all alike)
    assert len(console) == 1, console
    assert f'"rdebug report ready: {total} marks"' in console[0], result.stderr


def _png_pixels(path: Path) -> tuple[int, int, bytes]:
    """Width, height and the decompressed scanlines of a PNG (no library needed)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    return width, height, zlib.decompress(idat)


def test_screenshot(page: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    result = _chromium("--window-size=1300,900", f"--screenshot={shot}", page.as_uri())
    assert shot.exists(), result.stderr
    width, height, pixels = _png_pixels(shot)
    assert (width, height) == (1300, 900)
    # drawn, not blank: many distinct byte values (marks, rate plots, text)
    assert len(set(pixels)) > 50

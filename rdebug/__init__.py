"""rdebug: a reverse debugger for i386 guest code.

The scripting API: `rdebug.open(TRACE)` returns a `Session` (see rdebug/api.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from rdebug.api import Session


def open(trace: Path | str, checkpoint_budget: int | None = None) -> Session:
    """Open the recording in the trace folder `trace` (see `rdebug.api.Session`)."""
    from rdebug.api import DEFAULT_BUDGET, Session  # noqa: PLC0415 - keep `import rdebug` light

    return Session(trace, DEFAULT_BUDGET if checkpoint_budget is None else checkpoint_budget)


#: rdebug's version (pyproject.toml's; `rdebug --version`)
__version__ = "0.1.0"

__all__ = ["__version__", "open"]

"""The trace store: where `rdebug record GUEST` puts a recording made without `-o`.

One folder per user, `$XDG_DATA_HOME/rdebug` (`~/.local/share/rdebug` by default), holds
the recordings, named after their guest (`bug-1`, `bug-2`...), and `latest-trace`, a
symbolic link to the newest.  A command that takes a TRACE takes none to mean the
latest, and takes a recording's name in the store as well as a path (as rr does).
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from rdebug.errors import UsageError

LATEST = "latest-trace"


def store_dir() -> Path:
    """The folder of the recordings made without `-o`."""
    base = os.environ.get("XDG_DATA_HOME") or ""
    root = Path(base) if os.path.isabs(base) else Path.home() / ".local" / "share"
    return root / "rdebug"


def new_trace_path(guest: Path) -> Path:
    """A new folder name in the store for a recording of `guest`: `<guest>-<n>`, n one
    more than the highest taken."""
    folder = store_dir()
    stem = re.sub(r"[^\w.+-]", "_", guest.stem) or "guest"
    taken = [0]
    if folder.is_dir():
        pattern = re.compile(re.escape(stem) + r"-(\d+)")
        taken += [int(m[1]) for p in folder.iterdir() if (m := pattern.fullmatch(p.name))]
    return folder / f"{stem}-{max(taken) + 1}"


def mark_latest(trace: Path) -> None:
    """Point the store's `latest-trace` at `trace` (replacing it at once)."""
    folder = store_dir()
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / LATEST
    temporary = folder / f".{LATEST}.{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    target = trace.name if trace.parent.resolve() == folder.resolve() else trace.resolve()
    temporary.symlink_to(target)
    temporary.replace(link)


def resolve(trace: Path | None) -> Path:
    """The trace folder a command means: TRACE as given (or a recording's name in the
    store), or the latest recording when none is given."""
    if trace is None:
        link = store_dir() / LATEST
        if not link.is_dir():
            raise UsageError(
                f"no recording yet in {store_dir()} ('rdebug record GUEST' makes one; "
                "or name a TRACE folder)"
            )
        return link.resolve()
    if not trace.exists() and len(trace.parts) == 1 and (store_dir() / trace).is_dir():
        return store_dir() / trace
    return trace


def recordings() -> list[Path]:
    """The recordings in the store, oldest first."""
    folder = store_dir()
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and not p.is_symlink() and p.name[0] != "."]
    return sorted(found, key=lambda p: (p.stat().st_mtime, p.name))


def latest() -> Path | None:
    """The recording `latest-trace` points at, if any."""
    link = store_dir() / LATEST
    return link.resolve() if link.is_dir() else None

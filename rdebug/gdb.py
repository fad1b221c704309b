"""`rdebug.gdb`: a real gdb attached to a Session, driven from Python (through pygdbmi).

For scripting gdb-level sessions (source-level views, gdb's own commands) on a replay:

    import rdebug, rdebug.gdb

    with rdebug.open("TRACE") as session, rdebug.gdb.attach(session) as gdb:
        gdb.command("break deposit")
        gdb.command("continue")
        print(gdb.command("reverse-stepi").console)

`attach` serves the session to gdb in a background thread (the same stub as
`rdebug replay --gdb`) and starts gdb with the guest's symbols, attached to it.  While
the helper is open, gdb drives the session: do not call the session's own methods from
another thread meanwhile (the Session is single-threaded); after `close()` it is yours
again, wherever gdb left it.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from pygdbmi.gdbcontroller import GdbController

from rdebug.api import Session
from rdebug.errors import RdebugError
from rdebug.gdb_target import SessionTarget, listen
from rdebug.gdbstub.server import GdbServer


class GdbError(RdebugError):
    """gdb answered a command with an error (or did not answer in time)."""


@dataclass(frozen=True, slots=True)
class Response:
    """What gdb said to one command."""

    records: list[dict[str, Any]]  # pygdbmi's parsed MI records, in order
    console: str  # the console text (what gdb prints in a terminal)
    error: str | None  # the ^error message, if gdb refused the command

    @property
    def stopped(self) -> dict[str, Any] | None:
        """The `*stopped` record's payload (reason, frame...) if the command ran the target."""
        for record in self.records:
            if record.get("message") == "stopped":
                payload = record.get("payload")
                return payload if isinstance(payload, dict) else {}
        return None


def exchange(controller: GdbController, text: str, timeout: float) -> list[dict[str, Any]]:
    """Send one GDB/MI command to a pygdbmi controller and collect its records: up to its
    result record and, for a command that resumed the target, up to the `*stopped` (or
    the `^error` of a resume that failed: gdb says `^running`, then e.g. that it could
    not insert a watchpoint).  TimeoutError if that takes longer than `timeout` seconds."""
    controller.write(text, read_response=False)
    records: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"gdb did not finish {text!r} within {timeout} s")
        records += controller.get_gdb_response(
            timeout_sec=min(left, 0.5), raise_error_on_timeout=False
        )
        done = any(r.get("type") == "result" for r in records)
        running = any(r.get("message") == "running" for r in records)
        stopped = any(r.get("message") == "stopped" for r in records)
        failed = any(r.get("type") == "result" and r.get("message") == "error" for r in records)
        if done and (stopped or failed or not running):
            return records


def console_text(records: Sequence[dict[str, Any]]) -> str:
    """What gdb printed (console and target streams) in `records`."""
    return "".join(
        str(r["payload"])
        for r in records
        if r.get("type") in ("console", "target") and r.get("payload")
    )


class Gdb:
    """A gdb process attached to a session's stub."""

    def __init__(self, controller: GdbController, server: GdbServer, address: str) -> None:
        self._gdb = controller
        self._server = server
        #: host:port gdb is attached to
        self.address = address

    def command(self, text: str, timeout: float = 60, check: bool = True) -> Response:
        """Run a gdb console command (as typed at gdb's prompt); wait for its result and,
        if it ran the target, for the stop.  With `check`, a refusal raises `GdbError`."""
        escaped = text.replace("\\", "\\\\").replace('"', '\\"')
        return self.mi(f'-interpreter-exec console "{escaped}"', timeout, check, text)

    def mi(
        self, text: str, timeout: float = 60, check: bool = True, label: str | None = None
    ) -> Response:
        """Run a GDB/MI command (e.g. `-data-evaluate-expression $pc`)."""
        try:
            records = exchange(self._gdb, text, timeout)
        except TimeoutError:
            raise GdbError(f"gdb did not finish {text!r} within {timeout} s") from None
        console = console_text(records)
        error = next(
            (
                str((r.get("payload") or {}).get("msg", "error"))
                for r in records
                if r.get("type") == "result" and r.get("message") == "error"
            ),
            None,
        )
        if check and error is not None:
            # what gdb logged before refusing says why (e.g. "Could not insert hardware
            # watchpoint 2.")
            log = " ".join(
                " ".join(str(r["payload"]).split())
                for r in records
                if r.get("type") == "log" and r.get("payload")
            )
            raise GdbError(f"gdb: {label or text}: {error}" + (f" ({log})" if log else ""))
        return Response(records, console, error)

    def value(self, expression: str) -> int:
        """An integer expression's value (e.g. "$pc", "acct.balance")."""
        response = self.mi(f'-data-evaluate-expression "{expression}"')
        for record in response.records:
            if record.get("type") == "result" and isinstance(record.get("payload"), dict):
                text = str(record["payload"].get("value", "")).split()[0]
                return int(text, 0)
        raise GdbError(f"gdb gave no value for {expression!r}")

    def close(self) -> None:
        """End gdb (it detaches), stop serving."""
        try:
            self._gdb.exit()
        finally:
            self._server.close()

    def __enter__(self) -> Gdb:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def attach(session: Session, *, gdb: str = "gdb", settings: Sequence[str] = ()) -> Gdb:
    """Serve `session` on a free local port and start `gdb` (a name on PATH or a path)
    attached to it, with the guest's symbols; `settings` are gdb commands run first."""
    program = shutil.which(gdb)
    if program is None:
        raise RdebugError(f"{gdb!r}: gdb is not installed (or not on PATH)")
    server, (host, port) = listen(SessionTarget(session), "127.0.0.1", 0, "rdebug.gdb.attach")
    server.start()
    controller = GdbController(
        command=[program, "--nx", "--quiet", "--interpreter=mi3"],
        time_to_check_for_additional_output_sec=0.01,
    )
    helper = Gdb(controller, server, f"{host}:{port}")
    try:
        for setting in ("set architecture i386", "set confirm off", "set pagination off"):
            helper.command(setting)
        for setting in settings:
            helper.command(setting)
        helper.command(f"file {session.trace.gdb_symbols().resolve()}")
        helper.command(f"target remote {host}:{port}")
    except BaseException:
        helper.close()
        raise
    return helper

"""`rdebug repl TRACE`: an interactive debugger on one recording (prompt_toolkit).

A client of the `Session` only: every command is of the command language (commands.py,
carried out by monitor.py), parsed once, so what works here works as `monitor CMD` in
gdb, and the REPL adds what needs a terminal: `gdb [PORT]`, `source FILE`, `quit`.

- Completion (Tab) of commands, symbols of the guest ELF, snapshot names, event kinds.
- History in a file (~/.rdebug_history, or --history FILE).
- A bottom toolbar: icount, eip with its symbol, the nearest snapshot, the recording's
  length.
- Commands that move through time run in a worker thread while this thread waits; past
  ~0.5 s a progress bar shows where the replay is (the timeline reports its icount), and
  Ctrl-C interrupts the session (`Session.interrupt`) and returns to the prompt.  Only one
  thread drives the session at any time: the prompt waits for the worker.
- `gdb [PORT]` serves gdb on this very session in a background thread; the REPL waits
  (the Session is single-threaded) until gdb detaches or Ctrl-C, then goes on where gdb
  left the replay.  Meanwhile the REPL's breakpoints and watchpoints are off (gdb sets
  its own, and would ignore stops it did not ask for).
- `-x FILE` / `--batch`: the same commands without a terminal; in batch mode the first
  failing command ends the run with exit status 2 and one message.
"""

from __future__ import annotations

import shlex
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TextIO

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import CompleteEvent, Completer, Completion, PathCompleter
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.input import Input
from prompt_toolkit.output import Output

from rdebug import commands, monitor
from rdebug.api import DEFAULT_BUDGET, NamedSnapshot, Session
from rdebug.errors import RdebugError, UsageError
from rdebug.gdb_target import SessionTarget, attach_hint, listen

PROMPT = "(rdebug) "
DEFAULT_HISTORY = Path("~/.rdebug_history")
#: An operation shows its progress once it has run this long.
PROGRESS_AFTER = 0.5
PROGRESS_WIDTH = 30
EXIT_INTERRUPTED = 130

_INFO_TOPICS = ["breakpoints", "registers", "replay", "snapshots"]
_SYMBOL_COMMANDS = {"break", "b", "watch", "disas", "disassemble", "accesses", "history", "calls"}
_QUERIES = {"accesses", "history", "calls", "interrupts", "exceptions", "io"}


class QuitRepl(Exception):
    """`quit`: leave the REPL."""


class Completions(Completer):
    """Tab completion: commands, then what each command takes."""

    def __init__(self, repl: Repl) -> None:
        self._repl = repl
        self._paths = PathCompleter(expanduser=True)

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterator[Completion]:
        text = document.text_before_cursor
        words = text.split()
        if not words or (len(words) == 1 and not text.endswith(" ")):
            yield from _matching(words[0] if words else "", commands.COMMAND_WORDS)
            return
        head = commands.ALIASES.get(words[0], words[0])
        current = "" if text.endswith(" ") else words[-1]
        position = len(words) - (0 if text.endswith(" ") else 1)  # which word is completed
        if head == "source":
            sub = Document(current, len(current))
            yield from self._paths.get_completions(sub, complete_event)
            return
        yield from _matching(current, self._candidates(head, position))

    def _candidates(self, head: str, position: int) -> list[str]:
        repl = self._repl
        if head == "info" and position == 1:
            return _INFO_TOPICS
        if head == "help" and position == 1:
            return sorted({name.split()[0] for name in commands.HELP})
        if head == "goto" and position == 1:
            return ["event"]
        if head in ("loadvm", "savevm") and position == 1:
            return [s.name for s in repl.snapshot_list()]
        if head in ("events", "next-event", "prev-event"):
            kinds = commands.EVENT_KINDS  # as `help events` lists them
            return kinds + (["--from", "--to"] if head == "events" else [])
        if head in ("watch", "accesses") and position >= 2:
            return ["read", "write", "access"] + (["--from", "--to"] if head != "watch" else [])
        if head in _QUERIES and position >= (1 if head in ("interrupts", "exceptions") else 2):
            return ["--from", "--to"] + (["in", "out"] if head == "io" else [])
        if head == "delete" and position == 1:
            return [str(n) for n in repl.debugger.points]
        if (head in _SYMBOL_COMMANDS or head.startswith("x")) and position == 1:
            names = sorted(repl.session.symbols)
            return names + (["$eip", "$esp", "$ebp"] if head.startswith("x") else [])
        return []


def _matching(prefix: str, candidates: Iterable[str]) -> Iterator[Completion]:
    for candidate in candidates:
        if candidate.startswith(prefix):
            yield Completion(candidate, start_position=-len(prefix))


class Repl:
    """The REPL on one session.  `out` gets answers, `err` errors and progress."""

    def __init__(
        self,
        session: Session,
        out: TextIO | None = None,
        err: TextIO | None = None,
        *,
        show_progress: bool = True,
    ) -> None:
        self.session = session
        self.debugger = monitor.Debugger(session)
        self.out = sys.stdout if out is None else out
        self.err = sys.stderr if err is None else err
        self.show_progress = show_progress
        self._snapshots: list[NamedSnapshot] | None = None
        self._at = 0  # the icount the worker last reported
        self._drawn = 0  # the length of the progress line on the screen
        self._sourcing: set[Path] = set()  # the files `source` is running now
        session.progress = self._report

    # -- one command -------------------------------------------------------------------------

    def execute(self, line: str) -> bool:
        """Run one line; False if it failed (the message is on `err`).  `quit` raises
        `QuitRepl`."""
        try:
            self.run_line(line)
        except RdebugError as exc:
            self.err.write(f"error: {exc}\n")
            self.err.flush()
            return False
        return True

    def run_line(self, line: str) -> None:
        """Run one line, its answer on `out`; an `RdebugError` says what went wrong."""
        if not line.strip() or line.lstrip().startswith("#"):
            return
        text = self._run(commands.parse(line))
        self.out.write(text)
        self.out.flush()

    def _run(self, command: commands.Command) -> str:
        match command:
            case commands.Quit():
                raise QuitRepl
            case commands.Source(path):
                self.source(Path(path).expanduser())
                return ""
            case commands.ServeGdb(port):
                return self.serve_gdb(port)
            case commands.SaveVm() | commands.LoadVm():
                self._snapshots = None
        if isinstance(command, commands.MOVES):
            return self._in_worker(lambda: self.debugger.run(command))
        return self.debugger.run(command)

    def source(self, path: Path) -> None:
        """Run the commands of `path`; the first failing one stops it, named by line."""
        try:
            lines = path.read_text().splitlines()
            key = path.resolve()
        except OSError as exc:
            raise UsageError(f"source {path}: cannot read: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise UsageError(f"source {path}: not a text file") from None
        if key in self._sourcing:
            raise UsageError(f"source {path}: already running (a file that sources itself)")
        self._sourcing.add(key)
        try:
            self.run_lines(lines, str(path))
        finally:
            self._sourcing.discard(key)

    def run_lines(self, lines: Iterable[str], name: str) -> None:
        """Run commands one by one; the first failing one stops them (`name:LINE: why`)."""
        for number, line in enumerate(lines, 1):
            try:
                self.run_line(line)
            except RdebugError as exc:
                raise RdebugError(f"{name}:{number}: {exc}") from None

    # -- long operations -----------------------------------------------------------------

    def _report(self, icount: int) -> None:
        self._at = icount  # from the worker thread: one int, read by the waiting thread

    def _in_worker(self, operation: Callable[[], str]) -> str:
        """Run `operation` in a worker thread; show progress; Ctrl-C interrupts it."""
        result: list[str] = []
        failure: list[BaseException] = []
        done = threading.Event()  # not Thread.is_alive: Ctrl-C inside join() upsets it

        def work() -> None:
            try:
                result.append(operation())
            except BaseException as exc:  # handed to the waiting thread
                failure.append(exc)
            finally:
                done.set()

        self._at = self.session.icount
        worker = threading.Thread(target=work, name="rdebug-repl-worker", daemon=True)
        started = time.monotonic()
        worker.start()
        shown = interrupted = False
        while not done.is_set():
            try:
                done.wait(0.05)
                if self.show_progress and time.monotonic() - started >= PROGRESS_AFTER:
                    self._draw_progress(time.monotonic() - started)
                    shown = True
            except KeyboardInterrupt:
                if not done.is_set():
                    self.session.interrupt()
                    interrupted = True
        worker.join()
        if interrupted:
            self.session.clear_interrupt()  # if it came as the operation was ending
        if shown:
            self.err.write("\r" + " " * self._drawn + "\r")
            self.err.flush()
        if interrupted and failure and isinstance(failure[0], RdebugError):
            # Ctrl-C is the person's choice, not an error: say where it stopped
            return f"stopped at icount {self.session.icount} (Ctrl-C)\n{self.debugger.where()}\n"
        if failure:
            raise failure[0]
        return result[0]

    def _draw_progress(self, elapsed: float) -> None:
        end = max(self.session.end_icount, 1)
        at = min(self._at, end)
        filled = PROGRESS_WIDTH * at // end
        bar = "#" * filled + "." * (PROGRESS_WIDTH - filled)
        text = f"[{bar}] replaying at icount {at} of {end}, {elapsed:.1f}s (Ctrl-C stops)"
        text = text[: shutil.get_terminal_size().columns - 1]  # one line: \r rewrites it
        self.err.write("\r" + text)
        self.err.flush()
        self._drawn = len(text)

    # -- gdb on this session ---------------------------------------------------------------

    def serve_gdb(self, port: int) -> str:
        """Serve gdb on this session until gdb detaches (or Ctrl-C); this thread waits."""
        target = SessionTarget(self.session, self.debugger)
        server, (host, bound) = listen(target, "127.0.0.1", port, f"gdb {port}")
        guest = self.session.trace.gdb_symbols().resolve()
        self.out.write(
            f"serving gdb on {host}:{bound} until it detaches (Ctrl-C stops; this REPL's "
            "breakpoints are off meanwhile); attach with:\n"
            + attach_hint((host, bound), guest)
            + "\n"
        )
        self.out.flush()
        done = threading.Event()

        def serve() -> None:
            try:
                server.serve_one()
            finally:
                done.set()

        serving = threading.Thread(target=serve, name="rdebug-repl-gdb", daemon=True)
        self.debugger.suspend_points()
        serving.start()
        try:
            while not done.is_set():
                try:
                    done.wait(0.1)
                except KeyboardInterrupt:
                    self.session.interrupt()
                    break
        finally:
            server.close()
            serving.join()
            self.session.clear_interrupt()
            self.debugger.resume_points()
        self._snapshots = None
        return f"gdb is gone; {self.debugger.where()}\n"

    # -- the interactive loop --------------------------------------------------------------

    def snapshot_list(self) -> list[NamedSnapshot]:
        """The trace's snapshots (cached: the toolbar asks often)."""
        if self._snapshots is None:
            self._snapshots = self.session.snapshots()
        return self._snapshots

    def toolbar(self) -> str:
        """icount, eip with its symbol and source line, the nearest snapshot, the
        recording's length."""
        session = self.session
        eip = session.registers["eip"]
        name = session.symbol(eip)
        where = f" <{name}>" if name else ""
        line = session.source_line(eip)
        if line is not None:
            where += f" at {Path(line[0]).name}:{line[1]}"
        near = [s for s in self.snapshot_list() if (s.icount or 0) <= session.icount]
        snap = f"{near[-1].name}@{near[-1].icount}" if near else "none"
        return (
            f" icount {session.icount} of {session.end_icount} | eip {eip:#x}{where}"
            f" | snapshot {snap} | Tab completes, Ctrl-D quits"
        )

    def prompt_session(
        self,
        history: History | None = None,
        input: Input | None = None,
        output: Output | None = None,
    ) -> PromptSession[str]:
        return PromptSession(
            PROMPT,
            history=InMemoryHistory() if history is None else history,
            completer=Completions(self),
            complete_while_typing=False,
            bottom_toolbar=self.toolbar,
            input=input,
            output=output,
        )

    def interact(self, prompt: PromptSession[str]) -> None:
        """Read and run commands until quit or end of input; Ctrl-C clears the line."""
        self.out.write(
            f"rdebug: {self.session.trace.path}: {self.session.end_icount} instructions, "
            f"{sum(1 for _ in self.session.events())} recorded events. 'help' lists the "
            "commands.\n"
        )
        while True:
            try:
                line = prompt.prompt()
            except KeyboardInterrupt:
                continue
            except EOFError:
                return
            try:
                self.execute(line)
            except QuitRepl:
                return
            except KeyboardInterrupt:  # outside a long move (those stop cleanly)
                self.err.write("\ninterrupted\n")


def history_file(path: Path | None) -> FileHistory:
    """The persistent history (default ~/.rdebug_history)."""
    target = (DEFAULT_HISTORY if path is None else path).expanduser()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch(exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--history {target}: cannot write: {exc.strerror}") from None
    return FileHistory(str(target))


def main(
    trace: Path,
    script: Path | None = None,
    batch: bool = False,
    history: Path | None = None,
    checkpoint_budget: int = DEFAULT_BUDGET,
) -> int:
    """`rdebug repl`: 0 when done, 2 when a command failed in batch mode."""
    interactive = sys.stdin.isatty() and sys.stdout.isatty() and not batch
    with Session(trace, checkpoint_budget) as session:
        repl = Repl(session, show_progress=sys.stderr.isatty())
        if not session.complete:
            sys.stderr.write(
                f"rdebug: warning: {trace} was cut short (its log has no END event: the "
                f"recorder was stopped); it replays up to icount {session.end_icount}, its "
                "last complete event\n"
            )
        try:
            if script is not None and interactive:
                repl.execute(f"source {shlex.quote(str(script))}")  # an error: say it, go on
            elif script is not None:
                repl.source(script)
            if interactive:
                repl.interact(repl.prompt_session(history_file(history)))
            elif script is None:
                repl.run_lines(sys.stdin, "<stdin>")
        except QuitRepl:
            pass
        except KeyboardInterrupt:
            sys.stderr.write("rdebug: interrupted\n")
            return EXIT_INTERRUPTED
    return 0

"""CLI output: the one place where errors become exit codes, and the shared ``--json`` helpers.

Exit codes (from the nearest class in the error's MRO, so TooLarge wins over InvalidInput):

====  =====================================================================
code  meaning
====  =====================================================================
0     success
1     any other ``SessionkeeperError``; an OS error (unreadable file…); an import
      that finished with failures
2     usage error (bad option, missing argument) or ``InvalidInput``
3     ``NotFound`` (unknown session, no current session, missing file tree entry)
4     ``Conflict`` (session id exists, lock held by another writer)
5     ``TooLarge`` (content over 100,000 characters: nothing stored)
6     ``Unavailable`` / ``SchemaMismatch`` (database or model server down, schema
      older or newer than this version: run ``sessionkeeper db upgrade``)
7     ``Forbidden`` / ``Unauthorized`` (e.g. deleting a protected session)
130   interrupted (Ctrl-C), at any moment: start-up included (``cli/__init__.py``)
====  =====================================================================

Every failure prints one red line on stderr, no traceback (``SESSIONKEEPER_DEBUG=1`` shows
it). Under ``--json`` stdout also gets ``{"error": {"code", "message", "exit_code"}}`` so a
script reading stdout always gets JSON.

A closed pipe is not a failure: when the reader of our output goes away
(``sessionkeeper export --all | head -1``), the command stops and exits 0 without a word,
as Unix tools do (``closed_pipe``).
"""

from __future__ import annotations

import errno
import functools
import json
import os
import re
import sys
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import typer
from typer import _click as click
from typer.core import TyperGroup
from typer.exceptions import TyperException

from sessionkeeper.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    SchemaMismatch,
    SessionkeeperError,
    TooLarge,
    Unauthorized,
    Unavailable,
)
from sessionkeeper.wording import plural as plural  # the CLI's counts: out.plural

if TYPE_CHECKING:
    from rich.console import Console, OverflowMethod

GENERIC = 1
USAGE = 2
EXIT_CODES: dict[type[BaseException], int] = {
    TooLarge: 5,
    InvalidInput: USAGE,
    NotFound: 3,
    Conflict: 4,
    Unavailable: 6,
    SchemaMismatch: 6,
    Forbidden: 7,
    Unauthorized: 7,
    SessionkeeperError: GENERIC,
    OSError: GENERIC,
    KeyboardInterrupt: 130,
}


def exit_code_for(exc: BaseException) -> int:
    for cls in type(exc).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return GENERIC


def error_code_for(exc: BaseException) -> str:
    if isinstance(exc, SessionkeeperError):
        return exc.code
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return "os_error" if isinstance(exc, OSError) else "error"


class _Mode:
    """Per-invocation state: the ``--json`` mode and the context of the command being run
    (set by the global options' callbacks, so the error handler can name options)."""

    json = False
    command: click.Context | None = None


mode = _Mode()


def set_json(value: bool) -> bool:
    """Callback of every ``--json`` option (so the error handler knows the mode too).

    ``sessionkeeper --json list`` and ``sessionkeeper list --json`` mean the same: a command's
    own flag is true when either was given.
    """
    if value:
        mode.json = True
    return value or mode.json


@functools.cache
def _console_class() -> type[Console]:
    from rich.console import Console

    class PipeConsole(Console):
        """A Console that leaves a closed pipe to ``closed_pipe`` (Rich's own handling
        exits with code 1)."""

        def on_broken_pipe(self) -> None:
            self.quiet = True
            raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))

    return PipeConsole


def console(width: int | None = None) -> Console:
    return _console_class()(soft_wrap=False, highlight=False, width=width)


def err_console() -> Console:
    return _console_class()(stderr=True, highlight=False, soft_wrap=True)


def interrupted(exc: KeyboardInterrupt) -> int:
    """Ctrl-C: one line on stderr and exit code 130. Objects the interrupt left half-built
    may complain when collected ("Exception ignored in …", e.g. an event loop interrupted
    while it was being made): after a Ctrl-C that is noise, so it is not shown."""
    sys.unraisablehook = lambda _unraisable: None
    return report_error(exc)


def closed_pipe() -> int:
    """The exit code when a reader of our output went away (``… | head -1``): 0, quietly.

    The closed stream is pointed at /dev/null (the Python docs' note on SIGPIPE), so that
    nothing written or flushed later, Python's own flush at exit included, fails again.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BrokenPipeError:
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, stream.fileno())
                os.close(devnull)
            except (OSError, ValueError):  # not a real file (a test runner's buffer)
                pass
        except (OSError, ValueError):
            pass
    return 0


def dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2, default=_default)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def emit_json(data: Any) -> None:
    sys.stdout.write(dumps(data) + "\n")
    sys.stdout.flush()


def fail_message(exc: BaseException) -> str:
    if isinstance(exc, SessionkeeperError):
        return exc.message
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.strerror or exc}: {exc.filename}"
    if isinstance(exc, OSError | SessionkeeperError):
        return str(exc) or type(exc).__name__
    return (
        f"unexpected {type(exc).__name__}: {exc} (a bug: SESSIONKEEPER_DEBUG=1 shows the "
        "traceback; please report it)"
    )


def report_error(exc: BaseException) -> int:
    """Print ``exc`` as one red line on stderr (and JSON on stdout under --json); the code."""
    code = exit_code_for(exc)
    message = fail_message(exc)
    if mode.json:
        emit_json({"error": {"code": error_code_for(exc), "message": message, "exit_code": code}})
    from rich.markup import escape

    err_console().print(f"[bold red]error:[/] [red]{escape(message)}[/]")
    return code


# Store fields whose CLI option has another name (the rest match by name: --limit is limit).
FIELD_PARAMS = {
    "agent_id": "agent",
    "agent_ids": "agent",
    "session_id": "session",
    "max_context_tokens": "max_tokens",
}


def name_option(exc: SessionkeeperError, ctx: click.Context | None) -> SessionkeeperError:
    """``exc`` worded with the option the user typed instead of the Store's field name:
    ``prune --days 0`` says "--days must be …", not "days must be …"."""
    field = exc.details.get("field")
    if ctx is None or not isinstance(field, str):
        return exc
    wanted = {field, FIELD_PARAMS.get(field, field)}
    for param in ctx.command.params:
        if param.name not in wanted or param.param_type_name != "option":
            continue
        if ctx.get_parameter_source(param.name) is not click.core.ParameterSource.COMMANDLINE:
            return exc  # a default or the remembered session, not something typed
        option = max(param.opts, key=len)
        pattern = rf"(?<![\w-]){re.escape(field)}(?![\w])"
        message, found = re.subn(pattern, option, exc.message, count=1)
        if not found:
            message = f"{option}: {exc.message}"
        return type(exc)(message, **{**exc.details, "option": option})
    return exc


class SessionkeeperGroup(TyperGroup):
    """Root command group: maps every failure to its exit code (see the table) and one line.

    Nothing ends in a traceback: an exception that is none of ours is a bug, reported as
    such in one line (``SESSIONKEEPER_DEBUG=1`` re-raises it, with its traceback).
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (TyperException, typer.Exit):
            raise  # usage errors, --help, explicit exits: Typer prints and exits
        except typer.Abort as exc:
            if isinstance(exc.__context__, KeyboardInterrupt):  # Ctrl-C at a prompt
                sys.stderr.write("\n")  # the prompt's line is still open
                raise typer.Exit(interrupted(exc.__context__)) from None
            raise
        except KeyboardInterrupt as exc:
            raise typer.Exit(interrupted(exc)) from None
        except BrokenPipeError:
            raise typer.Exit(closed_pipe()) from None
        except Exception as exc:
            if os.environ.get("SESSIONKEEPER_DEBUG"):
                raise
            if isinstance(exc, SessionkeeperError):
                exc = name_option(exc, mode.command)
            raise typer.Exit(report_error(exc)) from None


# ── human output ──────────────────────────────────────────────────────────────


def when(value: datetime | str | None) -> str:
    """A timestamp for tables: local-free UTC, to the second."""
    if value is None:
        return "—"
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value
    else:
        moment = value
    return moment.strftime("%Y-%m-%d %H:%M:%S")


MIN_COLUMN = 4  # a column squeezed as a last resort still shows "ab…"
SQUEEZE_MIN = 12  # a squeezable column (title, label…) is not cut shorter than this first


def fit_widths(
    natural: Sequence[int], mins: Sequence[int], order: Sequence[int], room: int
) -> list[int] | None:
    """Widths that fit ``room`` cells: the columns of ``order`` are cut in that order, each
    down to its ``mins`` at most; None if that is not enough."""
    widths = list(natural)
    excess = sum(widths) - room
    for i in order:
        if excess <= 0:
            break
        cut = min(excess, widths[i] - mins[i])
        widths[i] -= cut
        excess -= cut
    return widths if excess <= 0 else None


def print_table(
    title: str | None,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    caption: str | None = None,
    keep: Collection[str] = (),
    squeeze: Collection[str] = (),
    drop: Sequence[str] = (),
    wrap: Collection[str] = (),
) -> None:
    """A table that fits the terminal and never breaks a ``keep`` column (ids) over lines.

    To make room, in order: ``squeeze`` columns are cut short with "…" (down to 12 cells;
    ``wrap`` columns fold onto more lines instead), the ``drop`` columns are left out one by
    one, then every other column is cut. If the kept columns alone are wider than the
    terminal, the table is printed wider than it: the terminal may wrap the line on screen,
    but no line break is ever put inside an id, so it can be copied whole.
    """
    from rich.table import Table
    from rich.text import Text

    cells = [
        [v if isinstance(v, Text) else Text("—" if v is None else str(v)) for v in row]
        for row in rows  # Text, not markup: a title like "[draft]" prints as written
    ]
    natural = [
        max([len(name)] + [cells_width(row[i]) for row in cells]) for i, name in enumerate(columns)
    ]
    shown = list(range(len(columns)))
    pending = [columns.index(name) for name in drop if name in columns]
    target = console()

    def attempt(cut_all: bool) -> list[int] | None:
        mins = []
        for i in shown:
            name = columns[i]
            if name in keep:
                mins.append(natural[i])
            elif name in squeeze or name in wrap:
                mins.append(min(natural[i], max(SQUEEZE_MIN, len(name))))
            else:
                mins.append(min(natural[i], max(MIN_COLUMN, len(name))))
        # The squeezable columns, the last named first; then, as a last resort, the rest.
        named = [columns.index(n) for n in (*squeeze, *wrap) if n in columns and n not in keep]
        order = [shown.index(c) for c in reversed(named) if c in shown]
        if cut_all:
            rest = [
                i for i in range(len(shown)) if i not in order and columns[shown[i]] not in keep
            ]
            order += sorted(rest, key=lambda i: -natural[shown[i]])
        chrome = 2 * (len(shown) - 1)  # one space of padding each side between columns
        return fit_widths([natural[i] for i in shown], mins, order, target.width - chrome)

    widths = attempt(False)
    while widths is None and pending:
        shown.remove(pending.pop(0))
        widths = attempt(False)
    if widths is None:
        widths = attempt(True)
    if widths is None:  # the ids alone do not fit: overflow the terminal rather than break one
        widths = [natural[i] if columns[i] in keep else min(natural[i], MIN_COLUMN) for i in shown]
        target = console(width=sum(widths) + 2 * (len(shown) - 1))
    table = Table(
        title=title,
        caption=caption,
        box=None,
        pad_edge=False,
        show_edge=False,
        header_style="bold underline",
    )
    for i, width in zip(shown, widths, strict=True):
        name = columns[i]
        if name in wrap:
            table.add_column(name, overflow="fold", width=width)
        else:
            cut: OverflowMethod = "ignore" if name in keep else "ellipsis"
            table.add_column(name, no_wrap=True, overflow=cut, width=width)
    for row in cells:
        table.add_row(*(row[i] for i in shown))
    target.print(table)


def cells_width(text: Any) -> int:
    """Terminal cells of a Text (wide characters count two); its widest line."""
    from rich.cells import cell_len

    return max((cell_len(line) for line in str(text).split("\n")), default=0)


def print_fields(title: str | None, fields: Iterable[tuple[str, Any]]) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for name, value in fields:
        table.add_row(name, Text("—" if value is None else str(value)))
    console().print(table)


def say(text: str) -> None:
    """A plain line of human output (markup allowed)."""
    console().print(text)


def plain(text: str) -> None:
    """A line of human output printed exactly as given (no markup: data, not decoration)."""
    from rich.text import Text

    console().print(Text(text))


def unwrapped(text: str) -> None:
    """A line printed as one line at any terminal width, never wrapped nor centred: the
    terminal may fold it on screen, but a copy gets it whole (a ``--cursor`` to paste)."""
    from rich.text import Text

    console().print(Text(text), soft_wrap=True)


def age(delta: timedelta) -> str:
    """A duration for tables, two units at most: ``45s``, ``17m``, ``3h 5m``, ``12d 4h``."""
    seconds = max(0, int(delta.total_seconds()))
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    return f"{minutes}m" if minutes else f"{seconds}s"

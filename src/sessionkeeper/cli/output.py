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
130   interrupted (Ctrl-C)
====  =====================================================================

Every failure prints one red line on stderr, no traceback (``SESSIONKEEPER_DEBUG=1`` shows
it). Under ``--json`` stdout also gets ``{"error": {"code", "message", "exit_code"}}`` so a
script reading stdout always gets JSON.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperGroup

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

if TYPE_CHECKING:
    from rich.console import Console

OK = 0
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
    """Per-invocation output mode, set by the ``--json`` option's callback."""

    json = False


mode = _Mode()


def set_json(value: bool) -> bool:
    """Callback of every ``--json`` option (so the error handler knows the mode too)."""
    if value:
        mode.json = True
    return value


def console() -> Console:
    from rich.console import Console

    return Console(soft_wrap=False, highlight=False)


def err_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


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
    return str(exc) or type(exc).__name__


def report_error(exc: BaseException) -> int:
    """Print ``exc`` as one red line on stderr (and JSON on stdout under --json); the code."""
    code = exit_code_for(exc)
    message = fail_message(exc)
    if mode.json:
        emit_json({"error": {"code": error_code_for(exc), "message": message, "exit_code": code}})
    from rich.markup import escape

    err_console().print(f"[bold red]error:[/] [red]{escape(message)}[/]")
    return code


class SessionkeeperGroup(TyperGroup):
    """Root command group: maps every expected failure to its exit code (see the table)."""

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        mode.json = False
        try:
            return super().invoke(ctx)
        except (SessionkeeperError, OSError) as exc:
            # The Store translates every driver error (a database gone mid-command is
            # Unavailable), so anything else is a bug and keeps its traceback.
            if os.environ.get("SESSIONKEEPER_DEBUG"):
                raise
            raise typer.Exit(report_error(exc)) from None
        except KeyboardInterrupt as exc:
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


def print_table(
    title: str | None,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    caption: str | None = None,
) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, caption=caption, show_lines=False, header_style="bold")
    for name in columns:
        table.add_column(name, overflow="fold")
    for row in rows:  # Text, not markup: a title like "[draft]" must print as written
        table.add_row(*(Text("—" if v is None else str(v)) for v in row))
    console().print(table)


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


def plural(count: int, word: str) -> str:
    """``1 session``, ``2 sessions``."""
    return f"{count} {word}{'' if count == 1 else 's'}"

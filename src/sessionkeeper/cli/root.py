"""The root Typer app: the global ``--db`` option, the command groups, ``main()``.

The store is chosen by ``--db URL``, else SESSIONKEEPER_DATABASE_URL, else a SQLite file in
the user data dir; the current session is remembered per database (``files/state.py``).
Exit codes and error printing: ``output`` (one table, one place), through the root group class.
"""

from __future__ import annotations

from typing import Annotated

import typer

from sessionkeeper.cli import admin, common, fs, keys, sessions, transfer
from sessionkeeper.cli.output import SessionkeeperGroup

app = typer.Typer(
    name="sessionkeeper",
    cls=SessionkeeperGroup,
    no_args_is_help=True,
    add_completion=False,
    # Plain click help: Typer's Rich help formatter alone costs ~0.1 s of startup.
    rich_markup_mode=None,
    help="Conversation-session memory for LLM agents (SQLite or PostgreSQL).",
    epilog="Exit codes: 0 ok, 1 error, 2 invalid input, 3 not found, 4 conflict, "
    "5 too large, 6 unavailable or schema mismatch, 7 forbidden.",
)


@app.callback()
def root(
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            metavar="URL",
            help="Database URL (sqlite:///file.db or postgresql://…); "
            "default $SESSIONKEEPER_DATABASE_URL, else SQLite in the user data dir.",
        ),
    ] = None,
) -> None:
    """Conversation-session memory for LLM agents (SQLite or PostgreSQL)."""
    common.options.db = db


app.add_typer(sessions.app)
app.add_typer(admin.app)
app.add_typer(transfer.app)
app.add_typer(admin.db_app, name="db")
app.add_typer(fs.app, name="fs")
app.add_typer(fs.skill_app)
app.add_typer(keys.keys_app, name="keys")


def main() -> None:
    app(prog_name="sessionkeeper")

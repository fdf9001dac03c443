"""The ``sessionkeeper`` command line (also ``python -m sessionkeeper``).

Commands live in small modules, merged here into one Typer app:

- ``cli_sessions``: new, current, switch, list, show, add, ask, end, delete, search
- ``cli_admin``: stats, ghosts, prune, serve, db upgrade
- ``cli_io``: export, import
- ``cli_fs``: fs list/delete/prune/stats/orphans/cleanup-after-delegation, skill

Exit codes and error printing: ``cli_output`` (one table, one place). The store is chosen by
``--db URL``, else SESSIONKEEPER_DATABASE_URL, else a SQLite file in the user data dir; the
current session is remembered per database (``files/state.py``).

Startup is kept short: only Typer and Rich load at import; everything else (SQLAlchemy,
pydantic settings, tiktoken, httpx, FastAPI, Alembic) is imported by the commands using it.
"""

from __future__ import annotations

from typing import Annotated

import typer

from sessionkeeper import cli_admin, cli_fs, cli_io, cli_keys, cli_sessions
from sessionkeeper import cli_common as common
from sessionkeeper.cli_output import SessionkeeperGroup

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


app.add_typer(cli_sessions.app)
app.add_typer(cli_admin.app)
app.add_typer(cli_io.app)
app.add_typer(cli_admin.db_app, name="db")
app.add_typer(cli_fs.app, name="fs")
app.add_typer(cli_fs.skill_app)
app.add_typer(cli_keys.keys_app, name="keys")


def main() -> None:
    app(prog_name="sessionkeeper")

"""What every CLI command shares: the database choice, running the async Store, the current session.

Startup speed matters (``sessionkeeper list`` is typed by hand): this module imports nothing
heavy. The Store and its driver, Settings (pydantic), tiktoken, httpx, FastAPI and Alembic are
imported inside the commands that need them.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from sessionkeeper.cli import output
from sessionkeeper.errors import NotFound
from sessionkeeper.files.state import CurrentSession
from sessionkeeper.paths import default_database_url

if TYPE_CHECKING:
    from sessionkeeper import Store
    from sessionkeeper.config import Settings

T = TypeVar("T")

DATABASE_ENV = "SESSIONKEEPER_DATABASE_URL"
ENCODING_ENV = "SESSIONKEEPER_ENCODING"

JsonOpt = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Print JSON (stable shapes) instead of tables.",
        callback=output.set_json,
    ),
]


class _Globals:
    """Options given before the command (``sessionkeeper --db URL list``)."""

    db: str | None = None


options = _Globals()


def database_url() -> str:
    """``--db``, else ``$SESSIONKEEPER_DATABASE_URL``, else SQLite in the user data dir.

    Read without building ``Settings`` (pydantic-settings costs ~0.3 s of startup); the
    variable is the one ``Settings.database_url`` reads.
    """
    return options.db or os.environ.get(DATABASE_ENV) or default_database_url()


def database_configured() -> bool:
    """True when a database was chosen explicitly (``--db`` or the environment)."""
    return bool(options.db or os.environ.get(DATABASE_ENV))


def encoding() -> str:
    return os.environ.get(ENCODING_ENV) or "cl100k_base"


def settings(**overrides: object) -> Settings:
    """Full settings (model server, limits…), with ``--db`` applied; for ask and serve."""
    from sessionkeeper.config import Settings

    if options.db:
        overrides.setdefault("database_url", options.db)
    return Settings(**overrides)  # type: ignore[arg-type]


def run(work: Callable[[Store], Awaitable[T]], *, url: str | None = None) -> T:
    """Open the store, run ``work(store)`` on a fresh event loop, close the store."""

    import asyncio

    async def main() -> T:
        from sessionkeeper import Store

        store = await Store.open(url or database_url(), encoding=encoding())
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(main())


def memory() -> CurrentSession:
    return CurrentSession()


def current_id(required: bool = True) -> str | None:
    """The remembered current session of this database."""
    sid = memory().get(database_url())
    if sid is None and required:
        raise NotFound(
            "no current session for this database: run `sessionkeeper new` or "
            "`sessionkeeper switch ID`"
        )
    return sid


def session_or_current(session_id: str | None) -> str:
    if session_id:
        return session_id
    sid = current_id()
    assert sid is not None
    return sid


def remember(session_id: str) -> None:
    memory().set(database_url(), session_id)


def forget(session_id: str) -> None:
    memory().clear(database_url(), session_id)

"""Schema migrations: Alembic, run on the backend's own connections when a store opens.

SQLAlchemy and Alembic own the schema (``schema.py``, ``migrations/``) but take no part in
running the store: they are imported only here, and only when a database is empty or older
than this code (a store at the current revision opens without importing them).

Several processes opening an empty database at once must not race on CREATE TABLE: the
migration holds a lock (PostgreSQL: a transaction-level advisory lock; SQLite:
``BEGIN IMMEDIATE``) and re-reads the revision under it, so the second process finds the
work done.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sessionkeeper.errors import SchemaMismatch
from sessionkeeper.store.revision import SCHEMA_REVISION

logger = logging.getLogger(__name__)

# Any constant works; it only has to be the same in every process using the database.
MIGRATION_LOCK_KEY = 0x53455353  # "SESS"


def newer_message(found: str) -> str:
    return (
        f"the database schema is at revision {found}, newer than this sessionkeeper "
        f"understands ({SCHEMA_REVISION}); upgrade sessionkeeper"
    )


def older_message(found: str) -> str:
    return (
        f"the database schema is at revision {found}, older than this sessionkeeper needs "
        f"({SCHEMA_REVISION}); run `sessionkeeper db upgrade`"
    )


def _current_revision(sync_conn: Any) -> str | None:
    from sqlalchemy import text

    if not sync_conn.dialect.has_table(sync_conn, "alembic_version"):
        return None
    row = sync_conn.execute(text("SELECT version_num FROM alembic_version")).first()
    return str(row[0]) if row else None


def _upgrade_locked(sync_conn: Any, target: str) -> tuple[str | None, str]:
    """Under the migration lock: re-read the revision, migrate if still needed."""
    from alembic import command
    from alembic.config import Config

    before = _current_revision(sync_conn)
    if before is not None and before > SCHEMA_REVISION:
        raise SchemaMismatch(newer_message(before))
    if before != SCHEMA_REVISION:
        cfg = Config()
        cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, target)
    after = _current_revision(sync_conn) or ""
    logger.info("database schema at %s (was %s)", after, before or "empty")
    return before, after


def on_sqlite(conn: sqlite3.Connection, target: str) -> tuple[str | None, str]:
    """Migrate through the given sqlite3 connection (the writer's; in memory, the only one)."""
    from sqlalchemy import create_engine, event
    from sqlalchemy.pool import StaticPool

    engine = create_engine("sqlite://", creator=lambda: conn, poolclass=StaticPool)

    @event.listens_for(engine, "begin")
    def _begin(sa_conn: Any) -> None:
        # The connection runs with isolation_level=None: we say BEGIN ourselves, IMMEDIATE so
        # a second process waits for this migration instead of racing it.
        sa_conn.exec_driver_sql("BEGIN IMMEDIATE")

    # Not disposed: that would close the backend's connection.
    with engine.connect() as sa_conn, sa_conn.begin():
        return _upgrade_locked(sa_conn, target)


async def on_postgres(connect: Callable[[], Awaitable[Any]], target: str) -> tuple[str | None, str]:
    """Migrate on a connection made by the backend (same settings, e.g. search_path)."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    engine = create_async_engine("postgresql+asyncpg://", async_creator=connect, poolclass=NullPool)
    try:
        async with engine.connect() as conn, conn.begin():
            await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
            return await conn.run_sync(_upgrade_locked, target)
    finally:
        await engine.dispose()

"""Engines for the two dialects, and the schema check every Store makes when it opens.

SQLite notes (each closes a race or a loss):
- WAL lets readers run beside the one writer; busy_timeout makes a second writer wait
  instead of failing with "database is locked".
- synchronous=FULL: a committed message survives power loss, not just a crash.
- Writes begin with BEGIN IMMEDIATE (the ``sk_write`` execution option). A deferred BEGIN
  that reads then writes can deadlock against another writer ("database is locked" with no
  wait); taking the write lock first makes writers queue on busy_timeout instead.
- foreign_keys=ON, or ON DELETE CASCADE does nothing.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from pathlib import Path
from typing import Any

from sqlalchemy import event, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from sessionkeeper.errors import InvalidInput, SchemaMismatch, Unavailable
from sessionkeeper.store.schema import SCHEMA_REVISION

logger = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_S = 30.0
# Any constant works; it only has to be the same in every process using the database.
MIGRATION_LOCK_KEY = 0x53455353  # "SESS"


def normalize_url(url: str) -> URL:
    """Accept plain ``sqlite:///…`` / ``postgresql://…`` URLs as well as the async forms."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise InvalidInput(f"not a database URL: {url!r} ({exc})") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+asyncpg")
    raise InvalidInput(f"unsupported database {backend!r}: use sqlite:///path or postgresql://…")


def _is_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:")


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "postgresql":
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 10)
        kwargs.setdefault("pool_pre_ping", False)
        return create_async_engine(parsed, **kwargs)
    if _is_memory(parsed):
        kwargs.setdefault("poolclass", StaticPool)
    else:
        Path(str(parsed.database)).expanduser().parent.mkdir(parents=True, exist_ok=True)
    kwargs.setdefault("connect_args", {"timeout": SQLITE_BUSY_TIMEOUT_S})
    engine = create_async_engine(parsed, **kwargs)
    install_sqlite_hooks(engine)
    return engine


_hooked: weakref.WeakSet[Any] = weakref.WeakSet()


def install_sqlite_hooks(engine: AsyncEngine) -> None:
    """Pragmas on connect, and BEGIN / BEGIN IMMEDIATE emitted by us rather than the driver.

    Idempotent; for an engine made elsewhere it applies to connections opened afterwards.
    """
    sync_engine = engine.sync_engine
    if engine.dialect.name != "sqlite" or sync_engine in _hooked:
        return
    _hooked.add(sync_engine)

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's begin() decide the BEGIN statement (pysqlite otherwise begins lazily).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        options = conn.get_execution_options()
        if options.get("isolation_level") == "AUTOCOMMIT":
            return  # e.g. VACUUM, which SQLite refuses inside a transaction
        conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get("sk_write", False) else "BEGIN")


async def current_revision(conn: AsyncConnection) -> str | None:
    """The alembic revision of the database, or None for a database with no schema at all."""
    has_table = await conn.run_sync(
        lambda sync_conn: sync_conn.dialect.has_table(sync_conn, "alembic_version")
    )
    if not has_table:
        return None
    row = (
        await conn.execute(select(text("version_num")).select_from(text("alembic_version")))
    ).first()
    return str(row[0]) if row else None


async def _lock_for_migration(conn: AsyncConnection) -> None:
    # Several processes opening an empty database at once must not race on CREATE TABLE.
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})


def _run_alembic_upgrade(sync_conn: Any, target: str) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.attributes["connection"] = sync_conn
    command.upgrade(cfg, target)


async def upgrade(engine: AsyncEngine, target: str = "head") -> tuple[str | None, str]:
    """Migrate the database to ``target``; returns (revision before, revision after)."""
    async with engine.connect() as conn:
        conn = await conn.execution_options(sk_write=True)
        async with conn.begin():
            await _lock_for_migration(conn)
            before = await current_revision(conn)
            if before is not None and before > SCHEMA_REVISION:
                raise SchemaMismatch(_newer_message(before))
            if before != SCHEMA_REVISION:
                await conn.run_sync(_run_alembic_upgrade, target)
            after = await current_revision(conn)
    return before, after or ""


def _newer_message(found: str) -> str:
    return (
        f"the database schema is at revision {found}, newer than this sessionkeeper "
        f"understands ({SCHEMA_REVISION}); upgrade sessionkeeper"
    )


async def ensure_schema(engine: AsyncEngine, *, upgrade_older: bool = False) -> None:
    """Migrate an empty database; refuse, with the fix in the message, one at another revision."""
    try:
        async with engine.connect() as conn:
            found = await current_revision(conn)
    except (OperationalError, OSError, ProgrammingError) as exc:
        raise Unavailable(f"cannot open the database: {exc}") from exc
    if found == SCHEMA_REVISION:
        return
    if found is None or upgrade_older:
        if found is not None and found > SCHEMA_REVISION:
            raise SchemaMismatch(_newer_message(found))
        before, after = await upgrade(engine)
        logger.info("database schema migrated from %s to %s", before or "empty", after)
        return
    if found > SCHEMA_REVISION:
        raise SchemaMismatch(_newer_message(found))
    raise SchemaMismatch(
        f"the database schema is at revision {found}, older than this sessionkeeper needs "
        f"({SCHEMA_REVISION}); run `sessionkeeper db upgrade`"
    )


async def ping(engine: AsyncEngine, seconds: float = 5.0) -> None:
    """Raise if the database does not answer a trivial query within ``seconds``."""
    async with asyncio.timeout(seconds), engine.connect() as conn:
        await conn.execute(text("SELECT 1"))

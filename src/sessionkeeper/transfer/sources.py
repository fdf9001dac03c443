"""Read-only connections to another store's database (the importers' ``--from`` sources).

An importer reads the source's tables directly with the drivers sessionkeeper already has, so
no source library (openai-agents, langchain-postgres, google-adk …) is needed at run time:

- a SQLite file through ``sqlite3`` opened read-only (``mode=ro``): a missing path is
  ``NotFound`` and is never created, a file that is not a database is ``InvalidInput``;
- a PostgreSQL URL through ``asyncpg`` (``postgresql://``, and the SQLAlchemy spellings
  ``postgresql+asyncpg://`` / ``postgresql+psycopg://`` the frameworks' own URLs use).

SQL is written once per reader with ``:name`` parameters; :class:`PostgresSource` turns them
into asyncpg's ``$n``. Table names given by the user are checked against the source's own
list before they are quoted into a statement. Driver errors become the store's error types
here, once.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from sessionkeeper.errors import InvalidInput, NotFound, Unavailable
from sessionkeeper.transfer.records import parse_time

Row = tuple[Any, ...]
_PARAM = re.compile(r"(?<!:):([A-Za-z_]\w*)")
CONNECT_TIMEOUT = 10.0


class Source(Protocol):
    """A source database opened for reading."""

    label: str

    async def fetch(self, sql: str, params: dict[str, Any] | None = None) -> list[Row]: ...

    async def tables(self) -> set[str]: ...

    async def columns(self, table: str) -> set[str]: ...

    async def close(self) -> None: ...


def quoted(name: str) -> str:
    """``name`` as an SQL identifier (only ever a name the source's own catalogue listed)."""
    return '"' + name.replace('"', '""') + '"'


def to_time(value: Any, what: str) -> datetime:
    """A source timestamp (a driver's datetime, naive = UTC, or text / epoch) as aware UTC."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return parse_time(value, what)


class SQLiteSource:
    """A SQLite file, read-only; each query runs on a worker thread (one connection, used by
    one thread at a time)."""

    def __init__(self, path: Path) -> None:
        self.label = str(path)
        if not path.exists():
            raise NotFound(f"no such file: {path}")
        if not path.is_file():
            raise InvalidInput(f"{path} is not a regular file")
        uri = f"file:{quote(str(path.resolve()))}?mode=ro"
        try:
            self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
            self._conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError as exc:
            raise InvalidInput(f"{path} is not a SQLite database ({exc})") from exc
        self._lock = asyncio.Lock()

    def _run(self, sql: str, params: dict[str, Any]) -> list[Row]:
        try:
            return [tuple(row) for row in self._conn.execute(sql, params)]
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise Unavailable(f"{self.label} is locked by another process ({exc})") from exc
            raise InvalidInput(f"{self.label}: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            raise InvalidInput(f"{self.label} cannot be read ({exc})") from exc

    async def fetch(self, sql: str, params: dict[str, Any] | None = None) -> list[Row]:
        async with self._lock:
            return await asyncio.to_thread(self._run, sql, params or {})

    async def tables(self) -> set[str]:
        rows = await self.fetch("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")
        return {r[0] for r in rows}

    async def columns(self, table: str) -> set[str]:
        rows = await self.fetch(f"PRAGMA table_info({quoted(table)})")
        return {r[1] for r in rows}

    async def close(self) -> None:
        self._conn.close()


class PostgresSource:
    """A PostgreSQL database through one asyncpg connection, in a read-only transaction."""

    def __init__(self, url: str, conn: Any) -> None:
        self.label = _safe_url(url)
        self._conn = conn

    @classmethod
    async def open(cls, url: str) -> PostgresSource:
        import asyncpg

        dsn = re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", url)
        try:
            conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT)
        except asyncpg.InvalidCatalogNameError as exc:
            raise NotFound(f"no such database: {_safe_url(url)} ({exc})") from exc
        except (asyncpg.InvalidAuthorizationSpecificationError, asyncpg.InvalidPasswordError) as e:
            raise InvalidInput(f"{_safe_url(url)}: {e}") from e
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            raise Unavailable(f"cannot connect to {_safe_url(url)} ({exc})") from exc
        except ValueError as exc:  # a URL asyncpg cannot parse
            raise InvalidInput(f"bad PostgreSQL URL {_safe_url(url)}: {exc}") from exc
        await conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        return cls(url, conn)

    async def fetch(self, sql: str, params: dict[str, Any] | None = None) -> list[Row]:
        import asyncpg

        names: list[str] = []

        def number(match: re.Match[str]) -> str:
            if match.group(1) not in names:
                names.append(match.group(1))
            return f"${names.index(match.group(1)) + 1}"

        statement = _PARAM.sub(number, sql)
        values = [(params or {})[n] for n in names]
        try:
            return [tuple(r) for r in await self._conn.fetch(statement, *values)]
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError) as exc:
            raise Unavailable(f"{self.label}: {exc}") from exc
        except asyncpg.PostgresError as exc:
            raise InvalidInput(f"{self.label}: {exc}") from exc

    async def tables(self) -> set[str]:
        rows = await self.fetch(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = ANY(current_schemas(false))"
        )
        return {r[0] for r in rows}

    async def columns(self, table: str) -> set[str]:
        rows = await self.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = :t "
            "AND table_schema = ANY(current_schemas(false))",
            {"t": table},
        )
        return {r[0] for r in rows}

    async def close(self) -> None:
        await self._conn.close()


def _safe_url(url: str) -> str:
    """The URL without its password (it is printed in messages and summaries)."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


async def open_file(path: str) -> SQLiteSource:
    return SQLiteSource(Path(path))


async def open_url(url: str) -> Source:
    """A SQLite (``sqlite:///path``, any ``sqlite+driver``) or PostgreSQL URL, or a plain path."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if not scheme:
        return SQLiteSource(Path(url))
    if scheme.startswith("sqlite"):
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            database = make_url(url).database
        except ArgumentError as exc:
            raise InvalidInput(f"bad SQLite URL {url!r}: {exc}") from exc
        if not database or database == ":memory:":
            raise InvalidInput(f"{url}: an in-memory SQLite database cannot be imported")
        return SQLiteSource(Path(database))
    if scheme.startswith(("postgresql", "postgres")):
        return await PostgresSource.open(url)
    raise InvalidInput(f"unsupported source URL {_safe_url(url)}: use sqlite:/// or postgresql://")


async def require_table(source: Source, table: str, columns: set[str], what: str) -> None:
    """Refuse a source that lacks ``table`` or any of its ``columns``: not ``what`` (e.g.
    "an OpenAI Agents SDK session database")."""
    if table not in await source.tables():
        raise InvalidInput(f"{source.label} has no table {table!r}: not {what}")
    missing = columns - await source.columns(table)
    if missing:
        raise InvalidInput(
            f"{source.label}: table {table!r} has no column {', '.join(sorted(missing))}: "
            f"not {what}"
        )


__all__ = [
    "PostgresSource",
    "SQLiteSource",
    "Source",
    "open_file",
    "open_url",
    "quoted",
    "require_table",
    "to_time",
]

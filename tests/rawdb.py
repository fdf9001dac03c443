"""Raw SQL on a store's own database, for tests that must look under (or past) the Store.

Runs on the store's backend connections, so it works for in-memory SQLite too. Write SQL
with ``?`` placeholders; they become ``$1, $2 …`` on PostgreSQL.
"""

from __future__ import annotations

import re
from typing import Any

from sessionkeeper.store.core import Store


def _pg(sql: str) -> str:
    counter = iter(range(1, 1000))
    return re.sub(r"\?", lambda _m: f"${next(counter)}", sql)


async def fetch(store: Store | Any, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` run on a Store's backend (or on a backend given directly)."""
    backend: Any = getattr(store, "_backend", store)
    if backend.dialect == "sqlite":
        return await backend._write(lambda c: [tuple(r) for r in c.execute(sql, params)])
    async with backend._conn() as conn:
        return [tuple(r) for r in await conn.fetch(_pg(sql), *params)]


async def execute(store: Store | Any, sql: str, *params: Any) -> None:
    await fetch(store, sql, *params)


def when(store: Store, value: Any) -> Any:
    """A datetime as the database stores it (text on SQLite)."""
    if store.dialect == "sqlite":
        from sessionkeeper.store.backends.statements import sqlite_time

        return sqlite_time(value)
    return value

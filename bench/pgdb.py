"""Throw-away PostgreSQL databases for the benches: created beside
``$SESSIONKEEPER_BENCH_PG_URL`` (default: the local server's ``postgres`` database) and
dropped at the end, also on failure."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

PG_ADMIN = os.environ.get(
    "SESSIONKEEPER_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@asynccontextmanager
async def pg_databases(*names: str) -> AsyncIterator[list[str]]:
    """Fresh databases ``sk_bench_<name>_<pid>``; yields their URLs."""
    import asyncpg

    full = [f"sk_bench_{name}_{os.getpid()}" for name in names]
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        for name in full:
            await admin.execute(f"DROP DATABASE IF EXISTS {name}")
            await admin.execute(f"CREATE DATABASE {name}")
        base = PG_ADMIN.rsplit("/", 1)[0]
        yield [f"{base}/{name}" for name in full]
    finally:
        for name in full:
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


@asynccontextmanager
async def pg_database(name: str) -> AsyncIterator[str]:
    """One fresh database ``sk_bench_<name>_<pid>``; yields its URL."""
    async with pg_databases(name) as urls:
        yield urls[0]

"""Throw-away databases for the benches. PostgreSQL ones are created beside
``$SESSIONKEEPER_BENCH_PG_URL`` (default: the local server's ``postgres`` database) and
dropped at the end, also on failure."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
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


async def scratch_database(stack: AsyncExitStack, db: str, name: str) -> tuple[str, Path | None]:
    """One bench run's database, gone when ``stack`` closes: a SQLite file in a temporary
    directory beside the benches (on the real disk, not a tmpfs), with its path; or a
    PostgreSQL database (``pg_database``), with no path."""
    if db == "sqlite":
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=HERE, prefix=f"sk_{name}_")))
        path = tmp / f"{name}.db"
        return f"sqlite:///{path}", path
    return await stack.enter_async_context(pg_database(name)), None

"""The PostgreSQL fast lane's connection keeping (the rest runs through every store test)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from sessionkeeper.store.lanes import Connections


@pytest.fixture
def dsn(pg_database_url: str) -> str:
    return pg_database_url


async def test_more_callers_than_connections_all_finish(dsn: str) -> None:
    conns = Connections(dsn, size=2)
    try:
        results = await asyncio.gather(
            *(conns.run("fetchval", "SELECT $1::int FROM pg_sleep(0.01)", i) for i in range(20))
        )
        assert results == list(range(20))
        assert conns._opened <= 2
    finally:
        await conns.close()


async def test_server_error_keeps_the_connection_cancel_discards_it(dsn: str) -> None:
    conns = Connections(dsn, size=1)
    try:
        with pytest.raises(asyncpg.PostgresError):
            await conns.run("fetchval", "SELECT 1/0")
        assert (conns._opened, len(conns._idle)) == (1, 1)
        task = asyncio.create_task(conns.run("fetchval", "SELECT pg_sleep(5)"))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (conns._opened, len(conns._idle)) == (0, 0)
        assert await conns.run("fetchval", "SELECT 7") == 7  # a fresh connection
    finally:
        await conns.close()
    with pytest.raises(RuntimeError, match="closed"):
        await conns.run("fetchval", "SELECT 1")

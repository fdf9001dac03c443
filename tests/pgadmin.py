"""The machine's PostgreSQL as the tests use it: its admin URL, a database's URL beside it,
one admin statement, and emptying a database. A module of its own (not conftest.py) so that
test files can import it: under xdist, ``conftest`` may name tests/integrations/conftest.py.
"""

from __future__ import annotations

import os

PG_ADMIN_URL = os.environ.get(
    "SESSIONKEEPER_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def _pg_url_for(database: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(PG_ADMIN_URL).set(database=database).render_as_string(hide_password=False)


async def _admin(sql: str) -> None:
    import asyncpg

    url = PG_ADMIN_URL.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(url, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _reset_pg(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url, timeout=5)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    finally:
        await conn.close()

"""Shared fixtures: every store test runs on a real SQLite file AND a real PostgreSQL.

PostgreSQL comes from SESSIONKEEPER_TEST_PG_URL (default: the local server's ``test``
database). Each test run creates its own database beside it, so parallel runs don't meet,
and drops it at the end. If the server is unreachable the PostgreSQL tests skip with a loud
reason locally, and FAIL under CI=true: CI must never pass without having run them.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from pgadmin import PG_ADMIN_URL, _admin, _pg_url_for, _reset_pg
from pgcluster import ClusterUnavailable, PgCluster
from sessionkeeper.store.core import Store

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run (dropped afterwards)."""
    name = f"sk_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        message = f"PostgreSQL at {PG_ADMIN_URL} is not usable: {exc!r}"
        if IN_CI:
            pytest.fail(f"{message} (CI=true: PostgreSQL tests must run)", pytrace=False)
        pytest.skip(f"!!! SKIPPING POSTGRESQL TESTS: {message}")
    yield _pg_url_for(name)
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "sqlite-memory", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty database: a SQLite file, SQLite in memory, PostgreSQL.

    In-memory SQLite is one database per Store (one connection): tests that open a second
    Store, a server process or a CLI on the same URL use ``file_db_url`` instead.
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    if request.param == "sqlite-memory":
        yield "sqlite://"
        return
    url: str = request.getfixturevalue("pg_database_url")
    asyncio.run(_reset_pg(url))
    yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def file_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty database that several stores and processes can share."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    url: str = request.getfixturevalue("pg_database_url")
    asyncio.run(_reset_pg(url))
    yield url


@pytest.fixture
def pg_cluster() -> Iterator[PgCluster]:
    """A private PostgreSQL cluster (``pgcluster.py``) for tests that break it: fresh,
    always stopped and removed, and no process of it may remain."""
    try:
        cluster = PgCluster()
    except ClusterUnavailable as exc:
        message = f"cannot run a private PostgreSQL cluster: {exc}"
        if IN_CI:
            pytest.fail(f"{message} (CI=true: the fault tests must run)", pytrace=False)
        pytest.skip(f"!!! SKIPPING POSTGRESQL FAULT TESTS: {message}")
    try:
        cluster.start()
        yield cluster
    finally:
        leftovers = cluster.stop()
    assert not leftovers, f"processes of the private cluster outlived stop(): {leftovers}"


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    s = await Store.open(db_url)
    try:
        yield s
    finally:
        await s.close()

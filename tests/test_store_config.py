"""Connection settings come from one place: the URL and keyword arguments (issue 7, item 2).

A store opened on a non-default PostgreSQL schema keeps every row there, whichever way the
schema is given (URL parameter, libpq ``options``, ``server_settings``, SQLAlchemy's
``connect_args``, or a caller's SQLAlchemy engine). SQLite URL parameters, URL masking and
the timeout setting are checked here too, and that a store at the current schema runs
without importing SQLAlchemy.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
import pytest

from sessionkeeper.errors import InvalidInput, SessionkeeperError
from sessionkeeper.models import Message, Session
from sessionkeeper.store.core import Store
from sessionkeeper.store.url import TIMEOUT_ENV, masked, parse

TENANT = "tenant"


# ── a whole store in a non-default PostgreSQL schema ───────────────────────


@pytest.fixture
async def tenant_db(pg_database_url: str) -> AsyncIterator[str]:
    """The test database with an empty ``public`` and an empty ``tenant`` schema."""
    conn = await asyncpg.connect(pg_database_url, timeout=5)
    try:
        await conn.execute(
            f"DROP SCHEMA IF EXISTS {TENANT} CASCADE; DROP SCHEMA public CASCADE; "
            f"CREATE SCHEMA public; CREATE SCHEMA {TENANT};"
        )
    finally:
        await conn.close()
    yield pg_database_url
    conn = await asyncpg.connect(pg_database_url, timeout=5)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {TENANT} CASCADE")
    finally:
        await conn.close()


async def _exercise(store: Store) -> dict[str, int]:
    """Every kind of operation once; returns the counts the store ends with."""
    old = datetime.now(UTC) - timedelta(days=90)
    a = await store.create_session(agent_id="t", title="tenant chat", metadata={"k": 1})
    await store.add_message(a.session_id, "system", "you are in the tenant schema")
    await store.add_message(a.session_id, "user", "where do the rows go?", metadata={"x": [1]})
    await store.add_messages(
        a.session_id,
        [{"role": "assistant", "content": "into tenant"}, {"role": "user", "content": "good"}],
    )
    assert [m.seq for m in await store.get_messages(a.session_id, last=2)] == [3, 4]
    assert (await store.get_session(a.session_id)).message_count == 4
    assert (await store.list_sessions(agent_id="t")).total == 1
    assert (await store.list_sessions(search="tenant")).total == 1
    assert [h.session_id for h in await store.search_messages("rows")] == [a.session_id]
    window = await store.context_window(a.session_id, 1000)
    assert len(window.messages) == 4
    await store.update_session(a.session_id, title="renamed", metadata={"aria_session_id": "f1"})
    assert [s.session_id for s in await store.find_by_aria_session_id("f1")] == [a.session_id]
    assert (await store.pop_message(a.session_id)) is not None
    await store.delete_message(a.session_id, 1)
    await store.end_session(a.session_id)

    b = await store.create_session(agent_id="t", title="to clear")
    await store.add_message(b.session_id, "user", "soon gone")
    assert await store.clear_messages(b.session_id) == 1
    await store.delete_session(b.session_id)

    ghost = Session("ghost-1", "t", None, "chat", "active", {}, old, old, None, None, 0, 0)
    assert await store.import_session(ghost, [])
    stale = Session("stale-1", "t", "stale", "chat", "ended", {}, old, old, old, old, 0, 0)
    assert await store.import_session(
        stale, [Message("stale-1", 1, "user", "old words", None, None, 2, {}, old)]
    )
    assert await store.delete_ghost_sessions(older_than_minutes=60) == 1
    assert (await store.prune_old_sessions(days=30, dry_run=True)).session_ids == ["stale-1"]
    assert (await store.prune_old_sessions(days=30)).pruned_count == 1
    keep = Session("kept-1", "t", "kept", "chat", "active", {}, old, old, None, old, 0, 0)
    assert await store.import_session(
        keep, [Message("kept-1", 5, "user", "imported", None, None, 1, {}, old)]
    )
    # An append continues after the imported seq and moves updated_at to now.
    await store.add_message("kept-1", "assistant", "appended after import")

    key, token = await store.keys.create(agent_ids=["t"], name="tenant key")
    assert (await store.keys.verify(token)).key_id == key.key_id
    admin, _ = await store.keys.create(admin=True)
    await store.keys.revoke(admin.key_id)
    assert [k.key_id for k in await store.keys.list()] == [key.key_id]

    async with store.job_lock("tenant-job") as acquired:
        assert acquired
    await store.ping()
    assert await store.schema_revision() is not None
    await store.vacuum()
    stats = await store.get_stats()
    assert stats.total_sessions == 2
    return {
        "sessions": stats.total_sessions,
        "messages": stats.total_messages,
        "api_keys": 2,
    }


async def _relations(url: str) -> dict[str, set[str]]:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        rows = await conn.fetch(
            "SELECT n.nspname, c.relname FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname IN ('public', $1)",
            TENANT,
        )
        functions = await conn.fetch(
            "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = 'public'"
        )
    finally:
        await conn.close()
    found: dict[str, set[str]] = {"public": set(), TENANT: set()}
    for schema, name in rows:
        found[schema].add(name)
    found["public functions"] = {r[0] for r in functions}
    return found


async def _assert_everything_in_tenant(url: str, counts: dict[str, int]) -> None:
    found = await _relations(url)
    assert found["public"] == set(), f"relations created in public: {found['public']}"
    assert found["public functions"] == set()
    assert {"sessions", "messages", "api_keys", "alembic_version"} <= found[TENANT]
    conn = await asyncpg.connect(url, timeout=5)
    try:
        for table, expected in counts.items():
            got = await conn.fetchval(f"SELECT count(*) FROM {TENANT}.{table}")
            assert got == expected, f"{TENANT}.{table}: {got} rows, expected {expected}"
        sums = await conn.fetchrow(
            f"SELECT sum(message_count) AS n, sum(token_count) AS t FROM {TENANT}.sessions"
        )
        live = await conn.fetchrow(
            f"SELECT count(*) AS n, coalesce(sum(token_count), 0) AS t FROM {TENANT}.messages"
        )
        assert (sums["n"], sums["t"]) == (live["n"], live["t"])
    finally:
        await conn.close()


def _in_tenant(url: str) -> dict[str, Callable[[], Awaitable[Store]]]:
    settings = {"search_path": TENANT}
    return {
        "url-search_path": lambda: Store.open(f"{url}?search_path={TENANT}"),
        "url-options": lambda: Store.open(f"{url}?options={quote(f'-c search_path={TENANT}')}"),
        "server_settings": lambda: Store.open(url, server_settings=settings),
        "connect_args": lambda: Store.open(url, connect_args={"server_settings": settings}),
    }


@pytest.mark.parametrize(
    "how", ["url-search_path", "url-options", "server_settings", "connect_args"]
)
async def test_whole_store_in_a_non_default_schema(tenant_db: str, how: str) -> None:
    store = await _in_tenant(tenant_db)[how]()
    try:
        counts = await _exercise(store)
    finally:
        await store.close()
    await _assert_everything_in_tenant(tenant_db, counts)
    # Reopened the same way: the schema is found at its revision, nothing new in public.
    again = await _in_tenant(tenant_db)[how]()
    try:
        assert (await again.get_stats()).total_sessions == counts["sessions"]
    finally:
        await again.close()
    assert (await _relations(tenant_db))["public"] == set()


async def test_store_from_a_sqlalchemy_engine_writes_into_its_schema(tenant_db: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(
        tenant_db.replace("postgresql://", "postgresql+asyncpg://", 1),
        connect_args={"server_settings": {"search_path": TENANT}},
    )
    try:
        store = await Store.from_engine(engine)
        try:
            counts = await _exercise(store)
            # The caller's engine and the store see the same rows (Aria compat shares both).
            async with engine.connect() as conn:
                n = (await conn.execute(text("SELECT count(*) FROM sessions"))).scalar()
            assert n == counts["sessions"]
        finally:
            await store.close()
    finally:
        await engine.dispose()
    await _assert_everything_in_tenant(tenant_db, counts)


async def test_store_from_a_sqlite_engine(tmp_path: Path) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    path = tmp_path / "engine.db"
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
    try:
        store = await Store.from_engine(engine)
        try:
            s = await store.create_session(title="via engine")
            await store.add_message(s.session_id, "user", "hello")
        finally:
            await store.close()
    finally:
        await engine.dispose()
    reopened = await Store.open(f"sqlite:///{path}")
    try:
        assert (await reopened.get_session(s.session_id)).message_count == 1
    finally:
        await reopened.close()


async def test_pg_url_server_settings_reach_the_connections(pg_database_url: str) -> None:
    """Other URL parameters are server settings of every connection the store makes."""
    app = "sk-config-test"
    store = await Store.open(f"{pg_database_url}?application_name={app}", timeout=3)
    try:
        await asyncio.gather(*(store.list_sessions() for _ in range(3)))
        conn = await asyncpg.connect(pg_database_url, timeout=5)
        try:
            seen = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app
            )
        finally:
            await conn.close()
        assert seen >= 1
    finally:
        await store.close()


async def test_unknown_pg_server_setting_is_a_store_error(pg_database_url: str) -> None:
    with pytest.raises(SessionkeeperError) as info:
        await Store.open(f"{pg_database_url}?no_such_setting_xyz=1")
    assert "no_such_setting_xyz" in str(info.value)


async def test_unknown_pg_keyword_is_invalid_input(pg_database_url: str) -> None:
    with pytest.raises(InvalidInput):
        await Store.open(pg_database_url, no_such_option=1)


# ── SQLite URL parameters ──────────────────────────────────────────────────


async def test_sqlite_read_only_reads_and_refuses_writes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ro.db'}"
    rw = await Store.open(url)
    s = await rw.create_session(title="read only")
    await rw.add_message(s.session_id, "user", "hello read-only world")
    await rw.close()

    ro = await Store.open(f"{url}?mode=ro")
    try:
        assert (await ro.get_session(s.session_id)).message_count == 1
        assert [m.content for m in await ro.get_messages(s.session_id)] == ["hello read-only world"]
        assert (await ro.list_sessions()).total == 1
        assert len(await ro.search_messages("world")) == 1
        assert (await ro.context_window(s.session_id, 100)).messages
        assert (await ro.get_stats()).total_messages == 1
        writes: list[Callable[[], Awaitable[Any]]] = [
            lambda: ro.add_message(s.session_id, "user", "no"),
            lambda: ro.create_session(),
            lambda: ro.update_session(s.session_id, title="no"),
            lambda: ro.delete_session(s.session_id),
            lambda: ro.delete_ghost_sessions(0),
        ]
        for write in writes:
            with pytest.raises(SessionkeeperError) as info:
                await write()
            assert type(info.value).__module__.startswith("sessionkeeper")
        assert (await ro.get_session(s.session_id)).message_count == 1
    finally:
        await ro.close()


async def test_sqlite_read_only_beside_a_writer(tmp_path: Path) -> None:
    """mode=ro on a database another store is writing (WAL files present) sees commits."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    rw = await Store.open(url)
    try:
        s = await rw.create_session()
        ro = await Store.open(f"{url}?mode=ro")
        try:
            for i in range(3):
                await rw.add_message(s.session_id, "user", f"m{i}")
                assert len(await ro.get_messages(s.session_id)) == i + 1
        finally:
            await ro.close()
    finally:
        await rw.close()


async def test_sqlite_read_only_on_a_missing_file_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(SessionkeeperError):
        await Store.open(f"sqlite:///{tmp_path / 'absent.db'}?mode=ro")
    assert not (tmp_path / "absent.db").exists()


async def test_sqlite_shared_cache_parameter_is_accepted(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite:///{tmp_path / 'c.db'}?cache=shared")
    try:
        s = await store.create_session()
        await store.add_message(s.session_id, "user", "x")
        assert len(await store.get_messages(s.session_id)) == 1
    finally:
        await store.close()


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///x.db?journal=wal",
        "sqlite:///x.db?mode=xyz",
        "sqlite:///x.db?cache=everything",
        "sqlite:x.db",
        "mysql://root@localhost/db",
        "not a url",
        "",
    ],
)
async def test_bad_urls_are_invalid_input(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # a relative path, if wrongly accepted, lands here
    with pytest.raises(InvalidInput):
        await Store.open(url)
    assert not (tmp_path / "x.db").exists()


async def test_sqlite_refuses_connection_keywords(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        await Store.open(f"sqlite:///{tmp_path / 'k.db'}", server_settings={"a": "b"})


def test_sqlite_url_forms() -> None:
    assert parse("sqlite://").memory
    assert parse("sqlite:///:memory:").memory
    assert str(parse("sqlite:///rel/x.db").path) == "rel/x.db"
    assert str(parse("sqlite:////abs/x.db").path) == "/abs/x.db"
    assert str(parse("sqlite+aiosqlite:////abs/x.db").path) == "/abs/x.db"
    assert parse("sqlite:////abs/x.db?mode=ro").sqlite_params == {"mode": "ro"}


def test_pg_url_forms() -> None:
    cfg = parse(
        "postgresql+asyncpg://u:p@db.example:6432/app"
        "?sslmode=require&connect_timeout=3&application_name=x&options=-c%20work_mem%3D8MB"
    )
    assert cfg.dialect == "postgresql"
    assert "sslmode=require" in cfg.dsn and cfg.dsn.startswith("postgresql://u:p@db.example:6432")
    assert cfg.connect_timeout == 3
    assert cfg.server_settings == {"application_name": "x", "work_mem": "8MB"}
    merged = parse("postgres://h/db?search_path=a", server_settings={"search_path": "b"})
    assert merged.server_settings == {"search_path": "b"}  # the explicit keyword wins


# ── URL masking ────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:secret@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgresql://u:secret@h/db?sslmode=require", "postgresql://u:***@h/db?sslmode=require"),
        ("postgresql+asyncpg://u:p%40ss%2Fw@h/db", "postgresql+asyncpg://u:***@h/db"),
        ("postgresql://u:secret@[::1]:5432/db", "postgresql://u:***@[::1]:5432/db"),
        ("postgresql://u:@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
    ],
)
def test_masked_hides_passwords(url: str, shown: str) -> None:
    assert masked(url) == shown


async def test_store_url_and_errors_never_show_the_password(pg_database_url: str) -> None:
    secret = "hunter2-not-shown"
    with pytest.raises(SessionkeeperError) as info:
        await Store.open(f"postgresql://postgres:{secret}@127.0.0.1:1/x", timeout=2)
    assert secret not in str(info.value)
    assert secret not in repr(info.value.details)
    # A store's url property is masked too (the test server needs no password: any is ignored
    # or refused; only the property is checked when it opens).
    user_url = pg_database_url.replace("postgresql://postgres@", f"postgresql://postgres:{secret}@")
    try:
        store = await Store.open(user_url)
    except SessionkeeperError as exc:  # a server that checks passwords refuses this one
        assert secret not in str(exc)
        return
    try:
        assert secret not in store.url and "***" in store.url
    finally:
        await store.close()


# ── timeouts ────────────────────────────────────────────────────────────────


async def test_timeout_from_environment_and_keyword(
    monkeypatch: pytest.MonkeyPatch, db_url: str
) -> None:
    monkeypatch.setenv(TIMEOUT_ENV, "2.5")
    store = await Store.open(db_url)
    try:
        assert store.config.timeout == 2.5
    finally:
        await store.close()
    store = await Store.open(db_url, timeout=0.75)
    try:
        assert store.config.timeout == 0.75  # the keyword beats the environment
    finally:
        await store.close()
    monkeypatch.delenv(TIMEOUT_ENV)
    store = await Store.open(db_url)
    try:
        assert store.config.timeout == 10.0
    finally:
        await store.close()


@pytest.mark.parametrize("raw", ["abc", "0", "-1", "1e9", "nan"])
async def test_bad_timeout_environment_is_invalid_input(
    monkeypatch: pytest.MonkeyPatch, raw: str, tmp_path: Path
) -> None:
    monkeypatch.setenv(TIMEOUT_ENV, raw)
    with pytest.raises(InvalidInput):
        await Store.open(f"sqlite:///{tmp_path / 't.db'}")


@pytest.mark.parametrize(
    "value",
    [
        0,
        -1,
        True,
        "5",
        float("nan"),
        pytest.param(float("inf")),
        pytest.param(1e9),
    ],
)
async def test_bad_timeout_keyword_is_invalid_input(value: Any, tmp_path: Path) -> None:
    try:
        store = await Store.open(f"sqlite:///{tmp_path / 't.db'}", timeout=value)
    except InvalidInput:
        return
    await store.close()
    pytest.fail(f"timeout={value!r} was accepted")


# ── a store at the current schema runs without SQLAlchemy ──────────────────

_NO_SQLALCHEMY = """
import asyncio, json, sys
from sessionkeeper.store.core import Store

async def main(url):
    store = await Store.open(url)
    try:
        s = await store.create_session(title="light")
        await store.add_message(s.session_id, "user", "hello light world")
        await store.add_messages(s.session_id, [{"role": "assistant", "content": "hi"}])
        await store.get_messages(s.session_id, last=50)
        await store.list_sessions()
        await store.search_messages("light")
        await store.context_window(s.session_id, 100)
        await store.get_stats()
        await store.schema_revision()
        await store.ping()
        await store.keys.any_active()
        async with store.job_lock("x"):
            pass
        await store.delete_ghost_sessions()
        await store.prune_old_sessions(dry_run=True)
    finally:
        await store.close()

asyncio.run(main(sys.argv[1]))
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("sqlalchemy", "alembic", "aiosqlite"))
print(json.dumps(heavy))
"""


def _modules_after_use(url: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_NO_SQLALCHEMY), url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    modules: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return modules


def test_sqlite_store_at_current_schema_does_not_import_sqlalchemy(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'light.db'}"

    async def create() -> None:  # migrating an empty database may use SQLAlchemy: not timed
        await (await Store.open(url)).close()

    asyncio.run(create())
    assert _modules_after_use(url) == []


def test_pg_store_at_current_schema_does_not_import_sqlalchemy(pg_database_url: str) -> None:
    async def create() -> None:
        conn = await asyncpg.connect(pg_database_url, timeout=5)
        try:
            await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        finally:
            await conn.close()
        await (await Store.open(pg_database_url)).close()

    asyncio.run(create())
    assert _modules_after_use(pg_database_url) == []

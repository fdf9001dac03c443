"""Schema ownership: Alembic creates it, the Core tables describe it, mismatches are refused."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
from collections.abc import Callable
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from sqlalchemy.ext.asyncio import create_async_engine

import rawdb
from sessionkeeper.errors import SchemaMismatch
from sessionkeeper.store import migrate
from sessionkeeper.store.backends import open_backend
from sessionkeeper.store.core import Store
from sessionkeeper.store.schema import SCHEMA_REVISION, metadata
from sessionkeeper.store.url import parse


def test_schema_revision_is_alembic_head() -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrate.__file__).parent / "migrations"))
    assert ScriptDirectory.from_config(cfg).get_current_head() == SCHEMA_REVISION


def _ignore_fts(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    # Dialect-specific search objects live only in the migration (see schema.py).
    dialect_only = (
        "messages_fts",
        "messages_terms",
        "messages_unindexed",
        "tsv",
        "ix_messages_tsv",
        "ix_sessions_aria_session_id",
        "ix_sessions_metadata",
    )
    return not (name or "").startswith(dialect_only)


def _for_dialect(dialect: str) -> Callable[[object, str | None, str, bool, object], bool]:
    """``_ignore_fts``, and objects schema.py marks as another dialect's only
    (``info["dialects"]``: the foreign keys to sessions exist on SQLite only)."""

    def include(
        obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
    ) -> bool:
        dialects = getattr(obj, "info", {}).get("dialects")
        if dialects is not None and dialect not in dialects:
            return False
        return _ignore_fts(obj, name, type_, reflected, compare_to)

    return include


@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
async def test_migrated_database_matches_core_tables(file_db_url: str) -> None:
    await (await Store.open(file_db_url)).close()

    def compare(c: object) -> list[object]:
        context = MigrationContext.configure(
            c, opts={"include_object": _for_dialect(c.dialect.name), "compare_type": True}
        )
        return list(compare_metadata(context, metadata))

    if file_db_url.startswith("sqlite"):
        engine = create_engine(file_db_url)
        with engine.connect() as conn:
            diffs = compare(conn)
        engine.dispose()
    else:
        aengine = create_async_engine(file_db_url.replace("postgresql:", "postgresql+asyncpg:"))
        async with aengine.connect() as aconn:
            diffs = await aconn.run_sync(compare)
        await aengine.dispose()
    assert diffs == []


async def _set_revision(url: str, revision: str) -> None:
    # Under the Store (which would refuse to open): the backend alone.
    backend = await open_backend(parse(url))
    try:
        await rawdb.execute(backend, "UPDATE alembic_version SET version_num = ?", revision)
    finally:
        await backend.close()


async def test_older_and_newer_schemas_are_refused_clearly(file_db_url: str) -> None:
    db_url = file_db_url
    await (await Store.open(db_url)).close()
    await _set_revision(db_url, "0000")
    with pytest.raises(SchemaMismatch, match="older.*sessionkeeper db upgrade"):
        await Store.open(db_url)
    await _set_revision(db_url, "9999")
    with pytest.raises(SchemaMismatch, match="newer"):
        await Store.open(db_url)
    with pytest.raises(SchemaMismatch, match="newer"):
        await Store.open(db_url, upgrade=True)


async def test_upgrade_is_idempotent(file_db_url: str) -> None:
    assert await Store.upgrade(file_db_url) == (None, SCHEMA_REVISION)
    assert await Store.upgrade(file_db_url) == (SCHEMA_REVISION, SCHEMA_REVISION)


def _open_and_write(url: str, n: int) -> None:
    async def run() -> None:
        store = await Store.open(url)
        try:
            s = await store.create_session(session_id=f"p{n}")
            await store.add_message(s.session_id, "user", f"from {n}")
        finally:
            await store.close()

    asyncio.run(run())


async def test_processes_opening_an_empty_database_at_once(file_db_url: str) -> None:
    db_url = file_db_url
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_open_and_write, args=(db_url, n)) for n in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * 4
    store = await Store.open(db_url)
    try:
        assert (await store.list_sessions()).total == 4
    finally:
        await store.close()


async def test_unreachable_database_is_unavailable() -> None:
    from sessionkeeper.errors import Unavailable

    with pytest.raises(Unavailable):
        await Store.open("postgresql://nobody@127.0.0.1:1/nothing")


async def test_upgrade_from_first_revision(file_db_url: str) -> None:
    assert await Store.upgrade(file_db_url, "0001") == (None, "0001")
    with pytest.raises(SchemaMismatch, match="older"):
        await Store.open(file_db_url)
    assert await Store.upgrade(file_db_url) == ("0001", SCHEMA_REVISION)
    await (await Store.open(file_db_url)).close()


async def test_in_memory_database_is_migrated_on_open() -> None:
    store = await Store.open("sqlite://")
    try:
        assert await store.schema_revision() == SCHEMA_REVISION
    finally:
        await store.close()

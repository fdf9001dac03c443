"""The maintenance runner on real databases: its loop, its schedule and its job lock."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest

from sessionkeeper.api import create_app
from sessionkeeper.config import Settings
from sessionkeeper.maintenance import GHOST_JOB, PRUNE_JOB, MaintenanceRunner
from sessionkeeper.models import Message, Session
from sessionkeeper.store.backends.postgres import lock_key
from sessionkeeper.store.core import Store

FAST = 0.05 / 60  # minutes: the ghost loop turns every 50 ms


async def wait_for(condition: Callable[[], object], seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    pytest.fail(f"condition not met within {seconds}s")


async def add_stale_session(store: Store, session_id: str, days: float = 40) -> None:
    old = datetime.now(UTC) - timedelta(days=days)
    session = Session(session_id, "main", None, "chat", "active", {}, old, old, None, old, 1, 1)
    message = Message(session_id, 1, "user", "hi", None, None, 1, {}, old)
    await store.import_session(session, [message])


async def exists(store: Store, session_id: str) -> bool:
    page = await store.list_sessions(limit=100)
    return any(s.session_id == session_id for s in page.items)


async def test_ghost_loop_purges_on_its_interval(store: Store) -> None:
    runner = MaintenanceRunner(store, ghost_interval_minutes=FAST, ghost_age_minutes=0)
    first = await store.create_session()
    kept = await store.create_session()
    await store.add_message(kept.session_id, "user", "hello")
    await add_stale_session(store, "stale")
    task = asyncio.create_task(runner.run())
    try:
        await wait_for(lambda: runner.ghosts.runs >= 1)  # at start-up, no interval first
        assert not await exists(store, first.session_id)
        second = await store.create_session()
        await wait_for(lambda: runner.ghosts.runs >= 3)
        assert not await exists(store, second.session_id)
        assert await exists(store, kept.session_id)  # a session with messages is never a ghost
        # The prune waits for its own interval (6 h by default): the stale session survives.
        assert runner.prune.runs == 0 and await exists(store, "stale")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_prune_runs_after_its_interval(store: Store) -> None:
    await add_stale_session(store, "stale")
    await add_stale_session(store, "recent", days=1)
    runner = MaintenanceRunner(
        store, ghost_interval_minutes=60, prune_interval_hours=0.1 / 3600, prune_days=30
    )
    task = asyncio.create_task(runner.run())
    try:
        await wait_for(lambda: runner.prune.runs >= 1)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not await exists(store, "stale")
    assert await exists(store, "recent")
    assert runner.ghosts.runs == 1  # once at start-up; the next is an hour away


async def test_failing_job_does_not_kill_the_loop(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    # A negative age is refused by the Store (InvalidInput): a real failure, every turn.
    runner = MaintenanceRunner(store, ghost_interval_minutes=FAST, ghost_age_minutes=-1)
    ghost = await store.create_session()
    caplog.set_level(logging.ERROR, logger="sessionkeeper.maintenance")
    task = asyncio.create_task(runner.run())
    try:
        await wait_for(lambda: runner.ghosts.failures >= 2)
        assert "InvalidInput" in (runner.ghosts.last_error or "")
        assert "ghost_purge failed" in caplog.text
        assert not task.done()
        runner.ghost_age_minutes = 0  # the cause goes away; the next turn succeeds
        await wait_for(lambda: runner.ghosts.runs >= 1)
        assert not await exists(store, ghost.session_id)
        assert runner.ghosts.last_error is None
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_once_methods_return_results(store: Store) -> None:
    runner = MaintenanceRunner(store, ghost_age_minutes=0, prune_days=30)
    await store.create_session()
    await add_stale_session(store, "stale")
    assert await runner.purge_ghosts_once() == 1
    result = await runner.prune_once()
    assert result is not None and (result.pruned_count, result.dry_run) == (1, False)


def test_intervals_must_be_positive() -> None:
    with pytest.raises(ValueError):
        MaintenanceRunner(None, ghost_interval_minutes=0)  # type: ignore[arg-type]


# ── the job lock (PostgreSQL) ───────────────────────────────────────────────


async def _holder(db_url: str, key: int) -> asyncpg.Connection:
    conn = await asyncpg.connect(db_url)
    await conn.execute("SELECT pg_advisory_lock($1)", key)
    return conn


async def _lock_is_free(db_url: str, key: int) -> bool:
    conn = await asyncpg.connect(db_url)
    try:
        free = bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", key))
        if free:
            await conn.execute("SELECT pg_advisory_unlock($1)", key)
        return free
    finally:
        await conn.close()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_job_skips_while_another_replica_holds_the_lock(store: Store, db_url: str) -> None:
    runner = MaintenanceRunner(store, ghost_age_minutes=0)
    ghost = await store.create_session()
    await add_stale_session(store, "stale")
    other_replica = await _holder(db_url, lock_key(GHOST_JOB))
    try:
        assert await runner.purge_ghosts_once() is None
        assert await exists(store, ghost.session_id)
        pruned = await runner.prune_once()  # another job, another lock: not blocked
        assert pruned is not None and pruned.pruned_count == 1
    finally:
        await other_replica.close()
    assert await runner.purge_ghosts_once() == 1
    assert await _lock_is_free(db_url, lock_key(GHOST_JOB))  # released after the job
    assert await _lock_is_free(db_url, lock_key(PRUNE_JOB))


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_loop_counts_skips_and_releases_lock_after_failure(store: Store, db_url: str) -> None:
    runner = MaintenanceRunner(store, ghost_interval_minutes=FAST, ghost_age_minutes=0)
    other_replica = await _holder(db_url, lock_key(GHOST_JOB))
    task = asyncio.create_task(runner.run())
    try:
        await wait_for(lambda: runner.ghosts.skipped >= 2)
        assert runner.ghosts.runs == 0
    finally:
        await other_replica.close()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    runner.ghost_age_minutes = -1  # the job fails while holding the lock
    with pytest.raises(Exception, match="older_than_minutes"):
        await runner.purge_ghosts_once()
    assert await _lock_is_free(db_url, lock_key(GHOST_JOB))


# ── inside the app ──────────────────────────────────────────────────────────


async def test_app_lifespan_owns_store_and_maintenance_task(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'life.db'}"
    app = create_app(Settings(database_url=url, maintenance=True, ghost_age_minutes=0))
    assert app.state.store is None
    async with app.router.lifespan_context(app):
        assert isinstance(app.state.store, Store)
        task, runner = app.state.maintenance_task, app.state.maintenance
        assert task is not None and not task.done()
        await wait_for(lambda: runner.ghosts.runs >= 1)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.post("/api/engine/sessions", json={})).status_code == 201
    assert task.cancelled() and app.state.store is None

    async with await Store.open(url) as injected:
        app = create_app(Settings(database_url=url, maintenance=False), store=injected)
        async with app.router.lifespan_context(app):
            assert app.state.store is injected and app.state.maintenance_task is None
        assert (await injected.list_sessions()).total == 1  # still open: not the app's to close

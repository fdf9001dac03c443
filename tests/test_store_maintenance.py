"""Ghost purge, prune and stats, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import rawdb
from sessionkeeper.errors import InvalidInput
from sessionkeeper.store import core
from sessionkeeper.store.core import Store


async def age(store: Store, session_id: str, *, minutes: float = 0, days: float = 0) -> None:
    """Move a session back in time (created and updated), as if it had been idle."""
    then = datetime.now(UTC) - timedelta(minutes=minutes, days=days)
    stamp = rawdb.when(store, then)
    await rawdb.execute(
        store,
        "UPDATE sessions SET created_at = ?, updated_at = ? WHERE session_id = ?",
        stamp,
        stamp,
        session_id,
    )


async def test_ghost_purge_removes_only_old_empty_sessions(store: Store) -> None:
    old_ghost = await store.create_session(session_id="old-ghost")
    new_ghost = await store.create_session(session_id="new-ghost")
    old_real = await store.create_session(session_id="old-real")
    await store.add_message(old_real.session_id, "user", "I matter")
    emptied = await store.create_session(session_id="emptied")
    await store.add_message(emptied.session_id, "user", "gone soon")
    await store.delete_message(emptied.session_id, 1)
    for sid in (old_ghost.session_id, old_real.session_id, emptied.session_id):
        await age(store, sid, minutes=20)

    assert await store.delete_ghost_sessions(15) == 2  # old-ghost and the emptied one
    left = {s.session_id for s in (await store.list_sessions()).items}
    assert left == {new_ghost.session_id, old_real.session_id}
    assert await store.delete_ghost_sessions(15) == 0
    # the seed's verification: older_than_minutes=0 takes fresh ghosts too, never real sessions
    assert await store.delete_ghost_sessions(0) == 1
    assert {s.session_id for s in (await store.list_sessions()).items} == {old_real.session_id}


async def test_ghost_purge_in_batches(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core, "GHOST_BATCH", 3)
    for i in range(10):
        await store.create_session(session_id=f"g{i}")
    keep = await store.create_session()
    await store.add_message(keep.session_id, "user", "x")
    assert await store.delete_ghost_sessions(0) == 10
    assert (await store.list_sessions()).total == 1


async def test_ghost_purge_in_batches_of_equal_times(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ghosts created at the same instant, more of them than a batch (a bulk import), are
    all purged (batches follow created_at), and a used session among them stays."""
    monkeypatch.setattr(core, "GHOST_BATCH", 3)
    then = rawdb.when(store, datetime.now(UTC) - timedelta(minutes=30))
    ids = [f"tie{i}" for i in range(8)]
    for sid in [*ids, "used", "later"]:
        await store.create_session(session_id=sid)
    await store.add_message("used", "user", "x")
    for sid in [*ids, "used"]:
        await rawdb.execute(
            store, "UPDATE sessions SET created_at = ? WHERE session_id = ?", then, sid
        )
    assert await store.delete_ghost_sessions(15) == 8
    assert {s.session_id for s in (await store.list_sessions()).items} == {"used", "later"}
    assert await store.delete_ghost_sessions(0) == 1


async def test_prune_dry_run_then_real_in_batches(store: Store) -> None:
    for i in range(7):
        s = await store.create_session(session_id=f"old{i}")
        await store.add_message(s.session_id, "user", "hello")
        await store.add_message(s.session_id, "assistant", "hi")
        await age(store, s.session_id, days=31)
    fresh = await store.create_session(session_id="fresh")
    await store.add_message(fresh.session_id, "user", "recent")

    dry = await store.prune_old_sessions(30, dry_run=True)
    assert (dry.pruned_count, dry.message_count, dry.dry_run) == (7, 14, True)
    assert (await store.list_sessions()).total == 8

    real = await store.prune_old_sessions(30, batch_size=3)
    assert (real.pruned_count, real.message_count, real.dry_run) == (7, 14, False)
    assert [s.session_id for s in (await store.list_sessions()).items] == ["fresh"]
    assert (await store.prune_old_sessions(30)).pruned_count == 0
    assert (await store.get_stats()).total_messages == 1


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.delete_ghost_sessions(-1),
        lambda s: s.delete_ghost_sessions("15"),
        lambda s: s.prune_old_sessions(0),
        lambda s: s.prune_old_sessions(-3),
        lambda s: s.prune_old_sessions(30, batch_size=0),
    ],
)
async def test_maintenance_rejects_bad_thresholds(store: Store, call: object) -> None:
    await store.create_session()
    with pytest.raises(InvalidInput):
        await call(store)  # type: ignore[operator]
    assert (await store.list_sessions()).total == 1


async def test_stats(store: Store) -> None:
    empty = await store.get_stats()
    assert (empty.total_sessions, empty.oldest_session, empty.by_agent) == (0, None, {})

    a = await store.create_session(agent_id="alpha")
    await store.add_message(a.session_id, "user", "hello world")
    b = await store.create_session(agent_id="alpha", session_type="cron")
    await age(store, b.session_id, minutes=30)
    c = await store.create_session(agent_id="beta")
    await store.add_message(c.session_id, "user", "x")
    await store.end_session(c.session_id)
    d = await store.create_session(agent_id="gamma")
    await store.add_message(d.session_id, "user", "x")
    await age(store, d.session_id, days=40)

    st = await store.get_stats()
    assert st.total_sessions == 4
    assert st.total_messages == 3
    assert st.total_tokens == 2 + 1 + 1
    assert (st.active_sessions, st.ended_sessions) == (3, 1)
    assert st.ghost_sessions == 1  # b: empty and older than 15 minutes
    assert st.stale_sessions == 1  # d
    assert st.active_agents == 3
    assert st.by_agent == {"alpha": 2, "beta": 1, "gamma": 1}
    assert st.by_type == {"chat": 3, "cron": 1}
    assert st.oldest_session is not None and st.oldest_session.tzinfo is not None
    assert st.newest_activity is not None and st.newest_activity >= st.oldest_session

    scoped = await store.get_stats(agent_ids=["beta"])
    assert (scoped.total_sessions, scoped.by_agent) == (1, {"beta": 1})
    assert (await store.get_stats(ghost_minutes=60)).ghost_sessions == 0
    assert (await store.get_stats(stale_days=50)).stale_sessions == 0


async def test_vacuum_keeps_search_working(store: Store) -> None:
    keep = await store.create_session()
    gone = await store.create_session()
    await store.add_message(gone.session_id, "user", "ephemeral words")
    await store.add_message(keep.session_id, "user", "lasting pineapple words")
    await store.delete_session(gone.session_id)
    await store.vacuum()
    hits = await store.search_messages("pineapple")
    assert [(h.session_id, h.seq) for h in hits] == [(keep.session_id, 1)]
    assert await store.search_messages("ephemeral") == []

"""A session goes with every row it has, by whatever path it is deleted.

On SQLite foreign keys delete a session's rows; on PostgreSQL nothing references ``sessions``
(migration 0007) and the backend deletes them itself. Either way: delete, prune, an import
that replaces the session, LangGraph's ``delete_thread`` and ADK's ``delete`` leave no row
of the session in any table keyed by session, and the ghost rule follows what the framework
parts hold (``sessions.held_by``).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import rawdb
from sessionkeeper.models import NewMessage
from sessionkeeper.store.adk import AdkKey, Scopes
from sessionkeeper.store.backends.frameworks.checkpoints_base import CheckpointRow, WriteRow
from sessionkeeper.store.checkpoints import Element
from sessionkeeper.store.core import Store

TABLES = (
    "messages",
    "lg_checkpoints",
    "lg_channel_values",
    "lg_channel_items",
    "lg_writes",
    "adk_sessions",
)


async def rows_of(store: Store, session_id: str) -> dict[str, int]:
    found = {}
    for table in TABLES:
        n = await rawdb.fetch(
            store, f"SELECT count(*) FROM {table} WHERE session_id = ?", session_id
        )
        found[table] = int(n[0][0])
    return {t: n for t, n in found.items() if n}


async def full_session(store: Store, name: str) -> str:
    """An ADK session with events and state, whose session also holds a graph's checkpoint,
    its values and pending writes: a row in every table keyed by session."""
    key = AdkKey("app", "user", name)
    view = await store.adk.create(key, Scopes({"k": 1}, {}, {}), update_time=time.time())
    assert view is not None
    sid = view.session_id
    event = NewMessage("user", "hello there", metadata={"adk_event": {"id": "e1"}})
    assert await store.adk.append(key, event, Scopes({"k": 2}, {}, {}), update_time=time.time())
    cps = store.checkpoints
    plan = await cps.plan_list(sid, "", "messages", "v1", [Element("json", b'"m1"', "m1")])
    row = CheckpointRow(sid, "", "c1", None, "json", b"{}", {}, {"messages": "v1"})
    await cps.put(row, [plan.value], plan.items)
    await cps.put_writes(sid, "", "c1", [WriteRow("t1", 0, "x", "json", b"1")])
    assert set(await rows_of(store, sid)) == set(TABLES)
    return sid


async def test_delete_session_removes_every_row(store: Store) -> None:
    sid = await full_session(store, "a")
    other = await full_session(store, "b")
    await store.delete_session(sid)
    assert await rows_of(store, sid) == {}
    assert set(await rows_of(store, other)) >= {"messages", "lg_checkpoints", "adk_sessions"}


async def test_prune_removes_every_row(store: Store) -> None:
    sid = await full_session(store, "old")
    then = rawdb.when(store, datetime.now(UTC) - timedelta(days=40))
    await rawdb.execute(store, "UPDATE sessions SET updated_at = ? WHERE session_id = ?", then, sid)
    assert (await store.prune_old_sessions(30)).pruned_count == 1
    assert await rows_of(store, sid) == {}


async def test_adk_delete_and_delete_thread_remove_every_row(store: Store) -> None:
    sid = await full_session(store, "adk")
    assert await store.adk.delete(AdkKey("app", "user", "adk"))
    assert await rows_of(store, sid) == {}
    sid = await full_session(store, "graph")
    await store.checkpoints.delete_thread(sid, session_type="adk")  # the session's own type
    assert await rows_of(store, sid) == {}


async def test_import_replace_removes_the_old_rows(store: Store) -> None:
    sid = await full_session(store, "imported")
    session = await store.get_session(sid)
    assert await store.import_session(session, [], replace=True)
    assert await rows_of(store, sid) == {}
    assert (await store.get_session(sid)).message_count == 0


async def test_the_ghost_rule_follows_what_the_parts_hold(store: Store) -> None:
    """Checkpoints mark their session, deleting them unmarks it; ADK state marks it; an ADK
    session without state or events is a ghost and its key row goes with it."""
    thread = (await store.create_session(session_type="graph")).session_id
    row = CheckpointRow(thread, "", "c1", None, "json", b"{}", {}, {})
    await store.checkpoints.put(row, [])
    stateless = await store.adk.create(
        AdkKey("app", "u", "s0"), Scopes({}, {}, {}), update_time=1.0
    )
    stateful = await store.adk.create(
        AdkKey("app", "u", "s1"), Scopes({"a": 1}, {}, {}), update_time=1.0
    )
    assert stateless is not None and stateful is not None
    ghosts = {s.session_id for s in await store.ghost_sessions(older_than_minutes=0)}
    assert ghosts == {stateless.session_id}
    assert await store.delete_ghost_sessions(0) == 1
    assert await rows_of(store, stateless.session_id) == {}

    # a thread whose checkpoints are all deleted (the session kept) is a ghost again
    await store.checkpoints.delete_thread(thread, session_type="langgraph")
    assert await rows_of(store, thread) == {}
    assert await store.delete_ghost_sessions(0) == 1
    assert {s.session_id for s in (await store.list_sessions()).items} == {stateful.session_id}

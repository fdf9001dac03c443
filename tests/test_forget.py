"""Forgetting a user (issue 20): everything of theirs goes, nothing of anyone else's.

The issue's "must show": users u1 and u2 each have sessions whose messages (and titles,
metadata, checkpoints, ADK state) hold a marker of their own. After ``forget_user(u1)``
u1's marker occurs 0 times in the SQLite file and its WAL read as bytes (and in no freed
page), in no row of any table on any database (the search index's tables included), and
no index leads to it; u2's sessions, messages and search hits are unchanged; the receipt
counts what was created.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import struct
import time
from pathlib import Path
from typing import Any

import pytest

import rawdb
from sessionkeeper.errors import InvalidInput, NotFound
from sessionkeeper.models import NewMessage
from sessionkeeper.store.adk import AdkKey, Scopes
from sessionkeeper.store.backends import forgetting, sqlite_forget
from sessionkeeper.store.backends.frameworks.checkpoints_base import CheckpointRow, WriteRow
from sessionkeeper.store.checkpoints import Element
from sessionkeeper.store.core import Store
from sessionkeeper.store.terms import index_text
from sessionkeeper.sync import SyncStore

U1, U2 = "u1-zq8wv", "u2-kp3jd"  # distinctive, so that their bytes can be looked for too
M1, M2 = "qzv7marker1", "jky4marker2"  # each its own search term (checked below)
LONG = 9_000  # characters: a message that spills onto overflow pages


async def make_user(store: Store, user: str, marker: str) -> dict[str, int]:
    """Sessions of ``user`` holding ``marker`` in every place a user's text can be: message
    content (one long), title, metadata, a graph's checkpoint, its values and pending
    writes, an ADK session's state and events, the user's ADK user state. Returns what it
    made, per kind, as a forget counts it."""
    made = {"sessions": 0, "messages": 0, "checkpoints": 0, "adk_state": 0}
    for agent, n in (("main", 0), ("main", 1), ("other", 2)):
        s = await store.create_session(
            agent_id=agent, user_id=user, title=f"about {marker} {n}", metadata={"note": marker}
        )
        texts = [f"message {i} says {marker} plainly" for i in range(4)]
        texts.append(("filler words " * (LONG // 13)) + marker)
        await store.add_messages(s.session_id, [NewMessage("user", t) for t in texts])
        made["sessions"] += 1
        made["messages"] += len(texts)
        if n == 0:  # the same session is also a graph's thread
            cps = store.checkpoints
            data = f'"{marker} item"'.encode()
            plan = await cps.plan_list(s.session_id, "", "messages", "v1", [Element("json", data)])
            blob = f'{{"said": "{marker}"}}'.encode()
            row = CheckpointRow(s.session_id, "", "c1", None, "json", blob, {"m": marker}, {})
            await cps.put(row, [plan.value], plan.items)
            await cps.put_writes(s.session_id, "", "c1", [WriteRow("t", 0, "x", "json", blob)])
            made["checkpoints"] += 4  # a checkpoint, a value, an item, a write
    key = AdkKey("main", user, f"adk-{user}")
    scopes = Scopes({"topic": marker}, {}, {"name": marker})
    view = await store.adk.create(key, scopes, update_time=time.time())
    assert view is not None
    event = NewMessage("user", f"adk says {marker}", metadata={"adk_event": {"id": "e1"}})
    assert await store.adk.append(key, event, Scopes({}, {}, {}), update_time=time.time())
    made["sessions"] += 1
    made["messages"] += 1
    made["adk_state"] += 2  # the ADK session's row, the user's user state
    return made


async def scope_key_to(store: Store, user_ids: list[str], agent_ids: list[str]) -> str:
    """A key scoped to these users and agents (written under the Store: creating such keys
    is another part's API)."""
    key, _ = await store.keys.create(agent_ids=agent_ids)
    # asyncpg encodes a jsonb value itself; sqlite3 takes the JSON text
    users = user_ids if store.dialect == "postgresql" else json.dumps(user_ids)
    stmt = "UPDATE api_keys SET user_ids = ? WHERE key_id = ?"
    await rawdb.execute(store, stmt, users, key.key_id)
    return key.key_id


async def key_users(store: Store, key_id: str) -> list[str] | None:
    rows = await rawdb.fetch(store, "SELECT user_ids FROM api_keys WHERE key_id = ?", key_id)
    if not rows:
        return None
    value = rows[0][0]
    return list(json.loads(value) if isinstance(value, str) else value)


async def view_of(store: Store, user: str, marker: str) -> dict[str, Any]:
    """Everything a reader sees of a user: sessions, their messages, search hits."""
    sessions = [s async for s in store.iter_sessions(user_id=user)]
    return {
        "sessions": [s.to_dict() for s in sessions],
        "messages": {
            s.session_id: [m.to_dict() for m in await store.get_messages(s.session_id, limit=500)]
            for s in sessions
        },
        "hits": [h.to_dict() for h in await store.search_messages(marker, limit=100)],
    }


async def rows_holding(store: Store, *needles: str) -> dict[str, int]:
    """Rows of every table of the database whose text (or bytes) holds one of ``needles``:
    the search index's own tables too (SQLite: FTS5's shadow tables; PostgreSQL: the
    ``tsv`` column is in the row)."""
    found: dict[str, int] = {}
    if store.dialect == "sqlite":
        tables = await rawdb.fetch(
            store,
            "SELECT name FROM sqlite_master "
            "WHERE type = 'table' AND sql NOT LIKE 'CREATE VIRTUAL%'",
        )
        for (table,) in tables:
            for row in await rawdb.fetch(store, f'SELECT * FROM "{table}"'):
                blob = b"".join(v if isinstance(v, bytes) else str(v).encode() for v in row)
                if any(n.encode() in blob for n in needles):
                    found[table] = found.get(table, 0) + 1
        return found
    tables = await rawdb.fetch(
        store, "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
    )
    for (table,) in tables:
        for needle in needles:
            # Text columns as they are; bytea columns show as hex in a row's text.
            rows = await rawdb.fetch(
                store,
                f'SELECT count(*) FROM "{table}" AS x WHERE x::text LIKE ? OR x::text LIKE ?',
                f"%{needle}%",
                f"%{needle.encode().hex()}%",
            )
            if rows[0][0]:
                found[table] = found.get(table, 0) + int(rows[0][0])
    return found


def file_bytes(path: Path, needle: str) -> int:
    """Occurrences of ``needle`` in the database file and its WAL, read as bytes."""
    total = 0
    for name in (path, Path(f"{path}-wal")):
        if name.exists():
            total += name.read_bytes().count(needle.encode())
    return total


def wal_size(path: Path) -> int:
    return Path(f"{path}-wal").stat().st_size


def freed_pages_hold_data(path: Path) -> tuple[int, list[int]]:
    """(pages on the freelist, those holding anything but zeros), read from the file."""
    data = path.read_bytes()
    size = struct.unpack(">H", data[16:18])[0]
    size = 65536 if size == 1 else size
    trunk, count = struct.unpack(">II", data[32:40])
    dirty: list[int] = []
    while trunk:
        page = data[(trunk - 1) * size : trunk * size]
        nxt, leaves = struct.unpack(">II", page[:8])
        numbers = struct.unpack(f">{leaves}I", page[8 : 8 + 4 * leaves])
        if any(page[8 + 4 * leaves :]):
            dirty.append(trunk)
        dirty += [n for n in numbers if any(data[(n - 1) * size : n * size])]
        trunk = nxt
    return count, dirty


def sqlite_path(store: Store) -> Path | None:
    return None if store.config.memory or store.dialect != "sqlite" else store.config.path


async def test_forgetting_u1_leaves_no_trace_and_u2_untouched(store: Store) -> None:
    assert index_text(f"{M1} {M2}") == f"{M1} {M2}"  # the markers are index terms as written
    made = await make_user(store, U1, M1)
    await make_user(store, U2, M2)
    only_u1 = await scope_key_to(store, [U1], ["main"])
    only_u2 = await scope_key_to(store, [U2], ["main"])
    # History the forget must reach too: an earlier title, a message deleted before.
    first = (await store.list_sessions(user_id=U1, sort="created_at", order="asc")).items[0]
    await store.update_session(first.session_id, title=f"renamed, once {M1}")
    await store.add_message(first.session_id, "user", f"soon gone {M1}")
    assert await store.search_messages(M1, limit=100)  # indexed now
    await store.pop_message(first.session_id)
    before_u2 = await view_of(store, U2, M2)
    assert len(before_u2["hits"]) == 3 * 5 + 1  # 3 sessions of 5 messages, 1 ADK event
    path = sqlite_path(store)
    if path is not None:  # the index holds the term as bytes: the checks below can see it
        blobs = await rawdb.fetch(store, "SELECT block FROM messages_fts_data")
        assert any(M1.encode() in bytes(b) for (b,) in blobs if b)
        assert file_bytes(path, M1) > 0 and file_bytes(path, U1) > 0
    assert set(await rows_holding(store, M1, U1)) >= {"sessions", "messages", "lg_checkpoints"}

    receipt = await store.forget_user(U1)

    assert receipt.counts() == {**made, "keys": 1, "keys_narrowed": 0}
    assert receipt.user_hash == hashlib.sha256(U1.encode()).hexdigest()
    assert not receipt.dry_run and receipt.agent_id is None and receipt.forget_id
    assert await rows_holding(store, M1, U1) == {}
    assert await store.search_messages(M1) == []
    assert (await store.list_sessions(user_id=U1)).total == 0
    assert await key_users(store, only_u1) is None
    assert await key_users(store, only_u2) == [U2]
    assert await view_of(store, U2, M2) == before_u2
    record = await rawdb.fetch(
        store,
        "SELECT user_hash, agent_id, counts FROM forgotten_users WHERE forget_id = ?",
        receipt.forget_id,
    )
    counts = record[0][2]
    assert record[0][:2] == (receipt.user_hash, None)
    assert (json.loads(counts) if isinstance(counts, str) else counts) == receipt.counts()
    if path is not None:
        assert receipt.wal_truncated is True
        assert wal_size(path) == 0
        assert (file_bytes(path, M1), file_bytes(path, U1)) == (0, 0)
        assert file_bytes(path, M2) > 0 and file_bytes(path, U2) > 0
        freed, dirty = freed_pages_hold_data(path)
        assert freed > 0 and dirty == []
    elif store.dialect == "postgresql":
        assert receipt.wal_truncated is None
        # Through the GIN index (no sequential scan allowed): no entry leads to u1's term.
        async with store._backend._conn() as conn:
            await conn.execute("SET enable_seqscan = off")
            plan = await conn.fetch("EXPLAIN SELECT 1 FROM messages WHERE tsv @@ $1::tsquery", M1)
            assert "ix_messages_tsv" in "\n".join(r[0] for r in plan)
            count = "SELECT count(*) FROM messages WHERE tsv @@ $1::tsquery"
            assert await conn.fetchval(count, M1) == 0
            assert await conn.fetchval(count, M2) == 16
            await conn.execute("RESET enable_seqscan")


async def test_a_dry_run_counts_and_changes_nothing(store: Store) -> None:
    made = await make_user(store, U1, M1)
    await scope_key_to(store, [U1, U2], ["main"])
    before = await view_of(store, U1, M1)
    preview = await store.forget_user(U1, dry_run=True)
    assert preview.dry_run and preview.forget_id is None and preview.wal_truncated is None
    assert preview.counts() == {**made, "keys": 0, "keys_narrowed": 1}
    assert await view_of(store, U1, M1) == before
    assert await rawdb.fetch(store, "SELECT count(*) FROM forgotten_users") == [(0,)]
    receipt = await store.forget_user(U1)
    assert receipt.counts() == preview.counts()


async def test_forgetting_a_user_of_one_agent(store: Store) -> None:
    """With ``agent_id``: that agent's sessions of the user, the user state of its ADK apps,
    the keys of that agent alone; the user's sessions of other agents stay."""
    kept = await store.create_session(agent_id="other", user_id=U1)
    await store.add_message(kept.session_id, "user", f"kept {M1}")
    gone = await store.create_session(agent_id="main", user_id=U1)
    await store.add_message(gone.session_id, "user", f"gone {M1}")
    for app in ("main", "other"):
        assert await store.adk.create(
            AdkKey(app, U1, "s"), Scopes({}, {}, {"name": M1}), update_time=1.0
        )
    only_main = await scope_key_to(store, [U1], ["main"])
    main_and_other = await scope_key_to(store, [U1], ["main", "other"])
    shared_main = await scope_key_to(store, [U1, U2], ["main"])
    shared_other = await scope_key_to(store, [U1, U2], ["other"])

    receipt = await store.forget_user(U1, agent_id="main")

    # main: the chat session and the ADK session (no state: 0 state rows but its key row),
    # and the user state of app "main".
    assert receipt.counts() == {
        "sessions": 2,
        "messages": 1,
        "checkpoints": 0,
        "adk_state": 2,
        "keys": 1,
        "keys_narrowed": 1,
    }
    assert receipt.agent_id == "main"
    left = (await store.list_sessions(user_id=U1)).items
    assert {s.agent_id for s in left} == {"other"} and len(left) == 2  # kept, and app "other"
    assert kept.session_id in {s.session_id for s in left}
    assert await store.adk.user_state("main", U1) == {}
    assert await store.adk.user_state("other", U1) == {"name": M1}
    assert await key_users(store, only_main) is None
    assert await key_users(store, main_and_other) == [U1]
    assert await key_users(store, shared_main) == [U2]
    assert await key_users(store, shared_other) == [U1, U2]
    assert len(await store.search_messages(M1)) == 1


async def test_a_user_with_nothing_is_still_recorded(store: Store) -> None:
    receipt = await store.forget_user("nobody")
    assert receipt.counts() == dict.fromkeys(receipt.counts(), 0)
    assert await rawdb.fetch(store, "SELECT count(*) FROM forgotten_users") == [(1,)]


@pytest.mark.parametrize(
    ("user", "agent", "field"),
    [("", None, "user_id"), ("a\x00b", None, "user_id"), ("x" * 257, None, "user_id"),
     (7, None, "user_id"), ("u1", "not an agent", "agent_id")],
)  # fmt: skip
async def test_bad_input_is_refused_and_changes_nothing(
    store: Store, user: Any, agent: Any, field: str
) -> None:
    s = await store.create_session(user_id="u1")
    with pytest.raises(InvalidInput) as caught:
        await store.forget_user(user, agent_id=agent)
    assert caught.value.details["field"] == field
    assert await store.session_exists(s.session_id)
    assert await rawdb.fetch(store, "SELECT count(*) FROM forgotten_users") == [(0,)]


async def test_an_adk_user_id_that_is_not_a_label_can_be_forgotten(store: Store) -> None:
    user = "Ada Lovelace <ada@example.org>"
    assert await store.adk.create(
        AdkKey("app", user, "s"), Scopes({"x": M1}, {}, {"y": M1}), update_time=1.0
    )
    receipt = await store.forget_user(user)
    assert (receipt.sessions, receipt.adk_state) == (1, 2)
    assert await rows_holding(store, M1) == {}


async def test_writers_during_a_forget(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Other users' writers are untouched; a writer to a session of the forgotten user
    either lands before its session goes (and is counted with it) or gets NotFound: the
    session does not come back and no message of it is left."""
    monkeypatch.setattr(forgetting, "BATCH_SESSIONS", 2)  # many short transactions
    u1 = [(await store.create_session(user_id=U1)).session_id for _ in range(12)]
    for sid in u1:
        await store.add_messages(sid, [NewMessage("user", f"{M1} {i}") for i in range(3)])
    other = (await store.create_session(user_id=U2)).session_id
    landed = {"u1": 0, "u2": 0}
    refused = []

    async def write(sid: str, who: str, n: int) -> None:
        for i in range(n):
            try:
                await store.add_message(sid, "user", f"{who} {i}")
            except NotFound:
                refused.append(i)
                return
            landed[who] += 1
            await asyncio.sleep(0)

    receipt, *_ = await asyncio.gather(
        store.forget_user(U1), write(other, "u2", 60), write(u1[-1], "u1", 60)
    )
    assert landed["u2"] == 60 and (await store.get_session(other)).message_count == 60
    assert receipt.messages == 12 * 3 + landed["u1"]
    assert receipt.sessions == 12
    for sid in u1:
        assert not await store.session_exists(sid)
    orphans = await rawdb.fetch(store, "SELECT count(*) FROM messages WHERE session_id <> ?", other)
    assert orphans == [(0,)]
    with pytest.raises(NotFound):
        await store.add_message(u1[-1], "user", "too late")


async def test_the_wal_is_reported_when_a_reader_holds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader of another connection holding an old snapshot keeps the WAL from being
    truncated: the receipt says so, and the writer truncates it when the reader is done.
    (SQLite only: a WAL file is SQLite's.)"""
    file_db_url = f"sqlite:///{tmp_path / 'wal.db'}"
    monkeypatch.setattr(sqlite_forget, "WAL_TRIES", 2)
    monkeypatch.setattr(sqlite_forget, "WAL_WAIT_MS", 20)
    store = await Store.open(file_db_url)
    try:
        s = await store.create_session(user_id=U1, title=M1)
        await store.add_message(s.session_id, "user", f"hello {M1}")
        path = sqlite_path(store)
        assert path is not None
        reader = sqlite3.connect(path)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM sessions").fetchone()
        try:
            receipt = await store.forget_user(U1)
            assert receipt.wal_truncated is False and receipt.sessions == 1
        finally:
            reader.execute("COMMIT")
            reader.close()
        deadline = time.monotonic() + 10
        while wal_size(path) or file_bytes(path, M1):
            assert time.monotonic() < deadline, "the idle writer did not truncate the WAL"
            await asyncio.sleep(0.1)
    finally:
        await store.close()


def test_sync_store_forgets(tmp_path: Path) -> None:
    with SyncStore.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        s = store.create_session(user_id=U1)
        store.add_message(s.session_id, "user", "hi")
        receipt = store.forget_user(U1)
        assert (receipt.sessions, receipt.messages) == (1, 1)
        assert not store.session_exists(s.session_id)


async def test_postgresql_vacuum_full_takes_the_bytes_out_of_the_files(
    pg_database_url: str,
) -> None:
    """What the docs say of PostgreSQL, measured: after a forget the deleted rows' bytes are
    still in the table's file (dead tuples); a plain VACUUM leaves them in the freed space;
    ``vacuum(full=True)`` rewrites the table without them."""
    import asyncpg

    file_db_url = pg_database_url
    conn = await asyncpg.connect(file_db_url, timeout=5)  # an empty database, as file_db_url
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    finally:
        await conn.close()
    # CHECKPOINT is server-wide: while other tests write to the same server it can take
    # longer than the default 10 s statement bound.
    store = await Store.open(file_db_url, timeout=120)
    try:
        for user, marker in ((U1, M1), (U2, M2)):
            s = await store.create_session(user_id=user)
            await store.add_messages(
                s.session_id, [NewMessage("user", f"{i} {marker} words") for i in range(50)]
            )

        async def in_file(needle: str) -> int:
            async with store._backend._conn() as conn:
                await conn.execute("CHECKPOINT")  # the table's pages, written to its file
                path = await conn.fetchval("SELECT pg_relation_filepath('messages')")
                data = await conn.fetchval("SELECT pg_read_binary_file($1)", path)
            return int(data.count(needle.encode()))

        await store.forget_user(U1)
        assert await in_file(M1) > 0  # dead tuples: no query sees them, the file has them
        await store.vacuum()
        assert await in_file(M1) > 0  # freed for reuse, not overwritten
        await store.vacuum(full=True)
        assert await in_file(M1) == 0 and await in_file(M2) > 0
    finally:
        await store.close()

"""Session operations of the Store, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import rawdb
from sessionkeeper.errors import Conflict, InvalidInput, NotFound
from sessionkeeper.store.core import Store


async def test_create_defaults_and_get(store: Store) -> None:
    s = await store.create_session()
    assert len(s.session_id) == 16
    assert (s.agent_id, s.session_type, s.status, s.title) == ("main", "chat", "active", None)
    assert (s.message_count, s.token_count, s.metadata) == (0, 0, {})
    got = await store.get_session(s.session_id)
    assert got == s
    assert got.created_at.tzinfo is not None


async def test_create_with_fields_and_own_id(store: Store) -> None:
    s = await store.create_session(
        session_id="agent:main:cron:abc-1.2",
        agent_id="aria-talk",
        title="Morning chat",
        session_type="cron",
        metadata={"aria_session_id": "x", "nested": {"a": [1, 2]}},
    )
    got = await store.get_session("agent:main:cron:abc-1.2")
    assert got.metadata == {"aria_session_id": "x", "nested": {"a": [1, 2]}}
    assert (got.agent_id, got.title, got.session_type) == ("aria-talk", "Morning chat", "cron")
    with pytest.raises(Conflict):
        await store.create_session(session_id=s.session_id)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"session_id": "../etc"},
        {"session_id": "x" * 129},
        {"session_id": "has space"},
        {"agent_id": ""},
        {"agent_id": "a b"},
        {"title": "t" * 201},
        {"session_type": "x" * 65},
        {"metadata": ["not", "a", "dict"]},
        {"metadata": {"bad": object()}},
    ],
)
async def test_create_rejects_bad_input_and_writes_nothing(store: Store, kwargs: dict) -> None:
    with pytest.raises(InvalidInput):
        await store.create_session(**kwargs)
    assert (await store.list_sessions()).total == 0


async def test_title_at_limit_is_kept_whole(store: Store) -> None:
    s = await store.create_session(title="t" * 200)
    assert (await store.get_session(s.session_id)).title == "t" * 200


async def test_get_unknown_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.get_session("nope")


async def test_update_end_delete(store: Store) -> None:
    s = await store.create_session(title="a", metadata={"k": 1})
    u = await store.update_session(s.session_id, title="b")
    assert (u.title, u.metadata) == ("b", {"k": 1})
    assert u.updated_at >= s.updated_at
    u = await store.update_session(s.session_id, metadata={"z": 2}, session_type="delegation")
    assert (u.metadata, u.session_type, u.title) == ({"z": 2}, "delegation", "b")
    u = await store.update_session(s.session_id, title=None, metadata=None)
    assert (u.title, u.metadata) == (None, {})
    with pytest.raises(InvalidInput):
        await store.update_session(s.session_id, title="x" * 201)
    assert (await store.get_session(s.session_id)).title is None

    ended = await store.end_session(s.session_id)
    assert ended.status == "ended" and ended.ended_at is not None
    again = await store.end_session(s.session_id)
    assert again.ended_at == ended.ended_at

    await store.add_message(s.session_id, "user", "bye")
    await store.delete_session(s.session_id)
    with pytest.raises(NotFound):
        await store.get_session(s.session_id)
    with pytest.raises(NotFound):
        await store.get_messages(s.session_id)
    with pytest.raises(NotFound):
        await store.delete_session(s.session_id)
    with pytest.raises(NotFound):
        await store.end_session(s.session_id)
    with pytest.raises(NotFound):
        await store.update_session(s.session_id, title="x")


async def _seed(store: Store) -> list[str]:
    ids = []
    for i in range(7):
        s = await store.create_session(
            session_id=f"s{i}",
            agent_id="alpha" if i % 2 == 0 else "beta",
            title=f"Title {i}" if i != 3 else None,
            session_type="cron" if i == 5 else "chat",
        )
        ids.append(s.session_id)
    await store.add_message("s1", "user", "the quick brown fox jumps")
    await store.add_message("s4", "assistant", "lazy dogs sleeping")
    await store.end_session("s6")
    return ids


async def test_list_filters_and_search(store: Store) -> None:
    await _seed(store)
    page = await store.list_sessions(agent_id="alpha")
    assert {s.session_id for s in page.items} == {"s0", "s2", "s4", "s6"}
    assert page.total == 4 and not page.has_more
    assert {s.session_id for s in (await store.list_sessions(session_type="cron")).items} == {"s5"}
    assert {s.session_id for s in (await store.list_sessions(status="ended")).items} == {"s6"}
    assert {s.session_id for s in (await store.list_sessions(agent_ids=["beta"])).items} == {
        "s1",
        "s3",
        "s5",
    }
    # search matches titles (substring) and message content (full text, stemmed)
    assert {s.session_id for s in (await store.list_sessions(search="title 2")).items} == {"s2"}
    assert {s.session_id for s in (await store.list_sessions(search="jumping")).items} == {"s1"}
    assert {s.session_id for s in (await store.list_sessions(search="dog")).items} == {"s4"}
    assert (await store.list_sessions(search="100%_")).total == 0


async def test_list_date_range(store: Store) -> None:
    await _seed(store)
    now = datetime.now(UTC)
    assert (await store.list_sessions(created_after=now - timedelta(hours=1))).total == 7
    assert (await store.list_sessions(created_before=now - timedelta(hours=1))).total == 0
    assert (await store.list_sessions(updated_after=now + timedelta(hours=1))).total == 0
    with pytest.raises(InvalidInput):
        await store.list_sessions(created_after=datetime.now())  # noqa: DTZ005 - the point


@pytest.mark.parametrize("sort", ["created_at", "updated_at", "last_message_at", "title"])
@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_offset_and_cursor_paging_agree(store: Store, sort: str, order: str) -> None:
    await _seed(store)
    by_offset = []
    for offset in range(0, 7, 3):
        page = await store.list_sessions(sort=sort, order=order, limit=3, offset=offset)
        assert page.total == 7
        assert page.has_more == (offset + 3 < 7)
        by_offset += [s.session_id for s in page.items]
    by_cursor, cursor = [], None
    while True:
        page = await store.list_sessions(sort=sort, order=order, limit=2, cursor=cursor)
        by_cursor += [s.session_id for s in page.items]
        cursor = page.next_cursor
        if cursor is None:
            assert not page.has_more
            break
    assert by_offset == by_cursor
    assert sorted(by_cursor) == [f"s{i}" for i in range(7)]


async def test_update_only_if_the_metadata_is_still_what_was_read(store: Store) -> None:
    s = await store.create_session(metadata={"n": 1, "tags": ["a"]})
    # Key order does not matter; the JSON does (1.0 and true are not 1).
    u = await store.update_session(
        s.session_id, metadata={"n": 2}, expected_metadata={"tags": ["a"], "n": 1}
    )
    assert u.metadata == {"n": 2}
    for stale in ({"n": 1, "tags": ["a"]}, {"n": 2.0}, {"n": True}, None):
        with pytest.raises(Conflict, match="changed since it was read") as caught:
            await store.update_session(
                s.session_id, metadata={"lost": True}, title="lost", expected_metadata=stale
            )
        assert caught.value.details == {"field": "expected_metadata"}
    got = await store.get_session(s.session_id)
    assert (got.metadata, got.title) == ({"n": 2}, None)  # nothing of the refused writes
    empty = await store.create_session()
    for nothing in (None, {}):  # no metadata: None and {} alike
        await store.update_session(empty.session_id, title="t", expected_metadata=nothing)
    with pytest.raises(NotFound):
        await store.update_session("no-such", metadata={}, expected_metadata={})
    with pytest.raises(InvalidInput):
        await store.update_session(s.session_id, expected_metadata={"x": float("nan")})


async def test_changes_of_metadata_made_at_once_are_all_kept(store: Store) -> None:
    """Five writers each add their key by read-modify-write at the same moment: a plain
    update_session would keep one (each writes what it read plus its own); change_metadata
    keeps all five."""
    s = await store.create_session(metadata={"base": 0})

    async def add(key: str) -> None:
        await store.change_metadata(s.session_id, lambda m: {**m, key: True})

    await asyncio.gather(*(add(f"k{i}") for i in range(5)))
    got = await store.get_session(s.session_id)
    assert got.metadata == {"base": 0, **{f"k{i}": True for i in range(5)}}
    # Left as it is: no write at all (updated_at unchanged).
    same = await store.change_metadata(s.session_id, lambda m: None)
    assert same.updated_at == got.updated_at
    # The change gets a copy: changing it in place and giving up writes nothing.
    await store.change_metadata(s.session_id, lambda m: m.clear())  # type: ignore[func-returns-value]
    assert (await store.get_session(s.session_id)).metadata == got.metadata
    with pytest.raises(NotFound):
        await store.change_metadata("no-such", lambda m: m)


async def test_change_metadata_gives_up_after_its_tries(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = await store.create_session(metadata={"n": 0})
    write = store.update_session
    tries = 0
    cast = "CAST(? AS TEXT)" if store.dialect == "sqlite" else "CAST(? AS TEXT)::jsonb"

    async def raced(session_id: str, **fields: Any) -> Any:
        nonlocal tries
        tries += 1  # another writer changes it between each read and each write
        await rawdb.execute(
            store,
            f"UPDATE sessions SET metadata = {cast} WHERE session_id = ?",
            json.dumps({"n": tries}),
            session_id,
        )
        return await write(session_id, **fields)

    monkeypatch.setattr(store, "update_session", raced)
    with pytest.raises(Conflict, match="changed at each of 3 tries"):
        await store.change_metadata(s.session_id, lambda m: {"n": -1}, attempts=3)
    assert tries == 3
    assert (await store.get_session(s.session_id)).metadata == {"n": 3}


async def test_sort_order_updated_desc_default(store: Store) -> None:
    await _seed(store)
    items = (await store.list_sessions()).items
    assert [s.updated_at for s in items] == sorted((s.updated_at for s in items), reverse=True)
    assert items[0].session_id == "s6"  # ended last


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sort": "message_count; DROP TABLE sessions"},
        {"order": "sideways"},
        {"limit": 0},
        {"limit": 101},
        {"offset": -1},
        {"status": "paused"},
        {"cursor": "not-a-cursor"},
        {"offset": 2, "cursor": "abc"},
        {"search": "   "},
        {"search": "!!!"},
    ],
)
async def test_list_rejects_bad_arguments(store: Store, kwargs: dict) -> None:
    with pytest.raises(InvalidInput):
        await store.list_sessions(**kwargs)


async def test_cursor_for_other_sort_is_refused(store: Store) -> None:
    await _seed(store)
    page = await store.list_sessions(limit=2)
    with pytest.raises(InvalidInput):
        await store.list_sessions(limit=2, sort="title", cursor=page.next_cursor)


async def test_iter_sessions_walks_everything(store: Store) -> None:
    await _seed(store)
    seen = [s.session_id async for s in store.iter_sessions(batch=2, agent_id="alpha")]
    assert sorted(seen) == ["s0", "s2", "s4", "s6"]


async def test_find_by_aria_session_id_uses_its_index(store: Store) -> None:
    await store.create_session(session_id="a1", metadata={"aria_session_id": "fs-1"})
    await store.create_session(session_id="a2", metadata={"aria_session_id": "fs-1", "x": 1})
    await store.create_session(session_id="a3", metadata={"aria_session_id": "fs-2"})
    await store.create_session(session_id="a4")
    assert [s.session_id for s in await store.find_by_aria_session_id("fs-1")] == ["a1", "a2"]
    assert await store.find_by_aria_session_id("nope") == []
    explain = "EXPLAIN QUERY PLAN " if store.dialect == "sqlite" else "EXPLAIN "
    from sessionkeeper.store.backends.statements import METADATA_KEY_SQL

    if store.dialect == "postgresql":
        # The plan on a near-empty table would be a scan anyway: ask if the index CAN be used.
        await rawdb.execute(store, "SET enable_seqscan = off")
    rows = await rawdb.fetch(
        store,
        f"{explain}SELECT * FROM sessions WHERE {METADATA_KEY_SQL[store.dialect]} = ?",
        "fs-1",
    )
    plan = " ".join(str(r) for r in rows)
    assert "ix_sessions_aria_session_id" in plan


async def test_session_exists(store: Store) -> None:
    s = await store.create_session()
    assert await store.session_exists(s.session_id)
    assert not await store.session_exists("no-such-session")
    with pytest.raises(InvalidInput):
        await store.session_exists("bad id")
    await store.delete_session(s.session_id)
    assert not await store.session_exists(s.session_id)

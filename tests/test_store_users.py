"""Users and metadata filters on sessions (issue: governance), on every database."""

from __future__ import annotations

from typing import Any

import pytest

import rawdb
from sessionkeeper.errors import InvalidInput
from sessionkeeper.store.core import Store


async def _ids(store: Store, **filters: Any) -> list[str]:
    page = await store.list_sessions(sort="created_at", order="asc", limit=100, **filters)
    return [s.session_id for s in page.items]


async def test_user_on_create_update_and_listing(store: Store) -> None:
    a = await store.create_session(session_id="a", user_id="u1")
    await store.create_session(session_id="b", user_id="u2")
    await store.create_session(session_id="c", user_id="u1", agent_id="other")
    await store.create_session(session_id="d")
    assert a.user_id == "u1"
    assert (await store.get_session("a")).user_id == "u1"
    assert (await store.get_session("d")).user_id is None
    assert await _ids(store, user_id="u1") == ["a", "c"]
    assert await _ids(store, user_id="u1", agent_id="main") == ["a"]
    assert await _ids(store, user_ids=["u1", "u2"]) == ["a", "b", "c"]
    assert await _ids(store, user_id="u2", user_ids=["u1"]) == []  # outside the scope
    assert (await store.list_sessions(user_id="u1")).total == 2
    moved = await store.update_session("b", user_id="u1")
    assert moved.user_id == "u1"
    assert await _ids(store, user_id="u1") == ["a", "b", "c"]
    assert (await store.update_session("b", user_id=None)).user_id is None
    # Cursor paging keeps the filter.
    first = await store.list_sessions(user_id="u1", limit=1, sort="created_at", order="asc")
    assert first.next_cursor is not None
    second = await store.list_sessions(
        user_id="u1", limit=1, sort="created_at", order="asc", cursor=first.next_cursor
    )
    assert [s.session_id for s in first.items + second.items] == ["a", "c"]


@pytest.mark.parametrize("bad", ["", "a b", "x" * 65, 7])
async def test_bad_user_id_is_refused_and_changes_nothing(store: Store, bad: Any) -> None:
    with pytest.raises(InvalidInput, match="user_id"):
        await store.create_session(session_id="x", user_id=bad)
    assert not await store.session_exists("x")
    await store.create_session(session_id="y", user_id="u")
    with pytest.raises(InvalidInput, match="user_id"):
        await store.update_session("y", user_id=bad)
    assert (await store.get_session("y")).user_id == "u"


async def test_metadata_filter_compares_json_values(store: Store) -> None:
    rows = {
        "red": {"team": "red", "n": 1, "pinned": True},
        "red2": {"team": "red", "n": 1.0, "pinned": False},
        "blue": {"team": "blue", "n": "1", "note": None},
        "nested": {"team": {"name": "red"}, "n": [1]},
        "none": {},
    }
    for sid, meta in rows.items():
        await store.create_session(session_id=sid, metadata=meta)
    assert await _ids(store, metadata={"team": "red"}) == ["red", "red2"]
    assert await _ids(store, metadata={"n": 1}) == ["red", "red2"]  # 1 == 1.0
    assert await _ids(store, metadata={"n": "1"}) == ["blue"]  # a string is not a number
    assert await _ids(store, metadata={"pinned": True}) == ["red"]
    assert await _ids(store, metadata={"pinned": False}) == ["red2"]
    assert await _ids(store, metadata={"note": None}) == ["blue"]  # null, not missing
    assert await _ids(store, metadata={"team": "red", "pinned": True}) == ["red"]
    assert await _ids(store, metadata={"team": "green"}) == []
    assert (await store.list_sessions(metadata={"team": "red"})).total == 2


@pytest.mark.parametrize(
    "bad",
    [
        {},
        {"team": {"name": "red"}},
        {"team": ["red"]},
        {'te"am': "red"},
        {"": 1},
        {"n": float("nan")},
        {f"k{i}": i for i in range(21)},
        "team=red",
    ],
)
async def test_bad_metadata_filter_is_refused(store: Store, bad: Any) -> None:
    with pytest.raises(InvalidInput, match="metadata"):
        await store.list_sessions(metadata=bad)
    with pytest.raises(InvalidInput, match="metadata"):
        await store.search_messages("x", metadata=bad)


async def test_search_is_scoped_by_user_and_metadata(store: Store) -> None:
    for sid, user, team in (("a", "u1", "red"), ("b", "u2", "red"), ("c", "u1", "blue")):
        await store.create_session(session_id=sid, user_id=user, metadata={"team": team})
        await store.add_message(sid, "user", f"the marker word quokka in {sid}")

    async def hits(**scope: Any) -> list[str]:
        return sorted(h.session_id for h in await store.search_messages("quokka", **scope))

    assert await hits() == ["a", "b", "c"]
    assert await hits(user_id="u1") == ["a", "c"]
    assert await hits(metadata={"team": "red"}) == ["a", "b"]
    assert await hits(user_id="u1", metadata={"team": "red"}) == ["a"]
    assert await hits(user_ids=[]) == []


async def test_postgresql_metadata_filter_uses_its_index(pg_database_url: str) -> None:
    async with await Store.open(pg_database_url) as store:
        for i in range(200):
            await store.create_session(session_id=f"s{i}", metadata={"team": f"t{i % 50}"})
        await rawdb.execute(store, "ANALYZE sessions")
        await rawdb.execute(store, "SET enable_seqscan = off")  # as on a large table
        plan = await rawdb.fetch(
            store,
            "EXPLAIN SELECT session_id FROM sessions WHERE metadata @> ?::jsonb",
            '{"team": "t7"}',
        )
        assert "ix_sessions_metadata" in " ".join(r[0] for r in plan)
        assert len(await _ids(store, metadata={"team": "t7"})) == 4

"""Store.ghost_sessions lists exactly what delete_ghost_sessions deletes, and a delete by
ids deletes only those that are still ghosts (what a person confirmed, nothing unseen)."""

from __future__ import annotations

import pytest

from sessionkeeper.errors import InvalidInput
from sessionkeeper.integrations.adk import SessionkeeperSessionService
from sessionkeeper.store.core import Store


async def test_listing_is_what_the_purge_deletes(store: Store) -> None:
    for sid in ("g1", "g2", "used"):
        await store.create_session(session_id=sid, title=sid)
    await store.add_message("used", "user", "hello")
    adk = SessionkeeperSessionService(store)
    await adk.create_session(app_name="app", user_id="u", session_id="adk-state", state={"a": 1})
    await adk.create_session(app_name="app", user_id="u", session_id="adk-empty")
    listed = await store.ghost_sessions(0)
    assert [s.session_id for s in listed] == ["g1", "g2", "adk-empty"]  # oldest first
    assert [s.title for s in listed][:2] == ["g1", "g2"]
    assert [s.session_id for s in await store.ghost_sessions(0, limit=1)] == ["g1"]
    assert await store.ghost_sessions(60) == []  # none is an hour old
    assert await store.delete_ghost_sessions(0) == 3
    assert await store.ghost_sessions(0) == []
    left = {s.session_id for s in (await store.list_sessions()).items}
    assert left == {"used", "adk-state"}


async def test_delete_by_ids_deletes_only_listed_ghosts(store: Store) -> None:
    for sid in ("a", "b", "c", "d"):
        await store.create_session(session_id=sid)
    shown = [s.session_id for s in await store.ghost_sessions(0)]
    assert shown == ["a", "b", "c", "d"]
    await store.add_message("b", "user", "not a ghost any more")
    await store.create_session(session_id="e")  # a ghost nobody was shown
    deleted = await store.delete_ghost_sessions(0, session_ids=["a", "b", "c", "zzz"])
    assert deleted == 2
    left = {s.session_id for s in (await store.list_sessions()).items}
    assert left == {"b", "d", "e"}
    assert await store.delete_ghost_sessions(0, session_ids=[]) == 0


async def test_delete_by_ids_checks_its_input(store: Store) -> None:
    with pytest.raises(InvalidInput):
        await store.delete_ghost_sessions(0, session_ids="abc")
    with pytest.raises(InvalidInput):
        await store.delete_ghost_sessions(0, session_ids=["../x"])
    with pytest.raises(InvalidInput):
        await store.ghost_sessions(0, limit=0)

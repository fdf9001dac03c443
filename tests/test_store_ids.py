"""Ids of new sessions: the REST API's reserved names and the empty id are refused by the
Store itself (every face), existing ids stay readable."""

from __future__ import annotations

import pytest

from sessionkeeper.errors import InvalidInput, NotFound
from sessionkeeper.models import RESERVED_SESSION_IDS
from sessionkeeper.store.core import Store


@pytest.mark.parametrize("session_id", [*RESERVED_SESSION_IDS, ""])
async def test_reserved_and_empty_ids_are_refused(store: Store, session_id: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        await store.create_session(session_id=session_id)
    assert caught.value.details["field"] == "session_id"
    assert (await store.list_sessions()).items == []


async def test_reserved_ids_are_still_looked_up(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.get_session("stats")


async def test_omitted_id_is_generated(store: Store) -> None:
    session = await store.create_session()
    assert len(session.session_id) == 16


async def test_adk_session_named_like_a_route_gets_another_store_id(store: Store) -> None:
    from sessionkeeper.integrations.adk import SessionkeeperSessionService

    service = SessionkeeperSessionService(store)
    session = await service.create_session(app_name="app", user_id="u", session_id="stats")
    assert session.id == "stats"
    (stored,) = (await store.list_sessions()).items
    assert stored.session_id.startswith("adk-")

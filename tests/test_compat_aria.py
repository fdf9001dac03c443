"""The Aria NativeSessionManager surface (seed 001), on SQLite and PostgreSQL."""

from __future__ import annotations

import inspect

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from sessionkeeper.compat import aria
from sessionkeeper.compat.aria import EngineError, NativeSessionManager
from sessionkeeper.errors import InvalidInput, NotFound, TooLarge

SEED_METHODS = [
    "create_session", "get_session", "list_sessions", "update_session", "delete_session",
    "end_session", "add_message", "get_messages", "delete_message", "prune_old_sessions",
    "get_stats", "delete_ghost_sessions",
]  # fmt: skip
SESSION_KEYS = {
    "session_id", "title", "agent_id", "session_type", "metadata", "message_count",
    "created_at", "updated_at", "last_message_at",
}  # fmt: skip


def test_seed_verification_surface() -> None:
    methods = [m for m in dir(NativeSessionManager) if not m.startswith("_")]
    for name in SEED_METHODS:
        assert name in methods, name
    assert (aria.MAX_MESSAGE_LENGTH, aria.MAX_TITLE_LENGTH) == (100000, 200)
    assert (aria.DEFAULT_PAGE_SIZE, aria.MAX_PAGE_SIZE) == (20, 100)
    params = inspect.signature(NativeSessionManager.list_sessions).parameters
    assert list(params)[1:] == [
        "agent_id",
        "session_type",
        "search",
        "limit",
        "offset",
        "sort",
        "order",
    ]
    assert list(inspect.signature(NativeSessionManager.delete_message).parameters)[1:] == [
        "message_id",
        "session_id",
    ]


@pytest.fixture
async def mgr(db_url: str):  # type: ignore[no-untyped-def]
    m = NativeSessionManager(db_url)
    yield m
    await m.close()


async def test_session_lifecycle_dict_shapes(mgr: NativeSessionManager) -> None:
    created = await mgr.create_session(agent_id="aria-talk", title="Morning chat")
    assert set(created) == {
        "session_id",
        "title",
        "agent_id",
        "session_type",
        "created_at",
        "message_count",
    }
    assert len(created["session_id"]) == 16 and created["message_count"] == 0
    auto = await mgr.create_session()
    assert auto["title"] == f"Session {auto['session_id'][:8]}"

    sid = created["session_id"]
    msg = await mgr.add_message(session_id=sid, role="user", content="Hello!", agent_id="aria-talk")
    assert set(msg) == {"id", "session_id", "role", "content", "agent_id", "created_at"}
    assert msg["id"] == 1
    got = await mgr.get_session(sid)
    assert got is not None and set(got) == SESSION_KEYS
    assert got["message_count"] == 1 and got["last_message_at"] is not None

    listing = await mgr.list_sessions(agent_id="aria-talk", search="morning", limit=10)
    assert set(listing) == {"sessions", "total", "limit", "offset", "has_more"}
    assert [s["session_id"] for s in listing["sessions"]] == [sid]
    assert (await mgr.list_sessions(limit=1000))["limit"] == 100  # seed clamps

    msgs = await mgr.get_messages(sid)
    assert set(msgs[0]) == {
        "id",
        "session_id",
        "role",
        "content",
        "agent_id",
        "metadata",
        "created_at",
    }
    updated = await mgr.update_session(sid, title="Renamed", metadata={"k": 1})
    assert updated is not None and (updated["title"], updated["metadata"]) == ("Renamed", {"k": 1})
    assert await mgr.end_session(sid) is True
    ended = await mgr.get_session(sid)
    assert ended is not None and ended["metadata"] == {"k": 1, "ended": True}
    assert await mgr.delete_message(1, sid) is True
    assert await mgr.delete_message(1, sid) is False
    assert await mgr.delete_session(sid) is True

    assert await mgr.get_session(sid) is None
    assert await mgr.update_session(sid, title="x") is None
    assert await mgr.delete_session(sid) is False
    assert await mgr.end_session(sid) is False
    assert await mgr.get_messages(sid) == []


async def test_differences_from_seed_are_errors_not_truncation(mgr: NativeSessionManager) -> None:
    sid = (await mgr.create_session())["session_id"]
    with pytest.raises(TooLarge):
        await mgr.add_message(sid, "user", "x" * 100_001)
    with pytest.raises(InvalidInput):
        await mgr.create_session(title="t" * 201)
    with pytest.raises(InvalidInput):
        await mgr.list_sessions(sort="message_count")
    with pytest.raises(NotFound):
        await mgr.add_message("missing", "user", "hi")
    with pytest.raises(EngineError):
        await mgr.add_message("missing", "user", "hi")
    assert (await mgr.get_session(sid))["message_count"] == 0  # type: ignore[index]


async def test_maintenance_and_stats(mgr: NativeSessionManager) -> None:
    keep = (await mgr.create_session(agent_id="a"))["session_id"]
    await mgr.add_message(keep, "user", "hi")
    await mgr.create_session(agent_id="b")
    assert await mgr.delete_ghost_sessions(older_than_minutes=0) == 1
    stats = await mgr.get_stats()
    assert set(stats) == {
        "total_sessions",
        "total_messages",
        "active_agents",
        "oldest_session",
        "newest_activity",
    }
    assert (stats["total_sessions"], stats["total_messages"], stats["active_agents"]) == (1, 1, 1)
    assert await mgr.prune_old_sessions(days=30, dry_run=True) == {
        "pruned_count": 0,
        "message_count": 0,
        "dry_run": True,
    }


async def test_constructed_from_an_existing_engine(file_db_url: str) -> None:
    async_url = file_db_url.replace("sqlite://", "sqlite+aiosqlite://").replace(
        "postgresql://", "postgresql+asyncpg://"
    )
    engine = create_async_engine(async_url)
    mgr = NativeSessionManager(engine)
    try:
        sid = (await mgr.create_session())["session_id"]
        await mgr.add_message(sid, "user", "via engine")
        assert (await mgr.get_messages(sid))[0]["content"] == "via engine"
    finally:
        await mgr.close()
        await engine.dispose()

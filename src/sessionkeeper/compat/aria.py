"""``NativeSessionManager``: the Aria engine's session-manager surface over the Store.

Existing Aria code keeps its method names, keyword arguments and returned dict keys. What
differs from the seed, on purpose (each seed behaviour lost or hid data):
- content over MAX_MESSAGE_LENGTH and titles over MAX_TITLE_LENGTH raise ``TooLarge`` /
  ``InvalidInput`` instead of being silently truncated;
- messages are ordered by their per-session ``seq`` (the ``id`` in returned dicts), never by
  timestamp, so equal timestamps cannot reorder a conversation;
- an unknown ``sort`` or ``order`` raises ``InvalidInput`` instead of silently falling back;
- ``end_session`` sets ``status='ended'`` (and still merges ``{"ended": true}`` into metadata,
  which the seed used as its only marker);
- unknown sessions raise ``NotFound`` (a ``SessionkeeperError``; ``EngineError`` is an alias
  of that base class so ``except EngineError`` keeps working).
Limits stay as the seed clamped them: ``limit`` to 1..MAX_PAGE_SIZE for sessions and to 500
for messages.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sessionkeeper.errors import NotFound, SessionkeeperError
from sessionkeeper.models import (
    DEFAULT_PAGE_SIZE,
    MAX_MESSAGE_LENGTH,
    MAX_MESSAGES_PAGE,
    MAX_PAGE_SIZE,
    MAX_TITLE_LENGTH,
    Message,
    Session,
)
from sessionkeeper.store.core import Store

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_MESSAGE_LENGTH",
    "MAX_PAGE_SIZE",
    "MAX_TITLE_LENGTH",
    "EngineError",
    "NativeSessionManager",
]

EngineError = SessionkeeperError


def _session_dict(s: Session) -> dict[str, Any]:
    return {
        "session_id": s.session_id,
        "title": s.title,
        "agent_id": s.agent_id,
        "session_type": s.session_type,
        "metadata": dict(s.metadata) or None,
        "message_count": s.message_count,
        "created_at": s.created_at.isoformat(),
        "updated_at": s.updated_at.isoformat(),
        "last_message_at": s.last_message_at.isoformat() if s.last_message_at else None,
    }


def _message_dict(m: Message, *, with_metadata: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": m.seq,
        "session_id": m.session_id,
        "role": m.role,
        "content": m.content,
        "agent_id": m.agent_id,
    }
    if with_metadata:
        data["metadata"] = dict(m.metadata) or None
    data["created_at"] = m.created_at.isoformat()
    return data


class NativeSessionManager:
    """Drop-in for ``aria_engine.session_manager.NativeSessionManager``.

    ``NativeSessionManager("postgresql://…")`` or ``NativeSessionManager(async_engine)``.
    The store opens (and migrates an empty database) on first use.
    """

    def __init__(self, db_engine: AsyncEngine | str, *, encoding: str = "cl100k_base") -> None:
        self._target = db_engine
        self._encoding = encoding
        self._store: Store | None = None
        self._lock = asyncio.Lock()

    async def store(self) -> Store:
        if self._store is None:
            async with self._lock:
                if self._store is None:
                    if isinstance(self._target, str):
                        self._store = await Store.open(self._target, encoding=self._encoding)
                    else:
                        self._store = await Store.from_engine(self._target, encoding=self._encoding)
        return self._store

    async def close(self) -> None:
        if self._store is not None:
            await self._store.close()
            self._store = None

    # ── sessions ──

    async def create_session(
        self,
        agent_id: str = "main",
        title: str | None = None,
        session_type: str = "chat",
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        store = await self.store()
        import uuid

        session_id = uuid.uuid4().hex[:16]
        s = await store.create_session(
            session_id=session_id,
            agent_id=agent_id,
            title=title or f"Session {session_id[:8]}",
            session_type=session_type,
            metadata=metadata,
        )
        return {
            "session_id": s.session_id,
            "title": s.title,
            "agent_id": s.agent_id,
            "session_type": s.session_type,
            "created_at": s.created_at.isoformat(),
            "message_count": 0,
        }

    async def get_session(self, session_id: str) -> dict[str, Any] | None:
        store = await self.store()
        try:
            return _session_dict(await store.get_session(session_id))
        except NotFound:
            return None

    async def list_sessions(
        self,
        agent_id: str | None = None,
        session_type: str | None = None,
        search: str | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        offset: int = 0,
        sort: str = "updated_at",
        order: str = "desc",
    ) -> dict[str, Any]:
        store = await self.store()
        limit = min(max(int(limit), 1), MAX_PAGE_SIZE)
        page = await store.list_sessions(
            agent_id=agent_id,
            session_type=session_type,
            search=search or None,
            limit=limit,
            offset=max(int(offset), 0),
            sort=sort,
            order=order,
        )
        total = page.total or 0
        return {
            "sessions": [_session_dict(s) for s in page.items],
            "total": total,
            "limit": limit,
            "offset": page.offset,
            "has_more": page.offset + limit < total,
        }

    async def update_session(
        self,
        session_id: str,
        title: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        store = await self.store()
        changes: dict[str, Any] = {}
        if title is not None:
            changes["title"] = title
        if metadata is not None:
            changes["metadata"] = metadata
        try:
            return _session_dict(await store.update_session(session_id, **changes))
        except NotFound:
            return None

    async def delete_session(self, session_id: str) -> bool:
        store = await self.store()
        try:
            await store.delete_session(session_id)
        except NotFound:
            return False
        return True

    async def end_session(self, session_id: str) -> bool:
        store = await self.store()
        try:
            ended = await store.end_session(session_id)
        except NotFound:
            return False
        await store.change_metadata(
            ended.session_id, lambda m: None if m.get("ended") is True else {**m, "ended": True}
        )
        return True

    # ── messages ──

    async def add_message(
        self,
        session_id: str,
        role: str,
        content: str,
        agent_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        store = await self.store()
        m = await store.add_message(session_id, role, content, agent_id=agent_id, metadata=metadata)
        return _message_dict(m, with_metadata=False)

    async def get_messages(
        self,
        session_id: str,
        limit: int = 100,
        offset: int = 0,
        since: datetime | None = None,
    ) -> list[dict[str, Any]]:
        store = await self.store()
        try:
            found = await store.get_messages(
                session_id,
                limit=min(max(int(limit), 1), MAX_MESSAGES_PAGE),
                offset=max(int(offset), 0),
                since=since,
            )
        except NotFound:
            return []  # the seed answered an unknown session with an empty list
        return [_message_dict(m, with_metadata=True) for m in found]

    async def delete_message(self, message_id: int, session_id: str) -> bool:
        store = await self.store()
        try:
            await store.delete_message(session_id, message_id)
        except NotFound:
            return False
        return True

    # ── maintenance ──

    async def prune_old_sessions(self, days: int = 30, dry_run: bool = False) -> dict[str, Any]:
        store = await self.store()
        result = await store.prune_old_sessions(days, dry_run=dry_run)
        return {
            "pruned_count": result.pruned_count,
            "message_count": result.message_count,
            "dry_run": result.dry_run,
        }

    async def delete_ghost_sessions(self, older_than_minutes: int = 15) -> int:
        store = await self.store()
        return await store.delete_ghost_sessions(older_than_minutes)

    async def get_stats(self) -> dict[str, Any]:
        store = await self.store()
        st = await store.get_stats()
        return {
            "total_sessions": st.total_sessions,
            "total_messages": st.total_messages,
            "active_agents": st.active_agents,
            "oldest_session": st.oldest_session.isoformat() if st.oldest_session else None,
            "newest_activity": st.newest_activity.isoformat() if st.newest_activity else None,
        }

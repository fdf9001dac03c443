"""The MCP tools' work, over a Store and a caller; no MCP import (``server.py`` wires them).

Every tool reads only what its caller may see, with the REST API's scoping code: set-wide
reads pass ``principal.scope`` / ``principal.user_scope`` to the Store, and one session is
reached through ``api.deps.visible_session`` (another agent's or user's session is "not
found", never "forbidden"). Results are plain JSON-ready dicts; message metadata (framework
objects, tool calls) is left out of the tools' answers to keep them readable for a model;
the REST API serves it whole.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sessionkeeper.api.deps import visible_session
from sessionkeeper.api.principal import Principal
from sessionkeeper.errors import Conflict, InvalidInput, NotFound
from sessionkeeper.models import Message, SearchHit, Session
from sessionkeeper.store.core import Store

MEMORY_SESSION_TYPE = "memory"
MEMORY_TITLE = "Memory"
DEFAULT_READ_LAST = 20


@dataclass(frozen=True, slots=True)
class Caller:
    """Who calls a tool, and on which store."""

    store: Store
    principal: Principal


def message_dict(message: Message) -> dict[str, Any]:
    return {
        "seq": message.seq,
        "role": message.role,
        "content": message.content,
        "created_at": message.created_at.isoformat(),
        "token_count": message.token_count,
    }


def session_dict(session: Session) -> dict[str, Any]:
    return {
        "session_id": session.session_id,
        "title": session.title,
        "agent_id": session.agent_id,
        "user_id": session.user_id,
        "session_type": session.session_type,
        "status": session.status,
        "created_at": session.created_at.isoformat(),
        "updated_at": session.updated_at.isoformat(),
        "message_count": session.message_count,
        "token_count": session.token_count,
    }


def hit_dict(hit: SearchHit) -> dict[str, Any]:
    return {
        "session_id": hit.session_id,
        "seq": hit.seq,
        "title": hit.session_title,
        "time": hit.created_at.isoformat(),
        "role": hit.role,
        "agent_id": hit.agent_id,
        "snippet": hit.snippet,
        "rank": hit.rank,
    }


async def search_sessions(
    caller: Caller,
    query: str,
    *,
    agent_id: str | None = None,
    user_id: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    limit: int = 10,
) -> dict[str, Any]:
    """Ranked message hits in the sessions the caller may see."""
    hits = await caller.store.search_messages(
        query,
        limit=limit,
        agent_id=agent_id,
        agent_ids=caller.principal.scope,
        user_id=user_id,
        user_ids=caller.principal.user_scope,
        created_after=created_after,
        created_before=created_before,
    )
    return {"query": query, "hits": [hit_dict(h) for h in hits]}


async def list_sessions(
    caller: Caller,
    *,
    agent_id: str | None = None,
    user_id: str | None = None,
    search: str | None = None,
    status: str | None = None,
    updated_after: datetime | None = None,
    updated_before: datetime | None = None,
    limit: int = 20,
    cursor: str | None = None,
) -> dict[str, Any]:
    """The newest-updated sessions the caller may see, a page at a time."""
    page = await caller.store.list_sessions(
        agent_id=agent_id,
        agent_ids=caller.principal.scope,
        user_id=user_id,
        user_ids=caller.principal.user_scope,
        search=search,
        status=status,
        updated_after=updated_after,
        updated_before=updated_before,
        limit=limit,
        cursor=cursor,
    )
    return {
        "sessions": [session_dict(s) for s in page.items],
        "total": page.total,
        "has_more": page.has_more,
        "next_cursor": page.next_cursor,
    }


async def read_session(
    caller: Caller,
    session_id: str,
    *,
    last: int | None = None,
    max_tokens: int | None = None,
) -> dict[str, Any]:
    """A session's newest messages: the last ``last``, or what fits ``max_tokens`` (the
    store's context window: system prompt pinned, tool calls kept with their results)."""
    if last is not None and max_tokens is not None:
        raise InvalidInput("give either last or max_tokens, not both", field="max_tokens")
    session = await visible_session(session_id, caller.store, caller.principal)
    answer: dict[str, Any] = {"session": session_dict(session)}
    if max_tokens is not None:
        window = await caller.store.context_window(session_id, max_tokens)
        answer["messages"] = [message_dict(m) for m in window.messages]
        answer["total_tokens"] = window.total_tokens
        answer["dropped_messages"] = window.dropped_messages
        answer["estimated"] = window.estimated
    else:
        wanted = DEFAULT_READ_LAST if last is None else last
        messages = await caller.store.get_messages(session_id, last=wanted)
        answer["messages"] = [message_dict(m) for m in messages]
        answer["dropped_messages"] = max(0, session.message_count - len(messages))
    return answer


def memory_session_id(agent_id: str, user_id: str | None) -> str:
    """The id of an (agent, user)'s memory session: stable, so two first notes at once
    meet on one session (the second create is a Conflict, and both append to it)."""
    key = f"{agent_id}\0{user_id or ''}".encode()
    return "memory-" + hashlib.sha256(key).hexdigest()[:24]


async def remember(
    caller: Caller, note: str, *, agent_id: str | None = None, user_id: str | None = None
) -> dict[str, Any]:
    """Append ``note`` to the caller's memory session (one per agent and user), creating it
    with the first note. Agent and user default as a REST create's do."""
    principal = caller.principal
    agent = principal.agent_for(agent_id)
    user = principal.user_for(user_id)
    session_id = memory_session_id(agent, user)
    store = caller.store
    with contextlib.suppress(Conflict):  # it exists (made by an earlier note)
        await store.create_session(
            session_id=session_id,
            agent_id=agent,
            user_id=user,
            title=MEMORY_TITLE,
            session_type=MEMORY_SESSION_TYPE,
        )
    session = await store.get_session(session_id)
    if (session.agent_id, session.user_id) != (agent, user):
        # Only a caller that chose this id for another session could make this happen.
        raise Conflict(f"session {session_id!r} exists and is not this memory session")
    try:
        message = await store.add_message(session_id, "user", note)
    except NotFound:  # deleted between the create and the append
        raise NotFound(f"session {session_id!r} not found") from None
    return {
        "session_id": session_id,
        "seq": message.seq,
        "agent_id": agent,
        "user_id": user,
        "created_at": message.created_at.isoformat(),
    }

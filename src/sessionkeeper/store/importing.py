"""Writing sessions verbatim: the import path of exports and foreign stores.

Unlike appends, an import keeps each message's seq and timestamps and the session's own
timestamps, so export → import → export is byte-identical. Counters are recomputed from the
imported messages (never trusted from the file), so the counter invariant holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from sessionkeeper.errors import InvalidInput
from sessionkeeper.models import Message, Session
from sessionkeeper.store import validate
from sessionkeeper.store.rows import MESSAGE_COLUMNS
from sessionkeeper.store.schema import messages, sessions


async def import_session(
    engine: AsyncEngine, session: Session, items: Sequence[Message], *, replace: bool = False
) -> bool:
    """Write a session and its messages exactly as given (seq, timestamps, counts).

    Idempotent by session id: an existing session is left alone (returns False) unless
    ``replace``. Counters are recomputed from the messages, so they stay true.
    """
    _check(session, items)
    last_seq = max((m.seq for m in items), default=0)
    if len({m.seq for m in items}) != len(items):
        raise InvalidInput(f"session {session.session_id!r}: duplicate seq in import")
    row = {
        **{k: v for k, v in session.to_dict().items() if k in sessions.c},
        "metadata": session.metadata or None,
        "created_at": session.created_at,
        "updated_at": session.updated_at,
        "ended_at": session.ended_at,
        "last_message_at": session.last_message_at,
        "message_count": len(items),
        "token_count": sum(m.token_count for m in items),
        "last_seq": last_seq,
    }
    async with engine.connect() as conn:
        conn = await conn.execution_options(sk_write=True)
        async with conn.begin():
            exists = await conn.execute(
                select(sessions.c.session_id).where(sessions.c.session_id == session.session_id)
            )
            if exists.first() is not None:
                if not replace:
                    return False
                await conn.execute(
                    delete(sessions).where(sessions.c.session_id == session.session_id)
                )
            await conn.execute(insert(sessions).values(row))
            if items:
                await conn.execute(insert(messages), [_message_row(m) for m in items])
    return True


def _check(session: Session, items: Sequence[Message]) -> None:
    """The same rules as live writes: an import may not bring in what the API would refuse."""
    validate.session_id(session.session_id)
    validate.label(session.agent_id, "agent_id")
    validate.label(session.session_type, "session_type")
    validate.title(session.title)
    validate.status(session.status)
    validate.metadata(session.metadata)
    for m in items:
        where = f"session {session.session_id!r}, message {m.seq}"
        if isinstance(m.seq, bool) or not isinstance(m.seq, int) or m.seq < 1:
            raise InvalidInput(f"{where}: seq must be a positive integer")
        validate.role(m.role)
        validate.content(m.content)
        validate.optional_label(m.agent_id, "agent_id")
        validate.metadata(m.metadata)
        validate.non_negative(m.token_count, "token_count")
        validate.model(m.model)


def _message_row(message: Message) -> dict[str, Any]:
    row = {c.name: getattr(message, c.name) for c in MESSAGE_COLUMNS}
    row["metadata"] = message.metadata or None
    return row

"""Writing sessions verbatim: the import path of exports and foreign stores.

Unlike appends, an import keeps each message's seq and timestamps and the session's own
timestamps, so export → import → export is byte-identical. Counters are recomputed from the
imported messages (never trusted from the file), so the counter invariant holds.
"""

from __future__ import annotations

from collections.abc import Sequence

from sessionkeeper.errors import InvalidInput
from sessionkeeper.models import Message, Session
from sessionkeeper.store import validate
from sessionkeeper.store.validate import MAX_INT


def check(session: Session, items: Sequence[Message]) -> int:
    """The same rules as live writes: an import may not bring in what the API would refuse.

    Returns the session's last seq (the highest imported), from which appends continue.
    """
    validate.session_id(session.session_id)
    validate.label(session.agent_id, "agent_id")
    validate.label(session.session_type, "session_type")
    validate.title(session.title)
    validate.status(session.status)
    validate.metadata(session.metadata)
    for m in items:
        where = f"session {session.session_id!r}, message {m.seq}"
        if isinstance(m.seq, bool) or not isinstance(m.seq, int) or not 1 <= m.seq <= MAX_INT:
            raise InvalidInput(f"{where}: seq must be an integer from 1 to {MAX_INT}")
        validate.role(m.role)
        validate.content(m.content)
        validate.optional_label(m.agent_id, "agent_id")
        validate.metadata(m.metadata)
        validate.bounded_int(m.token_count, "token_count", 0)
        validate.model(m.model)
        validate.aware(m.created_at, "created_at")
    if len({m.seq for m in items}) != len(items):
        raise InvalidInput(f"session {session.session_id!r}: duplicate seq in import")
    validate.aware(session.created_at, "created_at")
    validate.aware(session.updated_at, "updated_at")
    return max((m.seq for m in items), default=0)

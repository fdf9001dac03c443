"""Writing sessions verbatim: the import path of exports and foreign stores.

Unlike appends, an import keeps each message's seq and timestamps and the session's own
timestamps, so export → import → export is byte-identical. Counters are recomputed from the
imported messages (never trusted from the file), so the counter invariant holds. A session's
compactions come in as they were too, each held to what ``Store.compact_session`` writes:
it stands for a run of the imported seqs (from ≤ through ≤ the last seq), one per cut.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from sessionkeeper.errors import InvalidInput
from sessionkeeper.models import Compaction, Message, Session
from sessionkeeper.store import validate
from sessionkeeper.store.validate import MAX_INT

CHUNK = 500  # messages per INSERT of a streamed import (and per check)


@dataclass(slots=True)
class Totals:
    """What a streamed import's session row gets once its messages are written."""

    count: int = 0
    tokens: int = 0
    last_seq: int = 0


def check(session: Session, items: Sequence[Message]) -> int:
    """The same rules as live writes: an import may not bring in what the API would refuse.

    Returns the session's last seq (the highest imported), from which appends continue.
    """
    check_session(session)
    seen: set[int] = set()
    check_messages(session, items, seen)
    return max(seen, default=0)


def check_session(session: Session) -> None:
    validate.session_id(session.session_id)
    validate.label(session.agent_id, "agent_id")
    validate.label(session.session_type, "session_type")
    validate.optional_label(session.user_id, "user_id")
    validate.title(session.title)
    validate.status(session.status)
    validate.metadata(session.metadata)
    validate.aware(session.created_at, "created_at")
    validate.aware(session.updated_at, "updated_at")
    if session.parent_session_id is not None:  # lineage (a fork's): kept as it was
        validate.session_id(session.parent_session_id)
    if session.fork_seq is not None:
        validate.seq(session.fork_seq, "fork_seq")


def check_messages(session: Session, items: Sequence[Message], seen: set[int]) -> None:
    """Check ``items`` and add their seqs to ``seen`` (a seq seen before is refused)."""
    for m in items:
        where = f"session {session.session_id!r}, message {m.seq}"
        if isinstance(m.seq, bool) or not isinstance(m.seq, int) or not 1 <= m.seq <= MAX_INT:
            raise InvalidInput(f"{where}: seq must be an integer from 1 to {MAX_INT}", field="seq")
        validate.role(m.role)
        validate.content(m.content)
        validate.optional_label(m.agent_id, "agent_id")
        validate.metadata(m.metadata)
        validate.bounded_int(m.token_count, "token_count", 0)
        validate.model(m.model)
        validate.aware(m.created_at, "created_at")
        if m.seq in seen:
            raise InvalidInput(
                f"session {session.session_id!r}: duplicate seq {m.seq} in import", field="seq"
            )
        seen.add(m.seq)


def checked_chunks(
    session: Session, items: Iterable[Message], totals: Totals
) -> Iterator[list[Message]]:
    """``items`` in checked chunks of CHUNK, ``totals`` kept up to date as they pass. A bad
    message raises when its chunk is reached: the writer's transaction then rolls back."""
    seen: set[int] = set()
    chunk: list[Message] = []
    for message in items:
        chunk.append(message)
        if len(chunk) == CHUNK:
            yield _checked(session, chunk, seen, totals)
            chunk = []
    if chunk:
        yield _checked(session, chunk, seen, totals)


def _checked(
    session: Session, chunk: list[Message], seen: set[int], totals: Totals
) -> list[Message]:
    check_messages(session, chunk, seen)
    totals.count += len(chunk)
    totals.tokens += sum(m.token_count for m in chunk)
    totals.last_seq = max(totals.last_seq, max(m.seq for m in chunk))
    return chunk


def check_compactions(
    session: Session, compactions: Iterable[Compaction], last_seq: int
) -> list[Compaction]:
    """``compactions`` checked (``check_compaction``), in the order given."""
    cuts: set[int] = set()
    return [check_compaction(session, c, last_seq, cuts) for c in compactions]


def checked_compactions(
    session: Session, compactions: Iterable[Compaction], totals: Totals
) -> Iterator[Compaction]:
    """For a streamed import: ``compactions`` checked as they are read, after the messages
    (``totals.last_seq`` is then the session's last seq)."""
    cuts: set[int] = set()
    for c in compactions:
        yield check_compaction(session, c, totals.last_seq, cuts)


def check_compaction(
    session: Session, c: Compaction, last_seq: int, cuts: set[int]
) -> Compaction:
    """One imported compaction: a summary standing for seqs ``from_seq``..``through_seq``
    of the session's imported messages, at a cut no other of them has."""
    where = f"session {session.session_id!r}, compaction through {c.through_seq!r}"
    if c.session_id != session.session_id:
        raise InvalidInput(f"{where}: it belongs to session {c.session_id!r}")
    for name in ("from_seq", "through_seq"):
        validate.bounded_int(getattr(c, name), name, 1)
    if not c.from_seq <= c.through_seq <= last_seq:
        raise InvalidInput(
            f"{where}: it stands for seqs {c.from_seq}..{c.through_seq}, which must be within "
            f"the session's imported messages (1..{last_seq})",
            field="through_seq",
        )
    for name in ("message_count", "compacted_tokens", "token_count"):
        validate.bounded_int(getattr(c, name), name, 0)
    validate.content(c.summary)
    if not c.summary.strip():
        raise InvalidInput(f"{where}: the summary is empty", field="summary")
    validate.model(c.model)
    validate.metadata(c.metadata)
    validate.aware(c.created_at, "created_at")
    if c.through_seq in cuts:
        raise InvalidInput(f"{where}: two compactions at the same cut", field="through_seq")
    cuts.add(c.through_seq)
    return c

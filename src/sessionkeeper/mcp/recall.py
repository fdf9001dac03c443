"""``recall``: a query → the best passages across the caller's sessions, within a budget.

The store's ranked search is the engine (no vector index is assumed). A passage is a hit
with its neighbours (the messages up to ``context`` positions before and after it), so a
model reads the question with its answer. Then:

- hits of one session whose neighbourhoods touch or overlap make one passage (ranked as its
  best hit), so no message is given twice;
- a passage whose hit messages all say what an earlier passage's hits said (the same text,
  compared case- and space-insensitively: a copied message, a fork's shared history) is a
  duplicate and left out; the answer counts them;
- passages are taken best first while they fit ``max_tokens`` (a message costs its stored
  token count plus the context window's per-message overhead). One that does not fit whole
  keeps its hits and the neighbours nearest them that fit (``complete: false``); one whose
  hits alone do not fit is left out and counted in ``omitted``. Nothing is cut silently.

Cost: about one search: ``Store.search_with_neighbours`` gives the hits and the messages
around them together (one statement on PostgreSQL: the search fenced in a CTE, each hit's
neighbours read by the primary key; on SQLite a second read on the loop, by the key).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sessionkeeper.mcp.tools import Caller, message_dict
from sessionkeeper.models import MAX_PAGE_SIZE, Message, SearchHit
from sessionkeeper.store import validate
from sessionkeeper.store.core import MAX_CONTEXT
from sessionkeeper.store.window import cost

MAX_PASSAGES = 20
MAX_RECALL_TOKENS = 100_000
HITS_PER_PASSAGE = 4  # search hits read per wanted passage (merges and duplicates use some)


@dataclass(slots=True)
class Passage:
    session_id: str
    title: str | None
    agent_id: str | None
    rank: float
    first: int  # seq range of the passage, inclusive
    last: int
    hits: list[int] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)

    def touches(self, first: int, last: int) -> bool:
        return first <= self.last + 1 and last >= self.first - 1


def group(hits: list[SearchHit], context: int) -> list[Passage]:
    """Hits (best first) → passages (best first), neighbourhoods of one session merged."""
    passages: list[Passage] = []
    for hit in hits:
        first, last = max(1, hit.seq - context), hit.seq + context
        for passage in passages:
            if passage.session_id == hit.session_id and passage.touches(first, last):
                passage.first = min(passage.first, first)
                passage.last = max(passage.last, last)
                passage.hits.append(hit.seq)
                break
        else:
            passages.append(
                Passage(hit.session_id, hit.session_title, hit.agent_id, hit.rank, first, last)
            )
            passages[-1].hits.append(hit.seq)
    # A merge can make two passages of one session touch: merge those too.
    merged: list[Passage] = []
    for passage in passages:
        for earlier in merged:
            if earlier.session_id == passage.session_id and earlier.touches(
                passage.first, passage.last
            ):
                earlier.first = min(earlier.first, passage.first)
                earlier.last = max(earlier.last, passage.last)
                earlier.hits.extend(passage.hits)
                break
        else:
            merged.append(passage)
    return merged


def _key(text: str) -> str:
    return " ".join(text.casefold().split())


def _by_session(messages: list[Message]) -> dict[str, list[Message]]:
    """The messages of each session, by seq."""
    by_session: dict[str, list[Message]] = {}
    for message in sorted(messages, key=lambda m: m.seq):
        by_session.setdefault(message.session_id, []).append(message)
    return by_session


def _fit(passage: Passage, room: int) -> tuple[list[Message], int] | None:
    """The passage's messages that fit ``room`` tokens, and their cost: all, or its hits and
    the nearest neighbours that fit, or None if its hits alone do not."""
    whole = sum(cost(m) for m in passage.messages)
    if whole <= room:
        return passage.messages, whole
    hits = set(passage.hits)
    kept = [m for m in passage.messages if m.seq in hits]
    used = sum(cost(m) for m in kept)
    if not kept or used > room:
        return None

    def distance(m: Message) -> int:
        return min(abs(m.seq - h) for h in hits)

    for message in sorted((m for m in passage.messages if m.seq not in hits), key=distance):
        if used + cost(message) <= room:
            kept.append(message)
            used += cost(message)
    return sorted(kept, key=lambda m: m.seq), used


async def recall(
    caller: Caller,
    query: str,
    *,
    max_tokens: int = 2000,
    context: int = 1,
    limit: int = 5,
    agent_id: str | None = None,
    user_id: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> dict[str, Any]:
    validate.bounded_int(max_tokens, "max_tokens", 1, MAX_RECALL_TOKENS)
    validate.bounded_int(context, "context", 0, MAX_CONTEXT)
    validate.limit(limit, MAX_PASSAGES)
    hits, messages = await caller.store.search_with_neighbours(
        query,
        context=context,
        limit=min(MAX_PAGE_SIZE, limit * HITS_PER_PASSAGE),
        agent_id=agent_id,
        agent_ids=caller.principal.scope,
        user_id=user_id,
        user_ids=caller.principal.user_scope,
        created_after=created_after,
        created_before=created_before,
        snippets=False,  # passages are messages
    )
    by_session = _by_session(messages)
    seen: set[str] = set()
    chosen: list[dict[str, Any]] = []
    used = duplicates = omitted = 0
    for passage in group(hits, context):
        if len(chosen) == limit:
            break
        # Its messages came with the hits: duplicates are known only once they are read.
        passage.messages = [
            m
            for m in by_session.get(passage.session_id, ())
            if passage.first <= m.seq <= passage.last
        ]
        hit_seqs = set(passage.hits)
        keys = {_key(m.content) for m in passage.messages if m.seq in hit_seqs}
        if not keys:
            continue  # its hits were deleted since the search
        if keys <= seen:
            duplicates += 1
            continue
        seen |= keys
        fitted = _fit(passage, max_tokens - used)
        if fitted is None:
            omitted += 1
            continue
        kept, spent = fitted
        used += spent
        chosen.append(
            {
                "session_id": passage.session_id,
                "title": passage.title,
                "agent_id": passage.agent_id,
                "rank": passage.rank,
                "hit_seqs": sorted(hit_seqs),
                "complete": len(kept) == len(passage.messages),
                "messages": [{**message_dict(m), "hit": m.seq in hit_seqs} for m in kept],
            }
        )
    return {
        "query": query,
        "passages": chosen,
        "total_tokens": used,
        "max_tokens": max_tokens,
        "duplicates": duplicates,
        "omitted": omitted,
    }

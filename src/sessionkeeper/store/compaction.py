"""Compaction: one summary message stands in for a session's older messages in its window.

``Store.compact_session`` runs ``compact`` below:
1. Read, in one snapshot, the pinned system prompt, the compaction in force and every
   message after both (``CompactionPart.source``).
2. Choose the cut (``summarised_count``): keep the newest messages worth
   ``keep_last_tokens`` as whole window units (an assistant tool call with its results is one
   unit, ``window.units_newest_first``), so the cut never separates a tool result from its
   call; an assistant tool call still waiting for its results is never summarised either.
3. Call ``summarize`` with what the new summary stands for: the summary in force (as its
   message) followed by the messages before the cut. This is the slow part (a model call), so
   it runs outside any transaction: appends go on meanwhile.
4. Insert the compaction in one transaction, only if the cut is still valid
   (``CompactionPart.insert``): the compaction in force is still the one read in 1, and no
   message before the cut was deleted meanwhile. Otherwise ``Conflict`` and nothing is
   written. Appends during 3 land after the cut (a new message's seq is above every seq that
   exists), so they are never lost nor summarised; a second compaction racing this one finds
   the first in force and stops, so nothing is summarised twice.

The messages stay: export, search and ``get_messages`` read them as before. The window
(``Store.context_window``) is the pinned prompt, the summary (a system message, see
``Compaction.as_message``), and the newest messages after the cut that fit. Deleting a
message a compaction stands for drops that compaction (``Backend.delete_message``): the
window then falls back to the one before it, or to the raw messages.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

from sessionkeeper.errors import Conflict, InvalidInput, NotFound
from sessionkeeper.models import Compaction, Message
from sessionkeeper.store import validate, window
from sessionkeeper.store.backends.base import CompactionPart


class Summarize(Protocol):
    """What a summarizer is: given the messages to summarise (a previous summary first, as
    a system message marked ``metadata["compaction"]``), the summary's text."""

    def __call__(self, messages: list[Message], /) -> Awaitable[str]: ...


def _waits_for_results(unit: list[Message]) -> bool:
    """An assistant tool call with none of its results yet (they may be on their way)."""
    return (
        len(unit) == 1 and unit[0].role == "assistant" and bool(unit[0].metadata.get("tool_calls"))
    )


def summarised_count(messages: list[Message], keep_last_tokens: int) -> int:
    """How many of ``messages`` (oldest first) go into the summary: all but the newest whole
    units that fit ``keep_last_tokens`` (never a unit in part; a pending tool call is kept)."""
    kept = 0
    used = 0
    full = False
    for unit in window.units_newest_first(reversed(messages)):
        cost = sum(window.cost(m) for m in unit)
        if full or used + cost > keep_last_tokens:
            if not _waits_for_results(unit):
                break
            full = True  # kept whatever its size; the walk goes no further back
        else:
            used += cost
        kept += len(unit)
    return len(messages) - kept


def checked_summary(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidInput(
            f"summarize must return the summary's text, got {type(value).__name__}",
            field="summary",
        )
    if not value.strip():
        raise InvalidInput("summarize returned an empty summary", field="summary")
    validate.content(value)  # valid text, at most MAX_MESSAGE_LENGTH: never truncated
    return value


def check_summarize(summarize: Any) -> Summarize:
    if not callable(summarize):
        raise InvalidInput("summarize must be an async callable", field="summarize")
    return summarize  # type: ignore[no-any-return]


async def compact(
    part: CompactionPart,
    session_id: str,
    *,
    keep_last_tokens: int,
    summarize: Summarize,
    count_tokens: Callable[[str], int],
    now: datetime,
    model: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Compaction | None:
    """Steps 1-4 above; None when nothing is old enough to summarise."""
    source = await part.source(session_id)
    if source is None:
        raise NotFound(f"session {session_id!r} not found")
    n = summarised_count(source.messages, keep_last_tokens)
    if n == 0:
        return None
    gone = source.messages[:n]
    current = source.current
    inputs = ([current.as_message()] if current else []) + gone
    answer = summarize(inputs)
    summary = checked_summary(await answer if inspect.isawaitable(answer) else answer)
    after = max(source.pinned_through, current.through_seq if current else 0)
    tokens = sum(m.token_count for m in gone)
    made = Compaction(
        session_id=session_id,
        from_seq=current.from_seq if current else source.pinned_through + 1,
        through_seq=gone[-1].seq,
        message_count=n + (current.message_count if current else 0),
        compacted_tokens=tokens + (current.compacted_tokens if current else 0),
        summary=summary,
        token_count=count_tokens(summary),
        model=model,
        metadata=dict(metadata or {}),
        created_at=now,
    )
    done = await part.insert(
        made,
        previous=current.through_seq if current else 0,
        after=after,
        count=n,
        tokens=tokens,
    )
    if done is None:
        raise NotFound(f"session {session_id!r} not found")
    if not done:
        raise Conflict(
            f"session {session_id!r} changed during its compaction (another compaction, or a "
            "deleted message); nothing was compacted: try again",
            session_id=session_id,
        )
    return made

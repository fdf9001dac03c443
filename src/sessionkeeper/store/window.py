"""Choosing which messages fit a context window (pure functions; backends feed them rows).

A backend reads the session's first messages (to find the pinned system prompt) and then its
newest messages in chunks of CHUNK, stopping once they certainly overflow the budget, so a
window over a 10,000-message session reads a few hundred rows (``Backend.read_tail``).

Rules, in order:
1. The leading system messages (the system prompt) are pinned: always in, counted first.
2. Then the newest messages, walking back in time, as whole *units* while they fit.
   A unit is one message, except that an assistant message carrying ``tool_calls`` and the
   tool results answering it form one unit: a model must never see a tool result without
   the call it answers (OpenAI rejects such a request), nor a call without its results.
3. The walk stops at the first unit that does not fit, so the window is a contiguous tail of
   the conversation: skipping a large message to fit older ones would make a gap the model
   cannot see.

Each message costs its stored token_count plus MESSAGE_OVERHEAD_TOKENS, the framing that
chat formats add per message (OpenAI documents 3 for its chat models).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from sessionkeeper.models import Message

MESSAGE_OVERHEAD_TOKENS = 3
PINNED_SCAN = 16  # a system prompt is looked for among the first messages only
CHUNK = 200


def cost(message: Message) -> int:
    return message.token_count + MESSAGE_OVERHEAD_TOKENS


def pinned_prefix(first_messages: Iterable[Message]) -> list[Message]:
    """The system messages at the very start of a session, given its first messages by seq."""
    pinned: list[Message] = []
    for message in first_messages:
        if message.role != "system":
            break
        pinned.append(message)
    return pinned


def _is_tool_call(message: Message) -> bool:
    return message.role == "assistant" and bool(message.metadata.get("tool_calls"))


def units_newest_first(messages_newest_first: Iterable[Message]) -> Iterator[list[Message]]:
    """Group messages (newest first) into units, each unit in chronological order."""
    pending_tools: list[Message] = []
    for message in messages_newest_first:
        if message.role == "tool":
            pending_tools.append(message)
            continue
        if pending_tools and _is_tool_call(message):
            yield [message, *reversed(pending_tools)]
            pending_tools = []
            continue
        if pending_tools:  # tool results whose call is gone: keep them together anyway
            yield list(reversed(pending_tools))
            pending_tools = []
        yield [message]
    if pending_tools:
        yield list(reversed(pending_tools))


def fill(budget: int, messages_newest_first: Iterable[Message]) -> tuple[list[Message], int, bool]:
    """Take units newest-first while they fit ``budget``.

    Returns (chosen messages in chronological order, tokens used, whether the walk stopped
    because a unit did not fit).
    """
    chosen: list[list[Message]] = []
    used = 0
    for unit in units_newest_first(messages_newest_first):
        unit_cost = sum(cost(m) for m in unit)
        if used + unit_cost > budget:
            return [m for u in reversed(chosen) for m in u], used, True
        chosen.append(unit)
        used += unit_cost
    return [m for u in reversed(chosen) for m in u], used, False

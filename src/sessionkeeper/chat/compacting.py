"""Automatic compaction in the chat service and the CLI's ``ask`` (``Store.compact_session``).

Configured per agent with ``compact_after_tokens`` (``SESSIONKEEPER_COMPACT_AFTER_TOKENS``, JSON:
``{"*": 6000, "support": 12000}``; ``"*"`` is every agent without its own entry; none: no
automatic compaction). After a turn's reply is stored, when the session's tokens not yet
compacted (its token count less what the compaction in force stands for) pass the agent's
threshold, the older messages are summarised by the chat's own model, keeping the newest
messages worth half the threshold as they are. The summary then stands in for them in every
later context window; the messages themselves stay.

A compaction that fails (the model is down, another compaction came first) is logged and
left for the next turn: the turn itself has already succeeded.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sessionkeeper.chat.llm import LLMClient
from sessionkeeper.errors import InvalidInput, SessionkeeperError
from sessionkeeper.models import Compaction, Message
from sessionkeeper.store.compaction import Summarize
from sessionkeeper.store.core import Store

logger = logging.getLogger(__name__)

DEFAULT_AGENT = "*"
INSTRUCTIONS = (
    "You write the memory of a conversation. Summarise the conversation below for the "
    "assistant that continues it: the user's goals and preferences, facts and decisions, "
    "tool results that still matter, and open questions. Be concise and complete; write "
    "only the summary. If it starts with an earlier summary, fold that in."
)


def thresholds(value: Mapping[str, Any] | None) -> dict[str, int] | None:
    """The per-agent thresholds, checked (a positive number of tokens each)."""
    if value is None:
        return None
    checked: dict[str, int] = {}
    for agent, tokens in value.items():
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
            raise InvalidInput(
                f"compact_after_tokens[{agent!r}] must be a positive number of tokens, "
                f"got {tokens!r}",
                field="compact_after_tokens",
            )
        checked[str(agent)] = tokens
    return checked


def threshold_for(config: Mapping[str, int] | None, agent_id: str) -> int | None:
    if not config:
        return None
    return config.get(agent_id, config.get(DEFAULT_AGENT))


def _line(message: Message) -> str:
    calls = message.metadata.get("tool_calls")
    if calls and not message.content:
        names = ", ".join(str((c.get("function") or {}).get("name", "?")) for c in calls)
        return f"{message.role}: [calls {names}]"
    return f"{message.role}: {message.content}"


def summarizer(llm: LLMClient) -> Summarize:
    """A ``summarize`` for ``Store.compact_session`` that asks ``llm``."""

    async def summarize(messages: list[Message]) -> str:
        transcript = "\n\n".join(_line(m) for m in messages)
        return await llm.complete(
            [
                {"role": "system", "content": INSTRUCTIONS},
                {"role": "user", "content": transcript},
            ]
        )

    return summarize


async def compact_if_due(
    store: Store, llm: LLMClient, session_id: str, threshold: int
) -> Compaction | None:
    """Compact the session when its tokens not yet compacted pass ``threshold``; never
    raises a store or model failure (logged: the next turn tries again)."""
    try:
        session = await store.get_session(session_id)
        current = await store.get_compaction(session_id)
        live = session.token_count - (current.compacted_tokens if current else 0)
        if live <= threshold:
            return None
        return await store.compact_session(
            session_id,
            keep_last_tokens=threshold // 2,
            summarize=summarizer(llm),
            model=getattr(llm, "model", None),
        )
    except SessionkeeperError as exc:
        logger.warning("compaction of session %s not done: %s", session_id, exc.message)
    except Exception:
        logger.exception("compaction of session %s failed", session_id)
    return None

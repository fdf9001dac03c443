"""Pydantic AI message history on the sessionkeeper store.

    from sessionkeeper.integrations.pydantic_ai import SessionkeeperMessageHistory

    history = SessionkeeperMessageHistory.from_url("trip-1", "sqlite:///agent.db")
    result = await agent.run("Hello", message_history=await history.load())
    await history.save(result.new_messages())

Pydantic AI keeps no history itself: a run takes ``message_history`` and gives back
``result.new_messages()``. ``SessionkeeperMessageHistory`` is that history in a store session
(``session_type="pydantic-ai"``): ``load()`` returns the session's ``list[ModelMessage]``,
``save(messages)`` appends a run's new messages in one transaction (all stored, or none).

Each ``ModelMessage`` (a ``ModelRequest`` or a ``ModelResponse``) is one message:

- ``metadata["pydantic_ai_message_json"]`` is the message's JSON exactly as
  ``ModelMessagesTypeAdapter`` writes it (bytes as base64, times as ISO 8601), as a string,
  so ``load()`` gives back what Pydantic AI's own JSON round trip gives, every part kind
  included (text, tool call, tool return, retry, thinking, files and binary content), down
  to the bytes of its JSON: kept as a JSON object, PostgreSQL's jsonb would reorder the keys
  of tool-call arguments (and with them the prompt a provider caches) and rewrite numbers
  such as ``1e+16`` and ``-0.0``;
- the content is its text (prompts, text, thinking, a call as ``name(args)``, a tool's return
  as ``name → result``, a retry's prompt; files as ``[file media/type]``), which search
  indexes and token counts measure (its first 100,000 characters when longer; the message
  itself is whole in metadata);
- the role: ``assistant`` for a response; for a request ``user`` when it holds a user prompt,
  else ``tool`` when it returns tool results or retries, else ``system``; the model name of a
  response as the message's model.

Messages written by other means (the CLI, the REST API, the chat) read as a user prompt
(user, tool), a system prompt, or a text response (assistant).

Saving is one store call (:meth:`SessionkeeperMessageHistory.save` → ``to_row`` per message →
one ``add_messages``): where per-message usage is recorded, it is taken from each response
in ``to_row``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sessionkeeper.bridge import run_blocking
from sessionkeeper.integrations._binding import BoundSession, StoreSource
from sessionkeeper.integrations._common import (
    count_tokens,
    excerpt,
    finish,
    missing_framework,
    reported_usage,
)
from sessionkeeper.store import validate

try:
    from pydantic_ai.messages import (
        BinaryContent,
        FileUrl,
        ModelMessage,
        ModelMessagesTypeAdapter,
        ModelRequest,
        ModelResponse,
        RetryPromptPart,
        ToolCallPart,
        ToolReturnPart,
        UserPromptPart,
    )
except ImportError as exc:  # pragma: no cover - exercised by a subprocess test
    raise missing_framework("Pydantic AI (pydantic-ai-slim)", "pydantic-ai", exc) from exc

if TYPE_CHECKING:
    from sessionkeeper import Store
    from sessionkeeper.models import Message

__all__ = ["MESSAGE_KEY", "SESSION_TYPE", "SessionkeeperMessageHistory", "to_message", "to_row"]

SESSION_TYPE = "pydantic-ai"
MESSAGE_KEY = "pydantic_ai_message"
MESSAGE_JSON_KEY = f"{MESSAGE_KEY}_json"


def _media(value: Any) -> str | None:
    """A file or binary content as text: ``[file media/type]``; None for other values."""
    if isinstance(value, BinaryContent | FileUrl):
        try:
            kind = value.media_type
        except ValueError:  # a URL whose media type cannot be told
            kind = ""
        return f"[file {kind}]" if kind else "[file]"
    return None


def _prompt_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    media = _media(content)
    if media is not None:
        return media
    if isinstance(content, Sequence):
        return "\n".join(t for item in content if (t := _prompt_text(item)))
    text = getattr(content, "content", None)
    return text if isinstance(text, str) else ""


def _part_text(part: Any) -> str:
    if isinstance(part, UserPromptPart):
        return _prompt_text(part.content)
    if isinstance(part, ToolCallPart):
        return f"{part.tool_name}({part.args_as_json_str()})"
    if isinstance(part, ToolReturnPart):
        return f"{part.tool_name} → {part.model_response_str()}"
    if isinstance(part, RetryPromptPart) or getattr(part, "part_kind", None) == "retry-feedback":
        return str(part.model_response())  # what the model is told
    content = getattr(part, "content", None)
    if isinstance(content, str):
        return content  # system prompt, text, thinking, and parts of the same shape
    media = _media(content)  # a file part
    return media if media is not None else ""


def message_text(message: ModelMessage) -> str:
    """The searchable text of a message: its parts' text, a line each."""
    return "\n".join(t for part in message.parts if (t := _part_text(part)))


def message_role(message: ModelMessage) -> str:
    """The store role of a message: assistant | user | tool | system."""
    if isinstance(message, ModelResponse):
        return "assistant"
    # By part_kind, which names each part across Pydantic AI versions (1.x has
    # RetryPromptPart where later versions have RetryFeedbackPart and retried tool returns).
    kinds = {getattr(part, "part_kind", None) for part in message.parts}
    if "user-prompt" in kinds:
        return "user"
    if kinds & {"tool-return", "retry-prompt"}:
        return "tool"
    return "system" if kinds == {"system-prompt"} else "user"


def to_row(store: Store, message: ModelMessage) -> dict[str, Any]:
    """The store message for one ``ModelMessage`` (see the module docstring)."""
    if not isinstance(message, ModelRequest | ModelResponse):
        raise TypeError(
            f"messages must be ModelRequest or ModelResponse objects, got {type(message)!r}"
        )
    text = message_text(message)
    content, clipped = excerpt(text)
    whole = ModelMessagesTypeAdapter.dump_json([message])[1:-1].decode()  # [one] -> one
    metadata: dict[str, Any] = {MESSAGE_JSON_KEY: whole}
    if clipped:
        metadata["excerpt"] = True
    row: dict[str, Any] = {
        "role": message_role(message),
        "content": content,
        "metadata": validate.checked_metadata(metadata),
    }
    name = message.model_name if isinstance(message, ModelResponse) else None
    if name and len(name) <= 128:  # the store's limit; the name is in the message whole
        row["model"] = name
    if clipped:
        row["token_count"] = count_tokens(store, text)
    if isinstance(message, ModelResponse) and (
        message.usage.input_tokens or message.usage.output_tokens
    ):
        # What the model reported for this response (one request), as the store's usage.
        row["usage"] = reported_usage(
            input_tokens=message.usage.input_tokens,
            output_tokens=message.usage.output_tokens,
            cached_tokens=message.usage.cache_read_tokens,
            reasoning_tokens=message.usage.output_reasoning_tokens,
            model=name,
        )
    return row


def _plain(message: Message) -> dict[str, Any]:
    """The ``ModelMessage`` (as JSON) a message written by other means reads as."""
    if message.role == "assistant":
        part = {"part_kind": "text", "content": message.content}
        return {"kind": "response", "parts": [part], "model_name": message.model}
    kind = "system-prompt" if message.role == "system" else "user-prompt"
    return {"kind": "request", "parts": [{"part_kind": kind, "content": message.content}]}


def to_messages(messages: Sequence[Message]) -> list[ModelMessage]:
    """The ``ModelMessage`` each stored message holds, validated in one call."""
    texts = []
    for message in messages:
        text = message.metadata.get(MESSAGE_JSON_KEY)
        if not isinstance(text, str):
            whole = message.metadata.get(MESSAGE_KEY)  # as a JSON object (other writers)
            text = json.dumps(whole if isinstance(whole, dict) else _plain(message))
        texts.append(text)
    return ModelMessagesTypeAdapter.validate_json("[" + ",".join(texts) + "]")


def to_message(message: Message) -> ModelMessage:
    """The ``ModelMessage`` one stored message holds."""
    return to_messages([message])[0]


def _first_user_text(messages: Sequence[ModelMessage]) -> str | None:
    for message in messages:
        if isinstance(message, ModelRequest):
            for part in message.parts:
                if isinstance(part, UserPromptPart):
                    text = _prompt_text(part.content)
                    if text.strip():
                        return text
    return None


class SessionkeeperMessageHistory(BoundSession):
    """A Pydantic AI message history kept in a sessionkeeper store session.

    ``SessionkeeperMessageHistory(session_id, store=store)`` uses a Store you opened (and
    close); ``SessionkeeperMessageHistory.from_url(session_id, url)`` opens one on first use
    (close it with ``await history.aclose()`` or ``async with``). The store session is created
    by the first ``save``, with ``agent_id``, ``user_id`` (who it is for; default none),
    ``title`` (default: the first user prompt, as in the chat) and
    ``session_type="pydantic-ai"``. The session id must suit the store: 1-128 characters of
    ``A-Z a-z 0-9 . _ : -``.
    """

    SESSION_TYPE = SESSION_TYPE

    def __init__(
        self,
        session_id: str,
        *,
        store: Store,
        agent_id: str = "main",
        user_id: str | None = None,
        title: str | None = None,
        session_metadata: dict[str, Any] | None = None,
    ) -> None:
        self._setup(
            session_id,
            StoreSource(store=store),
            agent_id=agent_id,
            user_id=user_id,
            title=title,
            session_metadata=session_metadata,
        )

    @classmethod
    def from_url(
        cls,
        session_id: str,
        url: str,
        *,
        agent_id: str = "main",
        user_id: str | None = None,
        title: str | None = None,
        session_metadata: dict[str, Any] | None = None,
        store_options: Mapping[str, Any] | None = None,
    ) -> SessionkeeperMessageHistory:
        """A history on the store at ``url`` (``sqlite:///path``, ``postgresql://…``), opened
        on first use; ``store_options`` go to ``sessionkeeper.open_store``."""
        return cls._on(
            session_id,
            StoreSource(url=url, options=store_options),
            agent_id=agent_id,
            user_id=user_id,
            title=title,
            session_metadata=session_metadata,
        )

    async def load(self) -> list[ModelMessage]:
        """The whole history, oldest first ([] before the first save): a run's
        ``message_history``."""
        return to_messages(await self._binding.all())

    async def save(self, messages: Sequence[ModelMessage]) -> None:
        """Append ``messages`` (a run's ``result.new_messages()``) in one transaction: all
        stored, or none; ``[]`` does nothing. Runs to its end even if the caller is
        cancelled."""
        if isinstance(messages, str | bytes) or not isinstance(messages, Sequence):
            raise TypeError(f"messages must be a list of ModelMessage, got {type(messages)!r}")
        if not messages:
            return
        store = await self._binding.store()
        rows = [to_row(store, message) for message in messages]
        await finish(self._binding.append(rows, _first_user_text(messages)))

    async def clear(self) -> None:
        """Remove every message. The store session stays (empty, still listed) and usable."""
        await finish(self._binding.clear())

    # Blocking forms, for ``agent.run_sync`` (the store lives on the bridge's shared loop).

    def load_sync(self) -> list[ModelMessage]:
        return run_blocking(self.load())

    def save_sync(self, messages: Sequence[ModelMessage]) -> None:
        run_blocking(self.save(messages))

    def clear_sync(self) -> None:
        run_blocking(self.clear())

    def close_sync(self) -> None:
        """Close the store if this history opened it from a URL."""
        run_blocking(self.aclose())

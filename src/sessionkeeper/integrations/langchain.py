"""LangChain chat message history on the sessionkeeper store.

    from sessionkeeper.integrations.langchain import SessionkeeperChatMessageHistory

    chain = RunnableWithMessageHistory(
        prompt | model,
        lambda session_id: SessionkeeperChatMessageHistory.from_url(session_id, URL),
        input_messages_key="question",
        history_messages_key="history",
    )

``SessionkeeperChatMessageHistory`` is a ``BaseChatMessageHistory`` with real async methods
(``aget_messages``, ``aadd_messages``, ``aclear``) and blocking ones (``messages``,
``add_messages``, ``clear``), which run on a shared background event loop, so they also work
when called from inside a running loop (``messages``, called where no loop runs, reads on the
calling thread instead). The constructor does no I/O: building one per call, as
``RunnableWithMessageHistory`` does, costs nothing.

Each message is one message of an ordinary store session (``session_type="langchain"``):
``metadata["message"]`` is ``message_to_dict(message)`` (``metadata["message_json"]``, as
text, when PostgreSQL's jsonb would rewrite its numbers), so ``messages_from_dict`` gives back an
equal message (type, content as text or parts, id, name, tool calls, tool call id, additional
kwargs, response metadata, usage); the content is its text (for a tool-calling AI message
without text, the calls written as ``name({"arg": …})``); roles are user (human), assistant
(ai), system, tool (tool and function). AI tool calls and tool results also carry the
chat-style ``tool_calls`` / ``tool_call_id`` in metadata, so ``max_tokens`` windows (the store's
``context_window``) never split a call from its results. An AI message's ``usage_metadata``
is also recorded as the message's usage (``Store.get_usage``: tokens and cost).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sessionkeeper.bridge import run_blocking, run_read
from sessionkeeper.errors import NotFound
from sessionkeeper.integrations._binding import BoundSession, StoreSource
from sessionkeeper.integrations._common import (
    count_tokens,
    excerpt,
    finish,
    keep_whole,
    key_from_ids,
    missing_framework,
    read_whole,
    reported_usage,
)
from sessionkeeper.models import Usage

try:
    from langchain_core.chat_history import BaseChatMessageHistory
    from langchain_core.messages import (
        AIMessage,
        BaseMessage,
        HumanMessage,
        SystemMessage,
        ToolMessage,
        message_to_dict,
        messages_from_dict,
    )
except ImportError as exc:  # pragma: no cover - exercised by a subprocess test
    raise missing_framework("LangChain (langchain-core)", "langchain", exc) from exc

if TYPE_CHECKING:
    from sessionkeeper import Store
    from sessionkeeper.models import Message

__all__ = ["SESSION_TYPE", "HistoryFactory", "SessionkeeperChatMessageHistory"]

SESSION_TYPE = "langchain"

_ROLES = {
    "human": "user",
    "user": "user",
    "ai": "assistant",
    "assistant": "assistant",
    "system": "system",
    "developer": "system",
    "tool": "tool",
    "function": "tool",
}


def message_role(message: BaseMessage) -> str:
    """The store role of a LangChain message: user | assistant | system | tool."""
    kind = message.type
    if kind in ("chat", "ChatMessageChunk"):
        kind = str(getattr(message, "role", "user"))
    kind = kind.lower().removesuffix("messagechunk")
    return _ROLES.get(kind, "user")


def message_text(message: BaseMessage) -> str:
    text = str(message.text)
    calls = getattr(message, "tool_calls", None)
    if text or not calls:
        return text
    return "\n".join(
        f"{call.get('name', '')}({json.dumps(call.get('args', {}), ensure_ascii=False)})"
        for call in calls
    )


def to_row(store: Store, message: BaseMessage) -> dict[str, Any]:
    """The store message for a LangChain message (see the module docstring)."""
    return message_row(message, lambda text: count_tokens(store, text))


def message_row(message: BaseMessage, count: Callable[[str], int]) -> dict[str, Any]:
    """``to_row`` with the tokens of an excerpted text counted by ``count`` (no Store
    needed: the importer of langchain-postgres tables uses it)."""
    if not isinstance(message, BaseMessage):
        raise TypeError(f"expected a LangChain BaseMessage, got {type(message)!r}")
    role = message_role(message)
    text = message_text(message)
    content, clipped = excerpt(text)
    extra: dict[str, Any] = {}
    calls = getattr(message, "tool_calls", None)
    if role == "assistant" and calls:
        extra["tool_calls"] = [
            {
                "id": call.get("id"),
                "type": "function",
                "function": {
                    "name": call.get("name"),
                    "arguments": json.dumps(call.get("args", {}), ensure_ascii=False),
                },
            }
            for call in calls
        ]
    elif role == "tool" and isinstance(getattr(message, "tool_call_id", None), str):
        extra["tool_call_id"] = getattr(message, "tool_call_id")  # noqa: B009
    if clipped:
        extra["excerpt"] = True
    metadata = keep_whole("message", message_to_dict(message), extra)
    row: dict[str, Any] = {"role": role, "content": content, "metadata": metadata}
    if clipped:
        row["token_count"] = count(text)
    usage = message_usage(message)
    if usage is not None:
        row["usage"] = usage
    return row


def message_usage(message: BaseMessage) -> Usage | None:
    """The usage an AI message reports (``usage_metadata``: input and output tokens, cache
    reads, reasoning), with the model its ``response_metadata`` names; None without one."""
    reported = getattr(message, "usage_metadata", None)
    if not isinstance(reported, Mapping):
        return None
    inputs = reported.get("input_token_details") or {}
    outputs = reported.get("output_token_details") or {}
    meta = getattr(message, "response_metadata", None) or {}
    return reported_usage(
        input_tokens=reported.get("input_tokens"),
        output_tokens=reported.get("output_tokens"),
        cached_tokens=inputs.get("cache_read", 0) if isinstance(inputs, Mapping) else 0,
        reasoning_tokens=outputs.get("reasoning", 0) if isinstance(outputs, Mapping) else 0,
        model=meta.get("model_name", meta.get("model")) if isinstance(meta, Mapping) else None,
    )


def to_message(stored: Message) -> BaseMessage:
    """The LangChain message a stored message holds; one written by other means (CLI, REST)
    reads as the plain message of its role."""
    data = read_whole(stored.metadata, "message")
    if isinstance(data, Mapping):
        return messages_from_dict([dict(data)])[0]
    if stored.role == "assistant":
        return AIMessage(content=stored.content)
    if stored.role == "system":
        return SystemMessage(content=stored.content)
    tool_call_id = stored.metadata.get("tool_call_id")
    if stored.role == "tool" and isinstance(tool_call_id, str):
        return ToolMessage(content=stored.content, tool_call_id=tool_call_id)
    return HumanMessage(content=stored.content)


def first_user_text(messages: Sequence[BaseMessage]) -> str | None:
    """The text of the first human message that has any (a session's default title)."""
    for message in messages:
        if message_role(message) == "user":
            text = str(message.text)
            if text.strip():
                return text
    return None


class SessionkeeperChatMessageHistory(BoundSession, BaseChatMessageHistory):
    """A LangChain chat history kept in a sessionkeeper store.

    ``SessionkeeperChatMessageHistory(session_id, store=store)`` uses a Store you opened;
    ``.from_url(session_id, url)`` opens one on first use (``close()``/``aclose()`` it). The
    store session is created by the first write with ``agent_id``, ``user_id`` (who it is
    for; default none), ``title`` (default: the first human text, as in the chat) and
    ``session_type="langchain"``.

    Reads return the whole history unless bounded: ``limit`` keeps the newest N messages,
    ``max_tokens`` the newest that fit a token budget (the store's ``context_window``: leading
    system messages pinned, an AI tool call kept with its tool results).
    """

    def __init__(
        self,
        session_id: str,
        *,
        store: Store,
        agent_id: str = "main",
        user_id: str | None = None,
        title: str | None = None,
        limit: int | None = None,
        max_tokens: int | None = None,
        session_metadata: dict[str, Any] | None = None,
    ) -> None:
        self._setup(
            session_id,
            StoreSource(store=store),
            agent_id=agent_id,
            user_id=user_id,
            title=title,
            limit=limit,
            max_tokens=max_tokens,
            session_metadata=session_metadata,
        )

    def _setup(
        self,
        session_id: str,
        source: StoreSource,
        *,
        agent_id: str = "main",
        user_id: str | None = None,
        title: str | None = None,
        limit: int | None = None,
        max_tokens: int | None = None,
        session_metadata: dict[str, Any] | None = None,
    ) -> None:
        BaseChatMessageHistory.__init__(self)
        for name, value in (("limit", limit), ("max_tokens", max_tokens)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self._bind(
            session_id,
            source,
            agent_id=agent_id,
            user_id=user_id,
            title=title,
            session_type=SESSION_TYPE,
            metadata=session_metadata,
        )
        self.limit = limit
        self.max_tokens = max_tokens

    @classmethod
    def from_url(
        cls,
        session_id: str,
        url: str,
        *,
        agent_id: str = "main",
        user_id: str | None = None,
        title: str | None = None,
        limit: int | None = None,
        max_tokens: int | None = None,
        session_metadata: dict[str, Any] | None = None,
        store_options: Mapping[str, Any] | None = None,
    ) -> SessionkeeperChatMessageHistory:
        """A history on the store at ``url``, opened on first use (and closed by ``close()``);
        ``store_options`` go to ``sessionkeeper.open_store``."""
        return cls._on(
            session_id,
            StoreSource(url=url, options=store_options),
            agent_id=agent_id,
            user_id=user_id,
            title=title,
            limit=limit,
            max_tokens=max_tokens,
            session_metadata=session_metadata,
        )

    @classmethod
    def factory(
        cls,
        url: str | None = None,
        *,
        store: Store | None = None,
        agent_id: str = "main",
        user_id: str | None = None,
        limit: int | None = None,
        max_tokens: int | None = None,
        store_options: Mapping[str, Any] | None = None,
    ) -> HistoryFactory:
        """A ``get_session_history`` for ``RunnableWithMessageHistory``: session id → history,
        every history on one store (``store``, or the one at ``url`` opened on first use).
        ``user_id`` is the user of the sessions it creates, unless the call names one
        (``factory(session_id, user_id=…)``: a ``history_factory_config`` field)."""
        source = StoreSource(store=store, url=url, options=store_options)
        options = {
            "agent_id": agent_id,
            "user_id": user_id,
            "limit": limit,
            "max_tokens": max_tokens,
        }
        cls._on("probe", source, **options)  # bad options fail here, not at the first turn
        return HistoryFactory(cls, source, options)

    # ── async ────────────────────────────────────────────────────────────────

    async def aget_messages(self) -> list[BaseMessage]:
        """The history, oldest first (bounded by ``limit`` / ``max_tokens`` when set)."""
        if self.max_tokens is not None:
            store = await self._binding.store()
            try:
                window = await store.context_window(self.session_id, self.max_tokens)
            except NotFound:
                return []
            stored = window.messages
            if self.limit is not None:
                stored = stored[-self.limit :]
        elif self.limit is not None:
            whole = await self._binding.last_whole(self.limit, "message")
            if whole is not None and all(isinstance(data, dict) for data in whole):
                return messages_from_dict(whole)
            stored = await self._binding.last(self.limit)
        else:
            stored = await self._binding.all()
        return [to_message(m) for m in stored]

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Append ``messages`` in one transaction (all stored, or none). When every message
        has an ``id``, the write is keyed by them: sending the same messages again (a retry)
        stores nothing (``store/idempotency.py``)."""
        if not messages:
            return
        store = await self._binding.store()
        rows = [to_row(store, m) for m in messages]
        key = key_from_ids("langchain", [m.id for m in messages])
        await finish(self._binding.append(rows, first_user_text(messages), key))

    async def aclear(self) -> None:
        """Remove every message; the store session stays (empty) and usable."""
        await finish(self._binding.clear())

    # ── blocking ─────────────────────────────────────────────────────────────

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        # On the calling thread when no loop runs there (see bridge.run_read).
        return run_read(self.aget_messages())

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        run_blocking(self.aadd_messages(messages))

    def clear(self) -> None:
        run_blocking(self.aclear())

    def close(self) -> None:
        run_blocking(self.aclose())


class HistoryFactory:
    """Session id → :class:`SessionkeeperChatMessageHistory`, all sharing one store.

    Building a history costs nothing (no I/O), so ``RunnableWithMessageHistory`` may call this
    on every turn. ``close()`` (or ``await aclose()``) closes the store if it came from a URL.
    """

    def __init__(
        self,
        cls: type[SessionkeeperChatMessageHistory],
        source: StoreSource,
        options: dict[str, Any],
    ) -> None:
        self._cls = cls
        self._source = source
        self._options = options

    def __call__(
        self, session_id: str, user_id: str | None = None
    ) -> SessionkeeperChatMessageHistory:
        """The history of ``session_id``; ``user_id`` (default: the factory's) is the user of
        its session when the first write creates it."""
        options = self._options if user_id is None else {**self._options, "user_id": user_id}
        return self._cls._on(session_id, self._source, **options)

    async def get_store(self) -> Store:
        return await self._source.get()

    async def aclose(self) -> None:
        await self._source.close()

    def close(self) -> None:
        run_blocking(self._source.close())

"""OpenAI Agents SDK session memory on the sessionkeeper store.

    from sessionkeeper.integrations.openai_agents import SessionkeeperSession

    session = SessionkeeperSession.from_url("support-42", "sqlite:///agents.db", agent_id="support")
    result = await Runner.run(agent, "Hello", session=session)

``SessionkeeperSession`` implements the SDK's ``Session`` protocol. Each input item is one
message of an ordinary store session (``session_type="openai-agents"``):

- ``metadata["item"]`` is the item itself, whole, so ``get_items`` returns exactly what
  ``add_items`` was given (the SDK fingerprints items when it rewinds a retried turn); an item
  whose numbers PostgreSQL's jsonb would rewrite is kept as ``metadata["item_json"]`` text;
- the content is the item's text (message text, function name and arguments, tool output,
  reasoning summary…), which search indexes and token counts measure; an item whose text is
  longer than a message may be (100,000 characters) keeps its first 100,000 characters as
  content, ``metadata["excerpt"] = true``, and its full text's token count;
- the role follows the item: user, system (also ``developer``), assistant (its messages and
  every call it makes), tool (every call output); function calls also carry the chat-style
  ``tool_calls`` / ``tool_call_id`` in metadata, so the store's own context windows and the chat
  keep a call with its result.

Order is the store's seq, never a timestamp. ``add_items`` is one transaction; ``pop_item`` and
``clear_session`` are single atomic store operations (two concurrent pops get different
items); the three run to their end even when the caller is cancelled.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from sessionkeeper.integrations._binding import BoundSession, StoreSource
from sessionkeeper.integrations._common import (
    MESSAGE_OVERHEAD_TOKENS,
    count_tokens,
    excerpt,
    finish,
    keep_whole,
    missing_framework,
    read_whole,
)

try:
    from agents.items import TResponseInputItem
    from agents.memory import SessionSettings
    from agents.memory.session import _CompactionSnapshot
    from agents.memory.session_settings import coerce_session_settings, resolve_session_limit
except ImportError as exc:  # pragma: no cover - exercised by a subprocess test
    raise missing_framework("The OpenAI Agents SDK (openai-agents)", "openai-agents", exc) from exc

if TYPE_CHECKING:
    from sessionkeeper import Store
    from sessionkeeper.models import Message

__all__ = ["SESSION_TYPE", "SessionkeeperSession", "item_role", "item_text"]

SESSION_TYPE = "openai-agents"
T = TypeVar("T")

_ROLES = {"user": "user", "system": "system", "developer": "system", "assistant": "assistant"}
# Output items whose type does not end in "_output".
_OUTPUT_TYPES = frozenset({"mcp_approval_response"})
# Fields that hold no searchable text (ids, opaque or binary payloads).
_OPAQUE = frozenset(
    {"id", "type", "status", "encrypted_content", "result", "image_url", "file_data", "file_id"}
)
_PART_LABELS = {"input_image": "[image]", "input_audio": "[audio]"}


def _is_output(item: Mapping[str, Any]) -> bool:
    kind = item.get("type")
    return isinstance(kind, str) and (kind.endswith("_output") or kind in _OUTPUT_TYPES)


def item_role(item: Mapping[str, Any]) -> str:
    """The store role of an input item: user | system | assistant | tool."""
    role = item.get("role")
    if isinstance(role, str) and role in _ROLES:
        return _ROLES[role]
    return "tool" if _is_output(item) else "assistant"


def _parts_text(parts: Iterable[Any]) -> str:
    pieces: list[str] = []
    for part in parts:
        if isinstance(part, str):
            pieces.append(part)
        elif isinstance(part, Mapping):
            for key in ("text", "refusal"):
                value = part.get(key)
                if isinstance(value, str):
                    pieces.append(value)
                    break
            else:
                kind = part.get("type")
                if kind == "input_file":
                    name = part.get("filename")
                    pieces.append(f"[file {name}]" if isinstance(name, str) else "[file]")
                elif isinstance(kind, str) and kind in _PART_LABELS:
                    pieces.append(_PART_LABELS[kind])
    return "\n".join(pieces)


def _value_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return _parts_text(value)
    return ""


def _leaves(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        if value:
            out.append(value)
    elif isinstance(value, Mapping):
        for key, child in value.items():
            if key not in _OPAQUE:
                _leaves(child, out)
    elif isinstance(value, list):
        for child in value:
            _leaves(child, out)


def item_text(item: Mapping[str, Any]) -> str:
    """The searchable text of an input item: what a reader (or the model) would read in it."""
    if "content" in item and item.get("type") in (None, "message"):
        return _value_text(item.get("content"))
    kind = item.get("type")
    if kind in ("function_call", "custom_tool_call"):
        arguments = item.get("arguments", item.get("input", ""))
        return f"{item.get('name', '')}({arguments if isinstance(arguments, str) else ''})"
    if kind == "reasoning":
        return "\n".join(
            text for key in ("summary", "content") if (text := _value_text(item.get(key)))
        )
    if _is_output(item) and "output" in item:
        output = item.get("output")
        text = _value_text(output)
        if text or isinstance(output, str | list):
            return text
    leaves: list[str] = []
    _leaves(item, leaves)
    return "\n".join(leaves)


def _call_key(item: Mapping[str, Any]) -> str | None:
    """What ties a call to its output: the call's ``call_id`` (an MCP approval request's id)."""
    call_id = item.get("call_id")
    if isinstance(call_id, str):
        return call_id
    if item.get("type") == "mcp_approval_request" and isinstance(item.get("id"), str):
        return cast(str, item["id"])
    return None


def _output_key(item: Mapping[str, Any]) -> str | None:
    key = item.get("call_id", item.get("approval_request_id"))
    return key if isinstance(key, str) else None


def to_row(store: Store, item: TResponseInputItem) -> dict[str, Any]:
    """The store message for one input item (see the module docstring)."""
    if not isinstance(item, Mapping):
        raise TypeError(f"session items must be dicts (TResponseInputItem), got {type(item)!r}")
    data = cast(Mapping[str, Any], item)
    role = item_role(data)
    text = item_text(data)
    content, clipped = excerpt(text)
    extra: dict[str, Any] = {}
    if data.get("type") == "function_call" and isinstance(data.get("call_id"), str):
        function = {"name": data.get("name"), "arguments": data.get("arguments")}
        extra["tool_calls"] = [{"id": data["call_id"], "type": "function", "function": function}]
    elif role == "tool" and (key := _output_key(data)) is not None:
        extra["tool_call_id"] = key
    if clipped:
        extra["excerpt"] = True
    row: dict[str, Any] = {
        "role": role,
        "content": content,
        "metadata": keep_whole("item", item, extra),
    }
    if clipped:
        row["token_count"] = count_tokens(store, text)
    return row


def to_item(message: Message) -> TResponseInputItem:
    """The input item a stored message holds; a message written by other means (the CLI, the
    REST API) reads as the message it is."""
    item = read_whole(message.metadata, "item")
    if isinstance(item, dict):
        return cast(TResponseInputItem, item)
    tool_call_id = message.metadata.get("tool_call_id")
    if message.role == "tool" and isinstance(tool_call_id, str):
        output = {"type": "function_call_output", "call_id": tool_call_id}
        return cast(TResponseInputItem, {**output, "output": message.content})
    role = "assistant" if message.role == "tool" else message.role
    return cast(TResponseInputItem, {"role": role, "content": message.content})


def _first_user_text(items: Iterable[TResponseInputItem]) -> str | None:
    for item in items:
        data = cast(Mapping[str, Any], item)
        if data.get("role") == "user":
            text = item_text(data)
            if text.strip():
                return text
    return None


class SessionkeeperSession(BoundSession):
    """An OpenAI Agents SDK ``Session`` kept in a sessionkeeper store.

    ``SessionkeeperSession(session_id, store=store)`` uses a Store you opened (and close);
    ``SessionkeeperSession.from_url(session_id, url)`` opens one on first use (close it with
    ``await session.close()`` or ``async with``). The store session is created by the first
    ``add_items``, with ``agent_id``, ``user_id`` (who it is for; default none), ``title``
    (default: the first user text, as in the chat) and ``session_type="openai-agents"``.
    The session id must suit the store: 1-128 characters of ``A-Z a-z 0-9 . _ : -``.

    ``session_settings.limit`` is the default ``limit`` of ``get_items``. ``history_tokens``,
    when set, makes ``get_items()`` without any limit return ``get_items_within(history_tokens)``
    instead of the whole history, so every turn's model input is bounded by tokens.
    """

    session_settings: SessionSettings | None = None

    def __init__(
        self,
        session_id: str,
        *,
        store: Store,
        agent_id: str = "main",
        user_id: str | None = None,
        title: str | None = None,
        session_settings: SessionSettings | dict[str, Any] | None = None,
        history_tokens: int | None = None,
        session_metadata: dict[str, Any] | None = None,
    ) -> None:
        self._setup(
            session_id,
            StoreSource(store=store),
            agent_id=agent_id,
            user_id=user_id,
            title=title,
            session_settings=session_settings,
            history_tokens=history_tokens,
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
        session_settings: SessionSettings | dict[str, Any] | None = None,
        history_tokens: int | None = None,
        session_metadata: dict[str, Any] | None = None,
    ) -> None:
        if history_tokens is not None and (
            isinstance(history_tokens, bool)
            or not isinstance(history_tokens, int)
            or history_tokens < 1
        ):
            raise ValueError(f"history_tokens must be a positive integer, got {history_tokens!r}")
        self._bind(
            session_id,
            source,
            agent_id=agent_id,
            user_id=user_id,
            title=title,
            session_type=SESSION_TYPE,
            metadata=session_metadata,
        )
        self.session_settings = (
            coerce_session_settings(session_settings)
            if session_settings is not None
            else SessionSettings()
        )
        self.history_tokens = history_tokens

    @classmethod
    def from_url(
        cls,
        session_id: str,
        url: str,
        *,
        agent_id: str = "main",
        user_id: str | None = None,
        title: str | None = None,
        session_settings: SessionSettings | dict[str, Any] | None = None,
        history_tokens: int | None = None,
        session_metadata: dict[str, Any] | None = None,
        store_options: Mapping[str, Any] | None = None,
    ) -> SessionkeeperSession:
        """A session on the store at ``url`` (``sqlite:///path``, ``postgresql://…``), opened
        on first use; ``store_options`` go to ``sessionkeeper.open_store``."""
        return cls._on(
            session_id,
            StoreSource(url=url, options=store_options),
            agent_id=agent_id,
            user_id=user_id,
            title=title,
            session_settings=session_settings,
            history_tokens=history_tokens,
            session_metadata=session_metadata,
        )

    async def close(self) -> None:
        """Close the store if this session opened it from a URL (as ``aclose``)."""
        await self.aclose()

    # ── the Session protocol ─────────────────────────────────────────────────

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The newest ``limit`` items, oldest first (``limit`` defaults to
        ``session_settings.limit``; None: all items; 0: none; negative: all, as
        SQLiteSession)."""
        resolved = resolve_session_limit(limit, self.session_settings)
        if resolved is not None and resolved < 0:  # SQLiteSession's (SQLite's) "no limit"
            return [to_item(m) for m in await self._binding.all()]
        if resolved is None:
            if self.history_tokens is not None:
                return await self.get_items_within(self.history_tokens)
            messages = await self._binding.all()
        else:
            whole = await self._binding.last_whole(resolved, "item")
            if whole is not None and all(isinstance(item, dict) for item in whole):
                return cast(list[TResponseInputItem], whole)
            messages = await self._binding.last(resolved)
        return [to_item(m) for m in messages]

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """Append ``items`` in one transaction (all stored, or none); ``[]`` does nothing."""
        if not items:
            return
        store = await self._binding.store()
        rows = [to_row(store, item) for item in items]
        await finish(self._binding.append(rows, _first_user_text(items)))

    async def pop_item(self) -> TResponseInputItem | None:
        """Remove and return the newest item (None when there is none), atomically."""
        return await self._pop_item_with_validation()

    async def clear_session(self) -> None:
        """Remove every item. The store session stays (empty, still listed) and usable."""
        await finish(self._binding.clear())

    # ── the hooks of the SDK's wrappers ──────────────────────────────────────
    # OpenAIResponsesCompactionSession and EncryptedSession look for these on the session
    # they wrap (SQLiteSession's names and meanings, agents 0.25): with them, compaction
    # replaces the stored history atomically and an encrypted pop is authenticated before
    # it commits. Each is one store transaction (``Store._replace_tail``, ``pop_message``).
    # No ``_read_compaction_items``: SQLiteSession has none either, and the compaction
    # wrapper keeps its candidate cache only for a session without one.

    async def _get_compaction_snapshot(
        self,
        limit: int,
        *,
        prune_prefix: Callable[[TResponseInputItem], bool] | None = None,
    ) -> _CompactionSnapshot | None:
        """The newest ``limit`` items, whether they are the whole history, and how to replace
        a suffix of them atomically (False, nothing written, when the session's newest items
        changed meanwhile); ``prune_prefix``: the oldest items it accepts before that suffix
        go in the same transaction. None for a subclass that changes how items are read
        or written (as SQLiteSession's): the wrapper then goes through those methods."""
        if not self._plain_storage():
            return None
        messages = await self._binding.last(limit)
        complete = len(messages) < limit or (
            bool(messages) and not await self._binding.has_before(messages[0].seq)
        )
        seqs = [m.seq for m in messages]

        async def replace_suffix(start: int, output: list[TResponseInputItem]) -> bool:
            expected = seqs[start:]
            if not expected:
                return False
            store = await self._binding.store()
            rows = [to_row(store, item) for item in output]
            prune = None if prune_prefix is None else _on_items(prune_prefix)
            return await finish(self._binding.replace_tail(expected, rows, prune))

        return _CompactionSnapshot([to_item(m) for m in messages], complete, replace_suffix)

    async def _atomic_replace_items(self, items: list[TResponseInputItem]) -> bool:
        """Replace the whole history by ``items`` in one transaction. False (nothing done)
        for a subclass that changes how items are written: the wrapper then clears and adds
        through its methods."""
        if not self._plain_storage():
            return False
        store = await self._binding.store()
        rows = [to_row(store, item) for item in items]
        return await finish(self._binding.replace_tail(None, rows))

    def _plain_storage(self) -> bool:
        """Whether items are read and written by this class's own methods (not a subclass's
        overrides, which the atomic hooks would bypass)."""
        kind = type(self)
        return all(
            getattr(kind, name) is getattr(SessionkeeperSession, name)
            for name in ("get_items", "add_items", "pop_item", "clear_session")
        )

    async def _pop_item_with_validation(
        self, validate: Callable[[TResponseInputItem], None] | None = None
    ) -> TResponseInputItem | None:
        """``pop_item``, with ``validate(item)`` run inside the pop's transaction before it
        commits: what it raises rolls the pop back (the item keeps its place) and is
        raised here."""
        check = None if validate is None else _on_items(validate)
        message = await finish(self._binding.pop(check))
        return None if message is None else to_item(message)

    # ── beyond the protocol ──────────────────────────────────────────────────

    async def get_items_within(self, max_tokens: int) -> list[TResponseInputItem]:
        """The newest items whose tokens fit ``max_tokens``, oldest first.

        Items are taken whole, newest first, in units: a call and its output (matched by
        ``call_id``, with everything between them), and a reasoning item with the item it
        precedes, are one unit; the walk stops at the first unit that does not fit, so the
        result is a contiguous tail of the history. An item costs its stored token count plus
        3 tokens of message framing, as in the store's ``context_window``.
        """
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise ValueError(f"max_tokens must be a positive integer, got {max_tokens!r}")
        taken: list[Message] = []  # newest first
        used = 0
        unit: list[Message] = []  # the unit being gathered, newest first
        unit_cost = 0
        waiting: set[str] = set()  # outputs in the unit whose call is not reached yet
        async for message in self._binding.newest_first():
            data = read_whole(message.metadata, "item")
            item = data if isinstance(data, dict) else {}
            if unit and not waiting and item.get("type") != "reasoning":
                # The unit is complete: the message before it neither answers nor leads it.
                if used + unit_cost > max_tokens:
                    return _items_oldest_first(taken)
                taken.extend(unit)
                used += unit_cost
                unit, unit_cost = [], 0
            unit.append(message)
            unit_cost += message.token_count + MESSAGE_OVERHEAD_TOKENS
            if used + unit_cost > max_tokens:
                return _items_oldest_first(taken)
            if _is_output(item) and (key := _output_key(item)) is not None:
                waiting.add(key)
            elif (key := _call_key(item)) is not None:
                waiting.discard(key)
        if unit and used + unit_cost <= max_tokens:
            taken.extend(unit)  # includes outputs whose call is gone: the SDK drops those
        return _items_oldest_first(taken)


def _on_items(fn: Callable[[TResponseInputItem], T]) -> Callable[[Message], T]:
    """``fn`` of an item, as a function of the stored message holding it."""
    return lambda message: fn(to_item(message))


def _items_oldest_first(newest_first: list[Message]) -> list[TResponseInputItem]:
    return [to_item(m) for m in reversed(newest_first)]

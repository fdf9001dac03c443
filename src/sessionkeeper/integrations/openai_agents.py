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

Branches, turns and usage (``AdvancedSQLiteSession``'s methods, ``openai_branches.py``):
``create_branch_from_turn``, ``switch_to_branch``, ``list_branches``, ``delete_branch``…;
``store_run_usage(result)`` records a run's usage for the current user turn of the current
branch, on that turn's user message (a later call for the same turn replaces it), priced as
the run's last agent's model; ``get_session_usage`` and ``get_turn_usage`` read it back in the
SDK's shapes, and ``Store.get_usage`` gives its cost. Items are read and written on the
current branch (``self._binding``).

Order is the store's seq, never a timestamp. ``add_items`` is one transaction; ``pop_item`` and
``clear_session`` are single atomic store operations (two concurrent pops get different
items); the three run to their end even when the caller is cancelled.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from sessionkeeper.errors import NotFound
from sessionkeeper.integrations._binding import BoundSession, SessionBinding, StoreSource
from sessionkeeper.integrations._common import (
    MESSAGE_OVERHEAD_TOKENS,
    count_tokens,
    finish,
    missing_framework,
    read_whole,
    reported_usage,
)
from sessionkeeper.integrations.openai_branches import (
    MAIN,
    AdvancedSessionMixin,
    sdk_usage_details,
)
from sessionkeeper.integrations.openai_items import (
    call_key,
    is_output,
    item_role,
    item_row,
    item_text,
    message_item,
    output_key,
)
from sessionkeeper.models import Usage

try:
    from agents.items import TResponseInputItem
    from agents.memory import SessionSettings
    from agents.memory.session import _CompactionSnapshot
    from agents.memory.session_settings import coerce_session_settings, resolve_session_limit
except ImportError as exc:  # pragma: no cover - exercised by a subprocess test
    raise missing_framework("The OpenAI Agents SDK (openai-agents)", "openai-agents", exc) from exc

if TYPE_CHECKING:
    from agents.result import RunResultBase

    from sessionkeeper import Store
    from sessionkeeper.models import Message

__all__ = ["SESSION_TYPE", "SessionkeeperSession", "item_role", "item_text"]

SESSION_TYPE = "openai-agents"
logger = logging.getLogger(__name__)
T = TypeVar("T")


def to_row(store: Store, item: TResponseInputItem) -> dict[str, Any]:
    """The store message for one input item (see the module docstring)."""
    return item_row(cast(Mapping[str, Any], item), lambda text: count_tokens(store, text))


def to_item(message: Message) -> TResponseInputItem:
    """The input item a stored message holds; a message written by other means (the CLI, the
    REST API) reads as the message it is."""
    return cast(TResponseInputItem, message_item(message))


def _first_user_text(items: Iterable[TResponseInputItem]) -> str | None:
    for item in items:
        data = cast(Mapping[str, Any], item)
        if data.get("role") == "user":
            text = item_text(data)
            if text.strip():
                return text
    return None


class SessionkeeperSession(AdvancedSessionMixin, BoundSession):
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
        self._init_branches()

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

    async def get_items(
        self, limit: int | None = None, branch_id: str | None = None
    ) -> list[TResponseInputItem]:
        """The newest ``limit`` items of the current branch (``branch_id``: of that branch),
        oldest first (``limit`` defaults to ``session_settings.limit``; None: all items; 0:
        none; negative: all, as SQLiteSession)."""
        binding = self._binding if branch_id is None else self._binding_for(branch_id)
        found = await self._read_items(binding, limit)
        if not found and branch_id is None and await self._current_gone():
            found = await self._read_items(self._binding, limit)
        return found

    async def _read_items(
        self, binding: SessionBinding, limit: int | None
    ) -> list[TResponseInputItem]:
        resolved = resolve_session_limit(limit, self.session_settings)
        if resolved is not None and resolved < 0:  # SQLiteSession's (SQLite's) "no limit"
            return [to_item(m) for m in await binding.all()]
        if resolved is None:
            if self.history_tokens is not None:
                return await self.get_items_within(self.history_tokens, binding)
            messages = await binding.all()
        else:
            whole = await binding.last_whole(resolved, "item")
            if whole is not None and all(isinstance(item, dict) for item in whole):
                return cast(list[TResponseInputItem], whole)
            messages = await binding.last(resolved)
        return [to_item(m) for m in messages]

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """Append ``items`` to the current branch in one transaction (all stored, or none);
        ``[]`` does nothing."""
        if not items:
            return
        store = await self._binding.store()
        rows = [to_row(store, item) for item in items]
        # Not keyed by the items' ids: the SDK stores an item added again as a new item (its
        # compaction session replays the same compaction item, id and all, on every run,
        # and its own tests count both), so a key made of item ids would drop a real write.
        try:
            await finish(self._binding.append(rows, _first_user_text(items)))
        except NotFound:  # a branch, gone: made again if purged, else main takes the items
            if self._current_branch_id == MAIN:
                raise
            await self._current_gone()
            await finish(self._binding.append(rows, _first_user_text(items)))

    async def pop_item(self) -> TResponseInputItem | None:
        """Remove and return the newest item of the current branch (None when there is
        none), atomically."""
        return await self._pop_item_with_validation()

    async def clear_session(self) -> None:
        """Remove every item of every branch (as AdvancedSQLiteSession): the branches are
        deleted (their names stay used) and this object is back on ``"main"``. The main store
        session stays (empty, still listed) and usable."""

        async def clear() -> None:
            await self._clear_all_branches()
            await self._main_binding.clear()

        await finish(clear())

    async def store_run_usage(self, result: RunResultBase) -> None:
        """Record a run's usage for the current user turn of the current branch (call it
        after ``Runner.run``).

        It is kept on the turn's user message (as the SDK keeps one usage row per user
        turn: a second call for the same turn replaces the first), with the SDK's own report
        (total tokens, token details) as ``metadata["usage_details"]``. Without a user turn
        nothing is recorded. Like the SDK, a failure is logged, not raised."""
        try:
            usage = run_usage(result)
            if usage is None:
                return
            turns = await self._user_turns()
            if not turns:
                return
            store = await self._binding.store()
            details = sdk_usage_details(result.context_wrapper.usage)
            done = store.set_usage(turns[-1].session_id, turns[-1].seq, usage, details=details)
            await finish(done)
        except Exception:
            self._logger.exception("could not store the run usage of session %s", self.session_id)

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
        if message is None and await self._current_gone():
            message = await finish(self._binding.pop(check))
        return None if message is None else to_item(message)

    # ── beyond the protocol ──────────────────────────────────────────────────

    async def get_items_within(
        self, max_tokens: int, _binding: SessionBinding | None = None
    ) -> list[TResponseInputItem]:
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
        async for message in (_binding or self._binding).newest_first():
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
            if is_output(item) and (key := output_key(item)) is not None:
                waiting.add(key)
            elif (key := call_key(item)) is not None:
                waiting.discard(key)
        if unit and used + unit_cost <= max_tokens:
            taken.extend(unit)  # includes outputs whose call is gone: the SDK drops those
        return _items_oldest_first(taken)


def run_usage(result: RunResultBase) -> Usage | None:
    """The store's Usage of a run's usage (``result.context_wrapper.usage``), priced as the
    model of the run's last agent when that is named (a string)."""
    usage = result.context_wrapper.usage
    if usage is None:
        return None
    inputs = getattr(usage, "input_tokens_details", None)
    outputs = getattr(usage, "output_tokens_details", None)
    agent = getattr(result, "last_agent", None)
    return reported_usage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cached_tokens=getattr(inputs, "cached_tokens", 0) or 0,
        reasoning_tokens=getattr(outputs, "reasoning_tokens", 0) or 0,
        requests=usage.requests,
        model=getattr(agent, "model", None),
    )


def _on_items(fn: Callable[[TResponseInputItem], T]) -> Callable[[Message], T]:
    """``fn`` of an item, as a function of the stored message holding it."""
    return lambda message: fn(to_item(message))


def _items_oldest_first(newest_first: list[Message]) -> list[TResponseInputItem]:
    return [to_item(m) for m in reversed(newest_first)]

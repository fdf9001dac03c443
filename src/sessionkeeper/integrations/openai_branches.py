"""``AdvancedSQLiteSession``'s branches, turns and usage on ``SessionkeeperSession``.

The OpenAI Agents SDK's ``AdvancedSQLiteSession`` (agents 0.25) adds conversation branches,
user-turn browsing and per-turn usage to its SQLite session. :class:`AdvancedSessionMixin`
gives ``SessionkeeperSession`` the same methods, names, return shapes and ``ValueError``
messages, on both databases, built on the store's own lineage:

- branch ``"main"`` is the store session ``session_id``; any other branch is a store session
  of its own, a fork (``Store.fork_session``) of the branch it was created from, cut before
  the chosen user turn, so its history is whole wherever it is read (export, search, windows,
  the chat page's lineage); ``parent_session_id`` / ``fork_seq`` say where it came from;
- a branch's store id is derived from the session id and the branch name (the name is free
  text in the SDK; the id is ``<session id, at most 96 chars>.b-<24 hex of a sha256>``), and
  its metadata holds ``openai_agents_branch_of`` (the session id) and
  ``openai_agents_branch`` (the name), by which the session's branches are listed;
- the current branch is per object, as in the SDK (a new object starts on ``"main"``): items
  are read and written on the current branch's store session (``self._binding``, retargeted
  by a switch, so the compaction and encryption hooks follow it too). A branch deleted or
  cleared by another object sends this one back to ``"main"`` at its next use, as the SDK's
  clear generations do;
- a branch name, once used, stays used (the SDK reserves them): the names of deleted branches
  are kept in the main session's metadata (``openai_agents_used_branches``, through
  ``Store.change_metadata``, so objects deleting branches at once each keep their name);
- a turn is a user item and what follows it; turn n of a branch is its n-th user item. Usage
  (``store_run_usage``) is recorded on the user message of the branch's current turn, with
  the SDK's own report (total tokens, token details) as ``metadata["usage_details"]``. A fork
  copies no usage, so a new branch starts with none, as in the SDK, and totals over all
  branches count each run once.

As in the SDK, a branch "exists" (is listed, can be switched to or deleted) once it holds an
item: a branch made from turn 1 is empty until the next item is added.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sessionkeeper.errors import Conflict, NotFound
from sessionkeeper.integrations._binding import SessionBinding
from sessionkeeper.integrations._common import finish
from sessionkeeper.integrations.openai_items import message_item, message_type, tool_name
from sessionkeeper.models import MAX_TITLE_LENGTH

if TYPE_CHECKING:
    from sessionkeeper import Store
    from sessionkeeper.models import Message, Session

MAIN = "main"
BRANCH_OF = "openai_agents_branch_of"
BRANCH_NAME = "openai_agents_branch"
USED = "openai_agents_used_branches"
_OURS = (BRANCH_OF, BRANCH_NAME, USED)
USAGE_DETAILS = "usage_details"

# The items AdvancedSQLiteSession counts as tool uses (get_tool_usage).
_TOOL_CALLS = frozenset(
    {
        "tool_call",
        "function_call",
        "computer_call",
        "file_search_call",
        "web_search_call",
        "code_interpreter_call",
        "tool_search_call",
        "custom_tool_call",
        "mcp_call",
        "mcp_approval_request",
        "shell_call",
        "apply_patch_call",
    }
)

logger = logging.getLogger("sessionkeeper.integrations.openai_agents")


def branch_session_id(session_id: str, branch: str) -> str:
    """The store session of ``branch`` of the SDK session ``session_id``."""
    if branch == MAIN:
        return session_id
    digest = hashlib.sha256(f"{session_id}\x1f{branch}".encode("utf-8", "surrogatepass"))
    return f"{session_id[:96]}.b-{digest.hexdigest()[:24]}"


def branch_title(parent: str | None, name: str) -> str | None:
    """The title of a branch's store session, as lists and pages show it: its parent's title
    and the branch name (``"Plan a trip · cheaper"``), or the name alone; None (the parent's
    title, as any fork) when neither fits a title."""
    for title in (f"{parent} · {name}" if parent else name, name):
        if len(title) <= MAX_TITLE_LENGTH and title.strip():
            return title
    return None


def _timestamp(session_or_message: Session | Message) -> str:
    """A time as the SDK's SQLite tables give it (``CURRENT_TIMESTAMP``: UTC, seconds)."""
    return session_or_message.created_at.strftime("%Y-%m-%d %H:%M:%S")


def _preview(content: Any, max_length: int | None = None) -> str:
    text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
    if max_length is not None and len(text) > max_length:
        return text[:max_length] + "..."
    return text


def _turn_row(
    turn: int, message: Message, item: Mapping[str, Any], limit: int | None
) -> dict[str, Any]:
    content = item.get("content", "")
    return {
        "turn": turn,
        "content": _preview(content, limit),
        "full_content": content,
        "timestamp": _timestamp(message),
        "can_branch": True,
    }


def _turn_usage(turn: int, message: Message) -> dict[str, Any]:
    """One turn's usage in the SDK's shape: its own report where kept, else the store's."""
    usage = message.usage
    assert usage is not None
    raw = message.metadata.get(USAGE_DETAILS)
    raw = raw if isinstance(raw, dict) else {}
    total = raw.get("total_tokens")
    return {
        "user_turn_number": turn,
        "requests": usage.requests,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "total_tokens": total if isinstance(total, int) else usage.total_tokens,
        "input_tokens_details": raw.get(
            "input_tokens_details", {"cached_tokens": usage.cached_tokens}
        ),
        "output_tokens_details": raw.get(
            "output_tokens_details", {"reasoning_tokens": usage.reasoning_tokens}
        ),
    }


def sdk_usage_details(usage: Any) -> dict[str, Any]:
    """What the store's ``Usage`` does not hold of an SDK ``Usage``, as the SDK keeps it:
    its total tokens and its token details (None when the provider gave none)."""

    def details(value: Any) -> dict[str, Any] | None:
        if value is None:
            return None
        dump = getattr(value, "model_dump", None)
        data = dump() if callable(dump) else dict(vars(value))
        try:
            json.dumps(data, allow_nan=False)
        except (TypeError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    return {
        "total_tokens": getattr(usage, "total_tokens", None),
        "input_tokens_details": details(getattr(usage, "input_tokens_details", None)),
        "output_tokens_details": details(getattr(usage, "output_tokens_details", None)),
    }


class AdvancedSessionMixin:
    """``AdvancedSQLiteSession``'s branch, turn and usage methods (see the module docstring).

    For ``SessionkeeperSession``: it reads and writes items through ``self._binding``, which
    this mixin points at the current branch's store session."""

    _binding: SessionBinding
    session_id: str
    _logger: logging.Logger

    def _init_branches(self) -> None:
        self._main_binding = self._binding
        self._branch = MAIN
        # The current branch's parent store session and metadata: to make it again if the
        # store's ghost purge removes it while it is empty (see _current_gone).
        self._origin: tuple[str, dict[str, Any]] | None = None
        self._logger = logger

    @property
    def _current_branch_id(self) -> str:
        """The current branch (``"main"`` for a new object), as AdvancedSQLiteSession's."""
        return self._branch

    def _binding_for(self, branch: str) -> SessionBinding:
        if branch == MAIN:
            return self._main_binding
        main = self._main_binding
        return SessionBinding(
            branch_session_id(self.session_id, branch),
            main.source,
            agent_id=main.agent_id,
            title=main.title,
            session_type=main.session_type,
            metadata=None,
            user_id=main.user_id,
            creates=False,  # made by a fork: a write to a deleted branch must not remake it
        )

    def _retarget(self, branch: str, origin: tuple[str, dict[str, Any]] | None = None) -> None:
        self._binding = self._binding_for(branch)
        self._branch = branch
        self._origin = origin

    async def _current_gone(self) -> bool:
        """Whether the current branch was deleted (or cleared) by another object: then this one
        is back on ``"main"`` (True), as the SDK's objects are after another one's clear."""
        if self._branch == MAIN:
            return False
        store = await self._binding.store()
        if await store.session_exists(self._binding.session_id):
            return False
        if await self._made_again(store):
            return False
        self._logger.info(
            "branch %r of session %s is gone (deleted or cleared): back on 'main'",
            self._branch,
            self.session_id,
        )
        self._retarget(MAIN)
        return True

    async def _made_again(self, store: Store) -> bool:
        """An empty session is a ghost to the store, purged after a while (15 minutes by
        default): a branch made from the first turn, or emptied by pops, goes that way
        while this object is on it. A delete or clear keeps the name used; a branch gone
        without that was purged, and is made again (empty, from the same parent)."""
        if self._origin is None or self._branch in await self._used_names(store):
            return False
        parent, metadata = self._origin
        try:
            await finish(
                store.fork_session(
                    parent, at_seq=0, new_session_id=self._binding.session_id, metadata=metadata
                )
            )
        except Conflict:  # made again meanwhile by another object
            return True
        except NotFound:  # its parent is gone too
            return False
        self._logger.info(
            "branch %r of session %s was purged while empty: made again",
            self._branch,
            self.session_id,
        )
        return True

    async def _branch_messages(self, branch_id: str | None) -> list[Message]:
        """Every message of ``branch_id`` (None: the current branch); [] for no such branch."""
        if branch_id is not None:
            return await self._binding_for(branch_id).all()
        messages = await self._binding.all()
        if not messages and await self._current_gone():
            messages = await self._binding.all()
        return messages

    async def _user_turns(self, branch_id: str | None = None) -> list[Message]:
        """The user messages that open the turns of a branch, in order (turn n is the n-th)."""
        return [
            m
            for m in await self._branch_messages(branch_id)
            if message_item(m).get("role") == "user"
        ]

    # ── branches ─────────────────────────────────────────────────────────────

    async def create_branch_from_turn(
        self, turn_number: int, branch_name: str | None = None
    ) -> str:
        """A new branch holding the current branch's history before user turn ``turn_number``
        (1-based), made current; its name (``branch_name``, or ``branch_from_turn_<n>_<unix
        time>`` made unique). ValueError when the turn has no user message, or the name is
        blank or was used before in this session (names stay used after a delete or clear)."""
        if branch_name is not None and not branch_name.strip():
            raise ValueError("Branch name cannot be empty")
        if self._branch != MAIN:
            await self._current_gone()
        source, binding = self._branch, self._binding
        turns = await self._user_turns(source)
        if (
            isinstance(turn_number, bool)
            or not isinstance(turn_number, int)
            or not 1 <= turn_number <= len(turns)
        ):
            raise ValueError(
                f"Turn {turn_number} does not contain a user message in branch '{source}'"
            )
        opening = turns[turn_number - 1]
        store = await binding.store()
        name = await self._unused_name(store, branch_name, turn_number)
        parent = await store.get_session(binding.session_id)
        metadata = {k: v for k, v in parent.metadata.items() if k not in _OURS}
        metadata.update({BRANCH_OF: self.session_id, BRANCH_NAME: name})
        try:
            await finish(
                store.fork_session(
                    binding.session_id,
                    at_seq=opening.seq - 1,
                    new_session_id=branch_session_id(self.session_id, name),
                    title=branch_title(parent.title, name),
                    metadata=metadata,
                )
            )
        except Conflict:  # made meanwhile by another object
            raise _used(name) from None
        self._retarget(name, (binding.session_id, metadata))
        from agents import _debug  # the SDK's model-data logging policy

        if _debug.DONT_LOG_MODEL_DATA:
            self._logger.debug(
                "Created branch '%s' from turn %s in '%s'", name, turn_number, source
            )
        else:
            content = message_item(opening).get("content", "")
            self._logger.debug(
                "Created branch '%s' from turn %s ('%s') in '%s'",
                name,
                turn_number,
                _preview(content, 50),
                source,
            )
        return name

    async def create_branch_from_content(
        self, search_term: str, branch_name: str | None = None
    ) -> str:
        """``create_branch_from_turn`` at the first user turn of the current branch whose
        text holds ``search_term`` (``find_turns_by_content``)."""
        matching = await self.find_turns_by_content(search_term)
        if not matching:
            raise ValueError(f"No user turns found containing '{search_term}'")
        return await self.create_branch_from_turn(matching[0]["turn"], branch_name)

    async def switch_to_branch(self, branch_id: str) -> None:
        """Make ``branch_id`` current (ValueError when it does not exist)."""
        session = None if not isinstance(branch_id, str) else await self._populated(branch_id)
        if session is None:
            raise ValueError(f"Branch '{branch_id}' does not exist")
        old = self._branch
        parent = session.parent_session_id
        self._retarget(branch_id, None if parent is None else (parent, session.metadata))
        self._logger.info("Switched from branch '%s' to '%s'", old, branch_id)

    async def delete_branch(self, branch_id: str, force: bool = False) -> None:
        """Delete a branch (its store session); its name stays used. ValueError for ``"main"``,
        a branch that does not exist, and the current branch unless ``force`` (which moves this
        object to ``"main"`` first)."""
        if not isinstance(branch_id, str) or not branch_id.strip():
            raise ValueError("Branch ID cannot be empty")
        if branch_id == MAIN:
            raise ValueError("Cannot delete the 'main' branch")
        if branch_id == self._branch and not force:
            raise ValueError(
                f"Cannot delete current branch '{branch_id}'. "
                "Use force=True or switch branches first"
            )
        if await self._populated(branch_id) is None:
            raise ValueError(f"Branch '{branch_id}' does not exist")
        if branch_id == self._branch:
            self._retarget(MAIN)
        store = await self._main_binding.store()
        await finish(
            self._drop(store, [branch_session_id(self.session_id, branch_id)], [branch_id])
        )
        self._logger.info("Deleted branch '%s'", branch_id)

    async def list_branches(self) -> list[dict[str, Any]]:
        """The branches holding items, oldest first: ``branch_id``, ``message_count``,
        ``user_turns``, ``is_current``, ``created_at``."""
        if self._branch != MAIN:
            await self._current_gone()
        store = await self._main_binding.store()
        sessions = await self._branch_sessions(store)
        with contextlib.suppress(NotFound):
            sessions.insert(0, await store.get_session(self.session_id))
        found = []
        for session in sessions:
            if session.message_count == 0:
                continue
            name = (
                MAIN
                if session.session_id == self.session_id
                else str(session.metadata.get(BRANCH_NAME))
            )
            messages = await self._binding_for(name).all()
            users = sum(1 for m in messages if message_item(m).get("role") == "user")
            found.append(
                {
                    "branch_id": name,
                    "message_count": session.message_count,
                    "user_turns": users,
                    "is_current": name == self._branch,
                    "created_at": _timestamp(session),
                }
            )
        return found

    async def _populated(self, branch: str) -> Session | None:
        """The store session of ``branch`` if it holds items (as the SDK, an empty branch
        does not exist yet), else None."""
        store = await self._main_binding.store()
        try:
            session = await store.get_session(branch_session_id(self.session_id, branch))
        except NotFound:
            return None
        return session if session.message_count > 0 else None

    async def _branch_sessions(self, store: Store) -> list[Session]:
        """The store sessions of this session's branches (not main), oldest first."""
        found: list[Session] = []
        cursor: str | None = None
        while True:
            page = await store.list_sessions(
                metadata={BRANCH_OF: self.session_id},
                sort="created_at",
                order="asc",
                limit=100,
                cursor=cursor,
                with_total=False,
            )
            found.extend(page.items)
            cursor = page.next_cursor
            if not page.has_more or cursor is None:
                return found

    async def _used_names(self, store: Store) -> set[str]:
        try:
            main = await store.get_session(self.session_id)
        except NotFound:
            return set()
        used = main.metadata.get(USED)
        return {n for n in used if isinstance(n, str)} if isinstance(used, list) else set()

    async def _unused_name(self, store: Store, wanted: str | None, turn: int) -> str:
        used = await self._used_names(store)

        async def free(name: str) -> bool:
            return (
                name != MAIN
                and name not in used
                and not await store.session_exists(branch_session_id(self.session_id, name))
            )

        if wanted is not None:
            if not await free(wanted):
                raise _used(wanted)
            return wanted
        base = f"branch_from_turn_{turn}_{int(time.time())}"
        name, suffix = base, 1
        while not await free(name):
            suffix += 1
            name = f"{base}_{suffix}"
        return name

    async def _drop(self, store: Store, session_ids: list[str], names: list[str]) -> None:
        """Record ``names`` as used (in the main session's metadata), then delete the branches'
        store sessions: a name is never free again, even if a delete fails half way."""
        if names:

            def record(metadata: dict[str, Any]) -> dict[str, Any] | None:
                used = metadata.get(USED)
                kept = [n for n in used if isinstance(n, str)] if isinstance(used, list) else []
                new = [n for n in names if n not in kept]
                return {**metadata, USED: kept + new} if new else None

            with contextlib.suppress(NotFound):  # no lost name when others record theirs
                await store.change_metadata(self.session_id, record)
        for session_id in session_ids:
            with contextlib.suppress(NotFound):
                await store.delete_session(session_id)

    async def _clear_all_branches(self) -> None:
        """What ``clear_session`` does beyond main: every branch deleted, names kept used."""
        store = await self._main_binding.store()
        sessions = await self._branch_sessions(store)
        names = [s.metadata.get(BRANCH_NAME) for s in sessions]
        await self._drop(
            store, [s.session_id for s in sessions], [n for n in names if isinstance(n, str)]
        )
        self._retarget(MAIN)

    # ── turns ────────────────────────────────────────────────────────────────

    async def get_conversation_turns(self, branch_id: str | None = None) -> list[dict[str, Any]]:
        """The user turns of a branch (current if None): ``turn``, ``content`` (a preview, at
        most 100 characters), ``full_content``, ``timestamp``, ``can_branch``."""
        return [
            _turn_row(n, m, message_item(m), 100)
            for n, m in enumerate(await self._user_turns(branch_id), start=1)
        ]

    async def find_turns_by_content(
        self, search_term: str, branch_id: str | None = None
    ) -> list[dict[str, Any]]:
        """The user turns of a branch whose text holds ``search_term`` (literally; ASCII
        letters in any case, as SQLite's LIKE), in ``get_conversation_turns``' shape."""
        pattern = re.compile(re.escape(search_term), re.IGNORECASE | re.ASCII)
        found = []
        for n, message in enumerate(await self._user_turns(branch_id), start=1):
            item = message_item(message)
            content = item.get("content", "")
            if isinstance(content, str):
                texts = [content]
            elif isinstance(content, list):
                texts = [p.get("text", "") for p in content if isinstance(p, Mapping)]
            else:
                continue
            if any(isinstance(t, str) and pattern.search(t) for t in texts):
                found.append(_turn_row(n, message, item, None))
        return found

    async def _structure(self, branch_id: str | None) -> list[tuple[int, dict[str, Any]]]:
        """(turn, item) of each item of a branch, in order; items before any user turn are
        turn 0."""
        turn, found = 0, []
        for message in await self._branch_messages(branch_id):
            item = message_item(message)
            if item.get("role") == "user":
                turn += 1
            found.append((turn, item))
        return found

    async def get_conversation_by_turns(
        self, branch_id: str | None = None
    ) -> dict[int, list[dict[str, str | None]]]:
        """Turn number → its items' ``type`` and ``tool_name``, for a branch."""
        turns: dict[int, list[dict[str, str | None]]] = {}
        for turn, item in await self._structure(branch_id):
            entry = {"type": message_type(item), "tool_name": tool_name(item)}
            turns.setdefault(turn, []).append(entry)
        return turns

    async def get_tool_usage(self, branch_id: str | None = None) -> list[tuple[str, int, int]]:
        """(tool name, uses, turn) for a branch, by turn: each call once (a tool search's
        output counts only when its turn has no tool search call)."""
        counts: dict[tuple[int, str], int] = {}
        searched: set[int] = set()
        outputs: list[int] = []
        for turn, item in await self._structure(branch_id):
            kind = message_type(item)
            if kind in _TOOL_CALLS:
                name = tool_name(item) or (
                    kind if kind in ("shell_call", "apply_patch_call") else None
                )
                if name is not None:
                    counts[(turn, name)] = counts.get((turn, name), 0) + 1
                if kind == "tool_search_call":
                    searched.add(turn)
            elif kind == "tool_search_output":
                outputs.append(turn)
        for turn in outputs:
            if turn not in searched:
                counts[(turn, "tool_search")] = counts.get((turn, "tool_search"), 0) + 1
        return [(name, n, turn) for (turn, name), n in sorted(counts.items())]

    # ── usage ────────────────────────────────────────────────────────────────

    async def _usage_turns(self, branch_id: str | None) -> list[dict[str, Any]]:
        return [
            _turn_usage(n, m)
            for n, m in enumerate(await self._user_turns(branch_id), start=1)
            if m.usage is not None
        ]

    async def get_session_usage(self, branch_id: str | None = None) -> dict[str, int] | None:
        """Usage totals of a branch, or of every branch (None): requests, input, output and
        total tokens, and the number of turns with usage; None when none is recorded."""
        if branch_id is not None:
            turns = await self._usage_turns(branch_id)
        else:
            store = await self._main_binding.store()
            names = [MAIN] + [
                n
                for s in await self._branch_sessions(store)
                if isinstance(n := s.metadata.get(BRANCH_NAME), str)
            ]
            turns = [t for name in names for t in await self._usage_turns(name)]
        if not turns:
            return None
        return {
            "requests": sum(t["requests"] for t in turns),
            "input_tokens": sum(t["input_tokens"] for t in turns),
            "output_tokens": sum(t["output_tokens"] for t in turns),
            "total_tokens": sum(t["total_tokens"] for t in turns),
            "total_turns": len(turns),
        }

    async def get_turn_usage(
        self, user_turn_number: int | None = None, branch_id: str | None = None
    ) -> list[dict[str, Any]] | dict[str, Any]:
        """Usage by user turn of a branch (current if None), with the SDK's token details: one
        turn's as a dict ({} when none), or every turn with usage, in order, as a list."""
        turns = await self._usage_turns(branch_id)
        if user_turn_number is None:
            return turns
        found = next((t for t in turns if t["user_turn_number"] == user_turn_number), None)
        return {k: v for k, v in found.items() if k != "user_turn_number"} if found else {}


def _used(name: str) -> ValueError:
    return ValueError(f"Branch ID '{name}' has already been used. Choose a new branch ID.")

"""Checkpoint storage for graph frameworks: the API a Store exposes as ``store.checkpoints``.

LangGraph's saver (``integrations/langgraph.py``) serialises; this module stores, with the
Store's rules (ids validated, one error hierarchy, mirrored messages validated as any
append), on the Store's own backend (its ``checkpoints`` part, in ``backends/frameworks/``).
A thread is a session: its id is the session id and its rows go with the session.

Why the shape (migration 0004):
- A checkpoint row holds the checkpoint without its large channel values. Values are
  stored once per channel *version*: a step that changes one channel writes one value.
- A list value (``messages`` above all) is stored element by element, each element once per
  thread: the version is then ranges of item numbers. A conversation that grows by a message
  per step costs one item per step, not the whole history again (LangGraph's own SQLite
  saver writes the whole checkpoint every step). Which elements a thread already holds is
  read once and then kept here per (thread, namespace, channel), bounded (``ItemLog``).
  Pruning or deleting a thread through this store forgets it; another process deleting
  list items of a thread this process is writing is not supported (LangGraph's savers say
  the same of pruning a thread while it runs).
- A put also appends the messages the saver mirrors into the session, in the same
  transaction: the thread is listed, searched and windowed like any session.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from hashlib import sha256
from typing import Any, NamedTuple, cast

from sessionkeeper.errors import InvalidInput, NotFound
from sessionkeeper.models import NewMessage
from sessionkeeper.store import validate
from sessionkeeper.store.backends.frameworks.checkpoints_base import (
    CheckpointPart,
    CheckpointRow,
    ItemLog,
    ItemRow,
    ListFilter,
    StoredCheckpoint,
    ValueRow,
    WriteRow,
    matches,
)

__all__ = [
    "CheckpointRow",
    "Checkpoints",
    "Element",
    "ItemRow",
    "ListPlan",
    "StoredCheckpoint",
    "ValueRow",
    "WriteRow",
]

logger = logging.getLogger(__name__)

LIST_PAGE = 100
MAX_LOGS = 256
PRUNE_STRATEGIES = ("keep_latest", "delete")


class Element(NamedTuple):
    """One element of a list value, serialised; ``key`` identifies it (a message id).
    A tuple: a list of hundreds is built at every step."""

    type: str
    value: bytes
    key: str | None = None


@dataclass(slots=True)
class ListPlan:
    """How to store one list version: its value row, the items it adds, and which of its
    elements are new to the thread (by position) with a key never seen before."""

    value: ValueRow
    items: list[ItemRow]
    first_seen: list[int]


def digest(type_: str, value: bytes) -> bytes:
    """What identifies an element's bytes (serializer type included): SHA-256 cut to 128 bits.
    A cryptographic hash on purpose: message text comes from users, and a collision made on
    purpose would substitute one element for another."""
    if type_ == "msgpack":  # nearly all: no copy of the value to prefix it
        return sha256(value).digest()[:16]
    return sha256(type_.encode() + b"\0" + value).digest()[:16]


class Checkpoints:
    """``store.checkpoints``: put, read, list and delete checkpoints of threads (sessions)."""

    def __init__(self, part: CheckpointPart, count_tokens: Callable[[str], int]) -> None:
        self._part = part
        self._count = count_tokens
        self._logs: OrderedDict[tuple[str, str, str], ItemLog] = OrderedDict()
        self._lock = threading.Lock()

    # ── writing ─────────────────────────────────────────────────────────────

    async def plan_list(
        self,
        thread_id: str,
        checkpoint_ns: str,
        channel: str,
        version: str,
        elements: Sequence[Element],
    ) -> ListPlan:
        """Number the elements of a list version, reusing the items the thread holds."""
        log = await self._log(validate.session_id(thread_id), checkpoint_ns, channel)
        # Read without a copy: other puts only add to the log, and what is read here is
        # checked by the database (a number taken meanwhile is a Conflict, then a new plan).
        known, keys = log.by_digest, log.keys
        digests = [digest(type_, data) for type_, data, _ in elements]
        found = [known.get(d) for d in digests]  # one pass each: lists of hundreds, every step
        items: list[ItemRow] = []
        first_seen: list[int] = []
        if None in found:
            next_no = log.next_no
            fresh: dict[bytes, int] = {}
            fresh_keys: set[str] = set()
            for position, no in enumerate(found):
                if no is not None:
                    continue
                d = digests[position]
                no = fresh.get(d)
                if no is None:  # new to the thread (a repeat in this list is stored once)
                    type_, data, key = elements[position]
                    no = fresh[d] = next_no
                    next_no += 1
                    items.append(ItemRow(channel, no, d, key, type_, data))
                    if key is None or (key not in keys and key not in fresh_keys):
                        first_seen.append(position)
                    if key is not None:
                        fresh_keys.add(key)
                found[position] = no
        numbers = cast(list[int], found)
        value = ValueRow(channel, version, "items", None, _ranges(numbers))
        return ListPlan(value, items, first_seen)

    async def put(
        self,
        row: CheckpointRow,
        values: Sequence[ValueRow],
        items: Sequence[ItemRow] = (),
        messages: Sequence[NewMessage | Mapping[str, Any]] = (),
        *,
        skip_invalid: bool = False,
    ) -> list[int]:
        """Store a checkpoint (replacing one with the same id), its new values and items, and
        append ``messages`` to the session, in one transaction. Returns the messages' seqs.

        A message the store refuses (e.g. text with NUL) fails the put, or with
        ``skip_invalid`` is left out (logged): a mirror must not stop the graph.
        NotFound when the session does not exist; Conflict when another writer numbered
        list items meanwhile (``forget`` the thread and plan again)."""
        validate.session_id(row.thread_id)
        count = self._count
        rows = []
        for position, message in enumerate(messages):
            try:
                rows.append(validate.message_row(message, count))
            except InvalidInput as exc:
                if not skip_invalid:
                    raise
                logger.warning(
                    "thread %s: message %d of checkpoint %s not mirrored: %s",
                    row.thread_id,
                    position,
                    row.checkpoint_id,
                    exc.message,
                )
        now = datetime.now(UTC)
        seqs = await self._part.put(row, values, items, rows, now)
        if seqs is None:
            self.forget(row.thread_id)
            raise NotFound(f"session {row.thread_id!r} not found")
        if items:
            self._remember(row.thread_id, row.checkpoint_ns, items)
        return seqs

    async def put_writes(
        self,
        thread_id: str,
        checkpoint_ns: str,
        checkpoint_id: str,
        writes: Sequence[WriteRow],
        *,
        replace: bool = False,
    ) -> None:
        """Store pending writes of a checkpoint; an existing (task_id, idx) is kept, or
        replaced with ``replace``. NotFound when the session does not exist."""
        validate.session_id(thread_id)
        if not writes:
            return
        if not await self._part.put_writes(
            thread_id, checkpoint_ns, checkpoint_id, writes, replace=replace
        ):
            raise NotFound(f"session {thread_id!r} not found")

    # ── reading ─────────────────────────────────────────────────────────────

    async def get(
        self, thread_id: str, checkpoint_ns: str = "", checkpoint_id: str | None = None
    ) -> StoredCheckpoint | None:
        """A checkpoint (the newest of the namespace when ``checkpoint_id`` is None)."""
        validate.session_id(thread_id)
        return await self._part.get(thread_id, checkpoint_ns, checkpoint_id)

    async def list(
        self,
        *,
        thread_id: str | None = None,
        checkpoint_ns: str | None = None,
        checkpoint_id: str | None = None,
        before: str | None = None,
        filter: Mapping[str, Any] | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[StoredCheckpoint]:
        """Checkpoints newest first (by id), read a page at a time. ``filter``: metadata keys
        that must equal the given values."""
        if thread_id is not None:
            validate.session_id(thread_id)
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
            raise InvalidInput("limit must be an integer", field="limit")
        wanted = dict(filter or {})
        remaining = limit
        after: tuple[str, str, str] | None = None
        while remaining is None or remaining > 0:
            size = LIST_PAGE if remaining is None else min(LIST_PAGE, remaining)
            page = await self._part.page(
                ListFilter(thread_id, checkpoint_ns, checkpoint_id, before, wanted, size, after)
            )
            for stored in page:
                if wanted and not matches(stored.row.metadata, wanted):
                    continue
                yield stored
                if remaining is not None:
                    remaining -= 1
                    if remaining == 0:
                        return
            if len(page) < size:
                return
            last = page[-1].row
            after = (last.checkpoint_id, last.thread_id, last.checkpoint_ns)

    # ── deleting and copying ───────────────────────────────────────────────

    async def delete_thread(self, thread_id: str, *, session_type: str | None = None) -> None:
        """Delete a thread's checkpoints; the session itself too if its type is
        ``session_type`` (the threads a saver created). A missing thread is no error."""
        validate.session_id(thread_id)
        self.forget(thread_id)
        await self._part.delete_thread(thread_id, session_type)
        self.forget(thread_id)

    async def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their writes) whose metadata ``run_id`` is given."""
        ids = _strings(run_ids, "run_ids")
        if ids:
            for thread_id in await self._part.delete_for_runs(ids):
                self.forget(thread_id)

    async def copy_thread(self, source: str, target: str) -> bool:
        """Copy every checkpoint of ``source`` to ``target``. A missing target session is
        created as a copy of the source's (its messages too); a target that has checkpoints
        is refused (Conflict). False when the source has no checkpoints."""
        validate.session_id(source)
        validate.new_session_id(target)
        if source == target:
            raise InvalidInput("cannot copy a thread onto itself", field="target")
        self.forget(target)
        return await self._part.copy_thread(source, target, datetime.now(UTC))

    async def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """``keep_latest``: keep each namespace's newest checkpoint (and its writes) and what
        it needs; ``delete``: delete every checkpoint. The sessions and messages stay."""
        if strategy not in PRUNE_STRATEGIES:
            raise InvalidInput(f"unknown prune strategy {strategy!r}", field="strategy")
        ids = _strings(thread_ids, "thread_ids")
        for thread_id in ids:
            validate.session_id(thread_id)
        try:
            await self._part.prune(ids, keep_latest=strategy == "keep_latest")
        finally:
            for thread_id in ids:
                self.forget(thread_id)

    # ── the item logs ──────────────────────────────────────────────────────

    def forget(self, thread_id: str) -> None:
        """Drop what is known of a thread's items (read again on its next put)."""
        with self._lock:
            for key in [k for k in self._logs if k[0] == thread_id]:
                del self._logs[key]

    async def _log(self, thread_id: str, checkpoint_ns: str, channel: str) -> ItemLog:
        key = (thread_id, checkpoint_ns, channel)
        with self._lock:
            log = self._logs.get(key)
            if log is not None:
                self._logs.move_to_end(key)
                return log
        log = await self._part.item_log(thread_id, checkpoint_ns, channel)
        with self._lock:
            self._logs.setdefault(key, log)
            while len(self._logs) > MAX_LOGS:
                self._logs.popitem(last=False)
            return self._logs[key]

    def _remember(self, thread_id: str, checkpoint_ns: str, items: Sequence[ItemRow]) -> None:
        with self._lock:
            for item in items:
                log = self._logs.get((thread_id, checkpoint_ns, item.channel))
                if log is None:
                    continue  # read whole on the next put
                log.by_digest[item.digest] = item.item_no
                log.next_no = max(log.next_no, item.item_no + 1)
                if item.key is not None:
                    log.keys.add(item.key)


def _ranges(numbers: Sequence[int]) -> list[tuple[int, int]]:
    """Consecutive ascending numbers as (first, last) ranges, in order."""
    if numbers and numbers[-1] - numbers[0] == len(numbers) - 1:
        first = numbers[0]
        if list(numbers) == list(range(first, first + len(numbers))):
            return [(first, numbers[-1])]  # a list that only grew: one range
    ranges: list[tuple[int, int]] = []
    for no in numbers:
        if ranges and no == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], no)
        else:
            ranges.append((no, no))
    return ranges


def _strings(values: Sequence[str], field: str) -> list[str]:
    if isinstance(values, str | bytes):
        raise InvalidInput(f"{field} must be a list of strings, not one string", field=field)
    out = list(values)
    if not all(isinstance(v, str) for v in out):
        raise InvalidInput(f"{field} must be strings", field=field)
    return out

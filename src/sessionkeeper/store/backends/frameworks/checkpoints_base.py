"""Checkpoint storage: the rows a checkpoint saver writes and reads, and the backend protocol.

Values arrive serialised (the saver's serializer owns the bytes); the store keeps them apart
by kind, as migration 0004 describes: the checkpoint itself, channel values once per
version, list elements once per thread (a list version is ranges of item numbers), pending
writes. ``sqlite_checkpoints.py`` and ``postgres_checkpoints.py`` run the SQL, each on its
backend's own connections, with the same error translation and timeouts as the rest.

A checkpoint write also appends the messages the saver mirrors into the session, in the
same transaction as the checkpoint (counters, seq and ``updated_at`` follow exactly as for
any append), so the session and its checkpoints never disagree about what was said.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sessionkeeper.errors import InvalidInput

# Metadata keys that are plain identifiers go into SQL filters; others are filtered in Python.
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_\-]{1,128}$")
# A thread that uses a DeltaChannel leaves these in checkpoint metadata (LangGraph ≥ 1.1).
DELTA_METADATA_KEYS = ("counters_since_delta_snapshot", "delta_writes_versioned")


# The tables (all keyed by session first: their rows go with the session) and the column
# lists both backends' statements use.
TABLES = ("lg_writes", "lg_channel_items", "lg_channel_values", "lg_checkpoints")
# This part's bit in ``sessions.held_by``: set by every write, cleared when a thread's
# maintenance leaves no rows (``HELD``: the expression that recomputes it).
HOLDER_BIT = 1
HELD = " OR ".join(f"EXISTS (SELECT 1 FROM {t} x WHERE x.session_id = {{sid}})" for t in TABLES)
CP_COLUMNS = (
    "session_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint, "
    "metadata, channels, run_id"
)
CP_REST = CP_COLUMNS.removeprefix("session_id, ")
VALUE_REST = "checkpoint_ns, channel, version, type, value, items"
ITEM_REST = "checkpoint_ns, channel, item_no, digest, key, type, value"
WRITE_REST = "checkpoint_ns, checkpoint_id, task_id, idx, channel, type, value, task_path"
# Each table's columns after session_id: what a copy of a thread (copy_thread, a fork) copies.
COPIED = (
    ("lg_checkpoints", CP_REST),
    ("lg_channel_values", VALUE_REST),
    ("lg_channel_items", ITEM_REST),
    ("lg_writes", WRITE_REST),
)


@dataclass(slots=True)
class CheckpointRow:
    """One checkpoint as stored: serialised without the values kept in other rows."""

    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None
    type: str
    checkpoint: bytes
    metadata: dict[str, Any]
    channels: dict[str, str]  # channel -> version of each value in lg_channel_values
    run_id: str | None = None


@dataclass(slots=True)
class ValueRow:
    """A channel's value at one version: whole (``value``) or as ranges of list items."""

    channel: str
    version: str
    type: str
    value: bytes | None
    items: list[tuple[int, int]] | None = None


@dataclass(slots=True)
class ItemRow:
    """One element of a list value, stored once per thread, namespace and channel."""

    channel: str
    item_no: int
    digest: bytes
    key: str | None
    type: str
    value: bytes


@dataclass(slots=True)
class WriteRow:
    task_id: str
    idx: int
    channel: str
    type: str
    value: bytes
    task_path: str = ""


@dataclass(slots=True)
class StoredCheckpoint:
    """A checkpoint read back with everything it needs."""

    row: CheckpointRow
    values: dict[str, tuple[str, bytes | None]]  # channel -> (type, bytes), whole values
    lists: dict[str, list[tuple[str, bytes]]]  # channel -> elements (type, bytes), in order
    writes: list[WriteRow]  # in (task_path, task_id, idx) order


@dataclass(slots=True)
class ItemLog:
    """The items one (thread, namespace, channel) holds: what a new list version can reuse."""

    next_no: int = 1
    by_digest: dict[bytes, int] = field(default_factory=dict)
    keys: set[str] = field(default_factory=set)


@dataclass(slots=True)
class ListFilter:
    """A validated ``list``: every field optional; newest first."""

    thread_id: str | None = None
    checkpoint_ns: str | None = None
    checkpoint_id: str | None = None
    before: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    limit: int = 100
    # Keyset: continue after this (checkpoint_id, session_id, checkpoint_ns).
    after: tuple[str, str, str] | None = None


class CheckpointPart(Protocol):
    """Checkpoint storage on one database, built by its backend (``Backend.checkpoints``).

    Every write marks the session row (``HOLDER_BIT`` in ``held_by``) in its transaction,
    taking the row's lock: a session being deleted or purged gets no new rows, and a
    session holding checkpoints is never a ghost. Maintenance that leaves a thread without
    rows clears the mark."""

    session_tables: tuple[str, ...]  # keyed by session: their rows go with the session
    ghost_tables: tuple[str, ...]  # of those, the ones that may hold rows of an unmarked one

    async def put(
        self,
        row: CheckpointRow,
        values: Sequence[ValueRow],
        items: Sequence[ItemRow],
        messages: Sequence[dict[str, Any]],
        now: datetime,
    ) -> list[int] | None:
        """Store a checkpoint (replacing one with its id), its new values and items, and
        append ``messages`` (validated rows) to the session, in one transaction.
        The mirrored messages' seqs; None when the session does not exist."""

    async def put_writes(
        self,
        thread_id: str,
        checkpoint_ns: str,
        checkpoint_id: str,
        writes: Sequence[WriteRow],
        *,
        replace: bool,
    ) -> bool:
        """False when the session does not exist."""

    async def get(
        self, thread_id: str, checkpoint_ns: str, checkpoint_id: str | None
    ) -> StoredCheckpoint | None: ...
    async def page(self, query: ListFilter) -> list[StoredCheckpoint]: ...
    async def item_log(self, thread_id: str, checkpoint_ns: str, channel: str) -> ItemLog: ...
    async def delete_thread(self, thread_id: str, session_type: str | None) -> None: ...
    async def delete_for_runs(self, run_ids: Sequence[str]) -> list[str]: ...
    async def copy_thread(self, source: str, target: str, now: datetime) -> bool: ...
    async def prune(self, thread_ids: Sequence[str], *, keep_latest: bool) -> None: ...


# ── helpers both backends use ──────────────────────────────────────────────


def dump_metadata(metadata: dict[str, Any]) -> str:
    try:
        return json.dumps(metadata, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"checkpoint metadata is not JSON: {exc}", field="metadata") from exc


def dump_ranges(ranges: Sequence[tuple[int, int]] | None) -> str | None:
    return None if ranges is None else json.dumps([list(r) for r in ranges])


def load_ranges(text: str | None) -> list[tuple[int, int]] | None:
    return None if text is None else [(int(lo), int(hi)) for lo, hi in json.loads(text)]


def expand(ranges: Iterable[tuple[int, int]]) -> list[int]:
    return [no for lo, hi in ranges for no in range(lo, hi + 1)]


def filterable(key: str) -> bool:
    """Whether a metadata key can go into SQL as it is (others are checked in Python)."""
    return bool(_PLAIN_KEY.match(key))


def matches(metadata: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """The exact test, after SQL has narrowed the rows (as LangGraph's own savers compare)."""
    return all(k in metadata and metadata[k] == v for k, v in wanted.items())


def live_items(values: Iterable[tuple[str, str, str | None]]) -> dict[tuple[str, str], set[int]]:
    """(namespace, channel) -> the item numbers that the list versions still in use need."""
    live: dict[tuple[str, str], set[int]] = {}
    for ns, channel, ranges in values:
        if ranges is not None:
            live.setdefault((ns, channel), set()).update(expand(load_ranges(ranges) or []))
    return live

"""The ``Backend`` protocol: every database operation the Store needs, one per method.

The Store validates arguments and shapes results; a backend runs statements on its own
connections and nothing else. Each database has one backend (``sqlite.py``,
``postgres.py``) that does the core operations itself and carries the storage parts of the
frameworks (``frameworks/``: LangGraph checkpoints, ADK sessions), which it builds on its own
connections. An operation has exactly one path and one set of connection settings, and the
store's framework APIs (``store/checkpoints.py``, ``store/adk.py``) speak only the parts'
protocols (``CheckpointPart``, ``AdkPart``).

Contract every backend keeps:
- Every driver failure leaves as a ``sessionkeeper.errors`` type, translated once inside the
  backend: connection lost, server starting, lock busy past its wait, timeout →
  ``Unavailable``; a value the database refuses → ``InvalidInput``; a duplicate key →
  ``Conflict``; anything else → ``DatabaseError``.
- Every call is bounded by the configured timeout (``DatabaseConfig.timeout``).
- Methods may be awaited from any event loop, in any thread.
- "No such session" is ``None`` (or ``False``) in the return value; the Store words the error.
- Deleting a session (one, pruned, purged, replaced by an import) deletes its rows in every
  table keyed by session: messages and each part's ``session_tables``. The session row goes
  first, and every writer takes that row's lock first, so nothing is added meanwhile.
- A part that holds state for a session marks its row (its bit in ``sessions.held_by``) in
  the same transaction; the ghost rule (``statements.GHOST``) reads the row alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from sessionkeeper.models import (
    ApiKey,
    Compaction,
    DatabaseRole,
    Message,
    Policy,
    SearchHit,
    Session,
    StatsCounts,
    Usage,
)
from sessionkeeper.store.backends.forgetting import ForgetPlan, Forgotten
from sessionkeeper.store.backends.frameworks.adk_base import AdkPart
from sessionkeeper.store.backends.frameworks.checkpoints_base import CheckpointPart
from sessionkeeper.store.idempotency import Claim, Recorded

if TYPE_CHECKING:
    from sessionkeeper.store.verbatim import Totals


@dataclass(slots=True)
class ListQuery:
    """A validated session listing (see ``Store.list_sessions``)."""

    agent_ids: list[str] | None = None
    user_ids: list[str] | None = None
    metadata: dict[str, Any] | None = None  # validate.metadata_filter: pairs that must match
    session_type: str | None = None
    status: str | None = None
    search: str | None = None  # raw user text (title substring or full-text match)
    created_after: datetime | None = None
    created_before: datetime | None = None
    updated_after: datetime | None = None
    updated_before: datetime | None = None
    sort: str = "updated_at"
    order: str = "desc"
    limit: int = 20
    offset: int = 0
    after: tuple[Any, str] | None = None  # decoded keyset cursor: (sort key, session_id)
    with_total: bool = True


@dataclass(slots=True)
class Listed:
    """One page of a listing: ``limit + 1`` rows at most (the extra one tells has_more)."""

    sessions: list[Session]
    sort_keys: list[Any]
    total: int | None


# What ``Backend.stats`` returns: ``Stats`` without the thresholds the Store adds.
StatsRow = StatsCounts

# What ``Backend.usage_totals`` returns, one row per model (``statements.usage_totals``):
# (model, messages, requests, input, output, cached, reasoning tokens).
UsageRows = list[tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class KeyRow(ApiKey):
    """An ``api_keys`` row: the key as the Store shows it, and the digest of its secret."""

    secret_hash: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class RuleScope:
    """One rule of one retention policy, as a run applies it (``store/retention.py``):
    the sessions of ``agent_id`` (None: of every agent not in ``others``, the agents with
    policies of their own) that the rule takes at ``cutoff``; never a pinned one."""

    rule: str  # models.POLICY_RULES
    agent_id: str | None
    others: tuple[str, ...]
    cutoff: datetime


@dataclass(slots=True)
class Tail:
    """What a context window is chosen from (see ``window.py``)."""

    message_count: int
    token_count: int
    head: list[Message]  # the pinned system prompt: leading system messages
    newest: list[Message]  # newest first, after the head, until certainly past the budget
    # The compaction in force: ``newest`` then stops at its cut (``store/compaction.py``).
    summary: Compaction | None = None


@dataclass(slots=True)
class CompactionSource:
    """What a compaction is made from, read in one snapshot (``CompactionPart.source``)."""

    pinned_through: int  # the last seq of the pinned system prompt (0: none)
    current: Compaction | None  # the compaction in force
    messages: list[Message]  # every message after the pinned prompt and ``current``'s cut


class CompactionPart(Protocol):
    """Compactions of a session (``store/compaction.py``): a summary row standing in for
    messages ``from_seq``..``through_seq`` in the context window; the messages stay."""

    async def source(self, session_id: str) -> CompactionSource | None:
        """None: no such session."""

    async def insert(
        self, compaction: Compaction, *, previous: int, after: int, count: int, tokens: int
    ) -> bool | None:
        """Insert ``compaction`` in one transaction under the session row's lock, only if it
        is still valid: the compaction in force is the one whose ``through_seq`` is
        ``previous`` (0: none), and the messages with seq in (``after``,
        ``compaction.through_seq``] are still ``count`` messages of ``tokens`` tokens. None:
        no such session; False: the session changed (nothing written)."""

    async def latest(self, session_id: str) -> tuple[bool, Compaction | None]:
        """(session exists, the compaction in force)."""

    async def every(self, session_id: str) -> list[Compaction] | None:
        """Every compaction of the session, oldest first (None: no such session)."""


@dataclass(frozen=True, slots=True)
class ForkSpec:
    """A validated fork (``Store.fork_session``): copy ``source_id``'s messages 1..``at_seq``
    (None: up to its last seq, read in the same snapshot) into a new session ``new_id``,
    which takes the source's agent, user and type, and ``title`` / ``metadata`` unless given."""

    source_id: str
    new_id: str
    at_seq: int | None
    title: str | None
    metadata: dict[str, Any] | None
    now: datetime


@dataclass(frozen=True, slots=True)
class Forked:
    """What a backend's fork or rewind did. ``last_seq``: the source's last seq it saw;
    ``session`` None: the seq asked for is past it (nothing was written)."""

    last_seq: int
    session: Session | None = None
    branch: Session | None = None  # a rewind's branch (None: nothing came after to_seq)
    dropped: int = 0  # messages a rewind moved to its branch


class Backend(Protocol):
    dialect: str

    async def close(self) -> None: ...

    # ── the frameworks' storage parts (frameworks/), on this backend's connections ──
    @property
    def checkpoints(self) -> CheckpointPart: ...
    @property
    def adk(self) -> AdkPart: ...
    @property
    def compactions(self) -> CompactionPart: ...

    # ── the database itself ────────────────────────────────────────────────
    async def ping(self) -> None: ...
    async def role(self) -> DatabaseRole:
        """Which node the (write) connections reach, and the replication lag."""
        ...

    def reads_served(self) -> dict[str, int] | None:
        """Reads served by the standby and by the primary so far (``{"standby": n,
        "primary": n}``); None without a standby."""
        ...

    async def schema_revision(self) -> str | None: ...
    async def migrate(self, target: str) -> tuple[str | None, str]: ...
    def job_lock(self, name: str) -> AbstractAsyncContextManager[bool]: ...
    async def vacuum(self, full: bool = False) -> None: ...
    async def reindex_search(self, analyser: str) -> int | None:
        """Rebuild the search index if another analyser (``terms.ANALYSER``) built it;
        the number of messages indexed, or None when it was current (or cannot be written
        here)."""
        ...

    # ── sessions ────────────────────────────────────────────────────────────
    async def insert_session(self, session: Session, claim: Claim | None = None) -> Recorded | None:
        """Insert the session; with a ``claim``, its key row in the same transaction, unless
        the agent's key exists: then what that key recorded (nothing written)."""

    async def get_session(self, session_id: str) -> Session | None: ...
    async def list_sessions(self, query: ListQuery) -> Listed: ...
    async def update_session(
        self,
        session_id: str,
        values: dict[str, Any],
        *,
        end_at: datetime | None = None,
        expected_metadata: dict[str, Any] | None = None,
    ) -> Session | None:
        """Set ``values`` (None: no such session). With ``expected_metadata``, only if the
        session's metadata is still that JSON, checked in the same transaction; else
        ``Conflict`` and nothing written."""
    async def delete_session(self, session_id: str) -> bool: ...
    async def sessions_by_metadata(self, key: str, value: str) -> list[Session]: ...

    # ── messages ────────────────────────────────────────────────────────────
    async def append(
        self,
        session_id: str,
        rows: Sequence[dict[str, Any]],
        now: datetime,
        claim: Claim | None = None,
    ) -> list[int] | Recorded | None:
        """The seqs given to ``rows``; None: no such session. With a ``claim``, its key row
        is written in the same transaction; if the session's key exists (committed before,
        or by a send of the same key that held the session row first), what that key
        recorded, and nothing is written."""

    async def expire_idempotency_keys(self, cutoff: datetime, batch: int) -> int:
        """Delete idempotency keys made before ``cutoff``, ``batch`` per transaction."""

    async def get_messages(
        self,
        session_id: str,
        *,
        limit: int,
        offset: int,
        since: datetime | None,
        after_seq: int | None,
        newest_first: bool,
    ) -> list[Message] | None: ...
    async def message_metadata(
        self, session_id: str, last: int
    ) -> list[tuple[int, dict[str, Any]]] | None:
        """(seq, metadata) of the newest ``last`` messages, newest first: the narrow read of
        the framework integrations (no content, no Message objects)."""

    async def delete_message(
        self,
        session_id: str,
        seq: int | None,
        now: datetime,
        *,
        newest_only: bool = False,
        check: Callable[[Message], object] | None = None,
    ) -> tuple[bool, Message | None]:
        """Delete message ``seq`` (None: the newest); (session exists, message deleted).
        The compactions that stand for it go in the same transaction (a summary of a
        deleted message must not outlive it).

        ``newest_only``: delete ``seq`` only if it is the newest message, decided under the
        same lock as the delete (nothing is deleted otherwise). ``check(message)`` runs in
        the transaction before it commits, off the event loop; what it raises rolls the
        delete back and propagates as it is."""

    async def replace_tail(
        self,
        session_id: str,
        expected: Sequence[int] | None,
        rows: Sequence[dict[str, Any]],
        now: datetime,
        prune: Callable[[Message], bool] | None = None,
    ) -> bool | None:
        """In one transaction under the session row's lock: if the session's newest
        messages are still those of seqs ``expected`` (oldest first; None: replace every
        message, unchecked), delete them, and with ``prune`` also the oldest messages before
        them that it accepts (up to the first it refuses; run off the event loop); then
        append ``rows``. None: no such session; False: the newest messages changed (nothing
        written)."""

    async def clear_messages(self, session_id: str, now: datetime) -> int | None:
        """Delete every message and every compaction of the session; how many messages."""

    async def set_usage(
        self,
        session_id: str,
        seq: int,
        usage: Usage | None,
        details: dict[str, Any] | None = None,
    ) -> tuple[bool, Message | None]:
        """Set (None: clear) the usage of message ``seq``, and its ``metadata["usage_details"]``
        (None: removed), in one statement; (session exists, the message)."""

    async def usage_totals(
        self, session_id: str | None, agent_ids: list[str] | None, user_ids: list[str] | None
    ) -> UsageRows | None:
        """Usage by model of ``session_id`` (None: no such session), or of the sessions of
        ``agent_ids`` and ``user_ids`` (None: all)."""

    async def read_tail(self, session_id: str, room_after_head: int) -> Tail | None: ...
    async def search(
        self,
        query: str,
        *,
        limit: int,
        session_id: str | None,
        agent_ids: list[str] | None,
        user_ids: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> list[SearchHit]: ...
    async def search_around(
        self,
        query: str,
        *,
        context: int,
        limit: int,
        agent_ids: list[str] | None,
        user_ids: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        snippets: bool = True,
    ) -> tuple[list[SearchHit], list[Message]]:
        """``search``'s hits, and the messages up to ``context`` positions around each (each
        message once): what recall reads, at the cost of about one search. Without
        ``snippets`` the hits' snippets are empty (the caller reads the messages)."""
        ...

    # ── lineage (lineage_sql.py) ──────────────────────────────────────────
    async def fork_session(self, spec: ForkSpec) -> Forked | None:
        """One transaction on a consistent view of the source (concurrent appends are
        either wholly in it or not at all): the new session's row, then the copies. None:
        no such source."""

    async def rewind_session(
        self, session_id: str, to_seq: int, branch_id: str, now: datetime
    ) -> Forked | None:
        """One transaction holding the session row's lock: when messages come after
        ``to_seq``, a branch ``branch_id`` (a fork at ``to_seq`` holding the whole history:
        the prefix copied, the tail moved); then the session's counters from what it keeps
        and ``last_seq = to_seq``. None: no such session."""

    async def children(self, session_id: str) -> list[Session] | None:
        """The sessions forked from ``session_id``, oldest first (None: no such session)."""

    # ── set-wide work ──────────────────────────────────────────────────────
    async def delete_ghosts(self, cutoff: datetime, batch: int) -> int: ...
    async def list_ghosts(self, cutoff: datetime, limit: int | None) -> list[Session]: ...
    async def delete_ghost_ids(self, cutoff: datetime, ids: Sequence[str]) -> int: ...
    async def prune(
        self, cutoff: datetime, *, dry_run: bool, batch: int
    ) -> tuple[int, int, list[str]]: ...
    async def stats(
        self,
        ghost_cutoff: datetime,
        stale_cutoff: datetime,
        agent_ids: list[str] | None,
        user_ids: list[str] | None = None,
    ) -> StatsRow: ...
    async def import_session(
        self,
        session: Session,
        last_seq: int,
        items: Sequence[Message],
        replace: bool,
        compactions: Sequence[Compaction] = (),
    ) -> bool: ...
    async def import_session_stream(
        self,
        session: Session,
        chunks: Iterator[list[Message]],
        totals: Totals,
        replace: bool,
        compactions: Iterable[Compaction] = (),
    ) -> bool:
        """One transaction: the session row, each chunk as it comes, the counters from
        ``totals`` (kept by the chunks as they pass), then ``compactions`` as they come."""

    # ── API keys ────────────────────────────────────────────────────────────
    async def insert_key(self, key: KeyRow) -> None: ...
    async def get_key(self, key_id: str) -> KeyRow | None: ...
    async def list_keys(self, include_revoked: bool) -> list[KeyRow]: ...
    async def any_active_key(self) -> bool: ...
    async def revoke_key(self, key_id: str, now: datetime) -> KeyRow | None: ...
    async def touch_key(self, key_id: str, now: datetime) -> None:
        """Set the key's ``last_used_at`` to ``now`` (nothing if there is no such key)."""

    # ── retention policies (store/retention.py; SQL in retention_sql.py) ────
    async def list_policies(self) -> list[Policy]: ...
    async def put_policy(self, policy: Policy) -> None:
        """Insert or replace the policy of ``policy.agent_id``."""

    async def delete_policy(self, agent_id: str) -> Policy | None: ...
    async def rule_sessions(self, scope: RuleScope) -> list[tuple[str, int]]:
        """(session id, message count) of the sessions the rule would take now, oldest
        activity first: a dry run."""

    async def apply_rule(
        self, scope: RuleScope, now: datetime, batch: int
    ) -> list[tuple[str, int]]:
        """Apply the rule in batches of at most ``batch`` sessions, each its own short
        transaction whose statement re-checks the rule on every row it ends or deletes,
        under that row's lock (a session written meanwhile no longer matches); ``now`` is
        the ``ended_at`` of sessions ended. (session id, message count) of those taken."""

    # ── forgetting a user ──────────────────────────────────────────────────
    async def forget_user(self, plan: ForgetPlan) -> Forgotten:
        """Delete the user's sessions with all their rows, user state and keys, and record
        the forget; with ``plan.record`` None only count (``forgetting.py``)."""


def stats_row(
    totals: Sequence[Any],
    oldest: datetime | None,
    newest: datetime | None,
    by_agent: dict[str, int],
    by_type: dict[str, int],
) -> StatsRow:
    """A ``StatsRow`` from a totals row whose first eight values are its counts, in field
    order."""
    names = [f.name for f in fields(StatsRow)[:8]]
    counted: dict[str, Any] = {name: int(v) for name, v in zip(names, totals[:8], strict=True)}
    return StatsRow(
        **counted,
        by_agent=by_agent,
        by_type=by_type,
        oldest_session=oldest,
        newest_activity=newest,
    )

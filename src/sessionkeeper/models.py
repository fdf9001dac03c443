"""Value types returned by the Store, and the limits every face enforces."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, Literal, TypeVar

MAX_MESSAGE_LENGTH = 100_000
MAX_TITLE_LENGTH = 200
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_MESSAGES_PAGE = 500
MAX_METADATA_BYTES = 1_000_000

ROLES = ("system", "user", "assistant", "tool")
Role = Literal["system", "user", "assistant", "tool"]
STATUSES = ("active", "ended")
SORT_FIELDS = ("created_at", "updated_at", "last_message_at", "title")

# Not "." or ".." (or any run of dots alone): ids appear in URL paths and file names.
SESSION_ID_RE = re.compile(r"^(?!\.+$)[A-Za-z0-9._:-]{1,128}$")
# Names the REST API uses under /sessions for other things (/sessions/stats …): a session with
# one of these ids could not be reached at /sessions/{id}, so no new session may take one.
RESERVED_SESSION_IDS = ("ghosts", "prune", "search", "stats")
# Agent ids and session types are free text in the seeds; we only refuse what would be
# unreadable in a table or a URL.
LABEL_RE = re.compile(r"^(?!\.+$)[A-Za-z0-9._:@/+-]{1,64}$")

T = TypeVar("T")


# Session, Message, NewMessage and SearchHit are not frozen: a frozen dataclass's __init__
# costs ~3x more (object.__setattr__ per field), which showed in reading 50 messages
# (bench/ last50).
# Treat them as read-only values all the same.


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(slots=True)
class Session:
    session_id: str
    agent_id: str
    title: str | None
    session_type: str
    status: str
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None
    last_message_at: datetime | None
    message_count: int
    token_count: int
    user_id: str | None = None  # who the session is for (a label, like agent_id)
    # Lineage (fork_session / rewind_session): the session this one was forked from, and the
    # seq up to which their histories are the same (the parent's 1..fork_seq were copied).
    parent_session_id: str | None = None
    fork_seq: int | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("created_at", "updated_at", "ended_at", "last_message_at"):
            data[key] = _iso(data[key])
        return data


# A session's fields in order: its JSON shape (API, CLI, the JSONL export's header line).
SESSION_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Session))


@dataclass(slots=True)
class Usage:
    """What producing a message cost: the tokens a model call (or a run of calls) reported.

    As the providers count them: ``input_tokens`` include ``cached_tokens`` (the part read
    from the provider's prompt cache); ``reasoning_tokens`` are within ``output_tokens`` for
    most providers but beside them for some (Gemini's thinking tokens), so they may exceed
    them.
    ``model`` is the priced model (None: the message's own ``model``)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    requests: int = 1
    model: str | None = None

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# The usage columns of a message row, in Usage's field order (migration 0012).
USAGE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Usage))


@dataclass(slots=True)
class Message:
    session_id: str
    seq: int
    role: str
    content: str
    agent_id: str | None
    model: str | None
    token_count: int
    metadata: dict[str, Any]
    created_at: datetime
    usage: Usage | None = None  # what producing it cost, when recorded (issue 19)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = _iso(self.created_at)
        return data


@dataclass(slots=True)
class NewMessage:
    """A message to append. ``token_count`` is computed by the store when omitted."""

    role: str
    content: str
    agent_id: str | None = None
    model: str | None = None
    metadata: dict[str, Any] | None = None
    token_count: int | None = None
    created_at: datetime | None = None
    usage: Usage | dict[str, Any] | None = None  # see Usage; a dict holds Usage's fields


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    total: int | None
    limit: int
    offset: int
    has_more: bool
    next_cursor: str | None = None


@dataclass(slots=True)
class SearchHit:
    session_id: str
    seq: int
    role: str
    agent_id: str | None
    snippet: str
    rank: float
    created_at: datetime
    session_title: str | None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = _iso(self.created_at)
        return data


@dataclass(frozen=True, slots=True)
class Window:
    """The newest messages of a session that fit a token budget, oldest first."""

    session_id: str
    messages: list[Message]
    max_tokens: int
    total_tokens: int
    dropped_messages: int
    dropped_tokens: int
    pinned: int
    estimated: bool
    encoding: str
    # The last seq a compaction summary stands for (None: no compaction in force). The
    # summary is then in ``messages`` right after the pinned system prompt (``Compaction``).
    compacted_through: int | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["messages"] = [m.to_dict() for m in self.messages]
        return data


@dataclass(frozen=True, slots=True)
class DatabaseRole:
    """Which node a store's connections reach, and how far replication is behind
    (``Store.database_role``; /readyz shows it). SQLite is always a lone primary.

    A primary reports its standbys: how many stream from it (None: not visible to this
    user), and the slowest one's replay lag. A standby reports its own lag behind the
    primary (0 when it has replayed all it received). Unknown stays None, never 0."""

    role: Literal["primary", "standby"]
    lag_seconds: float | None = None
    lag_bytes: int | None = None
    standbys: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Compaction:
    """A summary standing in for messages ``from_seq``..``through_seq`` of a session in its
    context window (``Store.compact_session``). The messages themselves are kept."""

    session_id: str
    from_seq: int  # the first message it stands for (after the pinned system prompt)
    through_seq: int  # the last message it stands for: the cut
    message_count: int  # how many messages it stands for
    compacted_tokens: int  # their token count
    summary: str
    token_count: int  # the summary's own tokens
    model: str | None  # the model that wrote it, when the caller said
    metadata: dict[str, Any]
    created_at: datetime

    def as_message(self) -> Message:
        """The summary as the window shows it: a system message at the place of the cut
        (seq ``through_seq``), marked ``metadata["compaction"]``."""
        return Message(
            session_id=self.session_id,
            seq=self.through_seq,
            role="system",
            content=self.summary,
            agent_id=None,
            model=self.model,
            token_count=self.token_count,
            metadata={
                **self.metadata,
                "compaction": {
                    "from_seq": self.from_seq,
                    "through_seq": self.through_seq,
                    "message_count": self.message_count,
                    "compacted_tokens": self.compacted_tokens,
                },
            },
            created_at=self.created_at,
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = _iso(self.created_at)
        return data


@dataclass(frozen=True, slots=True)
class PruneResult:
    pruned_count: int
    message_count: int
    dry_run: bool
    days: float
    cutoff: datetime
    session_ids: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["cutoff"] = _iso(self.cutoff)
        return data


@dataclass(frozen=True, slots=True)
class StatsCounts:
    """What the database counts for ``get_stats`` (a backend's row; see ``Stats``)."""

    total_sessions: int
    total_messages: int
    total_tokens: int
    active_sessions: int
    ended_sessions: int
    ghost_sessions: int
    stale_sessions: int
    active_agents: int
    by_agent: dict[str, int]
    by_type: dict[str, int]
    oldest_session: datetime | None
    newest_activity: datetime | None


@dataclass(frozen=True, slots=True)
class Stats(StatsCounts):
    """The counts, with the thresholds they were counted with."""

    ghost_threshold_minutes: float
    stale_threshold_days: float

    @classmethod
    def of(cls, counts: StatsCounts, ghost_minutes: float, stale_days: float) -> Stats:
        values = {f.name: getattr(counts, f.name) for f in fields(StatsCounts)}
        return cls(**values, ghost_threshold_minutes=ghost_minutes, stale_threshold_days=stale_days)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["oldest_session"] = _iso(self.oldest_session)
        data["newest_activity"] = _iso(self.newest_activity)
        return data


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key as the Store shows it (``store.keys``): never its secret, nor the secret's
    digest (the backend's ``KeyRow`` adds that)."""

    key_id: str
    name: str | None
    admin: bool
    agent_ids: list[str]
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None
    # The users of its agents the key may see (None: every user). Keyword-only, so the
    # positional fields (and the backend's ``KeyRow`` after them) keep their places.
    user_ids: list[str] | None = field(default=None, kw_only=True)

    @property
    def scope(self) -> list[str] | None:
        """Agent ids this key may see, or None for all (admin)."""
        return None if self.admin else list(self.agent_ids)

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(ApiKey)}
        data["agent_ids"] = list(self.agent_ids)
        data["user_ids"] = None if self.user_ids is None else list(self.user_ids)
        for key in ("created_at", "revoked_at", "last_used_at"):
            data[key] = _iso(data[key])
        return data


# ── retention policies (store/retention.py) ─────────────────────────────────

DEFAULT_POLICY = "*"  # the agent id of the default policy: agents without one of their own
# The rules of a policy, in the order a run applies them (deletes first: a session a delete
# takes is not also ended).
POLICY_RULES = ("delete_after", "delete_ended_after", "end_idle_after")
PolicyRule = Literal["delete_after", "delete_ended_after", "end_idle_after"]


@dataclass(frozen=True, slots=True)
class Policy:
    """The retention policy of one agent (``"*"``: the default), as stored: the idle time
    in whole minutes, the delete ages in whole days; None: that rule is off."""

    agent_id: str
    end_idle_minutes: int | None  # end (keep) an active session idle this long
    delete_ended_days: int | None  # delete an ended session ended and idle this long
    delete_after_days: int | None  # delete any session idle (no activity) this long
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["updated_at"] = _iso(self.updated_at)
        return data


@dataclass(frozen=True, slots=True)
class RuleRun:
    """What one rule of one policy did in a run (or, in a dry run, would do)."""

    agent_id: str  # the policy's agent; "*": the default policy (every agent without one)
    rule: str  # one of POLICY_RULES
    action: Literal["end", "delete"]
    cutoff: datetime  # sessions idle (or ended) since before this
    count: int
    message_count: int  # messages of the sessions ended or deleted
    session_ids: list[str]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["cutoff"] = _iso(self.cutoff)
        return data


@dataclass(frozen=True, slots=True)
class PolicyRun:
    """A run of every retention policy: each rule's result, in the order applied."""

    dry_run: bool
    now: datetime  # the time every cutoff was measured from
    ended_count: int
    deleted_count: int
    rules: list[RuleRun]

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "now": _iso(self.now),
            "ended_count": self.ended_count,
            "deleted_count": self.deleted_count,
            "rules": [r.to_dict() for r in self.rules],
        }


@dataclass(frozen=True, slots=True)
class ForgetCounts:
    """What forgetting a user deleted (or, in a dry run, would delete), per kind of row."""

    sessions: int = 0
    messages: int = 0
    checkpoints: int = 0  # LangGraph rows: checkpoints, channel values and items, writes
    adk_state: int = 0  # ADK rows: the user's ADK sessions' state, and the user's user state
    keys: int = 0  # API keys scoped to this user alone: deleted
    keys_narrowed: int = 0  # keys scoped to several users: this one taken off their list

    def __add__(self, other: ForgetCounts) -> ForgetCounts:
        return ForgetCounts(
            *(getattr(self, f.name) + getattr(other, f.name) for f in fields(ForgetCounts))
        )

    def counts(self) -> dict[str, int]:
        """The counts alone, as recorded in ``forgotten_users.counts``."""
        return {f.name: getattr(self, f.name) for f in fields(ForgetCounts)}


@dataclass(frozen=True, slots=True, kw_only=True)
class ForgetReceipt(ForgetCounts):
    """What ``Store.forget_user`` did: the counts, and a record of the forget that holds no
    content and not the user id itself (its SHA-256)."""

    forget_id: str | None  # the forgotten_users row (None: a dry run wrote nothing)
    user_hash: str  # SHA-256 of the user id, hex
    agent_id: str | None  # None: the user's sessions of every agent
    forgotten_at: datetime
    dry_run: bool
    # SQLite file: whether the WAL was checkpointed and truncated to nothing (False: a reader
    # of another process held it; the writer truncates it when idle). None: no WAL here.
    wal_truncated: bool | None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["forgotten_at"] = _iso(self.forgotten_at)
        return data


@dataclass(frozen=True, slots=True)
class Rewind:
    """What ``rewind_session`` did: the session, now ending at ``to_seq``, and the branch
    that keeps what it dropped (a child of the session holding its whole history before
    the rewind: switch to it to undo). ``branch`` is None when nothing came after
    ``to_seq``."""

    session: Session
    branch: Session | None
    to_seq: int
    dropped_messages: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "session": self.session.to_dict(),
            "branch": None if self.branch is None else self.branch.to_dict(),
            "to_seq": self.to_seq,
            "dropped_messages": self.dropped_messages,
        }
# ── usage and cost (store/usage.py) ─────────────────────────────────────────

CostStatus = Literal["known", "partial", "unknown"]


def _money(value: Decimal | None) -> str:
    # Exact decimal text: a JSON number would round sums of small prices.
    return "unknown" if value is None else format(value.normalize(), "f")


@dataclass(frozen=True, slots=True)
class ModelUsage:
    """The usage recorded under one model, and what it cost (None: the price table does not
    know the model, so its cost is unknown, never 0)."""

    model: str | None
    messages: int  # messages carrying usage
    requests: int
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    cost_usd: Decimal | None
    provider: str | None = None  # the price table's provider of the model

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["total_tokens"] = self.total_tokens
        data["cost_usd"] = _money(self.cost_usd)
        return data


@dataclass(frozen=True, slots=True)
class UsageTotals:
    """Usage totals over a session, or over the sessions of agents / users, by model.

    ``cost_usd`` is the sum of the priced models; ``cost_status`` says whether that is all of
    it: ``known`` (every model priced, or no usage at all), ``partial`` (some models unknown:
    ``unknown_models``; the sum covers the others), ``unknown`` (no model could be priced:
    ``cost_usd`` is None, never 0). Prices are those of ``price_source`` at ``priced_at``.
    """

    session_id: str | None  # the session totalled (None: a scope of sessions)
    agent_ids: list[str] | None  # the scope (None: every agent)
    user_ids: list[str] | None  # the scope (None: every user)
    messages: int
    requests: int
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    cost_usd: Decimal | None
    cost_status: CostStatus
    unknown_models: list[str | None]
    by_model: list[ModelUsage]
    price_source: str  # the price table, with its version ("genai-prices 0.2.5")
    priced_at: datetime

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(UsageTotals)}
        data["total_tokens"] = self.total_tokens
        data["cost_usd"] = _money(self.cost_usd)
        data["by_model"] = [m.to_dict() for m in self.by_model]
        data["unknown_models"] = list(self.unknown_models)
        data["priced_at"] = _iso(self.priced_at)
        for key in ("agent_ids", "user_ids"):
            data[key] = None if data[key] is None else list(data[key])
        return data

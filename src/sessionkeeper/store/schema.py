"""The schema, as SQLAlchemy Core tables: the single description of what the Store reads.

Alembic owns the database (``migrations/``); a test compares these tables with a migrated
database on both dialects so the two cannot drift. Full-text search objects are the one
deliberate exception, because they are dialect-specific: a ``tsv`` column + GIN index on
PostgreSQL, an FTS5 index over the ``messages_terms`` view kept by triggers on SQLite (see
``terms.py`` and migration 0008).

Why the shape:
- ``messages`` is keyed by ``(session_id, seq)``: order is by seq, never by timestamp, and
  every key starting with session_id keeps the table shardable by session (Citus-style).
- ``sessions`` carries counters (message_count, token_count, last_seq) updated in the same
  transaction as every write, so listings never count messages. ``last_seq`` is separate
  from ``message_count`` because deleting a message must not let a later seq be reused.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator

from sessionkeeper.store.revision import SCHEMA_REVISION

__all__ = [
    "SCHEMA_REVISION",
    "adk_app_state",
    "adk_sessions",
    "adk_user_state",
    "api_keys",
    "idempotency_keys",
    "compactions",
    "lg_channel_items",
    "lg_channel_values",
    "lg_checkpoints",
    "lg_writes",
    "messages",
    "metadata",
    "sessions",
]


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both dialects.

    PostgreSQL stores timestamptz. SQLite has no timestamp type: values are stored as naive
    UTC ISO text, which sorts and compares correctly as text, and read back as aware UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _json() -> Any:
    return JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


SQLITE = ("sqlite",)
metadata = MetaData()

sessions = Table(
    "sessions",
    metadata,
    Column("session_id", String(128), primary_key=True),
    Column("agent_id", String(64), nullable=False, server_default="main"),
    Column("title", String(200)),
    Column("session_type", String(64), nullable=False, server_default="chat"),
    Column("status", String(16), nullable=False, server_default="active"),
    Column("metadata", _json()),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("ended_at", UTCDateTime()),
    Column("last_message_at", UTCDateTime()),
    Column("message_count", Integer, nullable=False, server_default="0"),
    Column("token_count", BigInteger, nullable=False, server_default="0"),
    Column("last_seq", Integer, nullable=False, server_default="0"),
    # Which storage parts hold state for the session, one bit each (backends/frameworks/):
    # the ghost rule reads it instead of probing their tables (migration 0007).
    Column("held_by", SmallInteger, nullable=False, server_default="0"),
    # Who the session is for (optional, a label like agent_id; ADK: its user). Migration 0009.
    Column("user_id", Text),
    # Lineage (migration 0010): the session this one was forked from and the seq up to which
    # their histories agree. No foreign key: a fork holds copies and outlives its parent.
    Column("parent_session_id", String(128)),
    Column("fork_seq", Integer),
    # Every append changes updated_at, so each index holding it costs an index update per
    # message (PostgreSQL: no HOT update at all). Listings by agent and by recency get one;
    # a status filter (two values) rides on ix_sessions_updated.
    Index("ix_sessions_agent_updated", "agent_id", "updated_at"),
    Index("ix_sessions_agent_user_updated", "agent_id", "user_id", "updated_at"),
    Index("ix_sessions_updated", "updated_at"),
    # Ghosts (sessions nobody spoke in, holding no state) are this small partial index.
    Index(
        "ix_sessions_ghosts",
        "created_at",
        postgresql_where=text("message_count = 0 AND held_by = 0"),
        sqlite_where=text("message_count = 0 AND held_by = 0"),
    ),
    # A session's children (forks and rewind branches), oldest first.
    Index(
        "ix_sessions_parent",
        "parent_session_id",
        "created_at",
        postgresql_where=text("parent_session_id IS NOT NULL"),
        sqlite_where=text("parent_session_id IS NOT NULL"),
    ),
)


def _session_fk() -> ForeignKeyConstraint:
    """Rows keyed by a session go with it. A foreign key on SQLite only: on PostgreSQL its
    per-row cascade made a purge of 100,000 ghosts ~30x a plain DELETE, so the backend
    deletes a session's rows itself (migration 0007; ``dialects`` is read by the schema
    test)."""
    return ForeignKeyConstraint(
        ["session_id"], ["sessions.session_id"], ondelete="CASCADE", info={"dialects": SQLITE}
    ).ddl_if(dialect="sqlite")


messages = Table(
    "messages",
    metadata,
    Column("session_id", String(128), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("role", String(16), nullable=False),
    Column("content", Text, nullable=False),
    Column("agent_id", String(64)),
    Column("model", String(128)),
    Column("token_count", Integer, nullable=False, server_default="0"),
    Column("metadata", _json()),
    Column("created_at", UTCDateTime(), nullable=False),
    # Usage (migration 0012): what producing the message cost; ``requests`` is NULL exactly
    # when there is none. Its own model (the priced one) may differ from ``model``.
    Column("input_tokens", Integer),
    Column("output_tokens", Integer),
    Column("cached_tokens", Integer),
    Column("reasoning_tokens", Integer),
    Column("requests", Integer),
    Column("usage_model", String(128)),
    PrimaryKeyConstraint("session_id", "seq", name="pk_messages"),
    _session_fk(),
    # Usage totals read this alone (it holds every column they sum), and only the messages
    # that carry usage are in it.
    Index(
        "ix_messages_usage",
        "session_id",
        "usage_model",
        "input_tokens",
        "output_tokens",
        "cached_tokens",
        "reasoning_tokens",
        "requests",
        postgresql_where=text("requests IS NOT NULL"),
        sqlite_where=text("requests IS NOT NULL"),
    ),
)

# Compactions (migration 0011; ``store/compaction.py``): a summary standing in for the
# messages ``from_seq``..``through_seq`` in the context window; the newest is in force. The
# messages themselves stay.
compactions = Table(
    "compactions",
    metadata,
    Column("session_id", String(128), nullable=False),
    Column("through_seq", Integer, nullable=False),
    Column("from_seq", Integer, nullable=False),
    Column("message_count", Integer, nullable=False),
    Column("compacted_tokens", BigInteger, nullable=False),
    Column("summary", Text, nullable=False),
    Column("token_count", Integer, nullable=False),
    Column("model", String(128)),
    Column("metadata", _json()),
    Column("created_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("session_id", "through_seq", name="pk_compactions"),
    _session_fk(),
)

# Which analyser (``store/terms.py``) built the search index: one row, written by the store
# when it (re)builds the index, so a store with another analyser re-indexes when it opens.
search_index = Table(
    "search_index",
    metadata,
    Column("analyser", String(200), nullable=False),
)

# Retention rules per agent ("*": the default for agents without their own); NULL: no rule.
retention_policies = Table(
    "retention_policies",
    metadata,
    Column("agent_id", String(64), primary_key=True),
    Column("end_idle_minutes", Integer),
    Column("delete_ended_days", Integer),
    Column("delete_after_days", Integer),
    Column("updated_at", UTCDateTime(), nullable=False),
)

# One row per forget_user: a hash of the user id, the counts, the time; never content.
forgotten_users = Table(
    "forgotten_users",
    metadata,
    Column("forget_id", String(32), primary_key=True),
    Column("user_hash", String(64), nullable=False),
    Column("agent_id", String(64)),
    Column("counts", _json(), nullable=False),
    Column("forgotten_at", UTCDateTime(), nullable=False),
)

# Idempotency keys of writes (store/idempotency.py, migration 0013): one row per keyed write,
# written in the write's own transaction. An append's key is scoped by its session (the
# primary key starts with session_id, as every key of a session's rows); a create's by its
# agent (``uq_idempotency_keys_create``). A key lives as long as what it made: its rows go
# with its session (as every table keyed by session), and deleting a message or clearing
# the session deletes their keys; the maintenance loop deletes keys older than the TTL by
# ``ix_idempotency_keys_created_at``.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("session_id", String(128), nullable=False),
    Column("kind", String(8), nullable=False),  # 'append' | 'create'
    Column("idem_key", String(255), nullable=False),
    Column("agent_id", String(64)),  # creates: the scope
    Column("fingerprint", String(64), nullable=False),
    Column("first_seq", Integer),  # appends: the first seq the write got
    Column("seq_count", Integer, nullable=False, server_default="0"),
    Column("created_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("session_id", "kind", "idem_key", name="pk_idempotency_keys"),
    Index(
        "uq_idempotency_keys_create",
        "agent_id",
        "idem_key",
        unique=True,
        postgresql_where=text("kind = 'create'"),
        sqlite_where=text("kind = 'create'"),
    ),
    Index("ix_idempotency_keys_created_at", "created_at"),
    _session_fk(),
)

# API keys for the REST service. Only a SHA-256 of the secret is stored: keys are 256-bit
# random strings, so a slow password hash buys nothing, and a fast one keeps auth cheap.
api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("name", String(200)),
    Column("secret_hash", String(64), nullable=False),
    Column("admin", Boolean, nullable=False, server_default=text("false")),
    Column("agent_ids", _json()),
    Column("user_ids", _json()),  # NULL: every user of its agents
    Column("created_at", UTCDateTime(), nullable=False),
    Column("revoked_at", UTCDateTime()),
    Column("last_used_at", UTCDateTime()),
)


# LangGraph checkpoints (integrations/langgraph.py; store/checkpoints.py explains the shape).
# A thread is a session: every key starts with session_id and the rows go with the session.
# Metadata is plain JSON on PostgreSQL (json, not jsonb), so its text comes back as written.


def _session_id() -> Column[str]:
    return Column("session_id", String(128), nullable=False)


def _ns() -> Column[str]:
    return Column("checkpoint_ns", Text, nullable=False, server_default="")


lg_checkpoints = Table(
    "lg_checkpoints",
    metadata,
    _session_id(),
    _ns(),
    Column("checkpoint_id", Text, nullable=False),
    Column("parent_checkpoint_id", Text),
    Column("run_id", Text),
    Column("type", Text, nullable=False),
    Column("checkpoint", LargeBinary, nullable=False),
    Column("metadata", JSON, nullable=False),
    Column("channels", JSON, nullable=False),
    PrimaryKeyConstraint("session_id", "checkpoint_ns", "checkpoint_id", name="pk_lg_checkpoints"),
    _session_fk(),
    Index(
        "ix_lg_checkpoints_run_id",
        "run_id",
        postgresql_where=text("run_id IS NOT NULL"),
        sqlite_where=text("run_id IS NOT NULL"),
    ),
)

lg_channel_values = Table(
    "lg_channel_values",
    metadata,
    _session_id(),
    _ns(),
    Column("channel", Text, nullable=False),
    Column("version", Text, nullable=False),
    Column("type", Text, nullable=False),
    Column("value", LargeBinary),
    Column("items", JSON),
    PrimaryKeyConstraint(
        "session_id", "checkpoint_ns", "channel", "version", name="pk_lg_channel_values"
    ),
    _session_fk(),
)

lg_channel_items = Table(
    "lg_channel_items",
    metadata,
    _session_id(),
    _ns(),
    Column("channel", Text, nullable=False),
    Column("item_no", Integer, nullable=False),
    Column("digest", LargeBinary, nullable=False),
    Column("key", Text),
    Column("type", Text, nullable=False),
    Column("value", LargeBinary, nullable=False),
    PrimaryKeyConstraint(
        "session_id", "checkpoint_ns", "channel", "item_no", name="pk_lg_channel_items"
    ),
    _session_fk(),
)

lg_writes = Table(
    "lg_writes",
    metadata,
    _session_id(),
    _ns(),
    Column("checkpoint_id", Text, nullable=False),
    Column("task_id", Text, nullable=False),
    Column("idx", Integer, nullable=False),
    Column("channel", Text, nullable=False),
    Column("type", Text, nullable=False),
    Column("value", LargeBinary, nullable=False),
    Column("task_path", Text, nullable=False, server_default=""),
    PrimaryKeyConstraint(
        "session_id", "checkpoint_ns", "checkpoint_id", "task_id", "idx", name="pk_lg_writes"
    ),
    _session_fk(),
)


# Google ADK (migration 0005): an ADK session's key and state; app and user state.
adk_sessions = Table(
    "adk_sessions",
    metadata,
    _session_id(),
    Column("app_name", Text, nullable=False),
    Column("user_id", Text, nullable=False),
    Column("adk_id", Text, nullable=False),
    Column("state", JSON),
    Column("update_time", Float(53), nullable=False),
    PrimaryKeyConstraint("session_id", name="pk_adk_sessions"),
    _session_fk(),
    UniqueConstraint("app_name", "user_id", "adk_id", name="uq_adk_sessions_key"),
    Index("ix_adk_sessions_user_time", "app_name", "user_id", "update_time", "adk_id"),
    Index("ix_adk_sessions_app_time", "app_name", "update_time", "user_id", "adk_id"),
)

adk_app_state = Table(
    "adk_app_state",
    metadata,
    Column("app_name", Text, nullable=False),
    Column("state", JSON, nullable=False),
    Column("update_time", Float(53), nullable=False),
    PrimaryKeyConstraint("app_name", name="pk_adk_app_state"),
)

adk_user_state = Table(
    "adk_user_state",
    metadata,
    Column("app_name", Text, nullable=False),
    Column("user_id", Text, nullable=False),
    Column("state", JSON, nullable=False),
    Column("update_time", Float(53), nullable=False),
    PrimaryKeyConstraint("app_name", "user_id", name="pk_adk_user_state"),
)

"""Initial schema: sessions, messages, and full-text search per dialect.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB


# Frozen copies of the column types as they were when this revision was written: a migration
# must never change because the live schema module did.
def UTCDateTime() -> sa.DateTime:  # noqa: N802 - reads like the type it stands for
    return sa.DateTime(timezone=True)


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_SQLITE_FTS = [
    # External-content FTS5 over messages.content, keyed by the messages rowid, kept in sync
    # by triggers (FK cascades fire them too). porter = English stemming, as on PostgreSQL.
    """CREATE VIRTUAL TABLE messages_fts USING fts5(
           content, content='messages', content_rowid='rowid',
           tokenize='porter unicode61 remove_diacritics 2')""",
    """CREATE TRIGGER messages_fts_ai AFTER INSERT ON messages BEGIN
           INSERT INTO messages_fts(rowid, content) VALUES (new.rowid, new.content);
       END""",
    """CREATE TRIGGER messages_fts_ad AFTER DELETE ON messages BEGIN
           INSERT INTO messages_fts(messages_fts, rowid, content)
           VALUES ('delete', old.rowid, old.content);
       END""",
    """CREATE TRIGGER messages_fts_au AFTER UPDATE OF content ON messages BEGIN
           INSERT INTO messages_fts(messages_fts, rowid, content)
           VALUES ('delete', old.rowid, old.content);
           INSERT INTO messages_fts(rowid, content) VALUES (new.rowid, new.content);
       END""",
]

_PG_FTS = [
    """ALTER TABLE messages ADD COLUMN tsv tsvector
           GENERATED ALWAYS AS (to_tsvector('english', content)) STORED""",
    "CREATE INDEX ix_messages_tsv ON messages USING gin (tsv)",
]


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("session_id", sa.String(128), primary_key=True),
        sa.Column("agent_id", sa.String(64), nullable=False, server_default="main"),
        sa.Column("title", sa.String(200)),
        sa.Column("session_type", sa.String(64), nullable=False, server_default="chat"),
        sa.Column("status", sa.String(16), nullable=False, server_default="active"),
        sa.Column("metadata", _json()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime()),
        sa.Column("last_message_at", UTCDateTime()),
        sa.Column("message_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("token_count", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("last_seq", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("ix_sessions_agent_updated", "sessions", ["agent_id", "updated_at"])
    op.create_index("ix_sessions_updated", "sessions", ["updated_at"])
    op.create_index(
        "ix_sessions_ghosts",
        "sessions",
        ["created_at"],
        postgresql_where=sa.text("message_count = 0"),
        sqlite_where=sa.text("message_count = 0"),
    )
    op.create_table(
        "messages",
        sa.Column(
            "session_id",
            sa.String(128),
            sa.ForeignKey("sessions.session_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("agent_id", sa.String(64)),
        sa.Column("model", sa.String(128)),
        sa.Column("token_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("metadata", _json()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("session_id", "seq", name="pk_messages"),
    )
    statements = _PG_FTS if op.get_bind().dialect.name == "postgresql" else _SQLITE_FTS
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS messages_fts")
    op.drop_table("messages")
    op.drop_table("sessions")

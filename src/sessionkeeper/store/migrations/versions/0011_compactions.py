"""Compaction: a summary that stands in for a session's older messages in its context window.

``compactions``: one row per compaction of a session, keyed by ``(session_id, through_seq)``
(the last message it stands for), so every key starts with session_id. The newest row (the
highest ``through_seq``) is the one in force; each summarises everything after the pinned
system prompt up to its cut, its predecessor's summary included. The messages it stands for
stay in ``messages`` (export, search, ``get_messages(include_compacted=True)``). The rows go
with their session (SQLite: the foreign key; PostgreSQL: the backend deletes them, as since
migration 0007).

Revision ID: 0011
Revises: 0009
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    foreign = (
        [sa.ForeignKeyConstraint(["session_id"], ["sessions.session_id"], ondelete="CASCADE")]
        if sqlite
        else []
    )
    op.create_table(
        "compactions",
        sa.Column("session_id", sa.String(128), nullable=False),
        sa.Column("through_seq", sa.Integer, nullable=False),
        sa.Column("from_seq", sa.Integer, nullable=False),
        sa.Column("message_count", sa.Integer, nullable=False),
        sa.Column("compacted_tokens", sa.BigInteger, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("token_count", sa.Integer, nullable=False),
        sa.Column("model", sa.String(128)),
        sa.Column("metadata", _json()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("session_id", "through_seq", name="pk_compactions"),
        *foreign,
    )


def downgrade() -> None:
    op.drop_table("compactions")

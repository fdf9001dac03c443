"""Idempotency keys of writes (issue 18): ``idempotency_keys``.

One row per keyed write (``store/idempotency.py``), written in the same transaction as the
write: the scope (an append's session; a create's agent, ``uq_idempotency_keys_create``),
the key, a SHA-256 fingerprint of the request and what the write got (the first seq and
how many messages; a create's session id). ``ix_idempotency_keys_created_at`` serves the
maintenance loop's deletion of keys past their TTL. A key's rows go with its session, as
every table keyed by session: by a foreign key on SQLite, by the backend's hand on
PostgreSQL (no foreign key references ``sessions`` there: migration 0007).

Revision ID: 0013
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    session_fk = (
        [sa.ForeignKeyConstraint(["session_id"], ["sessions.session_id"], ondelete="CASCADE")]
        if op.get_bind().dialect.name == "sqlite"
        else []
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("session_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("idem_key", sa.String(255), nullable=False),
        sa.Column("agent_id", sa.String(64)),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("first_seq", sa.Integer),
        sa.Column("seq_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("session_id", "kind", "idem_key", name="pk_idempotency_keys"),
        *session_fk,
    )
    op.create_index(
        "uq_idempotency_keys_create",
        "idempotency_keys",
        ["agent_id", "idem_key"],
        unique=True,
        postgresql_where=sa.text("kind = 'create'"),
        sqlite_where=sa.text("kind = 'create'"),
    )
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])


def downgrade() -> None:
    op.drop_table("idempotency_keys")

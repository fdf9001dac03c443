"""Lineage: a session may be a fork of another (``Store.fork_session``, ``rewind_session``).

- ``sessions.parent_session_id``: the session it was forked from (NULL: none). Not a foreign
  key: a fork is a whole conversation of its own (its messages were copied), so it outlives
  its parent, and the id stays as a record of where it came from.
- ``sessions.fork_seq``: the parent's seq up to which both histories are the same.
- ``ix_sessions_parent``: a session's children (``GET /sessions/{id}/branches``), partial
  on both databases so that sessions without a parent cost nothing.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sessions", sa.Column("parent_session_id", sa.String(128)))
    op.add_column("sessions", sa.Column("fork_seq", sa.Integer))
    op.create_index(
        "ix_sessions_parent",
        "sessions",
        ["parent_session_id", "created_at"],
        postgresql_where=sa.text("parent_session_id IS NOT NULL"),
        sqlite_where=sa.text("parent_session_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_sessions_parent", table_name="sessions")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("fork_seq")
        batch.drop_column("parent_session_id")

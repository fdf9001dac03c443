"""Governance: a user on each session, metadata filters, retention policies, forgetting.

- ``sessions.user_id``: who the session is for (optional; a label, as ``agent_id``), with
  ``ix_sessions_agent_user_updated`` for listing one user's sessions of an agent by recency.
  ADK sessions get their ADK user from ``adk_sessions``.
- PostgreSQL: ``ix_sessions_metadata``, a GIN index (``jsonb_path_ops``) for metadata
  filters (``metadata @> …``). SQLite filters within the agent's sessions, unindexed.
- ``api_keys.user_ids``: a key scoped to some users of its agents (NULL: every user).
- ``retention_policies``: per agent (``*``: the default), end a session idle this long,
  delete ended sessions / any session older than this.
- ``forgotten_users``: one row per ``forget_user``: a hash of the user id, the counts and the
  time, never content.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def _time() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("sessions", sa.Column("user_id", sa.Text))
    op.create_index(
        "ix_sessions_agent_user_updated", "sessions", ["agent_id", "user_id", "updated_at"]
    )
    op.execute(
        "UPDATE sessions SET user_id = (SELECT a.user_id FROM adk_sessions a "
        "WHERE a.session_id = sessions.session_id) "
        "WHERE EXISTS (SELECT 1 FROM adk_sessions a WHERE a.session_id = sessions.session_id)"
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE INDEX ix_sessions_metadata ON sessions USING gin (metadata jsonb_path_ops)"
        )
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("user_ids", _json()))
    op.create_table(
        "retention_policies",
        sa.Column("agent_id", sa.String(64), primary_key=True),
        sa.Column("end_idle_minutes", sa.Integer),
        sa.Column("delete_ended_days", sa.Integer),
        sa.Column("delete_after_days", sa.Integer),
        sa.Column("updated_at", _time(), nullable=False),
    )
    op.create_table(
        "forgotten_users",
        sa.Column("forget_id", sa.String(32), primary_key=True),
        sa.Column("user_hash", sa.String(64), nullable=False),
        sa.Column("agent_id", sa.String(64)),
        sa.Column("counts", _json(), nullable=False),
        sa.Column("forgotten_at", _time(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("forgotten_users")
    op.drop_table("retention_policies")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("user_ids")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_sessions_metadata")
    op.drop_index("ix_sessions_agent_user_updated", table_name="sessions")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("user_id")

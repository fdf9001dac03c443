"""Google ADK sessions: which store session an ADK session is, and its three scopes of state.

ADK names a session by (app name, user id, session id): two users may each have a session
``s1``. A store session id is global, so ``adk_sessions`` maps the ADK triple to the store
session that holds its events (as messages) and goes with it (ON DELETE CASCADE).

- ``adk_sessions``: one row per ADK session: its ADK key (unique), its session-scoped
  state (NULL when empty: an ADK session with no events and no state is a ghost) and ADK's
  ``last_update_time`` (seconds, as ADK keeps it).
- ``adk_app_state`` / ``adk_user_state``: state under the ``app:`` and ``user:`` prefixes,
  shared by every session of the app / of the user in the app (stored without the prefix).

State is ``json`` on PostgreSQL, not jsonb: its text comes back exactly as written.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "adk_sessions",
        sa.Column(
            "session_id",
            sa.String(128),
            sa.ForeignKey("sessions.session_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("app_name", sa.Text, nullable=False),
        sa.Column("user_id", sa.Text, nullable=False),
        sa.Column("adk_id", sa.Text, nullable=False),
        sa.Column("state", sa.JSON),
        sa.Column("update_time", sa.Float(53), nullable=False),
        sa.PrimaryKeyConstraint("session_id", name="pk_adk_sessions"),
        sa.UniqueConstraint("app_name", "user_id", "adk_id", name="uq_adk_sessions_key"),
    )
    # Listings: one user's sessions, or every user's, in update order (no sort step).
    op.create_index(
        "ix_adk_sessions_user_time",
        "adk_sessions",
        ["app_name", "user_id", "update_time", "adk_id"],
    )
    op.create_index(
        "ix_adk_sessions_app_time",
        "adk_sessions",
        ["app_name", "update_time", "user_id", "adk_id"],
    )
    op.create_table(
        "adk_app_state",
        sa.Column("app_name", sa.Text, nullable=False),
        sa.Column("state", sa.JSON, nullable=False),
        sa.Column("update_time", sa.Float(53), nullable=False),
        sa.PrimaryKeyConstraint("app_name", name="pk_adk_app_state"),
    )
    op.create_table(
        "adk_user_state",
        sa.Column("app_name", sa.Text, nullable=False),
        sa.Column("user_id", sa.Text, nullable=False),
        sa.Column("state", sa.JSON, nullable=False),
        sa.Column("update_time", sa.Float(53), nullable=False),
        sa.PrimaryKeyConstraint("app_name", "user_id", name="pk_adk_user_state"),
    )


def downgrade() -> None:
    op.drop_table("adk_user_state")
    op.drop_table("adk_app_state")
    op.drop_index("ix_adk_sessions_app_time", table_name="adk_sessions")
    op.drop_index("ix_adk_sessions_user_time", table_name="adk_sessions")
    op.drop_table("adk_sessions")

"""LangGraph checkpoints: checkpoints, channel values, list items and pending writes.

Every table is keyed by the session first (a LangGraph thread is a store session) and goes
with it: deleting, pruning or purging the session deletes its checkpoints (ON DELETE CASCADE).

- ``lg_checkpoints``: one row per checkpoint, the serialised checkpoint without its large
  channel values, its metadata as JSON (filterable; ``run_id`` also as a column, indexed for
  ``delete_for_runs``) and ``channels``: the channel → version map of the values kept apart.
- ``lg_channel_values``: a channel's value, once per version (not once per checkpoint).
- ``lg_channel_items``: the elements of list values (e.g. ``messages``), each stored once per
  thread; a list version in ``lg_channel_values`` is then ranges of item numbers, so a list
  that grows by one message per step costs one item per step, not the whole list again.
- ``lg_writes``: pending writes, per checkpoint and task.

Metadata is ``json`` on PostgreSQL, not jsonb: its text comes back exactly as written
(jsonb would turn ``1e+16`` into an integer). Filters cast it to jsonb.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _session() -> sa.Column[str]:
    return sa.Column(
        "session_id",
        sa.String(128),
        sa.ForeignKey("sessions.session_id", ondelete="CASCADE"),
        nullable=False,
    )


def _ns() -> sa.Column[str]:
    return sa.Column("checkpoint_ns", sa.Text, nullable=False, server_default="")


def upgrade() -> None:
    op.create_table(
        "lg_checkpoints",
        _session(),
        _ns(),
        sa.Column("checkpoint_id", sa.Text, nullable=False),
        sa.Column("parent_checkpoint_id", sa.Text),
        sa.Column("run_id", sa.Text),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("checkpoint", sa.LargeBinary, nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("channels", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint(
            "session_id", "checkpoint_ns", "checkpoint_id", name="pk_lg_checkpoints"
        ),
    )
    op.create_index(
        "ix_lg_checkpoints_run_id",
        "lg_checkpoints",
        ["run_id"],
        postgresql_where=sa.text("run_id IS NOT NULL"),
        sqlite_where=sa.text("run_id IS NOT NULL"),
    )
    op.create_table(
        "lg_channel_values",
        _session(),
        _ns(),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("version", sa.Text, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("value", sa.LargeBinary),
        sa.Column("items", sa.JSON),
        sa.PrimaryKeyConstraint(
            "session_id", "checkpoint_ns", "channel", "version", name="pk_lg_channel_values"
        ),
    )
    op.create_table(
        "lg_channel_items",
        _session(),
        _ns(),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("item_no", sa.Integer, nullable=False),
        sa.Column("digest", sa.LargeBinary, nullable=False),
        sa.Column("key", sa.Text),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("value", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint(
            "session_id", "checkpoint_ns", "channel", "item_no", name="pk_lg_channel_items"
        ),
    )
    op.create_table(
        "lg_writes",
        _session(),
        _ns(),
        sa.Column("checkpoint_id", sa.Text, nullable=False),
        sa.Column("task_id", sa.Text, nullable=False),
        sa.Column("idx", sa.Integer, nullable=False),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("value", sa.LargeBinary, nullable=False),
        sa.Column("task_path", sa.Text, nullable=False, server_default=""),
        sa.PrimaryKeyConstraint(
            "session_id", "checkpoint_ns", "checkpoint_id", "task_id", "idx", name="pk_lg_writes"
        ),
    )


def downgrade() -> None:
    op.drop_table("lg_writes")
    op.drop_table("lg_channel_items")
    op.drop_table("lg_channel_values")
    op.drop_index("ix_lg_checkpoints_run_id", table_name="lg_checkpoints")
    op.drop_table("lg_checkpoints")

"""Usage on messages: what producing a message cost (issue 19).

Six nullable columns on ``messages`` (``input_tokens``, ``output_tokens``, ``cached_tokens``,
``reasoning_tokens``, ``requests``, ``usage_model``; ``requests`` is NULL exactly when the
message carries no usage), and ``ix_messages_usage``: a partial index over the messages that
carry usage, keyed by session and holding every summed column, so a session's (or an
agent's) totals by model read that index alone.

Columns, not JSON: summing 5,000 usage rows of a 10,000-message session took 7-14 ms from
JSON (``json_extract`` / ``->>``) and 1 ms from these columns with the covering index, on
both databases (bench/usage.py). NULL columns cost nothing in rows without usage.

Revision ID: 0012
Revises: 0009 (re-chained by the integrator)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_COLUMNS = ("input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens", "requests")


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        for name in _COLUMNS:
            batch.add_column(sa.Column(name, sa.Integer))
        batch.add_column(sa.Column("usage_model", sa.String(128)))
    where = sa.text("requests IS NOT NULL")
    op.create_index(
        "ix_messages_usage",
        "messages",
        ["session_id", "usage_model", *_COLUMNS],
        postgresql_where=where,
        sqlite_where=where,
    )


def downgrade() -> None:
    op.drop_index("ix_messages_usage", table_name="messages")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("usage_model")
        for name in reversed(_COLUMNS):
            batch.drop_column(name)

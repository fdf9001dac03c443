"""Framework storage owns its rows: a session says which parts hold state for it.

- ``sessions.held_by``: one bit per storage part that holds state for the session (1: graph
  checkpoints, 2: ADK session state), set by the part in the same transaction as its write
  and cleared when it lets go. The ghost rule reads the row alone (``message_count = 0 AND
  held_by = 0``), so a purge re-checks a ghost under its row lock without probing other
  tables, and the partial index ``ix_sessions_ghosts`` holds exactly the candidates.
- PostgreSQL: no foreign key references ``sessions`` any more. Each one fired a cascade per
  deleted row, ghosts included (a ghost has no rows anywhere by definition): six of them made
  a purge of 100,000 ghosts ~30x a plain DELETE of the same rows. The backend deletes a
  session's rows in every table itself, after the session row (whose lock every writer
  takes first, so nothing is added to a session being deleted).
- SQLite keeps its foreign keys (dropping one means copying the table, and the FTS5 index is
  keyed by the messages' rowids); its purge already runs with them switched off.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# Frozen here: the tables of each part as they were at this revision.
_CHECKPOINT_TABLES = ("lg_checkpoints", "lg_channel_values", "lg_channel_items", "lg_writes")
_REFERENCING = ("messages", *_CHECKPOINT_TABLES, "adk_sessions")


def upgrade() -> None:
    op.add_column(
        "sessions", sa.Column("held_by", sa.SmallInteger, nullable=False, server_default="0")
    )
    held = " OR ".join(
        f"EXISTS (SELECT 1 FROM {t} x WHERE x.session_id = sessions.session_id)"
        for t in _CHECKPOINT_TABLES
    )
    op.execute(f"UPDATE sessions SET held_by = held_by | 1 WHERE {held}")
    op.execute(
        "UPDATE sessions SET held_by = held_by | 2 WHERE EXISTS (SELECT 1 FROM adk_sessions x "
        "WHERE x.session_id = sessions.session_id AND x.state IS NOT NULL)"
    )
    op.drop_index("ix_sessions_ghosts", table_name="sessions")
    where = sa.text("message_count = 0 AND held_by = 0")
    op.create_index(
        "ix_sessions_ghosts",
        "sessions",
        ["created_at"],
        postgresql_where=where,
        sqlite_where=where,
    )
    if op.get_bind().dialect.name == "postgresql":
        for table in _REFERENCING:
            for name in _foreign_keys(table):
                op.drop_constraint(name, table, type_="foreignkey")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in _REFERENCING:
            op.execute(
                f"DELETE FROM {table} t WHERE NOT EXISTS "
                "(SELECT 1 FROM sessions s WHERE s.session_id = t.session_id)"
            )
            op.create_foreign_key(
                f"{table}_session_id_fkey",
                table,
                "sessions",
                ["session_id"],
                ["session_id"],
                ondelete="CASCADE",
            )
    op.drop_index("ix_sessions_ghosts", table_name="sessions")
    where = sa.text("message_count = 0")
    op.create_index(
        "ix_sessions_ghosts", "sessions", ["created_at"], postgresql_where=where, sqlite_where=where
    )
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("held_by")


def _foreign_keys(table: str) -> list[str]:
    found = sa.inspect(op.get_bind()).get_foreign_keys(table)
    return [fk["name"] for fk in found if fk["referred_table"] == "sessions" and fk["name"]]

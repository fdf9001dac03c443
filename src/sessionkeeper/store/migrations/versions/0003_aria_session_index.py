"""Index sessions by metadata.aria_session_id (the filesystem id of imported OpenClaw sessions).

The two-layer delete ends the database session whose metadata names the deleted
filesystem session; without this index that lookup scans every session.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_EXPRESSION = {
    "postgresql": "(metadata ->> 'aria_session_id')",
    "sqlite": "json_extract(metadata, '$.aria_session_id')",
}


def upgrade() -> None:
    expr = _EXPRESSION[op.get_bind().dialect.name]
    op.execute(
        f"CREATE INDEX ix_sessions_aria_session_id ON sessions (({expr})) "
        f"WHERE ({expr}) IS NOT NULL"
    )


def downgrade() -> None:
    op.execute("DROP INDEX ix_sessions_aria_session_id")

"""Alembic environment: always driven from sessionkeeper.store.migrate with a live connection."""

from __future__ import annotations

from alembic import context

from sessionkeeper.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - alembic CLI without our runner
    raise RuntimeError("run migrations with `sessionkeeper db upgrade`, not the alembic CLI")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()

"""One backend per database (see ``base.py`` for the contract every backend keeps)."""

from __future__ import annotations

from sessionkeeper.store.backends.base import Backend
from sessionkeeper.store.url import DatabaseConfig


async def open_backend(cfg: DatabaseConfig) -> Backend:
    """The backend for ``cfg``'s database, connected (its driver imported only now)."""
    if cfg.dialect == "postgresql":
        from sessionkeeper.store.backends.postgres import PostgresBackend

        return await PostgresBackend.open(cfg)
    from sessionkeeper.store.backends.sqlite import SqliteBackend

    return await SqliteBackend.open(cfg)

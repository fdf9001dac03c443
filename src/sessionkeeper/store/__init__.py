"""The session store: schema, migrations and the async Store over SQLAlchemy."""

from sessionkeeper.store.sql import Store

__all__ = ["Store"]

"""The session store: schema, migrations and the async Store over SQLAlchemy.

``Store`` is imported lazily so that the pure helpers of this package (validate, cursor,
quick) can be used without paying for SQLAlchemy's import (the CLI's fast paths).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sessionkeeper.store.sql import Store

__all__ = ["Store"]


def __getattr__(name: str) -> Any:
    if name == "Store":
        from sessionkeeper.store.sql import Store

        return Store
    raise AttributeError(name)

"""The session store: the Store (``core.py``), its backends, schema and migrations.

``Store`` is imported lazily so the pure helpers of this package (validate, cursor, url)
cost nothing to import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sessionkeeper.store.core import Store

__all__ = ["Store"]


def __getattr__(name: str) -> Any:
    if name == "Store":
        from sessionkeeper.store.core import Store

        return Store
    raise AttributeError(name)

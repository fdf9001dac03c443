"""sessionkeeper: a conversation-session store for LLM agents.

    store = await sessionkeeper.open_store("sqlite:///chat.db")
    session = await store.create_session(agent_id="aria-talk")
    await store.add_message(session.session_id, "user", "Hello!")
    window = await store.context_window(session.session_id, max_tokens=4000)

SQLite by default (one file, one machine), PostgreSQL for many processes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sessionkeeper.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    SchemaMismatch,
    SessionkeeperError,
    TooLarge,
    Unauthorized,
    Unavailable,
)
from sessionkeeper.models import (
    MAX_MESSAGE_LENGTH,
    MAX_PAGE_SIZE,
    MAX_TITLE_LENGTH,
    ForgetReceipt,
    Message,
    NewMessage,
    Page,
    PruneResult,
    SearchHit,
    Session,
    Stats,
    Window,
)

if TYPE_CHECKING:
    from sessionkeeper.store.core import Store
    from sessionkeeper.sync import SyncStore

__version__ = "0.1.0"

__all__ = [
    "MAX_MESSAGE_LENGTH",
    "MAX_PAGE_SIZE",
    "MAX_TITLE_LENGTH",
    "Conflict",
    "Forbidden",
    "ForgetReceipt",
    "InvalidInput",
    "Message",
    "NewMessage",
    "NotFound",
    "Page",
    "PruneResult",
    "SchemaMismatch",
    "SearchHit",
    "Session",
    "SessionkeeperError",
    "Stats",
    "Store",
    "SyncStore",
    "TooLarge",
    "Unauthorized",
    "Unavailable",
    "Window",
    "open_store",
]


async def open_store(url: str | None = None, **kwargs: Any) -> Store:
    """Open the store at ``url`` (default: SQLite in the user data dir), migrating an empty one."""
    from sessionkeeper.store.core import Store

    return await Store.open(url, **kwargs)


def __getattr__(name: str) -> Any:
    # Store and SyncStore pull in SQLAlchemy; import them only when asked for.
    if name == "Store":
        from sessionkeeper.store.core import Store

        return Store
    if name == "SyncStore":
        from sessionkeeper.sync import SyncStore

        return SyncStore
    raise AttributeError(name)

"""sessionkeeper: a conversation-session store for LLM agents.

    store = await sessionkeeper.open_store("sqlite:///chat.db")
    session = await store.create_session(agent_id="aria-talk")
    await store.add_message(session.session_id, "user", "Hello!")
    window = await store.context_window(session.session_id, max_tokens=4000)

SQLite by default (one file, one machine), PostgreSQL for many processes.

Every public name is imported when first used (PEP 562): importing the package costs nothing,
so the ``sessionkeeper`` command's entry point, which runs inside it, is in charge from the
first moment (a Ctrl-C during start-up ends in one line, not a traceback).
"""

from __future__ import annotations

import importlib

# Not ``typing.TYPE_CHECKING``: importing typing alone takes ~30 ms of start-up (mypy knows
# the name).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

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
        Compaction,
        DatabaseRole,
        ForgetReceipt,
        Message,
        NewMessage,
        Page,
        Policy,
        PolicyRun,
        PruneResult,
        Rewind,
        SearchHit,
        Session,
        Stats,
        Usage,
        UsageTotals,
        Window,
    )
    from sessionkeeper.store.core import Store
    from sessionkeeper.sync import SyncStore

__version__ = "0.1.0"

__all__ = [
    "MAX_MESSAGE_LENGTH",
    "MAX_PAGE_SIZE",
    "MAX_TITLE_LENGTH",
    "Compaction",
    "Conflict",
    "Forbidden",
    "DatabaseRole",
    "ForgetReceipt",
    "InvalidInput",
    "Message",
    "NewMessage",
    "NotFound",
    "Page",
    "Policy",
    "PolicyRun",
    "PruneResult",
    "Rewind",
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
    "Usage",
    "UsageTotals",
    "Window",
    "open_store",
]

# Where each public name lives. Store and SyncStore pull in the database drivers.
_HOMES = {
    **dict.fromkeys(
        (
            "Conflict",
            "Forbidden",
            "InvalidInput",
            "NotFound",
            "SchemaMismatch",
            "SessionkeeperError",
            "TooLarge",
            "Unauthorized",
            "Unavailable",
        ),
        "sessionkeeper.errors",
    ),
    **dict.fromkeys(
        (
            "MAX_MESSAGE_LENGTH",
            "MAX_PAGE_SIZE",
            "MAX_TITLE_LENGTH",
            "DatabaseRole",
            "Compaction",
            "ForgetReceipt",
            "Message",
            "NewMessage",
            "Page",
            "Policy",
            "PolicyRun",
            "PruneResult",
            "Rewind",
            "SearchHit",
            "Session",
            "Stats",
            "Usage",
            "UsageTotals",
            "Window",
        ),
        "sessionkeeper.models",
    ),
    "Store": "sessionkeeper.store.core",
    "SyncStore": "sessionkeeper.sync",
}


async def open_store(url: str | None = None, **kwargs: Any) -> Store:
    """Open the store at ``url`` (default: SQLite in the user data dir), migrating an empty one."""
    from sessionkeeper.store.core import Store

    return await Store.open(url, **kwargs)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # once found, an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

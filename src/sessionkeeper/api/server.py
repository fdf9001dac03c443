"""``serve(settings)``: run the API with uvicorn (the CLI's ``sessionkeeper serve`` calls it).

Before uvicorn starts, ``check_startup`` opens the database once and applies the API-key rule
(``api/auth.py``): with no active key the server may only listen on a loopback address, so
``serve`` on 0.0.0.0 without keys stops here with the command that creates one, instead of
failing inside uvicorn's lifespan with a traceback. The app's lifespan repeats the check (an
app served some other way is held to the same rule) and logs the open-mode warning.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from sessionkeeper.api.app import create_app
from sessionkeeper.api.auth import check_open
from sessionkeeper.config import Settings
from sessionkeeper.store.core import Store
from sessionkeeper.store.url import masked


def public_url(settings: Settings) -> str:
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return f"http://{host}:{settings.port}"


async def check_startup(settings: Settings) -> bool:
    """True to run open (no keys, loopback); raises Forbidden when the server must not start,
    and Unavailable / SchemaMismatch when the database cannot be used."""
    store = await Store.open(settings.database_url, encoding=settings.encoding)
    try:
        has_keys = await store.keys.any_active()
    finally:
        await store.close()
    return check_open(settings.host, has_keys)


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging, plus our own loggers on its console handler (the open-mode warning,
    maintenance reports), which would otherwise go nowhere."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["sessionkeeper"] = {
        "handlers": ["default"],
        "level": level.upper(),
        "propagate": False,
    }
    return config


def serve(settings: Settings) -> None:
    """Serve until interrupted (SIGINT/SIGTERM shut down gracefully, stopping maintenance)."""
    import uvicorn

    asyncio.run(check_startup(settings))
    app = create_app(settings)
    print(
        f"sessionkeeper serving {public_url(settings)} "
        f"(database: {masked(settings.database_url)})",
        flush=True,
    )
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        log_config=log_config(settings.log_level),
        lifespan="on",
    )

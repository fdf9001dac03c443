"""``serve(settings)``: run the API with uvicorn (the CLI's ``sessionkeeper serve`` calls it),
announcing the URL only once it is listening.

Before uvicorn starts, ``check_startup`` opens the database once and applies the API-key rule
(``api/auth.py``): with no active key the server may only listen on a loopback address, so
``serve`` on 0.0.0.0 without keys stops here with the command that creates one, instead of
failing inside uvicorn's lifespan with a traceback. The app's lifespan repeats the check (an
app served some other way is held to the same rule) and logs the open-mode warning.
"""

from __future__ import annotations

import asyncio
import copy
import socket
from typing import Any

import uvicorn

from sessionkeeper.api.app import create_app
from sessionkeeper.api.auth import check_open
from sessionkeeper.api.http11 import RefusingH11Protocol
from sessionkeeper.api.limits import MAX_HEAD_SIZE
from sessionkeeper.config import Settings
from sessionkeeper.errors import Unavailable
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


class AnnouncingServer(uvicorn.Server):
    """A uvicorn server that prints one line once its sockets are listening."""

    def __init__(self, config: uvicorn.Config, announcement: str) -> None:
        super().__init__(config)
        self.announcement = announcement

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            print(self.announcement, flush=True)


def serve(settings: Settings) -> None:
    """Serve until interrupted (SIGINT/SIGTERM shut down gracefully, stopping maintenance).
    The "serving" line is printed once the socket listens: a busy port never announces a URL
    that does not answer (it raises Unavailable, after uvicorn has logged why)."""
    asyncio.run(check_startup(settings))
    app = create_app(settings)
    url = public_url(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        log_config=log_config(settings.log_level),
        lifespan="on",
        # h11 with oversized request heads answered 414/431 (api/http11.py), even where
        # httptools is installed.
        http=RefusingH11Protocol,
        h11_max_incomplete_event_size=MAX_HEAD_SIZE,
    )
    server = AnnouncingServer(
        config, f"sessionkeeper serving {url} (database: {masked(settings.database_url)})"
    )
    try:
        server.run()
    except SystemExit as exc:  # uvicorn exits when it cannot bind (it logged why, above)
        if server.started:
            raise
        raise Unavailable(f"could not start serving on {url} (see the reason above)") from exc

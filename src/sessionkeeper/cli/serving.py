"""``sessionkeeper serve``: uvicorn, announcing the URL only once it is listening.

The API's own pieces are reused (``api/server.py``: the startup check, the app factory, the
logging config); what differs from ``server.serve`` is the moment of the "serving" line: it is
printed from uvicorn's startup, after the socket is bound, so a busy port never prints a URL
that does not answer. Imported only by the ``serve`` command (uvicorn and FastAPI are heavy).
"""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING

import uvicorn

from sessionkeeper.errors import Unavailable

if TYPE_CHECKING:
    from sessionkeeper.config import Settings


class AnnouncingServer(uvicorn.Server):
    """A uvicorn server that prints one line once its sockets are listening."""

    def __init__(self, config: uvicorn.Config, announcement: str) -> None:
        super().__init__(config)
        self.announcement = announcement

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            print(self.announcement, flush=True)


def run_server(settings: Settings) -> None:
    """Serve until interrupted (SIGINT/SIGTERM shut down gracefully, stopping maintenance)."""
    from sessionkeeper.api import server as api_server
    from sessionkeeper.api.app import create_app
    from sessionkeeper.store.url import masked

    asyncio.run(api_server.check_startup(settings))
    app = create_app(settings)
    url = api_server.public_url(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        log_config=api_server.log_config(settings.log_level),
        lifespan="on",
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

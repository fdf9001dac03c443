"""``sessionkeeper serve``: the API's ``serve`` (``api/server.py``), imported only by this
command (uvicorn and FastAPI are heavy to import).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import uvicorn

from sessionkeeper.api.server import AnnouncingServer, serve

if TYPE_CHECKING:
    from sessionkeeper.config import Settings

__all__ = ["AnnouncingServer", "run_server", "uvicorn"]


def run_server(settings: Settings) -> None:
    """Serve until interrupted (SIGINT/SIGTERM shut down gracefully, stopping maintenance)."""
    serve(settings)

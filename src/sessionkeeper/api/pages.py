"""The two browser pages, ``/chat`` and ``/sessions``, and their static files under ``/static``.

The pages are plain HTML + vanilla JavaScript shipped inside the package (``sessionkeeper/web``):
no build step, no CDN, nothing fetched from elsewhere. They call the REST API like any other
client. Serving a page touches no database: the chat page creates a session only when its
first message is sent (``POST /api/engine/chat/stream``), so a visit never leaves a ghost.

Each page is sent with a Content-Security-Policy that allows scripts, styles and requests
to this server only (``PAGE_HEADERS``): with no inline script and no HTML from data (model
replies are rendered by markdown-it with HTML off), nothing a message contains can run.
Nor may another site frame a page (``X-Frame-Options``, ``frame-ancestors``). GET and HEAD
both answer (HEAD: the headers alone).
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.staticfiles import PathLike
from starlette.types import Scope

from sessionkeeper.api.framing import FRAME_ANCESTORS_NONE, FrameGuard

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
# Revalidate every time: the files are small and a stale chat.js after an upgrade is worse.
_NO_CACHE = {"Cache-Control": "no-cache"}
PAGE_CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",  # data: the empty favicon
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        FRAME_ANCESTORS_NONE,
    ]
)
PAGE_HEADERS = {
    **_NO_CACHE,
    "Content-Security-Policy": PAGE_CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # A link in a reply opens another site: it must not learn the session id in the URL.
    "Referrer-Policy": "same-origin",
}
PAGE_METHODS = ["GET", "HEAD"]

router = APIRouter(include_in_schema=False)


def _page(name: str) -> FileResponse:
    # FileResponse answers a HEAD with the headers alone.
    return FileResponse(WEB_DIR / name, media_type="text/html", headers=PAGE_HEADERS)


@router.api_route("/", methods=PAGE_METHODS)
async def home() -> RedirectResponse:
    return RedirectResponse("/chat")


@router.api_route("/chat", methods=PAGE_METHODS)
async def chat_page() -> FileResponse:
    return _page("chat.html")


@router.api_route("/sessions", methods=PAGE_METHODS)
async def sessions_page() -> FileResponse:
    return _page("sessions.html")


class _NoCacheStatic(StaticFiles):
    def file_response(
        self,
        full_path: PathLike,
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(_NO_CACHE)
        return response


def install_pages(app: FastAPI) -> None:
    app.add_middleware(FrameGuard)  # every HTML response: /docs and /redoc too
    app.include_router(router)
    app.mount("/static", _NoCacheStatic(directory=WEB_DIR), name="static")

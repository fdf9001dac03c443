"""The two browser pages, ``/chat`` and ``/sessions``, and their static files under ``/static``.

The pages are plain HTML + vanilla JavaScript shipped inside the package (``sessionkeeper/web``):
no build step, no CDN, nothing fetched from elsewhere. They call the REST API like any other
client. Serving a page touches no database: the chat page creates a session only when its
first message is sent (``POST /api/engine/chat/stream``), so a visit never leaves a ghost.
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

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
# Revalidate every time: the files are small and a stale chat.js after an upgrade is worse.
_NO_CACHE = {"Cache-Control": "no-cache"}

router = APIRouter(include_in_schema=False)


def _page(name: str) -> FileResponse:
    return FileResponse(WEB_DIR / name, media_type="text/html", headers=_NO_CACHE)


@router.get("/")
async def home() -> RedirectResponse:
    return RedirectResponse("/chat")


@router.get("/chat")
async def chat_page() -> FileResponse:
    return _page("chat.html")


@router.get("/sessions")
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
    app.include_router(router)
    app.mount("/static", _NoCacheStatic(directory=WEB_DIR), name="static")

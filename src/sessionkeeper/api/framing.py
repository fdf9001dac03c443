"""No page of this server may be shown inside another site's frame (clickjacking).

Every HTML response gets ``X-Frame-Options: DENY`` and, unless it brings its own policy, a
``Content-Security-Policy`` of ``frame-ancestors 'none'`` (the modern form of the same
rule). The chat page and the dashboard bring a whole policy (``api/pages.py``); /docs and
/redoc get the framing rule only, as Swagger UI starts from an inline script.

A pure ASGI middleware (not ``BaseHTTPMiddleware``, which would get between a streaming
response and its client): it only edits the headers of each response as it starts.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

FRAME_ANCESTORS_NONE = "frame-ancestors 'none'"


class FrameGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_guarded(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if headers.get("content-type", "").startswith("text/html"):
                    headers.setdefault("X-Frame-Options", "DENY")
                    headers.setdefault("Content-Security-Policy", FRAME_ANCESTORS_NONE)
            await send(message)

        await self.app(scope, receive, send_guarded)

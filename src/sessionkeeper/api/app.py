"""The FastAPI application factory.

No import-time singletons: ``create_app(settings)`` builds a fresh app every call, so tests
(and one process serving two databases) can hold several. The lifespan opens the Store from
``settings.database_url`` unless one was injected (then the caller owns and closes it),
decides whether the server runs open (no API keys, loopback only; see ``api/auth.py``) or
refuses to start, writes the retention policies of the settings, and starts the maintenance
loop as a task it owns: the reference is kept
on ``app.state`` and the task is cancelled and awaited on shutdown, so no job is left running
against a closed store.

An app whose lifespan never runs (tests inject the Store and call it through httpx's ASGI
transport) makes the open/closed decision lazily, on its first request without a key.

``app.state``: settings, store, auth (``Authenticator``), metrics (``Metrics``), maintenance
(the runner, if started), maintenance_task and mcp (the ``/mcp`` endpoint, whose SDK session
manager runs in the lifespan).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import Depends, FastAPI

from sessionkeeper import __version__
from sessionkeeper.api.auth import Authenticator
from sessionkeeper.api.deps import get_principal
from sessionkeeper.api.errors import install_error_handlers
from sessionkeeper.api.limits import install_limits
from sessionkeeper.api.observability import ScheduleListener, install_observability
from sessionkeeper.api.openapi import OPENAPI_URL, install_docs
from sessionkeeper.api.pages import install_pages
from sessionkeeper.api.routes import engine_router
from sessionkeeper.api.routes.chat import install_chat
from sessionkeeper.config import Settings
from sessionkeeper.maintenance import MaintenanceRunner, apply_configured_policies
from sessionkeeper.store.core import Store

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, *, store: Store | None = None) -> FastAPI:
    """Build the API. With ``store`` given, the app uses it as is and never closes it."""
    settings = settings if settings is not None else Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            if app.state.store is None:
                opened = await Store.open(settings.database_url, encoding=settings.encoding)
                stack.push_async_callback(_forget_store, app, opened)
                app.state.store = opened
            await app.state.auth.startup(app.state.store)
            await apply_configured_policies(app.state.store, settings)
            await stack.enter_async_context(app.state.mcp.running())
            if settings.maintenance:
                runner = MaintenanceRunner.from_settings(
                    app.state.store, settings, listener=ScheduleListener(app.state.metrics)
                )
                task = asyncio.create_task(runner.run(), name="sessionkeeper-maintenance")
                app.state.maintenance = runner
                app.state.maintenance_task = task
                stack.push_async_callback(_stop, task)
            yield

    app = FastAPI(
        title="sessionkeeper",
        version=__version__,
        description="Conversation-session memory for LLM agents.",
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc: api/openapi.py, from files in the package
        redoc_url=None,
        openapi_url=OPENAPI_URL,
        # operationId: the route function's name (get_session, add_messages…), unique here.
        generate_unique_id_function=lambda route: route.name,
    )
    app.state.settings = settings
    app.state.store = store  # None until the lifespan opens one
    app.state.maintenance = None
    app.state.maintenance_task = None
    app.state.auth = Authenticator(settings.host)
    install_error_handlers(app)
    # Before a body is read: the head's size, the API key, then the body's size. Installed
    # first, so the request metrics (added after it, so around it) count its answers too.
    install_limits(app, settings.max_body_size)
    install_observability(app)  # /healthz, /readyz, /metrics and the request metrics

    # Every /api/engine route needs a principal, even one that does not ask for it itself.
    app.include_router(engine_router(), dependencies=[Depends(get_principal)])
    install_chat(app, settings)  # POST /api/engine/chat/stream (SSE), GET …/chat/model
    install_pages(app)  # /chat, /sessions, /static: public; their API calls carry the key
    install_docs(app)  # /docs, /redoc and their files: public, offline
    # /mcp: the MCP server (streamable HTTP), the same keys and scopes. Imported here: the
    # mcp SDK is heavy, and only a server needs it.
    from sessionkeeper.mcp.http import install_mcp

    app.state.mcp = install_mcp(app, host=settings.host, allow_writes=settings.mcp_writes)
    return app


async def _forget_store(app: FastAPI, store: Store) -> None:
    app.state.store = None
    await store.close()


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

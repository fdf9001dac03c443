"""``serve(settings)``: run the API with uvicorn (the CLI's ``sessionkeeper serve`` calls it)."""

from __future__ import annotations

from sqlalchemy.engine import make_url

from sessionkeeper.api.app import create_app
from sessionkeeper.config import Settings


def public_url(settings: Settings) -> str:
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return f"http://{host}:{settings.port}"


def display_database_url(url: str) -> str:
    """The database URL with any password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


def serve(settings: Settings) -> None:
    """Serve until interrupted (SIGINT/SIGTERM shut down gracefully, stopping maintenance)."""
    import uvicorn

    app = create_app(settings)
    print(
        f"sessionkeeper serving {public_url(settings)} "
        f"(database: {display_database_url(settings.database_url)})",
        flush=True,
    )
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        lifespan="on",
    )

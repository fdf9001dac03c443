"""The REST API: ``create_app(settings)`` builds it, ``serve(settings)`` runs it with uvicorn."""

from sessionkeeper.api.app import create_app

__all__ = ["create_app"]

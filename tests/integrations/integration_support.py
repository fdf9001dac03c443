"""Helpers shared by the integration tests (a module of its own: conftest is not importable)."""

from __future__ import annotations


def is_memory(url: str) -> bool:
    """An in-memory SQLite URL: private to one Store, so not shareable between processes."""
    if not url.startswith("sqlite"):
        return False
    return ":memory:" in url or url.rstrip("/") in ("sqlite:", "sqlite+aiosqlite:")

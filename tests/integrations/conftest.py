"""Fixtures for the framework integrations: a Store on every database of ``db_url``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from integration_support import is_memory

from sessionkeeper import Store, open_store


@pytest.fixture
async def sk_store(db_url: str) -> AsyncIterator[Store]:
    store = await open_store(db_url)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def shared_url(db_url: str) -> str:
    """A URL several Stores (and processes) can open: file SQLite or PostgreSQL."""
    if is_memory(db_url):
        pytest.skip("an in-memory database is private to one Store: nothing to share")
    return db_url

"""Fixtures for the framework integrations: a Store on every database of ``db_url``.

Tests that several Stores or processes share use ``file_db_url`` (tests/conftest.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from agents import set_tracing_disabled

from sessionkeeper import Store, open_store

# The SDK's tracing exports spans over the network at exit; these tests have none to send.
set_tracing_disabled(True)


@pytest.fixture
async def sk_store(db_url: str) -> AsyncIterator[Store]:
    store = await open_store(db_url)
    try:
        yield store
    finally:
        await store.close()

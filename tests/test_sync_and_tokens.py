"""The sync wrapper agrees with the async Store; token counting works offline."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sessionkeeper import SyncStore
from sessionkeeper.store.core import Store
from sessionkeeper.tokens import Tokenizer


def test_sync_and_async_give_identical_results(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sync.db'}"
    with SyncStore.open(url) as sync:
        s = sync.create_session(session_id="same", title="t", agent_id="a")
        sync.add_message("same", "user", "hello there")
        sync.add_messages("same", [{"role": "assistant", "content": "general kenobi"}])
        sync_view = (
            sync.get_session("same"),
            sync.get_messages("same"),
            sync.list_sessions(agent_id="a"),
            sync.search_messages("kenobi"),
            sync.context_window("same", 100),
        )

    async def async_view() -> tuple[object, ...]:
        store = await Store.open(url)
        try:
            return (
                await store.get_session("same"),
                await store.get_messages("same"),
                await store.list_sessions(agent_id="a"),
                await store.search_messages("kenobi"),
                await store.context_window("same", 100),
            )
        finally:
            await store.close()

    assert asyncio.run(async_view()) == sync_view
    assert s.session_id == "same"


def test_cl100k_loads_offline_and_counts_exactly() -> None:
    tok = Tokenizer("cl100k_base")
    assert tok.count("hello world") == 2
    assert tok.count("<|endoftext|>") > 1  # quoted special tokens are plain text
    assert tok.estimated is False


def test_unknown_encoding_falls_back_to_a_labelled_estimate() -> None:
    tok = Tokenizer("no_such_encoding")
    assert tok.count("abcdefgh") == 2
    assert tok.estimated is True

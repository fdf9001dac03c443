"""The hooks the OpenAI Agents SDK's wrappers use on SessionkeeperSession (issue 19), on
SQLite file, SQLite memory and PostgreSQL: what the SDK's own suites check through
SQLiteSession's tables, checked here through the store."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from sessionkeeper import Store
from sessionkeeper.integrations.openai_agents import SessionkeeperSession


def item(text: str, role: str = "user") -> Any:
    return {"role": role, "content": text}


async def rows(store: Store, sid: str) -> list[dict[str, Any]]:
    return [m.to_dict() for m in await store.get_messages(sid, limit=500)]


class Refused(Exception):
    pass


def refuse(_item: Any) -> None:
    raise Refused("wrong key")


async def test_a_refused_pop_leaves_the_item_in_place(store: Store) -> None:
    session = SessionkeeperSession("s1", store=store)
    await session.add_items([item("first"), item("second", "assistant")])
    before = await rows(store, "s1")
    for _ in range(2):
        with pytest.raises(Refused):
            await session._pop_item_with_validation(refuse)
        assert await rows(store, "s1") == before  # same seqs, same everything
    assert await session._pop_item_with_validation(lambda i: None) == item("second", "assistant")
    assert await session.pop_item() == item("first")
    assert await session._pop_item_with_validation(refuse) is None  # nothing left to refuse


async def test_a_pop_being_checked_holds_off_other_writers(file_db_url: str) -> None:
    popper = SessionkeeperSession.from_url("s2", file_db_url)
    writer = SessionkeeperSession.from_url("s2", file_db_url)  # another store, same database
    entered, release = threading.Event(), threading.Event()

    def slow_refusal(_item: Any) -> None:
        entered.set()
        assert release.wait(10)
        raise Refused("wrong key")

    try:
        await popper.add_items([item("saved")])
        pop = asyncio.create_task(popper._pop_item_with_validation(slow_refusal))
        assert await asyncio.to_thread(entered.wait, 5)
        append = asyncio.create_task(writer.add_items([item("newer", "assistant")]))
        await asyncio.sleep(0.3)
        assert not append.done()  # waits for the pop's transaction
        release.set()
        with pytest.raises(Refused):
            await pop
        await append
        assert await writer.get_items() == [item("saved"), item("newer", "assistant")]
    finally:
        release.set()
        await popper.close()
        await writer.close()


async def test_a_snapshot_replaces_its_suffix_atomically(store: Store) -> None:
    session = SessionkeeperSession("s3", store=store)
    await session.add_items([item(f"m{i}") for i in range(6)])
    snap = await session._get_compaction_snapshot(4)
    assert snap is not None and not snap.complete
    assert snap.items == [item(f"m{i}") for i in range(2, 6)]
    assert await snap.replace_suffix(2, [item("summary", "assistant")])
    assert await session.get_items() == [
        *[item(f"m{i}") for i in range(4)],
        item("summary", "assistant"),
    ]
    assert not await snap.replace_suffix(0, [item("stale")])  # the tail changed: nothing
    assert len(await session.get_items()) == 5
    whole = await session._get_compaction_snapshot(10)
    assert whole is not None and whole.complete and len(whole.items) == 5
    session_row = await store.get_session("s3")
    assert session_row.message_count == 5


async def test_a_replacement_prunes_the_prefix_it_is_told_to(store: Store) -> None:
    session = SessionkeeperSession("s4", store=store)
    await session.add_items([item("old 1"), item("old 2"), item("keep"), item("tail")])
    snap = await session._get_compaction_snapshot(1, prune_prefix=lambda i: "old" in i["content"])
    assert snap is not None
    assert await snap.replace_suffix(0, [item("new tail")])
    assert await session.get_items() == [item("keep"), item("new tail")]
    assert (await store.get_session("s4")).message_count == 2


async def test_atomic_replace_of_the_whole_history(store: Store) -> None:
    session = SessionkeeperSession("s5", store=store)
    assert await session._atomic_replace_items([item("a")])  # creates the session
    await session.add_items([item("b"), item("c")])
    assert await session._atomic_replace_items([item("compacted", "assistant")])
    assert await session.get_items() == [item("compacted", "assistant")]
    got = await store.get_session("s5")
    assert (got.message_count, got.token_count) == (
        1,
        (await store.get_messages("s5"))[0].token_count,
    )
    assert await session._atomic_replace_items([])
    assert await session.get_items() == []


async def test_a_subclass_that_transforms_items_gets_no_atomic_hooks(store: Store) -> None:
    class Upper(SessionkeeperSession):
        async def add_items(self, items: Any) -> None:
            await super().add_items([{**i, "content": i["content"].upper()} for i in items])

    session = Upper("s6", store=store)
    await session.add_items([item("x")])
    assert await session._get_compaction_snapshot(5) is None
    assert await session._atomic_replace_items([item("y")]) is False
    assert await session.get_items() == [item("X")]


async def test_negative_limits_read_everything_as_sqlite_session(store: Store) -> None:
    session = SessionkeeperSession("s7", store=store)
    await session.add_items([item("a"), item("b")])
    assert await session.get_items(limit=-1) == [item("a"), item("b")]
    assert await session.get_items(limit=0) == []

"""A Store works from any event loop and any thread (issue 7, item 5).

Agent frameworks call ``asyncio.run`` per call (the OpenAI Agents SDK's ``run_sync`` makes a
fresh loop each time), scripts share one ``SyncStore`` between threads, and servers run
several loops side by side. Each pattern runs here on every database configuration.
These tests are synchronous on purpose: they make and close their own event loops.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sessionkeeper import SyncStore
from sessionkeeper.store.core import Store


def _assert_writers_kept_order(messages: list[Any], writers: int, each: int) -> None:
    """Seqs are 1..N without gaps, and every writer's messages appear in its own order."""
    assert [m.seq for m in messages] == list(range(1, writers * each + 1))
    for w in range(writers):
        mine = [m.metadata["i"] for m in messages if m.metadata["w"] == w]
        assert mine == list(range(each)), f"writer {w} reordered or lost: {mine}"


def test_asyncio_run_three_times_on_one_store(db_url: str) -> None:
    """Opened in one ``asyncio.run``, used in a second, closed in a third."""
    holder: dict[str, Any] = {}

    async def first() -> str:
        store = await Store.open(db_url)
        holder["store"] = store
        session = await store.create_session(title="three loops", agent_id="loops")
        await store.add_message(session.session_id, "user", "written on loop one")
        return session.session_id

    sid = asyncio.run(first())
    store: Store = holder["store"]

    async def second() -> tuple[Any, ...]:
        await store.add_message(sid, "assistant", "written on loop two")
        await store.add_messages(sid, [{"role": "user", "content": "a batch on loop two"}])
        return (
            await store.get_messages(sid),
            await store.get_session(sid),
            await store.list_sessions(agent_id="loops"),
            await store.search_messages("loop"),
            await store.context_window(sid, 1000),
            await store.get_stats(),
        )

    messages, session, page, hits, window, stats = asyncio.run(second())
    assert [m.content for m in messages] == [
        "written on loop one",
        "written on loop two",
        "a batch on loop two",
    ]
    assert [m.seq for m in messages] == [1, 2, 3]
    assert session.message_count == 3
    assert [s.session_id for s in page.items] == [sid]
    assert {h.seq for h in hits} == {1, 2, 3}
    assert len(window.messages) == 3
    assert stats.total_messages == 3

    async def third() -> list[Any]:
        try:
            await store.ping()
            await store.add_message(sid, "user", "written on loop three")
            return await store.get_messages(sid, last=2)
        finally:
            await store.close()

    last_two = asyncio.run(third())
    assert [m.seq for m in last_two] == [3, 4]


def test_sync_store_shared_by_eight_threads(db_url: str) -> None:
    """8 threads × 25 appends into one session: 200 messages, seq 1..200, order per thread."""
    writers, each = 8, 25
    with SyncStore.open(db_url) as store:
        sid = store.create_session(title="threads").session_id
        start = threading.Barrier(writers)

        def work(w: int) -> int:
            start.wait()
            for i in range(each):
                store.add_message(sid, "user", f"writer {w} message {i}", metadata={"w": w, "i": i})
                if i % 5 == 0:  # reads interleave with other threads' writes
                    assert store.get_messages(sid, last=5)
            return w

        with ThreadPoolExecutor(writers) as pool:
            assert sorted(pool.map(work, range(writers))) == list(range(writers))

        messages = store.get_messages(sid, limit=500)
        _assert_writers_kept_order(messages, writers, each)
        session = store.get_session(sid)
        assert session.message_count == writers * each
        assert session.token_count == sum(m.token_count for m in messages)


def test_fresh_event_loop_per_call(db_url: str) -> None:
    """The ``run_sync`` pattern: every call on a new loop, closed right after, five times."""

    def run_sync(coro: Any) -> Any:
        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(coro)
        finally:
            loop.close()

    store: Store = run_sync(Store.open(db_url))
    sid: str = run_sync(store.create_session(title="run_sync")).session_id

    async def turn(i: int) -> list[Any]:
        history = await store.get_messages(sid, last=10)
        await store.add_message(sid, "user", f"question {i}")
        await store.add_message(sid, "assistant", f"answer {i}", metadata={"turn": i})
        return history

    for i in range(5):
        history = run_sync(turn(i))
        assert len(history) == min(2 * i, 10)

    async def finish() -> tuple[list[Any], Any]:
        try:
            return await store.get_messages(sid), await store.get_session(sid)
        finally:
            await store.close()

    messages, session = run_sync(finish())
    assert [m.seq for m in messages] == list(range(1, 11))
    assert [m.content for m in messages[-2:]] == ["question 4", "answer 4"]
    assert session.message_count == 10


def test_two_threads_each_with_its_own_loop(db_url: str) -> None:
    """One Store, used at the same time from two threads that each run an event loop."""
    writers, each = 2, 40
    store: Store = asyncio.run(Store.open(db_url))
    try:
        shared = asyncio.run(store.create_session(title="shared")).session_id
        start = threading.Barrier(writers)
        errors: list[BaseException] = []

        async def work(w: int) -> str:
            own = (await store.create_session(title=f"own {w}", agent_id=f"loop{w}")).session_id
            for i in range(each):
                # Several tasks of this loop in flight at once, across two loops.
                await asyncio.gather(
                    store.add_message(shared, "user", f"w{w} {i}", metadata={"w": w, "i": i}),
                    store.add_message(own, "user", f"own {i}"),
                    store.get_messages(shared, last=10),
                    store.list_sessions(agent_id=f"loop{w}"),
                )
            return own

        owns: dict[int, str] = {}

        def thread(w: int) -> None:
            try:
                start.wait()
                owns[w] = asyncio.run(work(w))
            except BaseException as exc:  # reported below, in the main thread
                errors.append(exc)

        threads = [threading.Thread(target=thread, args=(w,)) for w in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not any(t.is_alive() for t in threads), "a loop thread hung"
        assert errors == []

        async def check() -> None:
            messages = await store.get_messages(shared, limit=500)
            _assert_writers_kept_order(messages, writers, each)
            for w in range(writers):
                own = await store.get_messages(owns[w], limit=500)
                assert [m.content for m in own] == [f"own {i}" for i in range(each)]
            stats = await store.get_stats()
            assert stats.total_messages == writers * each * 2

        asyncio.run(check())
    finally:
        asyncio.run(store.close())


def test_threads_meeting_closed_loops_postgres(pg_database_url: str) -> None:
    """Threads whose first call finds pools of closed loops (left by ``run_sync``-style
    callers) must all get their answer: no error escapes from cleaning those pools up.
    (Before f1160c7 two threads both deleted the same stale pool: a raw KeyError.)"""
    store: Store = asyncio.run(Store.open(pg_database_url))
    errors: list[BaseException] = []
    try:
        for _ in range(10):  # the race needs threads to interleave: give it several rounds
            closed = []
            for _ in range(20):
                loop = asyncio.new_event_loop()
                loop.run_until_complete(store.ping())
                loop.close()
                closed.append(loop)  # kept alive, so its pool stays registered
            start = threading.Barrier(8)

            def thread(start: threading.Barrier = start) -> None:
                start.wait()
                try:
                    asyncio.run(store.ping())
                except BaseException as exc:  # noqa: BLE001 - collected and asserted below
                    errors.append(exc)

            threads = [threading.Thread(target=thread) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            del closed
    finally:
        asyncio.run(store.close())
    assert errors == []

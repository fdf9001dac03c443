"""Message operations, search and context windows, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta

import pytest

import rawdb
from sessionkeeper.errors import InvalidInput, NotFound, TooLarge
from sessionkeeper.models import MAX_MESSAGE_LENGTH, NewMessage
from sessionkeeper.store.core import Store
from sessionkeeper.store.window import MESSAGE_OVERHEAD_TOKENS


async def assert_counters_true(store: Store) -> None:
    """The invariant: session counters equal the live rows' count and token sum."""
    rows = await rawdb.fetch(
        store,
        "SELECT s.session_id, s.message_count, s.token_count, "
        "COALESCE(l.n, 0), COALESCE(l.t, 0) FROM sessions s LEFT JOIN "
        "(SELECT session_id, count(*) AS n, sum(token_count) AS t FROM messages "
        "GROUP BY session_id) l ON l.session_id = s.session_id",
    )
    for sid, count, tokens, n, t in rows:
        assert (count, tokens) == (n, t), sid


async def test_append_assigns_seq_and_counts_tokens_exactly(store: Store) -> None:
    s = await store.create_session()
    m1 = await store.add_message(s.session_id, "user", "hello world", model="gpt-4o")
    m2 = await store.add_message(s.session_id, "assistant", "Hi! How can I help?")
    assert (m1.seq, m2.seq) == (1, 2)
    assert m1.token_count == 2  # cl100k_base: "hello", " world"
    assert not store.tokenizer.estimated
    got = await store.get_session(s.session_id)
    assert got.message_count == 2
    assert got.token_count == m1.token_count + m2.token_count
    assert got.last_message_at is not None
    assert [m.content for m in await store.get_messages(s.session_id)] == [
        "hello world",
        "Hi! How can I help?",
    ]
    stored = (await store.get_messages(s.session_id))[0]
    assert stored == m1


async def test_message_fields_round_trip(store: Store) -> None:
    s = await store.create_session()
    when = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    meta = {"tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": "{}"}}]}
    m = await store.add_message(
        s.session_id,
        "assistant",
        "ünïcödé ✓ \n multi-line",
        agent_id="aria-talk",
        model="llama3",
        metadata=meta,
        token_count=42,
        created_at=when,
    )
    (got,) = await store.get_messages(s.session_id)
    assert got == m
    assert (got.created_at, got.token_count, got.metadata) == (when, 42, meta)


async def test_too_large_is_refused_whole(store: Store) -> None:
    s = await store.create_session()
    with pytest.raises(TooLarge) as err:
        await store.add_message(s.session_id, "user", "x" * (MAX_MESSAGE_LENGTH + 1))
    assert "100,001" in err.value.message and "100,000" in err.value.message
    assert (await store.get_session(s.session_id)).message_count == 0
    assert await store.get_messages(s.session_id) == []
    ok = await store.add_message(s.session_id, "user", "y" * MAX_MESSAGE_LENGTH)
    assert len((await store.get_messages(s.session_id))[0].content) == MAX_MESSAGE_LENGTH
    assert ok.seq == 1


@pytest.mark.parametrize(
    ("role", "content", "extra"),
    [
        ("robot", "hi", {}),
        ("user", 123, {}),
        ("user", "hi", {"metadata": "nope"}),
        ("user", "hi", {"token_count": -1}),
        ("user", "hi", {"created_at": datetime(2025, 1, 1)}),  # noqa: DTZ001 - naive on purpose
        ("user", "hi", {"agent_id": "bad agent"}),
    ],
)
async def test_append_rejects_bad_input(
    store: Store, role: str, content: object, extra: dict
) -> None:
    s = await store.create_session()
    with pytest.raises(InvalidInput):
        await store.add_message(s.session_id, role, content, **extra)  # type: ignore[arg-type]
    assert (await store.get_session(s.session_id)).message_count == 0


async def test_append_to_unknown_session(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.add_message("missing", "user", "hi")
    with pytest.raises(NotFound):
        await store.add_messages("missing", [NewMessage("user", "hi")])
    with pytest.raises(NotFound):
        await store.add_messages("missing", [])


async def test_batch_is_all_or_nothing(store: Store) -> None:
    s = await store.create_session()
    await store.add_message(s.session_id, "system", "be brief")
    batch = await store.add_messages(
        s.session_id,
        [NewMessage("user", "one"), {"role": "assistant", "content": "two", "model": "m"}],
    )
    assert [m.seq for m in batch] == [2, 3]
    with pytest.raises(TooLarge):
        await store.add_messages(
            s.session_id, [NewMessage("user", "ok"), NewMessage("user", "x" * 100_001)]
        )
    with pytest.raises(InvalidInput):
        await store.add_messages(s.session_id, [{"role": "user", "content": "a", "bogus": 1}])
    assert [m.seq for m in await store.get_messages(s.session_id)] == [1, 2, 3]
    await assert_counters_true(store)


async def test_get_messages_windows(store: Store) -> None:
    s = await store.create_session()
    await store.add_messages(s.session_id, [NewMessage("user", f"m{i}") for i in range(1, 11)])
    get = store.get_messages
    sid = s.session_id
    assert [m.seq for m in await get(sid, limit=3)] == [1, 2, 3]
    assert [m.seq for m in await get(sid, limit=3, offset=8)] == [9, 10]
    assert [m.seq for m in await get(sid, after_seq=7)] == [8, 9, 10]
    assert [m.seq for m in await get(sid, last=3)] == [8, 9, 10]
    assert [m.seq for m in await get(sid, last=3, after_seq=8)] == [9, 10]
    future = datetime.now(UTC) + timedelta(minutes=1)
    assert await get(sid, since=future) == []
    assert len(await get(sid, since=future - timedelta(days=1))) == 10
    for bad in ({"limit": 501}, {"limit": 0}, {"last": 0}, {"offset": -1}, {"after_seq": -2}):
        with pytest.raises(InvalidInput):
            await get(sid, **bad)  # type: ignore[arg-type]
    empty = await store.create_session()
    assert await get(empty.session_id) == []


async def test_order_is_by_seq_even_with_equal_timestamps(store: Store) -> None:
    s = await store.create_session()
    when = datetime(2025, 5, 5, tzinfo=UTC)
    for i in range(20):
        await store.add_message(s.session_id, "user", f"{i}", created_at=when)
    assert [m.content for m in await store.get_messages(s.session_id)] == [
        str(i) for i in range(20)
    ]


async def test_delete_message_keeps_counters_and_never_reuses_seq(store: Store) -> None:
    s = await store.create_session()
    await store.add_messages(s.session_id, [NewMessage("user", f"m {i}") for i in range(3)])
    gone = await store.delete_message(s.session_id, 3)
    assert gone.content == "m 2"
    with pytest.raises(NotFound):
        await store.delete_message(s.session_id, 3)
    with pytest.raises(NotFound):
        await store.delete_message("missing", 1)
    again = await store.add_message(s.session_id, "user", "new")
    assert again.seq == 4
    assert [m.seq for m in await store.get_messages(s.session_id)] == [1, 2, 4]
    assert (await store.get_session(s.session_id)).message_count == 3
    await assert_counters_true(store)


async def test_pop_message_takes_the_newest_and_counters_follow(store: Store) -> None:
    s = await store.create_session()
    sid = s.session_id
    assert await store.pop_message(sid) is None  # empty: nothing to take
    await store.add_messages(sid, [NewMessage("user", "first"), NewMessage("assistant", "two")])
    popped = await store.pop_message(sid)
    assert popped is not None and (popped.seq, popped.role, popped.content) == (
        2,
        "assistant",
        "two",
    )
    assert [m.content for m in await store.get_messages(sid)] == ["first"]
    assert (await store.get_session(sid)).message_count == 1
    assert (await store.add_message(sid, "user", "again")).seq == 3  # seqs are never reused
    with pytest.raises(NotFound):
        await store.pop_message("missing")
    with pytest.raises(InvalidInput, match="if_last"):
        await store.pop_message(sid, if_last=-1)
    await assert_counters_true(store)


async def test_pop_message_if_last_takes_only_that_message(store: Store) -> None:
    """``if_last``: how a caller takes back its own message without removing a later one."""
    sid = (await store.create_session()).session_id
    mine = await store.add_message(sid, "user", "mine")
    theirs = await store.add_message(sid, "assistant", "theirs")
    assert await store.pop_message(sid, if_last=mine.seq) is None  # not the newest any more
    assert [m.seq for m in await store.get_messages(sid)] == [mine.seq, theirs.seq]
    taken = await store.pop_message(sid, if_last=theirs.seq)
    assert taken is not None and taken.content == "theirs"
    assert await store.pop_message(sid, if_last=theirs.seq) is None  # already gone
    assert [m.content for m in await store.get_messages(sid)] == ["mine"]
    with pytest.raises(NotFound):
        await store.pop_message("missing", if_last=1)
    await assert_counters_true(store)


async def test_pops_at_once_take_different_messages(store: Store) -> None:
    sid = (await store.create_session()).session_id
    await store.add_messages(sid, [NewMessage("user", f"m {i}") for i in range(6)])
    popped = await asyncio.gather(*(store.pop_message(sid) for _ in range(4)))
    assert sorted(m.seq for m in popped if m is not None) == [3, 4, 5, 6]
    assert [m.seq for m in await store.get_messages(sid)] == [1, 2]
    # A take-back racing an append: the appended message always survives.
    for i in range(5):
        mine = await store.add_message(sid, "user", f"mine {i}")
        taken, later = await asyncio.gather(
            store.pop_message(sid, if_last=mine.seq), store.add_message(sid, "user", f"later {i}")
        )
        left = [m.content for m in await store.get_messages(sid, last=2)]
        assert left[-1] == f"later {i}"
        assert (taken is None) == (f"mine {i}" in left), (taken, left)
    await assert_counters_true(store)


async def test_search_ranked_with_snippets_and_filters(store: Store) -> None:
    a = await store.create_session(agent_id="alpha", title="Kitchen")
    b = await store.create_session(agent_id="beta")
    await store.add_message(a.session_id, "user", "How do I bake sourdough bread at home?")
    await store.add_message(a.session_id, "assistant", "Sourdough needs a starter. Sourdough!")
    await store.add_message(b.session_id, "user", "Baking bread with yeast is faster")
    hits = await store.search_messages("sourdough")
    assert [(h.session_id, h.seq) for h in hits][0] == (a.session_id, 2)  # two mentions rank first
    assert len(hits) == 2
    assert "<mark>" in hits[0].snippet and hits[0].session_title == "Kitchen"
    stemmed = await store.search_messages("baking")
    assert {h.session_id for h in stemmed} == {a.session_id, b.session_id}
    assert {h.session_id for h in await store.search_messages("bread", agent_id="beta")} == {
        b.session_id
    }
    assert await store.search_messages("bread", agent_ids=[]) == []
    assert [h.seq for h in await store.search_messages("bread", session_id=a.session_id)] == [1]
    assert len(await store.search_messages("bread", limit=1)) == 1
    # punctuation and quotes in user input are not query syntax errors
    assert await store.search_messages('"sourdough needs" (starter)?!')
    with pytest.raises(InvalidInput):
        await store.search_messages("")
    await store.delete_session(a.session_id)
    assert await store.search_messages("sourdough") == []


def _tool_call(call_id: str) -> dict:
    return {"tool_calls": [{"id": call_id, "type": "function", "function": {"name": "f"}}]}


async def test_context_window_budget_pins_and_tool_units(store: Store) -> None:
    s = await store.create_session()
    sid = s.session_id
    await store.add_message(sid, "system", "You are terse.", token_count=10)
    await store.add_message(sid, "user", "old question", token_count=100)
    await store.add_message(sid, "assistant", "", metadata=_tool_call("c1"), token_count=20)
    await store.add_message(sid, "tool", "result one", token_count=20)
    await store.add_message(sid, "tool", "result two", token_count=20)
    await store.add_message(sid, "assistant", "answer", token_count=30)
    await store.add_message(sid, "user", "latest", token_count=5)
    o = MESSAGE_OVERHEAD_TOKENS

    everything = await store.context_window(sid, 10_000)
    assert [m.seq for m in everything.messages] == [1, 2, 3, 4, 5, 6, 7]
    assert everything.dropped_messages == 0 and everything.pinned == 1
    assert everything.total_tokens == 205 + 7 * o

    # Room for system, latest, answer and the whole tool unit; not for the old question.
    budget = 10 + 5 + 30 + 60 + 6 * o
    w = await store.context_window(sid, budget)
    assert [m.seq for m in w.messages] == [1, 3, 4, 5, 6, 7]
    assert (w.dropped_messages, w.dropped_tokens) == (1, 100)
    assert w.total_tokens <= budget

    # One token less: the tool unit cannot be split, so it goes whole.
    w = await store.context_window(sid, budget - 1)
    assert [m.seq for m in w.messages] == [1, 6, 7]
    assert not any(m.role == "tool" for m in w.messages)

    w = await store.context_window(sid, budget, reserve=budget - (10 + o) - (5 + o))
    assert [m.seq for m in w.messages] == [1, 7]
    assert w.encoding == "cl100k_base" and w.estimated is False

    with pytest.raises(InvalidInput):
        await store.context_window(sid, 5)  # the system prompt alone does not fit
    with pytest.raises(InvalidInput):
        await store.context_window(sid, 100, reserve=100)
    with pytest.raises(InvalidInput):
        await store.context_window(sid, 0)
    with pytest.raises(NotFound):
        await store.context_window("missing", 100)


async def test_context_window_long_session_reads_tail_only(store: Store) -> None:
    s = await store.create_session()
    await store.add_messages(
        s.session_id, [NewMessage("user", f"message {i}", token_count=7) for i in range(1000)]
    )
    w = await store.context_window(s.session_id, 10 * (7 + MESSAGE_OVERHEAD_TOKENS))
    assert [m.seq for m in w.messages] == list(range(991, 1001))
    assert w.dropped_messages == 990 and w.dropped_tokens == 990 * 7


async def test_long_messages_are_counted_off_the_event_loop(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tokenising 100,000 characters takes milliseconds: messages with that much text are
    checked and counted on a worker thread, so the event loop (a server's every other
    request) goes on meanwhile; a short one is counted where it is, as the hand-over would
    cost more. Bad input is refused the same way on both paths, nothing written."""
    counted_on: list[str] = []
    count = store.tokenizer.count

    def recording(text: str) -> int:
        counted_on.append(threading.current_thread().name)
        return count(text)

    monkeypatch.setattr(store.tokenizer, "count", recording)
    loop_thread = threading.current_thread().name
    s = await store.create_session()
    long_text = "word " * 10_000  # 50,000 characters
    await store.add_message(s.session_id, "user", "short")
    await store.add_message(s.session_id, "user", long_text)
    await store.add_messages(s.session_id, [{"role": "user", "content": long_text}] * 2)
    await store.add_message(s.session_id, "user", long_text, idempotency_key="k")
    assert counted_on[0] == loop_thread
    assert len(counted_on) == 5 and loop_thread not in counted_on[1:]
    got = await store.get_messages(s.session_id)
    assert [m.token_count for m in got] == [count(m.content) for m in got]
    with pytest.raises(InvalidInput, match="role"):
        await store.add_messages(s.session_id, [{"role": "robot", "content": long_text}])
    with pytest.raises(TooLarge):
        await store.add_message(s.session_id, "user", "x" * 100_001)
    assert (await store.get_session(s.session_id)).message_count == 5

"""Forks, rewinds and branches (``Store.fork_session``, ``rewind_session``,
``list_branches``) on SQLite file, SQLite memory and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing as mp
from datetime import UTC, datetime, timedelta

import pytest

import rawdb
from sessionkeeper.errors import Conflict, InvalidInput, NotFound
from sessionkeeper.models import Message, NewMessage
from sessionkeeper.store.core import Store
from test_store_messages import assert_counters_true

T0 = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


def fields(m: Message) -> tuple[object, ...]:
    """Everything of a message but the session it is in."""
    return (m.seq, m.role, m.content, m.agent_id, m.model, m.token_count, m.metadata, m.created_at)


async def all_messages(store: Store, session_id: str) -> list[Message]:
    found: list[Message] = []
    after = 0
    while page := await store.get_messages(session_id, limit=500, after_seq=after):
        found += page
        after = page[-1].seq
    return found


async def conversation(store: Store, n: int, **kwargs: object) -> str:
    """A session of ``n`` messages with every field set (tool calls, models, times)."""
    s = await store.create_session(agent_id="lab", title="source", metadata={"k": 1}, **kwargs)  # type: ignore[arg-type]
    roles = ["user", "assistant", "tool"]
    await store.add_messages(
        s.session_id,
        [
            NewMessage(
                role=roles[i % 3],
                content=f"message {i + 1} ünïcödé ✓ about the {'zebra' if i % 7 == 0 else 'cat'}",
                agent_id=f"a{i % 2}",
                model="gpt-4o" if i % 3 == 1 else None,
                metadata={"i": i, "tool_calls": [{"id": f"c{i}"}]} if i % 3 == 1 else None,
                created_at=T0 + timedelta(microseconds=i // 2),  # ties in time are common
            )
            for i in range(n)
        ],
    )
    return s.session_id


async def test_fork_copies_a_prefix_exactly_with_lineage(store: Store) -> None:
    source = await conversation(store, 100, user_id="u1")
    before = await store.get_session(source)
    fork = await store.fork_session(source, at_seq=40)

    assert (fork.parent_session_id, fork.fork_seq) == (source, 40)
    assert (fork.agent_id, fork.user_id, fork.title, fork.metadata) == (
        "lab",
        "u1",
        "source",
        {"k": 1},
    )
    assert fork.session_id != source and fork.status == "active"
    original = await all_messages(store, source)
    copied = await all_messages(store, fork.session_id)
    assert [fields(m) for m in copied] == [fields(m) for m in original[:40]]
    assert all(m.session_id == fork.session_id for m in copied)
    assert fork.message_count == 40
    assert fork.token_count == sum(m.token_count for m in original[:40])
    assert fork.last_message_at == original[39].created_at
    assert await store.get_session(fork.session_id) == fork
    # The source is not changed.
    assert await store.get_session(source) == before
    assert [fields(m) for m in await all_messages(store, source)] == [fields(m) for m in original]
    assert [s.session_id for s in await store.list_branches(source)] == [fork.session_id]
    assert await store.list_branches(fork.session_id) == []
    await assert_counters_true(store)


async def test_a_fork_reads_as_a_whole_conversation(store: Store) -> None:
    source = await conversation(store, 30)
    fork = await store.fork_session(source, at_seq=21, title="other path", metadata={"b": 2})
    assert (fork.title, fork.metadata) == ("other path", {"b": 2})
    # It continues after the copied prefix.
    added = await store.add_message(fork.session_id, "user", "a different question")
    assert added.seq == 22
    window = await store.context_window(fork.session_id, 100_000)
    assert [m.seq for m in window.messages] == list(range(1, 23))
    assert window.dropped_messages == 0
    hits = await store.search_messages("zebra", session_id=fork.session_id, limit=100)
    assert sorted(h.seq for h in hits) == [1, 8, 15]
    everywhere = await store.search_messages("zebra", limit=100)
    assert {h.session_id for h in everywhere} == {source, fork.session_id}
    assert (await store.get_session(fork.session_id)).message_count == 22
    assert (await store.get_session(source)).message_count == 30
    # Deleting the source leaves the fork whole.
    await store.delete_session(source)
    assert len(await all_messages(store, fork.session_id)) == 22
    await assert_counters_true(store)


async def test_fork_of_everything_and_of_nothing(store: Store) -> None:
    source = await conversation(store, 12)
    await store.delete_message(source, 5)  # a gap: seqs are kept, the gap too
    whole = await store.fork_session(source, new_session_id="whole-fork")
    assert whole.session_id == "whole-fork" and whole.fork_seq == 12
    assert [m.seq for m in await all_messages(store, "whole-fork")] == [
        1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12,
    ]  # fmt: skip
    assert whole.message_count == 11
    empty = await store.fork_session(source, at_seq=0)
    assert (empty.message_count, empty.token_count, empty.last_message_at) == (0, 0, None)
    assert (await store.add_message(empty.session_id, "user", "first")).seq == 1
    await assert_counters_true(store)


async def test_bad_forks_are_refused_and_write_nothing(store: Store) -> None:
    source = await conversation(store, 5)
    with pytest.raises(NotFound, match="'nope' not found"):
        await store.fork_session("nope")
    with pytest.raises(InvalidInput, match=r"at_seq 6 is past the last message .*seq 5") as err:
        await store.fork_session(source, at_seq=6)
    assert err.value.details["field"] == "at_seq"
    with pytest.raises(InvalidInput, match="at_seq"):
        await store.fork_session(source, at_seq=-1)
    with pytest.raises(InvalidInput, match="at_seq"):
        await store.fork_session(source, at_seq="3")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        await store.fork_session(source, new_session_id="bad id")
    with pytest.raises(InvalidInput):
        await store.fork_session(source, title="x" * 201)
    with pytest.raises(Conflict, match=f"session {source!r} already exists"):
        await store.fork_session(source, new_session_id=source)
    assert (await store.list_sessions()).total == 1
    assert await store.list_branches(source) == []
    with pytest.raises(NotFound):
        await store.list_branches("nope")


async def test_rewind_keeps_the_tail_as_a_branch(store: Store) -> None:
    source = await conversation(store, 100)
    original = await all_messages(store, source)
    done = await store.rewind_session(source, 10)

    assert done.to_seq == 10 and done.dropped_messages == 90
    kept = await all_messages(store, source)
    assert [fields(m) for m in kept] == [fields(m) for m in original[:10]]
    assert done.session.message_count == 10
    assert done.session.token_count == sum(m.token_count for m in original[:10])
    assert done.session.last_message_at == original[9].created_at
    assert await store.get_session(source) == done.session

    branch = done.branch
    assert branch is not None
    assert (branch.parent_session_id, branch.fork_seq) == (source, 10)
    in_branch = await all_messages(store, branch.session_id)
    # The branch is the conversation as it was: switching to it undoes the rewind.
    assert [fields(m) for m in in_branch] == [fields(m) for m in original]
    assert [fields(m) for m in in_branch[10:]] == [fields(m) for m in original[10:]]
    assert branch.message_count == 100 and branch.token_count == sum(
        m.token_count for m in original
    )
    # Nothing deleted: what the session keeps and the branch's tail are the original.
    union = kept + in_branch[10:]
    assert [fields(m) for m in union] == [fields(m) for m in original]
    assert [s.session_id for s in await store.list_branches(source)] == [branch.session_id]

    # The session continues from 10; the branch still finds the tail.
    assert (await store.add_message(source, "user", "try again")).seq == 11
    hits = await store.search_messages("zebra", limit=100)
    assert sorted((h.session_id == source, h.seq) for h in hits if h.seq > 10) == sorted(
        (False, m.seq) for m in original[10:] if "zebra" in m.content
    )
    await assert_counters_true(store)


async def test_rewind_edges(store: Store) -> None:
    source = await conversation(store, 3)
    same = await store.rewind_session(source, 3)
    assert same.branch is None and same.dropped_messages == 0
    assert same.session.message_count == 3
    with pytest.raises(InvalidInput, match="to_seq 4 is past") as err:
        await store.rewind_session(source, 4)
    assert err.value.details["field"] == "to_seq"
    with pytest.raises(InvalidInput, match="to_seq"):
        await store.rewind_session(source, -1)
    with pytest.raises(NotFound):
        await store.rewind_session("nope", 0)
    everything = await store.rewind_session(source, 0)
    assert everything.dropped_messages == 3 and everything.branch is not None
    assert (everything.session.message_count, everything.session.token_count) == (0, 0)
    assert everything.session.last_message_at is None
    assert (await store.add_message(source, "user", "again")).seq == 1
    # Rewinding twice gives two branches, oldest first.
    await store.add_message(source, "assistant", "answer")
    second = await store.rewind_session(source, 1)
    assert second.branch is not None
    assert [b.session_id for b in await store.list_branches(source)] == [
        everything.branch.session_id,
        second.branch.session_id,
    ]
    await assert_counters_true(store)


async def test_forks_while_appends_run_hold_a_prefix(store: Store) -> None:
    """Four writers append to the source while it is forked again and again: each fork is
    a prefix of the final source (in one process: every database, memory included)."""
    source = await conversation(store, 20)

    async def writer(w: int) -> None:
        for i in range(40):
            await store.add_message(source, "user", f"writer {w} message {i}")

    async def forker() -> list[str]:
        made = []
        for _ in range(8):
            made.append((await store.fork_session(source)).session_id)
            await asyncio.sleep(0)
        return made

    *_, forks = await asyncio.gather(*(writer(w) for w in range(4)), forker())
    final = [fields(m) for m in await all_messages(store, source)]
    assert len(final) == 20 + 4 * 40
    for fork_id in forks:
        fork = await store.get_session(fork_id)
        got = [fields(m) for m in await all_messages(store, fork_id)]
        assert got == final[: len(got)] and fork.fork_seq == len(got)
    await assert_counters_true(store)


def _append(url: str, session_id: str, writer: int, count: int) -> None:
    async def run() -> None:
        store = await Store.open(url)
        try:
            for i in range(count):
                await store.add_message(session_id, "user", f"writer {writer} message {i}")
        finally:
            await store.close()

    asyncio.run(run())


async def test_fork_during_four_writer_processes_is_a_prefix(file_db_url: str) -> None:
    store = await Store.open(file_db_url)
    try:
        source = await conversation(store, 10)
        ctx = mp.get_context("spawn")
        procs = [ctx.Process(target=_append, args=(file_db_url, source, w, 150)) for w in range(4)]
        for p in procs:
            p.start()
        forks = []
        while any(p.is_alive() for p in procs) or not forks:
            forks.append(await store.fork_session(source))
            await asyncio.sleep(0.02)
        for p in procs:
            p.join(timeout=300)
        assert [p.exitcode for p in procs] == [0] * 4
        final = [fields(m) for m in await all_messages(store, source)]
        assert len(final) == 10 + 4 * 150
        sizes = set()
        for fork in forks:
            got = [fields(m) for m in await all_messages(store, fork.session_id)]
            assert got == final[: len(got)]
            assert fork.fork_seq == len(got) == fork.message_count
            sizes.add(len(got))
        assert len(sizes) > 1  # forks were taken while the writers ran
        await assert_counters_true(store)
    finally:
        await store.close()


async def test_rewind_and_appends_do_not_lose_messages(store: Store) -> None:
    """Appends racing a rewind land either before it (then in the branch) or after it (then
    in the session): none is lost, every seq is used once per conversation."""
    source = await conversation(store, 10)

    async def writer(w: int) -> None:
        for i in range(25):
            await store.add_message(source, "user", f"w{w}-{i}")

    rewinds = []

    async def rewinder() -> None:
        for _ in range(3):
            await asyncio.sleep(0)
            rewinds.append(await store.rewind_session(source, 10))

    await asyncio.gather(*(writer(w) for w in range(4)), rewinder())
    seen: list[str] = [m.content for m in await all_messages(store, source)][10:]
    for r in rewinds:
        if r.branch is not None:
            seen += [m.content for m in await all_messages(store, r.branch.session_id)][10:]
    assert sorted(seen) == sorted(f"w{w}-{i}" for w in range(4) for i in range(25))
    await assert_counters_true(store)


async def test_lineage_survives_export_rows(store: Store) -> None:
    source = await conversation(store, 4)
    fork = await store.fork_session(source, at_seq=2)
    [(parent, seq)] = await rawdb.fetch(
        store,
        "SELECT parent_session_id, fork_seq FROM sessions WHERE session_id = ?",
        fork.session_id,
    )
    assert (parent, seq) == (source, 2)
    page = await store.list_sessions()
    listed = {s.session_id: s for s in page.items}
    assert (listed[fork.session_id].parent_session_id, listed[fork.session_id].fork_seq) == (
        source,
        2,
    )
    assert listed[source].parent_session_id is None and listed[source].fork_seq is None


async def test_lineage_round_trips_through_the_jsonl_header(store: Store) -> None:
    import json

    from sessionkeeper.transfer.records import session_from_record, session_record

    source = await conversation(store, 6)
    fork = await store.fork_session(source, at_seq=3, new_session_id="exported")
    record = json.loads(json.dumps(session_record(fork)))
    assert (record["parent_session_id"], record["fork_seq"]) == (source, 3)
    items = await all_messages(store, "exported")
    await store.delete_session("exported")
    assert await store.import_session(session_from_record(record), items)
    back = await store.get_session("exported")
    assert (back.parent_session_id, back.fork_seq, back.message_count) == (source, 3, 3)
    assert [s.session_id for s in await store.list_branches(source)] == ["exported"]
    bad = {**record, "session_id": "bad-lineage", "fork_seq": -2}
    with pytest.raises(InvalidInput, match="fork_seq"):
        await store.import_session(session_from_record(bad), [])


async def test_rewind_takes_the_tails_keys_and_compactions_with_it(store: Store) -> None:
    """After a rewind, a retry of a write whose messages moved to the branch is a new write
    (its key was freed, as deleting a message frees it), a key of a kept message still
    replays, and a compaction that summarised moved messages no longer stands in the
    session's window; usage of the moved rows stays with them."""
    s = await store.create_session(agent_id="a")
    for i in range(1, 5):
        await store.add_message(s.session_id, "user", f"m{i}", idempotency_key=f"k{i}")

    async def summarize(messages: list[Message]) -> str:
        return "summary of " + ",".join(m.content for m in messages)

    done = await store.compact_session(s.session_id, keep_last_tokens=0, summarize=summarize)
    assert done is not None and done.through_seq > 2
    rewound = await store.rewind_session(s.session_id, 2)
    assert rewound.branch is not None

    kept = await store.add_message(s.session_id, "user", "m2", idempotency_key="k2")
    assert kept.seq == 2  # replayed: the message is still there
    again = await store.add_message(s.session_id, "user", "m3", idempotency_key="k3")
    assert again.seq == 3  # written anew in the rewound session
    assert [m.content for m in await store.get_messages(s.session_id)] == ["m1", "m2", "m3"]
    assert await store.get_compaction(s.session_id) is None
    window = await store.context_window(s.session_id, 10_000)
    assert [m.content for m in window.messages] == ["m1", "m2", "m3"]
    branch = await store.get_messages(rewound.branch.session_id)
    assert [m.content for m in branch] == ["m1", "m2", "m3", "m4"]
    # The branch is the conversation as it was, its summary included.
    assert await store.get_compactions(rewound.branch.session_id) == [
        dataclasses.replace(done, session_id=rewound.branch.session_id)
    ]


async def test_a_fork_takes_the_compactions_of_the_messages_it_copies(store: Store) -> None:
    """A fork's window is its source's as it was at the fork: the compactions that stand for
    copied messages come along (a fork before a cut gets none of that cut's)."""
    s = await store.create_session(agent_id="a")
    await store.add_message(s.session_id, "system", "Be brief.")
    for i in range(1, 13):
        await store.add_message(s.session_id, "user", f"question {i}")

    async def summarize(messages: list[Message]) -> str:
        return f"summary through {messages[-1].seq}"

    first = await store.compact_session(s.session_id, keep_last_tokens=20, summarize=summarize)
    await store.add_messages(s.session_id, [NewMessage("user", f"more {i}") for i in range(8)])
    second = await store.compact_session(s.session_id, keep_last_tokens=20, summarize=summarize)
    assert first is not None and second is not None
    assert first.through_seq < second.through_seq

    whole = await store.fork_session(s.session_id)
    assert await store.get_compactions(whole.session_id) == [
        dataclasses.replace(c, session_id=whole.session_id) for c in (first, second)
    ]
    source_window = await store.context_window(s.session_id, 10_000)
    fork_window = await store.context_window(whole.session_id, 10_000)
    assert [(m.seq, m.content) for m in fork_window.messages] == [
        (m.seq, m.content) for m in source_window.messages
    ]
    between = await store.fork_session(s.session_id, at_seq=second.through_seq - 1)
    got = await store.get_compactions(between.session_id)
    assert [c.through_seq for c in got] == [first.through_seq]
    before = await store.fork_session(s.session_id, at_seq=first.through_seq - 1)
    assert await store.get_compactions(before.session_id) == []
    # The source keeps its own.
    assert await store.get_compactions(s.session_id) == [first, second]

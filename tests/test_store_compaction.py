"""Compaction (Store.compact_session), on SQLite file, SQLite memory and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

import rawdb
from sessionkeeper.errors import Conflict, InvalidInput, NotFound, TooLarge
from sessionkeeper.models import Message, NewMessage
from sessionkeeper.store.compaction import summarised_count
from sessionkeeper.store.core import Store


class Scripted:
    """A scripted summarizer: records what it was given, answers a fixed shape."""

    def __init__(self, gate: asyncio.Event | None = None) -> None:
        self.calls: list[list[Message]] = []
        self.gate = gate
        self.called = asyncio.Event()

    async def __call__(self, messages: list[Message]) -> str:
        self.calls.append(messages)
        self.called.set()
        if self.gate is not None:
            await self.gate.wait()
        return f"Summary of {len(messages)} messages, up to seq {messages[-1].seq}."


def conversation(turns: int) -> list[NewMessage]:
    """A system prompt, then turns of: user, assistant tool call, two tool results, reply."""
    out = [NewMessage("system", "You are a careful assistant.")]
    for t in range(turns):
        calls = [
            {"id": f"c{t}a", "type": "function", "function": {"name": "look", "arguments": "{}"}},
            {"id": f"c{t}b", "type": "function", "function": {"name": "find", "arguments": "{}"}},
        ]
        out += [
            NewMessage("user", f"question {t}: what about the weather in city {t}?"),
            NewMessage("assistant", "", metadata={"tool_calls": calls}),
            NewMessage("tool", f"result a{t}: sunny", metadata={"tool_call_id": f"c{t}a"}),
            NewMessage("tool", f"result b{t}: warm", metadata={"tool_call_id": f"c{t}b"}),
            NewMessage("assistant", f"In city {t} it is sunny and warm."),
        ]
    return out


async def filled(store: Store, n: int = 500) -> str:
    s = await store.create_session()
    items = conversation(n // 5 + 1)[:n]
    for start in range(0, n, 100):
        await store.add_messages(s.session_id, items[start : start + 100])
    return s.session_id


async def every_message(store: Store, sid: str) -> list[Message]:
    out: list[Message] = []
    after = 0
    while True:
        page = await store.get_messages(sid, after_seq=after, limit=500, include_compacted=True)
        if not page:
            return out
        out += page
        after = page[-1].seq


def assert_no_orphans(messages: list[Message]) -> None:
    """Every tool result follows the assistant call it answers, and every call's results are
    all there."""
    calls: dict[str, bool] = {}
    for m in messages:
        if m.role == "assistant":
            for c in m.metadata.get("tool_calls") or []:
                calls[c["id"]] = False
        if m.role == "tool":
            assert m.metadata["tool_call_id"] in calls, f"orphan tool result at seq {m.seq}"
            calls[m.metadata["tool_call_id"]] = True
    assert all(calls.values()), "a tool call without its result"


async def test_compacting_500_messages_with_tool_calls(store: Store) -> None:
    sid = await filled(store, 500)
    before = [m.to_dict() for m in await every_message(store, sid)]
    plain = await store.context_window(sid, 1_000)
    summarize = Scripted()

    done = await store.compact_session(sid, keep_last_tokens=600, summarize=summarize)

    assert done is not None
    given = summarize.calls[0]
    assert [m.seq for m in given] == list(range(2, done.through_seq + 1))  # prompt pinned
    assert (done.from_seq, done.message_count) == (2, done.through_seq - 1)
    assert done.compacted_tokens == sum(m.token_count for m in given)
    assert done.token_count == store.tokenizer.count(done.summary)
    # The cut is between units: the last summarised message is no tool call, the first
    # kept one no tool result.
    kept = await store.get_messages(sid, include_compacted=False, limit=500)
    assert kept[0].seq == done.through_seq + 1 and kept[0].role != "tool"
    assert not given[-1].metadata.get("tool_calls")
    assert kept[-1].seq == 500
    assert sum(m.token_count + 3 for m in kept) <= 600

    window = await store.context_window(sid, 1_000)
    assert window.messages[0].seq == 1 and window.messages[0].role == "system"
    summary = window.messages[1]
    assert summary.role == "system" and summary.content == done.summary
    assert summary.metadata["compaction"]["through_seq"] == done.through_seq
    raw = window.messages[2:]
    assert raw and raw[0].seq > done.through_seq and raw[-1].seq == 500
    assert_no_orphans(raw)
    assert window.compacted_through == done.through_seq
    assert window.total_tokens <= 1_000
    assert window.dropped_messages == 500 - 1 - len(raw)
    assert plain.compacted_through is None

    # The originals are all there, unchanged; search still finds compacted text.
    assert [m.to_dict() for m in await every_message(store, sid)] == before
    assert len(await store.get_messages(sid, limit=500)) == 500  # plain: every message
    hits = await store.search_messages("city", session_id=sid, limit=100)
    assert any(h.seq <= done.through_seq for h in hits)
    assert await store.get_compaction(sid) == done
    assert (await store.get_session(sid)).message_count == 500


async def test_a_second_compaction_summarises_the_first(store: Store) -> None:
    sid = await filled(store, 100)
    first = await store.compact_session(sid, keep_last_tokens=300, summarize=Scripted())
    assert first is not None
    await store.add_messages(sid, conversation(20)[1:])
    summarize = Scripted()
    second = await store.compact_session(sid, keep_last_tokens=300, summarize=summarize)
    assert second is not None
    given = summarize.calls[0]
    assert given[0].content == first.summary and given[0].metadata["compaction"]
    assert [m.seq for m in given[1:]] == list(range(first.through_seq + 1, second.through_seq + 1))
    assert second.from_seq == 2
    assert second.message_count == second.through_seq - 1
    window = await store.context_window(sid, 100_000)
    assert [m.content for m in window.messages[:2]][1] == second.summary
    assert window.messages[2].seq == second.through_seq + 1
    # Both are kept, oldest first: the last is the one in force.
    assert await store.get_compactions(sid) == [first, second]
    assert await store.get_compaction(sid) == second


async def test_every_compaction_of_a_session(store: Store) -> None:
    sid = await filled(store, 20)
    assert await store.get_compactions(sid) == []
    with pytest.raises(NotFound):
        await store.get_compactions("no-such-session")
    with pytest.raises(InvalidInput):
        await store.get_compactions("bad id!")


async def test_nothing_to_compact(store: Store) -> None:
    sid = await filled(store, 10)
    assert await store.compact_session(sid, keep_last_tokens=100_000, summarize=Scripted()) is None
    assert await store.get_compaction(sid) is None
    empty = await store.create_session()
    assert (
        await store.compact_session(empty.session_id, keep_last_tokens=0, summarize=Scripted())
        is None
    )


async def test_a_pending_tool_call_is_never_summarised(store: Store) -> None:
    s = await store.create_session()
    await store.add_messages(s.session_id, conversation(3)[1:])
    await store.add_message(s.session_id, "user", "one more")
    call = [{"id": "x", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    pending = await store.add_message(s.session_id, "assistant", "", metadata={"tool_calls": call})
    done = await store.compact_session(s.session_id, keep_last_tokens=0, summarize=Scripted())
    assert done is not None and done.through_seq == pending.seq - 1
    await store.add_message(s.session_id, "tool", "42", metadata={"tool_call_id": "x"})
    window = await store.context_window(s.session_id, 10_000)
    assert [m.role for m in window.messages] == ["system", "assistant", "tool"]


def _m(seq: int, role: str, tokens: int = 10, **meta: Any) -> Message:
    from datetime import UTC, datetime

    return Message("s", seq, role, "x", None, None, tokens, meta, datetime.now(UTC))


def test_the_cut_keeps_tool_units_whole() -> None:
    call = {"tool_calls": [{"id": "a"}]}
    msgs = [
        _m(1, "user"),
        _m(2, "assistant", **call),
        _m(3, "tool", tool_call_id="a"),
        _m(4, "tool", tool_call_id="a"),
        _m(5, "assistant"),
    ]
    # 13 tokens a message: room for the reply and one tool result, not the whole unit.
    assert summarised_count(msgs, 13 * 2) == 4
    assert summarised_count(msgs, 13 * 4) == 1  # the unit (call + results) fits whole
    assert summarised_count(msgs, 0) == 5
    assert summarised_count(msgs[:2], 0) == 1  # the call waits for its results


async def test_bad_input_changes_nothing(store: Store) -> None:
    sid = await filled(store, 50)

    async def returns(value: Any) -> Any:
        return value

    for keep in (-1, 1.5, "10", True):
        with pytest.raises(InvalidInput, match="keep_last_tokens"):
            await store.compact_session(sid, keep_last_tokens=keep, summarize=Scripted())  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="summarize"):
        await store.compact_session(sid, keep_last_tokens=0, summarize="nope")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="empty summary"):
        await store.compact_session(sid, keep_last_tokens=0, summarize=lambda m: returns("  "))
    with pytest.raises(InvalidInput, match="summary's text"):
        await store.compact_session(sid, keep_last_tokens=0, summarize=lambda m: returns(42))
    with pytest.raises(TooLarge):
        await store.compact_session(
            sid, keep_last_tokens=0, summarize=lambda m: returns("y" * 100_001)
        )
    with pytest.raises(InvalidInput, match="NUL"):
        await store.compact_session(sid, keep_last_tokens=0, summarize=lambda m: returns("a\x00"))
    with pytest.raises(NotFound):
        await store.compact_session("nope", keep_last_tokens=0, summarize=Scripted())
    with pytest.raises(NotFound):
        await store.get_compaction("nope")
    with pytest.raises(InvalidInput, match="include_compacted"):
        await store.get_messages(sid, include_compacted="no")  # type: ignore[arg-type]
    assert await store.get_compaction(sid) is None
    assert await rawdb.fetch(store, "SELECT count(*) FROM compactions") == [(0,)]


async def test_deleting_a_compacted_message_drops_the_compaction(store: Store) -> None:
    sid = await filled(store, 60)
    first = await store.compact_session(sid, keep_last_tokens=200, summarize=Scripted())
    assert first is not None
    await store.add_messages(sid, conversation(6)[1:])
    second = await store.compact_session(sid, keep_last_tokens=200, summarize=Scripted())
    assert second is not None
    # A message only the second stands for: the first is in force again.
    await store.delete_message(sid, second.through_seq)
    assert await store.get_compaction(sid) == first
    # One the first stands for: none left; the window is raw messages again.
    await store.delete_message(sid, 3)
    assert await store.get_compaction(sid) is None
    window = await store.context_window(sid, 100_000)
    assert window.compacted_through is None and window.messages[1].seq == 2
    # The pinned prompt is not something a summary stands for.
    third = await store.compact_session(sid, keep_last_tokens=200, summarize=Scripted())
    assert third is not None
    await store.delete_message(sid, 1)
    assert await store.get_compaction(sid) == third
    await store.clear_messages(sid)
    assert await store.get_compaction(sid) is None
    await store.compact_session(sid, keep_last_tokens=0, summarize=Scripted())
    sid2 = await filled(store, 30)
    await store.compact_session(sid2, keep_last_tokens=0, summarize=Scripted())
    await store.delete_session(sid2)
    assert await rawdb.fetch(store, "SELECT count(*) FROM compactions") == [(0,)]


async def test_the_window_budget_must_hold_prompt_and_summary(store: Store) -> None:
    sid = await filled(store, 30)

    async def long(messages: list[Message]) -> str:
        return "word " * 400

    await store.compact_session(sid, keep_last_tokens=0, summarize=long)
    with pytest.raises(InvalidInput, match="compaction summary"):
        await store.context_window(sid, 200)
    assert (await store.context_window(sid, 1_000)).compacted_through is not None


async def test_a_delete_during_the_summary_is_a_conflict(store: Store) -> None:
    sid = await filled(store, 40)
    gate = asyncio.Event()
    summarize = Scripted(gate)
    task = asyncio.create_task(store.compact_session(sid, keep_last_tokens=0, summarize=summarize))
    await summarize.called.wait()
    await store.delete_message(sid, 5)
    gate.set()
    with pytest.raises(Conflict, match="nothing was compacted"):
        await task
    assert await store.get_compaction(sid) is None


async def test_racing_compactions_summarise_once(store: Store) -> None:
    sid = await filled(store, 40)
    gate = asyncio.Event()
    a, b = Scripted(gate), Scripted(gate)
    tasks = [
        asyncio.create_task(store.compact_session(sid, keep_last_tokens=0, summarize=s))
        for s in (a, b)
    ]
    await asyncio.gather(a.called.wait(), b.called.wait())
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert sum(isinstance(r, Conflict) for r in results) == 1
    assert await rawdb.fetch(store, "SELECT count(*) FROM compactions") == [(1,)]


async def test_four_writers_during_compaction_lose_nothing(file_db_url: str) -> None:
    main = await Store.open(file_db_url)
    writers = [await Store.open(file_db_url) for _ in range(4)]
    try:
        sid = await filled(main, 500)
        gate = asyncio.Event()
        summarize = Scripted(gate)
        task = asyncio.create_task(
            main.compact_session(sid, keep_last_tokens=2_000, summarize=summarize)
        )

        async def write(w: int, store: Store) -> None:
            for i in range(25):
                if i == 10:  # the rest while the summary is being written
                    await summarize.called.wait()
                await store.add_message(sid, "user", f"writer {w} message {i}")

        await asyncio.gather(*(write(w, s) for w, s in enumerate(writers)))
        assert not task.done()
        gate.set()
        done = await task
        assert done is not None and done.through_seq < 500
        summarised = {m.seq for m in summarize.calls[0]}
        assert max(summarised) <= 500
        messages = await every_message(main, sid)
        assert len(messages) == 600 and [m.seq for m in messages] == list(range(1, 601))
        for w in range(4):
            mine = [m.content for m in messages if m.content.startswith(f"writer {w} ")]
            assert mine == [f"writer {w} message {i}" for i in range(25)]
        session = await main.get_session(sid)
        assert session.message_count == 600
        window = await main.context_window(sid, 100_000)
        assert window.messages[1].content == done.summary
        assert [m.seq for m in window.messages[2:]] == list(range(done.through_seq + 1, 601))
    finally:
        for s in (main, *writers):
            await s.close()


def test_the_readme_example_runs() -> None:
    """The README's "Compaction" example, as it is."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Compaction\n", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    exec(compile(code.group(1), "README.md", "exec"), {"__name__": "readme"})


async def test_import_session_keeps_compactions_and_refuses_bad_ones(store: Store) -> None:
    sid = await filled(store, 100)
    made = await store.compact_session(sid, keep_last_tokens=300, summarize=Scripted())
    assert made is not None
    session = dataclasses.replace(await store.get_session(sid), session_id="copy")
    messages = [dataclasses.replace(m, session_id="copy") for m in await every_message(store, sid)]
    good = dataclasses.replace(made, session_id="copy")
    for bad, why in [
        (dataclasses.replace(good, through_seq=101), r"seqs 2\.\.101, which must be within"),
        (dataclasses.replace(good, session_id=sid), "it belongs to session"),
        (dataclasses.replace(good, summary=""), "the summary is empty"),
        (dataclasses.replace(good, token_count=-1), "token_count must be"),
    ]:
        with pytest.raises(InvalidInput, match=why):
            await store.import_session(session, messages, compactions=[bad])
        with pytest.raises(NotFound):  # nothing of it written
            await store.get_session("copy")
    assert await store.import_session(session, messages, compactions=[good])
    assert await store.get_compactions("copy") == [good]
    windows = [await store.context_window(s, 2_000) for s in (sid, "copy")]
    assert [(m.seq, m.content) for m in windows[0].messages] == [
        (m.seq, m.content) for m in windows[1].messages
    ]

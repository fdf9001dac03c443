"""The integrations' shared helpers (``integrations/_common.py``) and their fast paths."""

from __future__ import annotations

import gc
import json
import threading
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from sessionkeeper import InvalidInput, NotFound, TooLarge, bridge, open_store
from sessionkeeper.integrations._binding import SessionBinding
from sessionkeeper.integrations._common import (
    _JSONB_INEXACT,
    _inexact,
    keep_whole,
)
from sessionkeeper.integrations.langchain import SessionkeeperChatMessageHistory
from sessionkeeper.integrations.openai_agents import SessionkeeperSession
from sessionkeeper.models import MAX_METADATA_BYTES
from sessionkeeper.store import validate


def _deep(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = {"d": value}
    return value


_SAMPLES = [
    {"a": 1e16},
    {"a": -0.0},
    {"a": 5e-07},
    {"a": [1.5, -2.0, 0.0]},
    {"a": "e+ e- -0.0 in text only"},
    {"a": "1e+5 written as text"},
    {"a": "x-0.01"},
    {"a": -0.05},
    {"a": 10**20},
    {"a": "plain", "b": [1, 2, {"c": None}]},
]


@pytest.mark.parametrize("obj", _SAMPLES)
def test_inexact_prefilter_agrees_with_the_regex(obj: object) -> None:
    text = json.dumps(obj, ensure_ascii=False)
    assert _inexact(text) == (_JSONB_INEXACT.search(text) is not None)


def test_keep_whole_keeps_exact_numbers_as_text() -> None:
    assert keep_whole("item", {"a": 1.5}) == {"item": {"a": 1.5}}
    assert keep_whole("item", {"a": 1e16}) == {"item_json": '{"a": 1e+16}'}


# ── one check, one serialisation: what the store refuses is still refused ──────

_BAD_ITEMS: list[tuple[str, Any, type[Exception]]] = [
    ("nan", float("nan"), InvalidInput),
    ("infinity", float("inf"), InvalidInput),
    ("non-string key", {1: "one"}, InvalidInput),
    ("None key", {None: "none"}, InvalidInput),
    ("NUL", "a\x00b", InvalidInput),
    ("NUL in a key", {"a\x00": 1}, InvalidInput),
    ("lone surrogate", "a\ud800b", InvalidInput),
    ("integer past 64 bits", 2**70, InvalidInput),
    ("tuple", ("a", "b"), InvalidInput),
    ("set", {"a"}, InvalidInput),
    ("too deep", _deep(70), InvalidInput),
    ("too large", "x" * (MAX_METADATA_BYTES + 10), TooLarge),
]


def _ids(cases: list[tuple[str, Any, type[Exception]]]) -> list[str]:
    return [name for name, _, _ in cases]


@pytest.mark.parametrize(("name", "value", "error"), _BAD_ITEMS, ids=_ids(_BAD_ITEMS))
async def test_bad_items_are_refused_through_the_sdk_session(
    db_url: str, name: str, value: Any, error: type[Exception]
) -> None:
    async with await open_store(db_url) as store:
        session = SessionkeeperSession("bad", store=store)
        await session.add_items([{"role": "user", "content": "kept"}])
        bad = {"role": "user", "content": "refused", "extra": value}
        with pytest.raises(error):
            await session.add_items([{"role": "user", "content": "fine"}, bad])  # type: ignore[list-item]
        assert await session.get_items() == [{"role": "user", "content": "kept"}]
        assert (await store.get_session("bad")).message_count == 1


@pytest.mark.parametrize(("name", "value", "error"), _BAD_ITEMS, ids=_ids(_BAD_ITEMS))
async def test_bad_messages_are_refused_through_the_langchain_history(
    db_url: str, name: str, value: Any, error: type[Exception]
) -> None:
    async with await open_store(db_url) as store:
        history = SessionkeeperChatMessageHistory("bad", store=store)
        await history.aadd_messages([HumanMessage("kept")])
        bad = AIMessage(content="refused", response_metadata={"extra": value})
        with pytest.raises(error):
            await history.aadd_messages([HumanMessage("fine"), bad])
        assert [m.content for m in await history.aget_messages()] == ["kept"]


async def test_good_items_are_stored_as_checked(db_url: str) -> None:
    """Unicode, escapes, big but legal integers, deep but legal nesting: stored, read back
    equal, and the stored JSON is what the Store reads (both databases)."""
    odd = {
        "text": 'é ✓ 𝄞 "quoted" \\ back\nline \u2028 \x01',
        "big": 2**63 - 1,
        "small": -(2**63),
        "floats": [0.1, 1.5, -2.25],
        "deep": _deep(60),
        "empty": [{}, []],
        "bool": [True, False, None],
    }
    async with await open_store(db_url) as store:
        session = SessionkeeperSession("good", store=store)
        item = {"role": "user", "content": "odd", "odd": odd}
        await session.add_items([item])  # type: ignore[list-item]
        assert await session.get_items() == [item]
        (message,) = await store.get_messages("good")
        assert type(message.metadata) is dict and message.metadata["item"] == item
        added = await store.add_messages(
            "good", [{"role": "user", "content": "x", "metadata": odd}]
        )
        assert type(added[0].metadata) is dict and added[0].metadata == odd
        assert (await store.get_messages("good", last=1))[0].metadata == odd


@pytest.mark.parametrize("value", [v for _, v, _ in _BAD_ITEMS] + [{"fine": [1, 2.5, "x"]}])
def test_checked_metadata_agrees_with_the_full_check(value: Any) -> None:
    """The fast path (one json.dumps, containers walked) refuses exactly what the full walk
    refuses, with the same error."""
    metadata = {"v": value}
    try:
        validate._check_json(metadata, "metadata")
        size = len(json.dumps(metadata, ensure_ascii=False, allow_nan=False).encode())
        expected: Exception | None = None
        if size > MAX_METADATA_BYTES:
            expected = TooLarge("")
    except InvalidInput as exc:
        expected = exc
    if expected is None:
        checked = validate.checked_metadata(metadata)
        assert checked == metadata
        assert checked.json == json.dumps(metadata, ensure_ascii=False)
    else:
        with pytest.raises(type(expected)) as caught:
            validate.checked_metadata(metadata)
        if isinstance(expected, InvalidInput) and not isinstance(expected, TooLarge):
            assert str(caught.value) == str(expected)


# ── the narrow read: seq and metadata of the newest N ──────────────────────────


async def test_message_metadata_reads_the_newest_n(db_url: str) -> None:
    async with await open_store(db_url) as store:
        with pytest.raises(NotFound):
            await store._message_metadata("nope", last=5)
        await store.create_session(session_id="s", agent_id="a")
        assert await store._message_metadata("s", last=5) == []
        rows = [
            {"role": "user", "content": f"m{i}", "metadata": {"i": i} if i % 3 else None}
            for i in range(1, 11)
        ]
        await store.add_messages("s", rows)
        await store.delete_message("s", 9)
        got = await store._message_metadata("s", last=4)
        assert got == [(6, {}), (7, {"i": 7}), (8, {"i": 8}), (10, {"i": 10})]
        assert all(type(m) is dict for _, m in got)
        full = await store.get_messages("s", last=9)
        assert await store._message_metadata("s", last=500) == [(m.seq, m.metadata) for m in full]
        with pytest.raises(InvalidInput):
            await store._message_metadata("s", last=0)
        with pytest.raises(InvalidInput):
            await store._message_metadata("s", last=501)
        with pytest.raises(InvalidInput):
            await store._message_metadata("bad id!", last=1)


async def test_windowed_reads_fall_back_for_messages_written_by_other_means(db_url: str) -> None:
    async with await open_store(db_url) as store:
        session = SessionkeeperSession("mixed", store=store)
        history = SessionkeeperChatMessageHistory("mixed", store=store, limit=3)
        await session.add_items([{"role": "user", "content": "from the SDK"}])
        await store.add_message("mixed", "assistant", "from the CLI")
        assert await session.get_items(limit=2) == [
            {"role": "user", "content": "from the SDK"},
            {"role": "assistant", "content": "from the CLI"},
        ]
        assert await session.get_items(limit=1) == [
            {"role": "assistant", "content": "from the CLI"}
        ]
        got = await history.aget_messages()
        assert [(m.type, m.content) for m in got] == [
            ("human", "from the SDK"),
            ("ai", "from the CLI"),
        ]
        await history.aadd_messages([HumanMessage("from LangChain", id="h1")])
        assert [(m.type, m.content) for m in await history.aget_messages()] == [
            ("human", "from the SDK"),
            ("ai", "from the CLI"),
            ("human", "from LangChain"),
        ]
        history.limit = 1
        assert await history.aget_messages() == [HumanMessage("from LangChain", id="h1")]
        assert await SessionkeeperSession("none", store=store).get_items(limit=5) == []
        empty = SessionkeeperChatMessageHistory("none", store=store, limit=5)
        assert await empty.aget_messages() == []


# ── blocking reads on the calling thread ───────────────────────────────────────


def test_blocking_reads_run_on_the_calling_thread(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``messages`` where no loop runs reads on the caller's thread (its own loop, kept across
    calls); writes go to the shared loop; threads read side by side; each sees every write."""
    seen: list[tuple[str, str]] = []
    store_of = SessionBinding.store

    async def recording(self: SessionBinding) -> Any:
        seen.append((threading.current_thread().name, self.session_id))
        return await store_of(self)

    monkeypatch.setattr(SessionBinding, "store", recording)
    factory = SessionkeeperChatMessageHistory.factory(db_url, limit=50)
    try:
        factory("t").add_messages([HumanMessage("one"), AIMessage("two")])
        assert seen[-1][0] == "sessionkeeper-sync"  # the write: the shared loop
        assert [m.content for m in factory("t").messages] == ["one", "two"]
        assert seen[-1][0] == threading.current_thread().name
        first = bridge._thread_loop()
        assert [m.content for m in factory("t").messages] == ["one", "two"]
        assert bridge._thread_loop() is first and not first.is_closed()

        errors: list[BaseException] = []
        loops: list[Any] = []

        def reader(n: int) -> None:
            try:
                history = factory(f"r{n}")
                history.add_messages([HumanMessage(f"r{n}-{i}") for i in range(3)])
                for _ in range(5):
                    got = [m.content for m in history.messages]
                    assert got == [f"r{n}-{i}" for i in range(3)], got
                assert [m.content for m in factory("t").messages] == ["one", "two"]
                loops.append(bridge._thread_loop())
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=reader, args=(n,), name=f"reader-{n}") for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors, errors
        assert len({id(loop) for loop in loops}) == 4 and first not in loops
        readers = {name for name, sid in seen if sid.startswith("r") and name.startswith("reader")}
        assert readers == {f"reader-{n}" for n in range(4)}
        del threads
        gc.collect()
        assert all(loop.is_closed() for loop in loops)  # closed with their threads
        assert [m.content for m in factory("r0").messages] == ["r0-0", "r0-1", "r0-2"]
    finally:
        factory.close()


async def test_blocking_reads_inside_a_running_loop_use_the_shared_loop(db_url: str) -> None:
    async with await open_store(db_url) as store:
        history = SessionkeeperChatMessageHistory("in-loop", store=store)
        await history.aadd_messages([HumanMessage("hi")])
        assert [m.content for m in history.messages] == ["hi"]  # no deadlock, no nesting error


# ── one from_url rule (docs/integrations.md, "Opening the store: one convention") ──────


def _from_url_classes() -> list[type]:
    from sessionkeeper.integrations.adk import SessionkeeperSessionService
    from sessionkeeper.integrations.langgraph import AsyncSessionkeeperSaver, SessionkeeperSaver

    return [
        SessionkeeperSession,
        SessionkeeperChatMessageHistory,
        AsyncSessionkeeperSaver,
        SessionkeeperSaver,
        SessionkeeperSessionService,
    ]


@pytest.mark.parametrize("cls", _from_url_classes(), ids=lambda c: c.__name__)
def test_from_url_takes_the_constructor_options_and_store_options(cls: type) -> None:
    import inspect
    import typing

    from_url = inspect.signature(cls.from_url).parameters
    init = inspect.signature(cls.__init__).parameters
    store_options = from_url["store_options"]
    assert (store_options.kind, store_options.default) == (inspect.Parameter.KEYWORD_ONLY, None)
    keyword_only = inspect.Parameter.KEYWORD_ONLY
    keywords = {n: p for n, p in init.items() if p.kind is keyword_only and n != "store"}
    named = {n for n, p in from_url.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    rest = [p for p in from_url.values() if p.kind is inspect.Parameter.VAR_KEYWORD]
    if rest:  # the savers: their options as a TypedDict (Unpack), the constructor's exactly
        hints = typing.get_type_hints(cls.from_url.__wrapped__, include_extras=True)
        (options,) = typing.get_args(hints[rest[0].name])
        named |= set(typing.get_type_hints(options))
    assert named - {"store_options"} == set(keywords)
    for name in named & set(keywords):
        if name in from_url:
            assert from_url[name].default == keywords[name].default, name


async def test_store_options_reach_open_store(
    file_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sessionkeeper
    from sessionkeeper.integrations.adk import SessionkeeperSessionService
    from sessionkeeper.integrations.langgraph import AsyncSessionkeeperSaver

    seen: list[dict[str, Any]] = []
    real = sessionkeeper.open_store

    async def recording(url: str | None = None, **kwargs: Any) -> Any:
        seen.append(kwargs)
        return await real(url, **kwargs)

    monkeypatch.setattr(sessionkeeper, "open_store", recording)
    options = {"timeout": 7.5}
    async with SessionkeeperSession.from_url(
        "opts", file_db_url, agent_id="bot", store_options=options
    ) as session:
        await session.get_store()
    history = SessionkeeperChatMessageHistory.from_url("opts", file_db_url, store_options=options)
    await history.get_store()
    await history.aclose()
    async with AsyncSessionkeeperSaver.from_url(file_db_url, agent_id="bot", store_options=options):
        pass
    async with SessionkeeperSessionService.from_url(file_db_url, store_options=options):
        pass
    assert seen == [options] * 4

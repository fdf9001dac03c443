"""The MCP tools' work (``sessionkeeper/mcp/tools.py``, ``recall.py``) on every database:
scoping as on REST, recall's passages (neighbours, merges, duplicates, budget), remember,
and the Store's message-time filters that ``search_sessions`` passes on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sessionkeeper.api.principal import Principal
from sessionkeeper.errors import Forbidden, InvalidInput, NotFound
from sessionkeeper.mcp import recall as recall_mod
from sessionkeeper.mcp import tools
from sessionkeeper.mcp.tools import Caller
from sessionkeeper.models import NewMessage
from sessionkeeper.store.core import Store

ADMIN = Principal(name="admin")
ONLY_A = Principal(name="a", agent_ids=frozenset({"A"}))
A_ANN = Principal(name="ann", agent_ids=frozenset({"A"}), user_ids=frozenset({"ann"}))
MARKER_A = "the zephyr cobalt lighthouse is in Tromsø"
MARKER_B = "the zephyr cobalt lighthouse belongs to agent B"


async def _conversation(store: Store, agent: str, user: str | None, marker: str) -> str:
    s = await store.create_session(agent_id=agent, user_id=user, title=f"{agent} chat")
    await store.add_messages(
        s.session_id,
        [
            NewMessage("system", "You are helpful."),
            NewMessage("user", "Where is it?"),
            NewMessage("assistant", marker),
            NewMessage("user", "Thanks, noted."),
            NewMessage("assistant", "Anything else?"),
        ],
    )
    return s.session_id


async def test_search_sessions_is_scoped_like_rest(store: Store) -> None:
    a = await _conversation(store, "A", "ann", MARKER_A)
    b = await _conversation(store, "B", None, MARKER_B)
    found = await tools.search_sessions(Caller(store, ADMIN), "zephyr cobalt")
    assert {h["session_id"] for h in found["hits"]} == {a, b}
    hit = next(h for h in found["hits"] if h["session_id"] == a)
    assert hit["seq"] == 3 and hit["title"] == "A chat" and "<mark>" in hit["snippet"]
    scoped = await tools.search_sessions(Caller(store, ONLY_A), "zephyr cobalt")
    assert [h["session_id"] for h in scoped["hits"]] == [a]
    # Asking for B's agent under a key of A: nothing (as REST's agent_id filter gives).
    other = await tools.search_sessions(Caller(store, ONLY_A), "zephyr", agent_id="B")
    assert other["hits"] == []


async def test_message_time_filters(store: Store) -> None:
    s = await store.create_session()
    old = datetime(2024, 1, 1, tzinfo=UTC)
    new = datetime(2025, 6, 1, tzinfo=UTC)
    await store.add_messages(
        s.session_id,
        [
            NewMessage("user", "quartz old", created_at=old),
            NewMessage("user", "quartz new", created_at=new),
        ],
    )
    middle = datetime(2025, 1, 1, tzinfo=UTC)
    after = await store.search_messages("quartz", created_after=middle)
    before = await store.search_messages("quartz", created_before=middle)
    both = await store.search_messages(
        "quartz", created_after=old - timedelta(days=1), created_before=new + timedelta(days=1)
    )
    assert [h.seq for h in after] == [2]
    assert [h.seq for h in before] == [1]
    assert sorted(h.seq for h in both) == [1, 2]
    with pytest.raises(InvalidInput, match="created_after must be a timezone-aware"):
        await store.search_messages("quartz", created_after=datetime(2025, 1, 1))  # noqa: DTZ001


async def test_list_and_read_session_scoped(store: Store) -> None:
    a = await _conversation(store, "A", "ann", MARKER_A)
    b = await _conversation(store, "B", None, MARKER_B)
    listed = await tools.list_sessions(Caller(store, ONLY_A))
    assert [s["session_id"] for s in listed["sessions"]] == [a]
    read = await tools.read_session(Caller(store, ONLY_A), a, last=2)
    assert [m["seq"] for m in read["messages"]] == [4, 5]
    assert read["dropped_messages"] == 3
    default = await tools.read_session(Caller(store, ONLY_A), a)
    assert [m["seq"] for m in default["messages"]] == [1, 2, 3, 4, 5]
    budget = await tools.read_session(Caller(store, ONLY_A), a, max_tokens=20)
    assert budget["messages"][0]["role"] == "system"  # pinned, as in the context window
    assert budget["total_tokens"] <= 20 and budget["dropped_messages"] >= 1
    with pytest.raises(NotFound, match=f"session '{b}' not found"):
        await tools.read_session(Caller(store, ONLY_A), b)
    with pytest.raises(NotFound, match=f"session '{a}' not found"):
        await tools.read_session(Caller(store, Principal("bob", None, None, frozenset({"bob"}))), a)
    with pytest.raises(InvalidInput, match="either last or max_tokens"):
        await tools.read_session(Caller(store, ADMIN), a, last=1, max_tokens=10)
    with pytest.raises(InvalidInput, match="last must be an integer from 1 to 500"):
        await tools.read_session(Caller(store, ADMIN), a, last=0)


async def test_recall_gives_passages_with_neighbours(store: Store) -> None:
    a = await _conversation(store, "A", "ann", MARKER_A)
    b = await _conversation(store, "B", None, MARKER_B)
    got = await recall_mod.recall(Caller(store, ADMIN), "zephyr cobalt")
    assert {p["session_id"] for p in got["passages"]} == {a, b}
    passage = next(p for p in got["passages"] if p["session_id"] == a)
    assert [m["seq"] for m in passage["messages"]] == [2, 3, 4]
    assert [m["hit"] for m in passage["messages"]] == [False, True, False]
    assert passage["complete"] and passage["hit_seqs"] == [3]
    assert got["total_tokens"] == sum(
        m["token_count"] + 3 for p in got["passages"] for m in p["messages"]
    )
    scoped = await recall_mod.recall(Caller(store, A_ANN), "zephyr cobalt", context=0)
    assert [p["session_id"] for p in scoped["passages"]] == [a]
    assert [m["seq"] for m in scoped["passages"][0]["messages"]] == [3]


async def test_recall_merges_neighbouring_hits_and_drops_duplicates(store: Store) -> None:
    s = await store.create_session(title="one")
    await store.add_messages(
        s.session_id,
        [NewMessage("user", w) for w in ("walrus one", "filler", "walrus two", "end")],
    )
    copies = []
    for text in ("Seen: walrus three", "seen:   WALRUS three"):
        copy = await store.create_session(title="copy")
        await store.add_messages(copy.session_id, [NewMessage("user", text)])
        copies.append(copy.session_id)
    got = await recall_mod.recall(Caller(store, ADMIN), "walrus", context=1)
    # The two hits of "one" (seq 1 and 3) touch at seq 2: one passage, no message twice.
    ids = [p["session_id"] for p in got["passages"]]
    assert ids.count(s.session_id) == 1
    merged = next(p for p in got["passages"] if p["session_id"] == s.session_id)
    assert [m["seq"] for m in merged["messages"]] == [1, 2, 3, 4]
    assert merged["hit_seqs"] == [1, 3]
    # The copies say the same (but for case and spaces): the better one is kept, the other
    # left out and counted.
    assert len(set(ids) & set(copies)) == 1
    assert got["duplicates"] == 1 and len(ids) == 2


async def test_recall_keeps_to_the_budget_and_says_what_it_left(store: Store) -> None:
    s = await store.create_session()
    long = "padding " * 300
    await store.add_messages(
        s.session_id,
        [NewMessage("user", long), NewMessage("user", "ocelot here"), NewMessage("user", long)],
    )
    t = await store.create_session()
    await store.add_messages(t.session_id, [NewMessage("user", "ocelot " + long)])
    got = await recall_mod.recall(Caller(store, ADMIN), "ocelot", max_tokens=60, context=1)
    assert got["total_tokens"] <= 60
    kept = got["passages"]
    assert [p["session_id"] for p in kept] == [s.session_id]
    assert kept[0]["complete"] is False
    assert [m["seq"] for m in kept[0]["messages"]] == [2]
    assert got["omitted"] == 1  # the other passage's hit alone is over the budget
    with pytest.raises(InvalidInput, match="max_tokens must be an integer from 1 to 100000"):
        await recall_mod.recall(Caller(store, ADMIN), "ocelot", max_tokens=0)
    with pytest.raises(InvalidInput, match="has no words to search for"):
        await recall_mod.recall(Caller(store, ADMIN), "?!")


async def test_remember_appends_to_one_memory_session_per_user(store: Store) -> None:
    first = await tools.remember(Caller(store, A_ANN), "ann prefers window seats")
    second = await tools.remember(Caller(store, A_ANN), "ann is vegetarian")
    assert first["session_id"] == second["session_id"]
    assert (first["agent_id"], first["user_id"], second["seq"]) == ("A", "ann", 2)
    session = await store.get_session(first["session_id"])
    assert (session.session_type, session.agent_id, session.user_id) == ("memory", "A", "ann")
    found = await tools.search_sessions(Caller(store, A_ANN), "vegetarian")
    assert [h["session_id"] for h in found["hits"]] == [first["session_id"]]
    other = await tools.remember(Caller(store, ADMIN), "shared note", agent_id="A")
    assert other["session_id"] != first["session_id"] and other["user_id"] is None
    with pytest.raises(Forbidden, match="this key may not act for agent 'B'"):
        await tools.remember(Caller(store, A_ANN), "nope", agent_id="B")
    with pytest.raises(InvalidInput):
        await tools.remember(Caller(store, ADMIN), "x" * 100_001)
    assert (await store.get_session(first["session_id"])).message_count == 2


async def test_search_with_neighbours_gives_the_hits_and_their_surroundings(store: Store) -> None:
    a = await store.create_session(agent_id="A")
    b = await store.create_session(agent_id="B")
    await store.add_messages(
        a.session_id,
        [NewMessage("user", t) for t in ("a1", "a2 heron", "a3", "a4", "a5 heron", "a6")],
    )
    await store.add_messages(b.session_id, [NewMessage("user", t) for t in ("heron b1", "b2")])
    await store.delete_message(a.session_id, 4)
    plain = await store.search_messages("heron")
    hits, messages = await store.search_with_neighbours("heron", context=1)
    assert [(h.session_id, h.seq, h.snippet) for h in hits] == [
        (h.session_id, h.seq, h.snippet) for h in plain
    ]
    got = sorted((m.session_id, m.seq) for m in messages)
    assert len(got) == len(set(got))  # each message once, though a3 neighbours two hits
    assert [seq for sid, seq in got if sid == a.session_id] == [1, 2, 3, 5, 6]
    assert [seq for sid, seq in got if sid == b.session_id] == [1, 2]
    scoped, around = await store.search_with_neighbours("heron", context=0, agent_ids=["B"])
    assert [(h.session_id, h.seq) for h in scoped] == [(b.session_id, 1)]
    assert [(m.session_id, m.seq, m.content) for m in around] == [(b.session_id, 1, "heron b1")]
    assert await store.search_with_neighbours("nothing-matches-this") == ([], [])
    # Without snippets (recall reads the messages): the same hits and messages, no snippet.
    bare, same = await store.search_with_neighbours("heron", context=1, snippets=False)
    assert [(h.session_id, h.seq, h.rank) for h in bare] == [
        (h.session_id, h.seq, h.rank) for h in hits
    ]
    assert {h.snippet for h in bare} == {""}
    assert sorted((m.session_id, m.seq) for m in same) == got
    with pytest.raises(InvalidInput, match="context must be an integer from 0 to 10, got 11"):
        await store.search_with_neighbours("heron", context=11)

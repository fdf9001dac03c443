"""Retention policies in the store (issue 20, item 3), on SQLite file, memory and PostgreSQL:
setting them, what each rule takes, pinned sessions, dry runs, batches, bad input, and
writers appending to old sessions while a run deletes them."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import rawdb
from sessionkeeper.errors import InvalidInput, NotFound
from sessionkeeper.models import Policy
from sessionkeeper.store import retention
from sessionkeeper.store.core import Store


async def make(
    store: Store,
    session_id: str,
    *,
    agent: str = "A",
    idle: timedelta = timedelta(0),
    ended: timedelta | None = None,
    metadata: dict[str, Any] | None = None,
    messages: int = 1,
) -> None:
    """A session with ``messages`` messages, last active ``idle`` ago (and ended ``ended``
    ago, if given): old times written straight into the row."""
    await store.create_session(session_id=session_id, agent_id=agent, metadata=metadata)
    for i in range(messages):
        await store.add_message(session_id, "user", f"message {i} of {session_id}")
    now = datetime.now(UTC)
    if ended is not None:
        await store.end_session(session_id)
        await rawdb.execute(
            store,
            "UPDATE sessions SET ended_at = ? WHERE session_id = ?",
            rawdb.when(store, now - ended),
            session_id,
        )
    if idle:
        await rawdb.execute(
            store,
            "UPDATE sessions SET updated_at = ?, created_at = ? WHERE session_id = ?",
            rawdb.when(store, now - idle),
            rawdb.when(store, now - idle),
            session_id,
        )


async def old_sessions(store: Store, count: int, agent: str = "A") -> list[str]:
    """``count`` sessions of ``agent`` (``old1`` …), empty and last active two days ago, made
    in one statement."""
    then = rawdb.when(store, datetime.now(UTC) - timedelta(days=2))
    if store.dialect == "postgresql":
        series = "SELECT 'old' || n AS id FROM generate_series(1, ?::int) AS n"
    else:
        series = (
            "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < ?) "
            "SELECT 'old' || n AS id FROM s"
        )
    await rawdb.execute(
        store,
        "INSERT INTO sessions (session_id, agent_id, session_type, status, created_at, "
        "updated_at, message_count, token_count, last_seq, held_by) "
        f"SELECT id, ?, 'chat', 'active', ?, ?, 0, 0, 0, 0 FROM ({series}) AS ids",
        agent,
        then,
        then,
        count,
    )
    return [f"old{n}" for n in range(1, count + 1)]


async def ids(store: Store) -> set[str]:
    return {s.session_id async for s in store.iter_sessions()}


DAY = timedelta(days=1)


# ── setting policies ─────────────────────────────────────────────────────────


async def test_set_get_replace_and_delete_policies(store: Store) -> None:
    assert await store.get_policies() == []
    a = await store.set_policy("A", delete_after="30d", end_idle_after="2h")
    assert (a.agent_id, a.end_idle_minutes, a.delete_ended_days, a.delete_after_days) == (
        "A",
        120,
        None,
        30,
    )
    default = await store.set_policy(
        "*", delete_ended_after=timedelta(days=7), end_idle_after=timedelta(minutes=90)
    )
    assert (default.end_idle_minutes, default.delete_ended_days) == (90, 7)
    assert await store.get_policies() == [default, a]  # the default first, then by agent

    # A set replaces the agent's policy whole: rules not given are off.
    replaced = await store.set_policy("A", delete_ended_after=" 48h ")
    assert (replaced.end_idle_minutes, replaced.delete_ended_days) == (None, 2)
    assert replaced.delete_after_days is None
    assert [p.agent_id for p in await store.get_policies()] == ["*", "A"]
    assert (await store.get_policies())[1] == replaced

    assert await store.delete_policy("A") == replaced
    with pytest.raises(NotFound, match="no retention policy for agent 'A'"):
        await store.delete_policy("A")
    assert await store.get_policies() == [default]
    assert (await store.delete_policy("*")).agent_id == "*"
    assert await store.get_policies() == []


BAD_POLICIES: list[tuple[dict[str, Any], str, str]] = [
    ({"agent_id": ""}, "agent_id", "invalid agent_id"),
    ({"agent_id": "**"}, "agent_id", "invalid agent_id"),
    ({"agent_id": "a b"}, "agent_id", "invalid agent_id"),
    ({"agent_id": None}, "agent_id", "invalid agent_id"),
    ({"delete_after": "0d"}, "delete_after", "positive number of days"),
    ({"delete_after": "36h"}, "delete_after", "whole number of days"),
    ({"delete_ended_after": "90m"}, "delete_ended_after", "whole number of days"),
    ({"delete_after": "1.5d"}, "delete_after", "must be a duration"),
    ({"delete_after": "30"}, "delete_after", "must be a duration"),
    ({"delete_after": "2w"}, "delete_after", "must be a duration"),
    ({"delete_after": 30}, "delete_after", "must be a duration"),
    ({"delete_after": True}, "delete_after", "must be a duration"),
    ({"delete_after": "40000d"}, "delete_after", "at most a century"),
    ({"delete_after": "9999999999d"}, "delete_after", "at most a century"),
    ({"delete_after": timedelta(days=40000)}, "delete_after", "at most 36,600 days"),
    ({"delete_after": timedelta(days=-1)}, "delete_after", "positive number of days"),
    ({"end_idle_after": timedelta(seconds=30)}, "end_idle_after", "whole number of minutes"),
    ({"end_idle_after": "0m"}, "end_idle_after", "positive number of minutes"),
    ({"end_idle_after": "30s"}, "end_idle_after", "must be a duration"),
    # A bad rule after a good one: nothing of the call is kept.
    ({"end_idle_after": "1h", "delete_after": "1x"}, "delete_after", "must be a duration"),
]


async def test_bad_policy_is_refused_and_changes_nothing(store: Store) -> None:
    kept = await store.set_policy("A", delete_after="30d")
    for kwargs, field, words in BAD_POLICIES:
        call: dict[str, Any] = {"agent_id": "A", **kwargs}
        with pytest.raises(InvalidInput, match=words) as caught:
            await store.set_policy(**call)
        assert caught.value.details["field"] == field, kwargs
    assert await store.get_policies() == [kept]


async def test_bad_agent_for_delete_policy_is_refused(store: Store) -> None:
    with pytest.raises(InvalidInput, match="agent_id"):
        await store.delete_policy("a b")


# ── the rules ────────────────────────────────────────────────────────────────


async def test_delete_after_takes_old_sessions_of_its_agent_only_never_pinned(
    store: Store,
) -> None:
    await make(store, "a-old", idle=2 * DAY, messages=3)
    await make(store, "a-old-unpinned", idle=2 * DAY, metadata={"pinned": False})
    await make(store, "a-pinned", idle=2 * DAY, metadata={"pinned": True, "x": 1})
    await make(store, "a-pinned-text", idle=2 * DAY, metadata={"pinned": "true"})
    await make(store, "a-recent", idle=timedelta(hours=20))
    await make(store, "b-old", agent="B", idle=2 * DAY)
    await store.set_policy("A", delete_after="1d")

    run = await store.run_policies()
    assert not run.dry_run and (run.deleted_count, run.ended_count) == (3, 0)
    [rule] = run.rules
    assert (rule.agent_id, rule.rule, rule.action) == ("A", "delete_after", "delete")
    assert sorted(rule.session_ids) == ["a-old", "a-old-unpinned", "a-pinned-text"]
    assert (rule.count, rule.message_count) == (3, 5)
    assert abs(rule.cutoff - (run.now - DAY)) < timedelta(seconds=1)
    assert await ids(store) == {"a-pinned", "a-recent", "b-old"}
    # The messages went with their sessions (PostgreSQL: by the backend's own hand).
    assert (
        await rawdb.fetch(store, "SELECT count(*) FROM messages WHERE session_id = ?", "a-old")
    )[0][0] == 0
    assert (await store.run_policies()).deleted_count == 0


async def test_default_policy_covers_agents_without_their_own(store: Store) -> None:
    for agent in ("A", "B", "C"):
        await make(store, f"{agent.lower()}-old", agent=agent, idle=3 * DAY)
    await store.set_policy("*", delete_after="2d")
    await store.set_policy("C")  # no rules: C keeps everything, the default does not apply

    run = await store.run_policies()
    assert [(r.agent_id, r.rule) for r in run.rules] == [("*", "delete_after")]
    assert sorted(run.rules[0].session_ids) == ["a-old", "b-old"]
    assert await ids(store) == {"c-old"}

    await make(store, "a-old2", agent="A", idle=3 * DAY)
    await store.set_policy("A", delete_after="5d")  # its own policy replaces the default
    assert (await store.run_policies()).deleted_count == 0
    assert await ids(store) == {"c-old", "a-old2"}


async def test_delete_ended_after(store: Store) -> None:
    await make(store, "ended-long-ago", idle=10 * DAY, ended=9 * DAY)
    await make(store, "ended-recently", idle=10 * DAY, ended=2 * DAY)
    await make(store, "ended-then-used", idle=timedelta(hours=1), ended=9 * DAY)
    await make(store, "active-old", idle=10 * DAY)
    await make(store, "ended-pinned", idle=10 * DAY, ended=9 * DAY, metadata={"pinned": True})
    await store.set_policy("A", delete_ended_after="7d")

    run = await store.run_policies()
    assert [r.session_ids for r in run.rules] == [["ended-long-ago"]]
    assert await ids(store) == {"ended-recently", "ended-then-used", "active-old", "ended-pinned"}


async def test_end_idle_after_ends_and_keeps(store: Store) -> None:
    await make(store, "idle", idle=timedelta(hours=3))
    await make(store, "busy", idle=timedelta(minutes=30))
    await make(store, "idle-pinned", idle=timedelta(hours=3), metadata={"pinned": True})
    await make(store, "already-ended", idle=timedelta(hours=3), ended=timedelta(hours=3))
    before = await store.get_session("idle")
    ended_before = (await store.get_session("already-ended")).ended_at
    await store.set_policy("A", end_idle_after="2h")

    run = await store.run_policies()
    assert (run.ended_count, run.deleted_count) == (1, 0)
    assert [(r.action, r.session_ids, r.message_count) for r in run.rules] == [("end", ["idle"], 1)]
    after = await store.get_session("idle")
    assert after.status == "ended" and after.ended_at is not None
    assert after.ended_at >= run.now - timedelta(seconds=1)
    assert after.updated_at == before.updated_at  # ending by policy is not activity
    assert after.message_count == 1
    assert (await store.get_session("busy")).status == "active"
    assert (await store.get_session("idle-pinned")).status == "active"
    assert (await store.get_session("already-ended")).ended_at == ended_before
    assert (await store.run_policies()).ended_count == 0


async def test_dry_run_lists_what_a_run_does_and_changes_nothing(store: Store) -> None:
    await make(store, "old-idle", idle=3 * DAY)  # both delete_after and end_idle match it
    await make(store, "idle", idle=timedelta(hours=5))
    await make(store, "old-ended", idle=9 * DAY, ended=9 * DAY)
    await make(store, "b-idle", agent="B", idle=timedelta(hours=5))
    await store.set_policy("A", delete_after="2d", end_idle_after="1h", delete_ended_after="7d")
    await store.set_policy("*", end_idle_after="4h")

    dry = await store.run_policies(dry_run=True)
    listed = [(r.agent_id, r.rule, r.action, r.session_ids) for r in dry.rules]
    expected = [
        ("A", "delete_after", "delete", ["old-ended", "old-idle"]),
        ("A", "delete_ended_after", "delete", []),  # old-ended is the delete_after's already
        ("A", "end_idle_after", "end", ["idle"]),
        ("*", "end_idle_after", "end", ["b-idle"]),
    ]
    assert listed == expected
    assert (dry.dry_run, dry.deleted_count, dry.ended_count) == (True, 2, 2)
    assert await ids(store) == {"old-idle", "idle", "old-ended", "b-idle"}
    assert (await store.get_session("idle")).status == "active"

    real = await store.run_policies()
    assert [(r.agent_id, r.rule, r.action, sorted(r.session_ids)) for r in real.rules] == expected
    assert await ids(store) == {"idle", "b-idle"}
    assert (await store.get_session("b-idle")).status == "ended"


async def test_a_run_goes_in_bounded_batches(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retention, "POLICY_BATCH", 3)
    for i in range(8):
        await make(store, f"old{i}", idle=2 * DAY)
        await make(store, f"idle{i}", idle=timedelta(hours=2))
    await make(store, "pinned", idle=2 * DAY, metadata={"pinned": True})
    await store.set_policy("A", delete_after="1d", end_idle_after="1h")
    run = await store.run_policies()
    assert sorted(run.rules[0].session_ids) == [f"old{i}" for i in range(8)]
    assert sorted(run.rules[1].session_ids) == [f"idle{i}" for i in range(8)]
    assert await ids(store) == {"pinned", *(f"idle{i}" for i in range(8))}


async def test_now_moves_the_cutoffs_and_only_a_dry_run_looks_ahead(store: Store) -> None:
    await make(store, "s", idle=timedelta(hours=12))
    await store.set_policy("A", delete_after="1d")
    later = datetime.now(UTC) + DAY
    assert (await store.run_policies(dry_run=True)).deleted_count == 0
    ahead = await store.run_policies(dry_run=True, now=later)
    assert (ahead.now, ahead.rules[0].session_ids) == (later, ["s"])
    with pytest.raises(InvalidInput, match="future") as caught:
        await store.run_policies(now=later)
    assert caught.value.details["field"] == "now"
    with pytest.raises(InvalidInput, match="now"):
        await store.run_policies(now=datetime(2026, 1, 1))  # noqa: DTZ001 - naive on purpose
    with pytest.raises(InvalidInput, match="dry_run"):
        await store.run_policies(dry_run="yes")  # type: ignore[arg-type]
    assert await ids(store) == {"s"}
    past = await store.run_policies(now=datetime.now(UTC) - DAY)
    assert past.deleted_count == 0


async def test_no_policies_no_work(store: Store) -> None:
    await make(store, "s", idle=400 * DAY)
    run = await store.run_policies()
    assert (run.rules, run.deleted_count, run.ended_count) == ([], 0, 0)
    assert run.to_dict()["rules"] == []


def test_durations_and_their_text() -> None:
    assert retention.duration("90m", "x") == timedelta(minutes=90)
    assert retention.duration("2h", "x") == timedelta(hours=2)
    assert retention.duration("30d", "x") == timedelta(days=30)
    assert [retention.format_minutes(m) for m in (90, 120, 1440, 2880, None)] == [
        "90m",
        "2h",
        "1d",
        "2d",
        "",
    ]


def test_policy_dict_shape() -> None:
    p = Policy("A", 120, None, 30, datetime(2026, 1, 2, tzinfo=UTC))
    assert p.to_dict() == {
        "agent_id": "A",
        "end_idle_minutes": 120,
        "delete_ended_days": None,
        "delete_after_days": 30,
        "updated_at": "2026-01-02T00:00:00+00:00",
    }


# ── writers during a run ─────────────────────────────────────────────────────


async def test_writers_appending_to_old_sessions_during_a_run_lose_nothing(
    store: Store, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every append the store acknowledged while a run deleted old sessions of A is still
    there afterwards: its session was written, so the run left it (or the append came
    after the delete and was refused with NotFound)."""
    monkeypatch.setattr(retention, "POLICY_BATCH", 2)  # many short transactions to race
    old = await old_sessions(store, 100)
    targets = old[:40]  # the writers' sessions; the other 60 nobody writes to
    await make(store, "b-old", agent="B", idle=2 * DAY)
    await store.set_policy("A", delete_after="1d")
    # Writers on a store of their own where the database allows one (another connection,
    # another writer thread): in memory there is only this one.
    writers = store if db_url == "sqlite://" else await Store.open(db_url)
    acknowledged: list[tuple[str, int, str]] = []
    refused: list[str] = []
    running = asyncio.Event()
    done = asyncio.Event()

    async def writer(n: int) -> None:
        rng = random.Random(n)
        count = 0
        while not done.is_set():
            sid = rng.choice(targets)
            text = f"w{n}-{count}"
            count += 1
            try:
                message = await writers.add_message(sid, "user", text)
            except NotFound:
                refused.append(sid)
            else:
                acknowledged.append((sid, message.seq, text))
            running.set()
            await asyncio.sleep(0)

    tasks = [asyncio.create_task(writer(n)) for n in range(8)]
    try:
        await running.wait()
        run = await store.run_policies()
    finally:
        done.set()
        await asyncio.gather(*tasks)
    try:
        left = await ids(store)
        deleted = set(run.rules[0].session_ids)
        assert set(old[40:]) <= deleted and deleted.isdisjoint(left)
        assert "b-old" in left
        assert acknowledged, "the writers wrote nothing while the run ran"
        for sid, seq, text in acknowledged:
            assert sid in left, f"{sid} was deleted with an acknowledged message {text}"
            [(content,)] = await rawdb.fetch(
                store, "SELECT content FROM messages WHERE session_id = ? AND seq = ?", sid, seq
            )
            assert content == text
        assert set(refused) <= deleted  # a refused append's session is one the run took
    finally:
        if writers is not store:
            await writers.close()

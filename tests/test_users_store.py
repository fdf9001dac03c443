"""Users beyond listing and search: stats, keys scoped to users, export by user (and the user
carried through an export and its import), on every database."""

from __future__ import annotations

import io
from typing import Any

import pytest

from sessionkeeper.errors import InvalidInput
from sessionkeeper.store.core import Store
from sessionkeeper.transfer.export import export_sessions
from sessionkeeper.transfer.imports import plan_import, run_import


async def _plant(store: Store) -> None:
    """u1: two sessions of agent a (one with a message), one of agent b; u2: one of a;
    one session of a with no user."""
    for sid, agent, user in (
        ("a1", "a", "u1"),
        ("a2", "a", "u1"),
        ("b1", "b", "u1"),
        ("a3", "a", "u2"),
        ("a4", "a", None),
    ):
        await store.create_session(session_id=sid, agent_id=agent, user_id=user)
    await store.add_message("a1", "user", "hello there")


async def test_stats_are_scoped_by_user(store: Store) -> None:
    await _plant(store)
    everyone = await store.get_stats()
    assert everyone.total_sessions == 5
    u1 = await store.get_stats(user_id="u1")
    assert (u1.total_sessions, u1.total_messages, u1.active_agents) == (3, 1, 2)
    assert u1.by_agent == {"a": 2, "b": 1}
    both = await store.get_stats(agent_ids=["a"], user_ids=["u1", "u2"])
    assert (both.total_sessions, both.by_agent) == (3, {"a": 3})
    assert (await store.get_stats(user_id="u2", user_ids=["u1"])).total_sessions == 0
    assert (await store.get_stats(user_ids=[])).total_sessions == 0
    assert (await store.get_stats(user_id="nobody")).by_type == {}
    with pytest.raises(InvalidInput, match="user_id"):
        await store.get_stats(user_id="a b")


async def test_keys_scoped_to_users(store: Store) -> None:
    key, token = await store.keys.create(agent_ids=["a"], user_ids=["u2", "u1", "u1"])
    assert key.user_ids == ["u1", "u2"]  # sorted, once each
    assert (await store.keys.verify(token)).user_ids == ["u1", "u2"]
    listed = {k.key_id: k for k in await store.keys.list()}
    assert listed[key.key_id].user_ids == ["u1", "u2"]
    assert listed[key.key_id].to_dict()["user_ids"] == ["u1", "u2"]
    every, token2 = await store.keys.create(agent_ids=["a"])
    assert every.user_ids is None and (await store.keys.verify(token2)).user_ids is None
    revoked = await store.keys.revoke(key.key_id)
    assert revoked.user_ids == ["u1", "u2"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"admin": True, "user_ids": ["u1"]}, "admin key sees every user"),
        ({"agent_ids": ["a"], "user_ids": []}, "at least one user"),
        ({"agent_ids": ["a"], "user_ids": "u1"}, "not one id"),
        ({"agent_ids": ["a"], "user_ids": ["a b"]}, "invalid user_ids"),
        ({"user_ids": ["u1"]}, "--admin or scoped"),
    ],
)
async def test_bad_user_scopes_of_keys_are_refused(
    store: Store, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        await store.keys.create(**options)
    assert await store.keys.list() == []


async def _export(store: Store, **options: Any) -> str:
    out = io.StringIO()
    await export_sessions(store, out, **options)
    return out.getvalue()


async def test_export_by_user_and_the_user_survives_an_import(store: Store, tmp_path: Any) -> None:
    await _plant(store)
    text = await _export(store, user_ids=["u1"])
    headers = [line for line in text.splitlines() if '"type":"session"' in line]
    assert [h.split('"session_id":"')[1].split('"')[0] for h in headers] == ["a1", "a2", "b1"]
    assert all('"user_id":"u1"' in h for h in headers)
    only_a = await _export(store, user_ids=["u1"], agent_ids=["a"])
    assert only_a.count('"type":"session"') == 2
    assert await _export(store, user_ids=[]) == ""
    with pytest.raises(InvalidInput, match="not both"):
        await _export(store, session_ids=["a1"], user_ids=["u1"])
    markdown = await _export(store, session_ids=["a3", "a4"], fmt="markdown")
    assert markdown.count("**User:** u2") == 1 and "**User:**" not in markdown.split("---")[1]

    # export -> import elsewhere -> export: the same bytes, the user kept.
    whole = await _export(store)
    path = tmp_path / "all.jsonl"
    path.write_text(whole)
    async with await Store.open("sqlite://") as copy:
        summary = await run_import(copy, plan_import(path))
        assert (len(summary.imported), summary.failed) == (5, [])
        assert (await copy.get_session("a3")).user_id == "u2"
        assert (await copy.get_session("a4")).user_id is None
        assert await _export(copy) == whole


async def test_an_import_with_a_bad_user_is_refused(store: Store, tmp_path: Any) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(
        '{"type":"session","session_id":"x","created_at":"2026-01-01T00:00:00+00:00",'
        '"user_id":"a b"}\n'
    )
    summary = await run_import(store, plan_import(path))
    assert summary.imported == [] and "invalid user_id" in summary.failed[0]["error"]
    assert not await store.session_exists("x")


async def test_a_metadata_filter_integer_beyond_64_bits_is_refused(store: Store) -> None:
    await store.create_session(metadata={"n": 1})
    for bad in (2**63, -(2**63) - 1, 2**70):
        with pytest.raises(InvalidInput, match="out of range") as refused:
            await store.list_sessions(metadata={"n": bad})
        assert refused.value.details["field"] == "metadata"
    assert (await store.list_sessions(metadata={"n": 2**63 - 1})).items == []

"""Idempotent writes (issue 18 item 1), on SQLite file, SQLite memory and PostgreSQL.

A retry with the same key and the same request returns the first result and stores
nothing; the same key with another request is refused and stores nothing; keys are scoped
(appends by session, creates by agent); concurrent sends of one key store one write; keys
past their TTL are deleted by the maintenance job.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import rawdb
from sessionkeeper.errors import IdempotencyKeyReused, InvalidInput, NotFound
from sessionkeeper.maintenance import MaintenanceRunner
from sessionkeeper.models import NewMessage
from sessionkeeper.store.core import Store


async def _count(store: Store, sql: str, *params: object) -> int:
    return int((await rawdb.fetch(store, sql, *params))[0][0])


async def test_append_retried_with_its_key_returns_the_first_seq_and_stores_nothing(
    store: Store,
) -> None:
    sid = (await store.create_session()).session_id
    first = await store.add_message(
        sid, "user", "hello", metadata={"a": 1, "b": [2]}, idempotency_key="k-1"
    )
    await store.add_message(sid, "assistant", "between")  # the retry is not the newest
    again = await store.add_message(
        sid, "user", "hello", metadata={"b": [2], "a": 1}, idempotency_key="k-1"
    )
    assert again == first  # same seq, same stored row (created_at included)
    assert [m.seq for m in await store.get_messages(sid)] == [1, 2]
    session = await store.get_session(sid)
    assert (session.message_count, session.token_count) == (
        2,
        sum(m.token_count for m in await store.get_messages(sid)),
    )


async def test_same_key_other_body_is_refused_and_changes_nothing(store: Store) -> None:
    sid = (await store.create_session()).session_id
    await store.add_message(sid, "user", "hello", idempotency_key="k")
    before = await store.get_session(sid)
    for call in (
        store.add_message(sid, "user", "hello!", idempotency_key="k"),
        store.add_message(sid, "assistant", "hello", idempotency_key="k"),
        store.add_message(sid, "user", "hello", model="m", idempotency_key="k"),
        store.add_messages(sid, [NewMessage("user", "hello")] * 2, idempotency_key="k"),
    ):
        with pytest.raises(IdempotencyKeyReused, match="different request") as info:
            await call
        assert info.value.details["field"] == "idempotency_key"
    assert await store.get_session(sid) == before
    assert len(await store.get_messages(sid)) == 1


async def test_a_key_is_scoped_by_its_session(store: Store) -> None:
    a = (await store.create_session()).session_id
    b = (await store.create_session()).session_id
    ma = await store.add_message(a, "user", "x", idempotency_key="same")
    mb = await store.add_message(b, "user", "x", idempotency_key="same")
    assert (ma.session_id, ma.seq, mb.session_id, mb.seq) == (a, 1, b, 1)


async def test_batch_append_retried_returns_the_same_seqs(store: Store) -> None:
    sid = (await store.create_session()).session_id
    await store.add_message(sid, "system", "be brief")
    batch = [NewMessage("user", "q"), {"role": "assistant", "content": "a", "model": "m"}]
    first = await store.add_messages(sid, batch, idempotency_key="turn-1")
    again = await store.add_messages(sid, batch, idempotency_key="turn-1")
    assert [m.seq for m in first] == [m.seq for m in again] == [2, 3]
    assert again == first
    assert (await store.get_session(sid)).message_count == 3


async def test_keyed_create_twice_makes_one_session(store: Store) -> None:
    first = await store.create_session(
        agent_id="bot", title="t", metadata={"x": 1}, idempotency_key="c-1"
    )
    again = await store.create_session(
        agent_id="bot", title="t", metadata={"x": 1}, idempotency_key="c-1"
    )
    assert again == first
    assert (await store.list_sessions(agent_id="bot")).total == 1
    with pytest.raises(IdempotencyKeyReused, match="session create"):
        await store.create_session(agent_id="bot", title="other", idempotency_key="c-1")
    other_agent = await store.create_session(
        agent_id="bot2", title="t", metadata={"x": 1}, idempotency_key="c-1"
    )
    assert other_agent.session_id != first.session_id  # creates are scoped by agent
    assert (await store.list_sessions()).total == 2


async def test_keyed_create_with_a_chosen_id(store: Store) -> None:
    first = await store.create_session(session_id="mine-1", idempotency_key="c")
    assert (await store.create_session(session_id="mine-1", idempotency_key="c")) == first
    with pytest.raises(IdempotencyKeyReused):
        await store.create_session(session_id="mine-2", idempotency_key="c")
    assert (await store.list_sessions()).total == 1


@pytest.mark.parametrize("bad", ["", "x" * 256, "tab\there", "ü", 5])
async def test_bad_keys_are_refused_before_anything_is_written(store: Store, bad: object) -> None:
    sid = (await store.create_session()).session_id
    with pytest.raises(InvalidInput, match="idempotency_key must be 1-255 printable ASCII"):
        await store.add_message(sid, "user", "x", idempotency_key=bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="idempotency_key"):
        await store.create_session(idempotency_key=bad)  # type: ignore[arg-type]
    assert (await store.get_session(sid)).message_count == 0
    assert (await store.list_sessions()).total == 1


async def test_eight_concurrent_sends_of_one_key_store_one_message(store: Store) -> None:
    sid = (await store.create_session()).session_id
    sends = [store.add_message(sid, "user", "once", idempotency_key="burst") for _ in range(8)]
    results = await asyncio.gather(*sends)
    assert {m.seq for m in results} == {1}
    assert [m.content for m in await store.get_messages(sid)] == ["once"]
    assert await _count(store, "SELECT count(*) FROM idempotency_keys") == 1


async def test_eight_concurrent_keyed_creates_make_one_session(store: Store) -> None:
    made = await asyncio.gather(
        *[store.create_session(agent_id="a", idempotency_key="new") for _ in range(8)]
    )
    assert len({s.session_id for s in made}) == 1
    assert (await store.list_sessions()).total == 1


async def test_a_key_lives_as_long_as_what_it_made(store: Store) -> None:
    """Deleting a message, clearing or deleting the session frees the keys of what went: the
    same request with such a key is a new write (a framework that pops or clears and then
    sends the same ids again stores them)."""
    sid = (await store.create_session(idempotency_key="c")).session_id
    first = await store.add_message(sid, "user", "x", idempotency_key="m")
    batch = await store.add_messages(
        sid, [NewMessage("user", "a"), NewMessage("user", "b")], idempotency_key="b"
    )
    kept = await store.add_message(sid, "user", "kept", idempotency_key="kept")
    await store.delete_message(sid, first.seq)
    await store.delete_message(sid, batch[1].seq)  # one message of a batch frees its key
    again = await store.add_message(sid, "user", "x", idempotency_key="m")
    assert again.seq == kept.seq + 1
    rebatched = await store.add_messages(
        sid, [NewMessage("user", "a"), NewMessage("user", "b")], idempotency_key="b"
    )
    assert [m.seq for m in rebatched] == [again.seq + 1, again.seq + 2]
    assert (await store.add_message(sid, "user", "kept", idempotency_key="kept")) == kept
    await store.clear_messages(sid)
    assert (await store.add_message(sid, "user", "kept", idempotency_key="kept")).seq > kept.seq
    assert len(await store.get_messages(sid)) == 1
    await store.delete_session(sid)
    assert await _count(store, "SELECT count(*) FROM idempotency_keys") == 0
    # The create's key went with its session: the same create makes a new one.
    assert (await store.create_session(idempotency_key="c")).session_id != sid


async def test_a_key_left_by_a_purged_ghost_answers_not_found(store: Store) -> None:
    made = await store.create_session(idempotency_key="c")
    assert await store.delete_ghost_sessions(0) == 1
    with pytest.raises(NotFound, match="no longer exists"):
        await store.create_session(idempotency_key="c")
    assert await store.delete_expired_idempotency_keys(0) == 1
    assert (await store.create_session(idempotency_key="c")).session_id != made.session_id


async def test_unkeyed_writes_write_no_key_rows(store: Store) -> None:
    sid = (await store.create_session()).session_id
    await store.add_message(sid, "user", "x")
    await store.add_messages(sid, [NewMessage("user", "y")])
    assert await _count(store, "SELECT count(*) FROM idempotency_keys") == 0


async def test_maintenance_deletes_keys_past_their_ttl(store: Store) -> None:
    sid = (await store.create_session(idempotency_key="c")).session_id
    await store.add_message(sid, "user", "x", idempotency_key="old")
    await store.add_message(sid, "user", "y", idempotency_key="new")
    old = rawdb.when(store, datetime.now(UTC) - timedelta(hours=25))
    await rawdb.execute(
        store, "UPDATE idempotency_keys SET created_at = ? WHERE idem_key IN ('old', 'c')", old
    )
    runner = MaintenanceRunner(store, idempotency_ttl_hours=24)
    assert await runner.expire_idempotency_keys_once() == 2
    keys = await rawdb.fetch(store, "SELECT idem_key FROM idempotency_keys")
    assert keys == [("new",)]
    # An expired key is a new key: the same request is written again.
    assert (await store.add_message(sid, "user", "x", idempotency_key="old")).seq == 3
    with pytest.raises(InvalidInput, match="older_than_hours"):
        await store.delete_expired_idempotency_keys(-1)


def test_readme_example_runs(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("### Idempotent writes (safe retries)", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "example.py").write_text(code)
    out = subprocess.run(
        [sys.executable, "example.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "already used for a different request" in out.stdout
    assert out.stdout.rstrip().endswith("1 message")

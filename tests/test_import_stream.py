"""Store.import_session_stream: messages written as they are read, in one transaction; a bad
message anywhere (or a repeated seq) refuses the whole session, nothing written."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from sessionkeeper.errors import InvalidInput, NotFound
from sessionkeeper.models import Message, Session
from sessionkeeper.store import verbatim
from sessionkeeper.store.core import Store

START = datetime(2025, 1, 1, tzinfo=UTC)
N = verbatim.CHUNK * 2 + 7  # three chunks, the last one short


def session(sid: str = "big") -> Session:
    return Session(
        session_id=sid,
        agent_id="main",
        title="imported",
        session_type="chat",
        status="active",
        metadata={"from": "file"},
        created_at=START,
        updated_at=START + timedelta(seconds=N),
        ended_at=None,
        last_message_at=START + timedelta(seconds=N),
        message_count=999,  # never trusted: counted from the messages
        token_count=999,
    )


def message(number: int, sid: str = "big", **changes: object) -> Message:
    seq = number
    fields: dict[str, object] = {
        "session_id": sid,
        "seq": seq,
        "role": "user" if seq % 2 else "assistant",
        "content": f"message {seq}",
        "agent_id": None,
        "model": None,
        "token_count": 3,
        "metadata": {"i": seq} if seq % 10 == 0 else {},
        "created_at": START + timedelta(seconds=seq),
    }
    fields.update(changes)
    return Message(**fields)  # type: ignore[arg-type]


def messages(n: int = N, **bad: object) -> Iterator[Message]:
    """Messages 1..n read lazily; ``bad`` = {"at": seq, **changes} spoils one."""
    at = bad.pop("at", None)
    for seq in range(1, n + 1):
        yield message(seq, **bad) if seq == at else message(seq)


async def test_streamed_import_round_trips(store: Store) -> None:
    assert await store.import_session_stream(session(), messages())
    got = await store.get_session("big")
    assert (got.message_count, got.token_count) == (N, 3 * N)
    assert got.created_at == START and got.title == "imported"
    stored = await store.get_messages("big", limit=500)
    stored += await store.get_messages("big", limit=500, after_seq=500)
    stored += await store.get_messages("big", limit=500, after_seq=1000)
    assert [m.seq for m in stored] == list(range(1, N + 1))
    assert stored[9].metadata == {"i": 10} and stored[9].created_at == START + timedelta(seconds=10)
    added = await store.add_message("big", "user", "after the import")
    assert added.seq == N + 1


@pytest.mark.parametrize(
    "bad",
    [
        {"at": N, "role": "robot"},  # in the last chunk
        {"at": verbatim.CHUNK + 1, "content": "nul \x00"},  # first of the second chunk
        {"at": N, "seq": 3},  # a seq seen two chunks earlier
        {"at": 2, "token_count": -1},
    ],
)
async def test_a_bad_message_anywhere_writes_nothing(store: Store, bad: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        await store.import_session_stream(session(), messages(**bad))
    with pytest.raises(NotFound):
        await store.get_session("big")
    assert await store.search_messages("message") == []


async def test_existing_session_is_kept_or_replaced(store: Store) -> None:
    await store.create_session(session_id="big", title="already here")
    await store.add_message("big", "user", "old")
    assert not await store.import_session_stream(session(), messages(3))
    assert (await store.get_session("big")).title == "already here"
    assert await store.import_session_stream(session(), messages(3), replace=True)
    got = await store.get_session("big")
    assert (got.title, got.message_count) == ("imported", 3)
    # A failed replace leaves the old session as it was.
    with pytest.raises(InvalidInput):
        await store.import_session_stream(session(), messages(4, at=4, role="?"), replace=True)
    assert (await store.get_session("big")).message_count == 3


async def test_an_empty_session_imports(store: Store) -> None:
    assert await store.import_session_stream(session("empty"), iter(()))
    got = await store.get_session("empty")
    assert got.message_count == 0
    assert (await store.add_message("empty", "user", "first")).seq == 1

"""A keyed write retried after its connection was lost, at every point of the write.

Issue 18: "retrying any write with its key after a forced connection loss, at every point of
the write (before send, after send before commit, after commit before reply): exactly one
row". A TCP relay this test starts between the store and PostgreSQL cuts the connection
when it sees the write's bytes (a marker in the values), at one of three points:

- ``before_send``: the write's bytes never reach the server (nothing was written);
- ``after_send``: the bytes reach the server, which is held before it can write (another
  connection holds ``idempotency_keys`` in EXCLUSIVE mode), and the connection is cut; the
  lock is released while the retry is already queued behind the orphaned statement, which
  then commits with no client to answer;
- ``after_commit``: the server runs and commits the write; its reply is dropped and the
  connection cut.

Each time the store answers ``Unavailable``, the caller retries with the same key, and the
database holds exactly one copy of the write, which is what the retry answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from sessionkeeper.errors import Unavailable
from sessionkeeper.models import NewMessage
from sessionkeeper.store.core import Store

MARKER = "cut-here"
POINTS = ["before_send", "after_send", "after_commit"]


class CuttingRelay:
    """A TCP relay to PostgreSQL that cuts a connection at a chosen point of the request
    whose bytes hold ``MARKER``."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.point: str | None = None
        self.cut = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    def arm(self, point: str) -> None:
        self.point = point
        self.cut.clear()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        state = {"drop_reply": False}

        def close_both() -> None:
            writer.close()
            up_writer.close()
            self.cut.set()

        async def upstream() -> None:
            try:
                while data := await reader.read(65536):
                    if self.point is not None and MARKER.encode() in data:
                        point, self.point = self.point, None
                        if point == "before_send":
                            close_both()
                            return
                        up_writer.write(data)
                        await up_writer.drain()
                        if point == "after_send":
                            close_both()
                            return
                        state["drop_reply"] = True  # after_commit: the reply never arrives
                        continue
                    up_writer.write(data)
                    await up_writer.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                up_writer.close()

        async def downstream() -> None:
            try:
                while data := await up_reader.read(65536):
                    if state["drop_reply"]:
                        close_both()
                        return
                    writer.write(data)
                    await writer.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        for coro in (upstream(), downstream()):
            task = asyncio.ensure_future(coro)
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


@pytest.fixture
async def relayed(pg_database_url: str) -> AsyncIterator[tuple[CuttingRelay, Store, str]]:
    conn = await asyncpg.connect(pg_database_url, timeout=5)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    finally:
        await conn.close()
    parts = urlsplit(pg_database_url)
    relay = CuttingRelay(parts.hostname or "127.0.0.1", parts.port or 5432)
    await relay.start()
    netloc = f"{parts.username}@127.0.0.1:{relay.port}"
    url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    store = await Store.open(url, timeout=3)
    try:
        yield relay, store, pg_database_url
    finally:
        await store.close()
        await relay.close()


Write = Callable[[Store, str, str, str], Awaitable[Any]]
WRITES: dict[str, Write] = {
    "add_message": lambda s, sid, text, key: s.add_message(sid, "user", text, idempotency_key=key),
    "add_messages": lambda s, sid, text, key: s.add_messages(
        sid, [NewMessage("user", text), NewMessage("assistant", "reply")], idempotency_key=key
    ),
    "create_session": lambda s, sid, text, key: s.create_session(title=text, idempotency_key=key),
}


def _result(value: Any) -> Any:
    """What a write answered, comparable across the first call and the retry."""
    if isinstance(value, list):
        return [(m.session_id, m.seq, m.content) for m in value]
    if hasattr(value, "seq"):
        return [(value.session_id, value.seq, value.content)]
    return value.session_id


@pytest.mark.parametrize("point", POINTS)
@pytest.mark.parametrize("write", list(WRITES))
async def test_a_keyed_write_retried_after_a_lost_connection_is_stored_once(
    relayed: tuple[CuttingRelay, Store, str], write: str, point: str
) -> None:
    relay, store, direct_url = relayed
    sid = (await store.create_session(title="base")).session_id
    write_with = WRITES[write]
    # The same kind of write once (another key): the connection in the pool has its statement
    # prepared, so the cut write's bytes are the whole request (bind + execute).
    warm = await write_with(store, sid, "warm", "warm")
    base_seq = 0 if write == "create_session" else _result(warm)[-1][1]

    def call(s: Store, sid: str) -> Awaitable[Any]:
        return write_with(s, sid, MARKER, "k")

    holder = await asyncpg.connect(direct_url, timeout=5)
    try:
        if point == "after_send":
            await holder.execute("BEGIN; LOCK TABLE idempotency_keys IN EXCLUSIVE MODE")
        relay.arm(point)
        with pytest.raises(Unavailable):
            await call(store, sid)
        assert relay.cut.is_set(), "the relay never saw the write"
        if point == "after_send":
            # The server has the orphaned statement, queued on the lock; the retry queues
            # behind it, then the lock is released.
            retry = asyncio.ensure_future(call(store, sid))
            await asyncio.sleep(0.3)
            await holder.execute("COMMIT")
            answered = await retry
        else:
            # Before the retry: nothing written (before_send), or the write committed
            # (after_commit: the reply was lost, not the write).
            written = await holder.fetchval(
                "SELECT count(*) FROM idempotency_keys WHERE idem_key = 'k'"
            )
            assert written == (1 if point == "after_commit" else 0)
            answered = await call(store, sid)
    finally:
        await holder.close()

    check = await asyncpg.connect(direct_url, timeout=5)
    try:
        if write == "create_session":
            rows = await check.fetch("SELECT session_id FROM sessions WHERE title = $1", MARKER)
            assert [r[0] for r in rows] == [answered.session_id]
        else:
            rows = await check.fetch(
                "SELECT session_id, seq, content FROM messages WHERE session_id = $1 "
                "AND seq > $2 ORDER BY seq",
                sid,
                base_seq,
            )
            assert [tuple(r) for r in rows] == _result(answered)
            assert rows[0]["content"] == MARKER
            counters = await check.fetchrow(
                "SELECT message_count, last_seq FROM sessions WHERE session_id = $1", sid
            )
            assert tuple(counters) == (base_seq + len(rows), base_seq + len(rows))
        keys = await check.fetchval("SELECT count(*) FROM idempotency_keys WHERE idem_key = 'k'")
        assert keys == 1
    finally:
        await check.close()
    # And a later retry still answers the same.
    assert _result(await call(store, sid)) == _result(answered)

"""Faults and refusals leave the store as its own error types (issue 7, items 3 and 4).

Library level (the HTTP-level fault tests live in test_faults.py): a SQLite write lock held
by another process, an unreachable, restarted, frozen or locked PostgreSQL, and values the
databases refuse. Every failure is a ``sessionkeeper`` exception: busy or gone → Unavailable
within the timeout plus one second; bad values → InvalidInput naming the field, with nothing
written.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from sessionkeeper.errors import InvalidInput, NotFound, SessionkeeperError, Unavailable
from sessionkeeper.models import Message, NewMessage, Session
from sessionkeeper.store.core import Store
from sessionkeeper.store.url import TIMEOUT_ENV

SRC = Path(__file__).resolve().parents[1] / "src" / "sessionkeeper"


def _ours(exc: BaseException) -> None:
    assert type(exc).__module__.startswith("sessionkeeper"), f"{type(exc)!r} escaped: {exc}"


async def _timed(call: Awaitable[Any]) -> tuple[BaseException | None, float]:
    start = time.monotonic()
    try:
        await call
    except Exception as exc:  # noqa: BLE001 - returned for the caller to judge
        return exc, time.monotonic() - start
    return None, time.monotonic() - start


# ── SQLite: the write lock held by another process ─────────────────────────

_LOCKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
print("released", flush=True)
"""


class _Locker:
    """Another process holding SQLite's write lock (BEGIN IMMEDIATE) until released."""

    def __init__(self, path: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _LOCKER, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "locked"

    def release(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None and self.proc.stdout is not None
            self.proc.stdin.write("\n")
            self.proc.stdin.flush()
            assert self.proc.stdout.readline().strip() == "released"
        self.proc.wait(10)


async def test_sqlite_lock_held_by_another_process(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    timeout = 0.5
    store = await Store.open(f"sqlite:///{path}", timeout=timeout)
    try:
        s = await store.create_session(title="lock")
        await store.add_message(s.session_id, "user", "before the lock")
        locker = _Locker(path)
        try:
            writes: list[Callable[[], Awaitable[Any]]] = [
                lambda: store.add_message(s.session_id, "user", "during the lock"),
                lambda: store.add_messages(s.session_id, [{"role": "user", "content": "x"}] * 3),
                lambda: store.create_session(),
                lambda: store.update_session(s.session_id, title="changed"),
                lambda: store.delete_message(s.session_id, 1),
                lambda: store.delete_session(s.session_id),
            ]
            for write in writes:
                exc, took = await _timed(write())
                assert isinstance(exc, Unavailable), repr(exc)
                assert took < timeout + 1, f"took {took:.2f} s"

            # Several writers queued behind the lock: each answered within timeout + 1 s.
            start = time.monotonic()
            results = await asyncio.gather(
                *(store.add_message(s.session_id, "user", f"q{i}") for i in range(6)),
                return_exceptions=True,
            )
            assert all(isinstance(r, Unavailable) for r in results), results
            assert time.monotonic() - start < timeout + 1

            # Readers are not blocked (WAL).
            assert [m.content for m in await store.get_messages(s.session_id)] == [
                "before the lock"
            ]
            assert (await store.get_session(s.session_id)).title == "lock"
            assert (await store.list_sessions()).total == 1
            assert len(await store.search_messages("lock")) == 1
            assert len((await store.context_window(s.session_id, 100)).messages) == 1
            assert (await store.get_stats()).total_messages == 1
        finally:
            locker.release()

        m = await store.add_message(s.session_id, "user", "after the lock")
        assert m.seq == 2  # nothing refused above took a seq
        session = await store.get_session(s.session_id)
        assert (session.title, session.message_count) == ("lock", 2)
        assert (await store.get_stats()).total_sessions == 1
    finally:
        await store.close()


# ── PostgreSQL: unreachable, restarted, frozen, locked ─────────────────────


async def test_pg_unreachable_port_is_unavailable() -> None:
    exc, took = await _timed(Store.open("postgresql://postgres@127.0.0.1:1/x", timeout=2))
    assert isinstance(exc, Unavailable), repr(exc)
    assert took < 3


async def test_pg_silent_server_is_unavailable_within_the_timeout() -> None:
    """A server that accepts and never answers: the connect is bounded by the timeout."""
    accepted: list[asyncio.StreamWriter] = []

    async def mute(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        exc, took = await _timed(Store.open(f"postgresql://u@127.0.0.1:{port}/x", timeout=1))
        assert isinstance(exc, Unavailable), repr(exc)
        assert took < 2
        assert accepted, "the store never connected"
    finally:
        for w in accepted:
            w.close()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres@127.0.0.1:5432/sk_no_such_database_xyz",
        "postgresql://sk_no_such_role_xyz@127.0.0.1:5432/postgres",
    ],
)
async def test_pg_refused_at_connect_is_a_store_error(url: str, pg_database_url: str) -> None:
    exc, _ = await _timed(Store.open(url, timeout=2))
    assert isinstance(exc, SessionkeeperError), repr(exc)


async def _terminate(url: str, application_name: str) -> int:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        rows = await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = $1 AND pid <> pg_backend_pid()",
            application_name,
        )
    finally:
        await conn.close()
    return len(rows)


async def _after_terminate(store: Store, sid: str) -> None:
    """The next call succeeds or is Unavailable; the one after succeeds."""
    exc, _ = await _timed(store.add_message(sid, "user", "right after"))
    assert exc is None or isinstance(exc, Unavailable), repr(exc)
    messages = await store.get_messages(sid)
    await store.add_message(sid, "user", "after that")
    assert (await store.get_session(sid)).message_count == len(messages) + 1


async def test_pg_terminated_connection_recovers(pg_database_url: str) -> None:
    app = "sk-errors-term-one"
    store = await Store.open(pg_database_url, server_settings={"application_name": app})
    try:
        sid = (await store.create_session()).session_id
        await store.add_message(sid, "user", "before")
        assert await _terminate(pg_database_url, app) >= 1
        await asyncio.sleep(0.2)  # the goodbye reaches the client
        await _after_terminate(store, sid)
    finally:
        await store.close()


async def test_pg_terminated_pool_recovers_after_one_failure(pg_database_url: str) -> None:
    app = "sk-errors-term-pool"
    store = await Store.open(pg_database_url, server_settings={"application_name": app})
    try:
        sid = (await store.create_session()).session_id
        # A burst leaves several idle connections in the pool, as a server under load has.
        await asyncio.gather(*(store.add_message(sid, "user", f"m{i}") for i in range(6)))
        assert await _terminate(pg_database_url, app) >= 2
        await asyncio.sleep(0.2)
        await _after_terminate(store, sid)
    finally:
        await store.close()


async def _reset(url: str) -> None:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    finally:
        await conn.close()


@pytest.fixture
async def locked_store(pg_database_url: str) -> AsyncIterator[Store]:
    """A PostgreSQL store whose timeout is 1 s."""
    await _reset(pg_database_url)
    store = await Store.open(pg_database_url, timeout=1)
    try:
        yield store
    finally:
        await store.close()


async def test_pg_row_lock_past_the_timeout_is_unavailable(
    locked_store: Store, pg_database_url: str
) -> None:
    store = locked_store
    sid = (await store.create_session(title="locked row")).session_id
    await store.add_message(sid, "user", "before the lock")
    holder = await asyncpg.connect(pg_database_url, timeout=5)
    try:
        tx = holder.transaction()
        await tx.start()
        await holder.execute("SELECT 1 FROM sessions WHERE session_id = $1 FOR UPDATE", sid)
        blocked: list[Callable[[], Awaitable[Any]]] = [
            lambda: store.add_message(sid, "user", "waits for the row"),
            lambda: store.add_messages(sid, [NewMessage("user", "a"), NewMessage("user", "b")]),
            lambda: store.update_session(sid, title="changed"),
            lambda: store.end_session(sid),
            lambda: store.pop_message(sid),
            lambda: store.clear_messages(sid),
            lambda: store.delete_message(sid, 1),
            lambda: store.delete_session(sid),
        ]
        for call in blocked:
            exc, took = await _timed(call())
            assert isinstance(exc, Unavailable), repr(exc)
            assert 0.8 < took < 2.0, f"took {took:.2f} s"
        # Reads don't wait for row locks.
        assert [m.seq for m in await store.get_messages(sid)] == [1]
        assert (await store.get_session(sid)).title == "locked row"
        assert len(await store.search_messages("lock")) == 1
        assert len((await store.context_window(sid, 100)).messages) == 1
        await tx.rollback()
    finally:
        await holder.close()
    m = await store.add_message(sid, "user", "after the lock")
    assert m.seq == 2  # the refused appends left no gap
    session = await store.get_session(sid)
    assert (session.title, session.status, session.message_count) == ("locked row", "active", 2)


async def test_pg_timeout_from_the_environment_bounds_a_lock_wait(
    pg_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _reset(pg_database_url)
    monkeypatch.setenv(TIMEOUT_ENV, "1")
    store = await Store.open(pg_database_url)
    holder = await asyncpg.connect(pg_database_url, timeout=5)
    try:
        sid = (await store.create_session()).session_id
        async with holder.transaction():
            await holder.execute("SELECT 1 FROM sessions WHERE session_id = $1 FOR UPDATE", sid)
            exc, took = await _timed(store.add_message(sid, "user", "waits"))
        assert isinstance(exc, Unavailable), repr(exc)
        assert 0.8 < took < 2.0, f"took {took:.2f} s"
    finally:
        await holder.close()
        await store.close()


async def test_pg_table_lock_blocks_reads_for_at_most_the_timeout(
    locked_store: Store, pg_database_url: str
) -> None:
    store = locked_store
    sid = (await store.create_session()).session_id
    holder = await asyncpg.connect(pg_database_url, timeout=5)
    try:
        async with holder.transaction():
            await holder.execute("LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE")
            for call in (
                lambda: store.get_session(sid),
                lambda: store.list_sessions(),
                lambda: store.get_stats(),
            ):
                exc, took = await _timed(call())
                assert isinstance(exc, Unavailable), repr(exc)
                assert took < 2.0, f"took {took:.2f} s"
    finally:
        await holder.close()
    assert (await store.get_session(sid)).session_id == sid


class _FreezableProxy:
    """A TCP relay to PostgreSQL that can stop passing bytes (like SIGSTOP on the server)."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.running = asyncio.Event()
        self.running.set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                await self.running.wait()  # frozen: hold the bytes, as a stopped server would
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            await self.running.wait()
            dst.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        for task in (self._pipe(reader, up_writer), self._pipe(up_reader, writer)):
            t = asyncio.ensure_future(task)
            self.tasks.add(t)
            t.add_done_callback(self.tasks.discard)

    def freeze(self) -> None:
        self.running.clear()

    def thaw(self) -> None:
        self.running.set()

    async def close(self) -> None:
        self.thaw()
        assert self.server is not None
        self.server.close()
        for t in list(self.tasks):
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


@pytest.fixture
async def frozen_pg(pg_database_url: str) -> AsyncIterator[tuple[_FreezableProxy, str]]:
    from urllib.parse import urlsplit, urlunsplit

    await _reset(pg_database_url)
    parts = urlsplit(pg_database_url)
    proxy = _FreezableProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    netloc = f"{parts.username}@127.0.0.1:{proxy.port}"
    yield proxy, urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    await proxy.close()


async def test_pg_frozen_server_answers_unavailable_within_the_timeout(
    frozen_pg: tuple[_FreezableProxy, str],
) -> None:
    proxy, url = frozen_pg
    store = await Store.open(url, timeout=1)
    try:
        sid = (await store.create_session()).session_id
        await store.add_message(sid, "user", "before the freeze")
        proxy.freeze()
        for call in (
            lambda: store.get_messages(sid),
            lambda: store.list_sessions(),
            lambda: store.ping(),
            lambda: Store.open(url, timeout=1),  # a new connection, too
        ):
            exc, took = await _timed(call())
            assert isinstance(exc, Unavailable), repr(exc)
            assert took < 2.0, f"took {took:.2f} s"
        proxy.thaw()
        await asyncio.sleep(0.2)
        exc, _ = await _timed(store.ping())
        assert exc is None or isinstance(exc, Unavailable)
        assert [m.seq for m in await store.get_messages(sid)] == [1]
    finally:
        proxy.thaw()
        await store.close()


async def test_pg_append_answered_unavailable_then_retried_with_its_key_is_stored_once(
    frozen_pg: tuple[_FreezableProxy, str], pg_database_url: str
) -> None:
    """An append answered Unavailable (the client's deadline passed while the server was
    frozen) may still commit when the server resumes: its bytes were already in the socket.
    A client that retries with its idempotency key finds the first write, never a second
    (issue 18: this was an expected failure while retries had no key)."""
    proxy, url = frozen_pg
    store = await Store.open(url, timeout=1)
    try:
        sid = (await store.create_session()).session_id
        # One append first: the statement is then prepared on the connection, so the frozen
        # append's bytes are the whole request (bind + execute), as on a warm server.
        await store.add_message(sid, "user", "acknowledged", idempotency_key="k-0")
        proxy.freeze()
        exc, took = await _timed(
            store.add_message(sid, "user", "answered 503", idempotency_key="k-1")
        )
        assert isinstance(exc, Unavailable), repr(exc)
        assert took < 2.0
        proxy.thaw()
        await asyncio.sleep(0.5)  # the server gets the held bytes now, and commits them
        retried = await store.add_message(sid, "user", "answered 503", idempotency_key="k-1")
        assert retried.seq == 2
    finally:
        proxy.thaw()
        await store.close()
    direct = await Store.open(pg_database_url)
    try:
        contents = [m.content for m in await direct.get_messages(sid)]
    finally:
        await direct.close()
    assert contents == ["acknowledged", "answered 503"], "a retried write was stored twice"


# ── values the databases refuse: InvalidInput naming the field, nothing written ──

DEEP: dict[str, Any] = {}
_node = DEEP
for _ in range(100):
    _node["d"] = {}
    _node = _node["d"]

_OLD = datetime(2024, 1, 1, tzinfo=UTC)
_FAR_AHEAD = datetime.max.replace(tzinfo=timezone(timedelta(hours=-1)))  # past 9999 in UTC
_FAR_BACK = datetime.min.replace(tzinfo=timezone(timedelta(hours=1)))  # before year 1 in UTC

Call = Callable[[Store, str], Awaitable[Any]]

BAD_INPUTS: list[tuple[str, Call, str]] = [
    ("nul-content", lambda s, sid: s.add_message(sid, "user", "a\x00b"), "content"),
    ("surrogate-content", lambda s, sid: s.add_message(sid, "user", "a\ud800b"), "content"),
    ("nul-title-create", lambda s, sid: s.create_session(title="a\x00"), "title"),
    ("surrogate-title", lambda s, sid: s.update_session(sid, title="\udfff"), "title"),
    ("nul-metadata-value", lambda s, sid: s.add_message(sid, "user", "x", metadata={"k": "\x00"}),
     "metadata"),
    ("nul-metadata-key", lambda s, sid: s.create_session(metadata={"a\x00": 1}), "metadata"),
    ("surrogate-metadata", lambda s, sid: s.update_session(sid, metadata={"k": ["\ud83d"]}),
     "metadata"),
    ("nan-metadata", lambda s, sid: s.add_message(sid, "user", "x", metadata={"n": float("nan")}),
     "metadata"),
    ("inf-metadata", lambda s, sid: s.create_session(metadata={"n": float("inf")}), "metadata"),
    ("deep-metadata", lambda s, sid: s.add_message(sid, "user", "x", metadata=DEEP), "metadata"),
    ("huge-int-metadata", lambda s, sid: s.create_session(metadata={"n": 2**64}), "metadata"),
    ("token-count-2**31", lambda s, sid: s.add_message(sid, "user", "x", token_count=2**31),
     "token_count"),
    ("token-count-negative", lambda s, sid: s.add_message(sid, "user", "x", token_count=-1),
     "token_count"),
    ("after-seq-2**31", lambda s, sid: s.get_messages(sid, after_seq=2**31), "after_seq"),
    ("offset-2**63", lambda s, sid: s.get_messages(sid, offset=2**63), "offset"),
    ("list-offset-2**63", lambda s, sid: s.list_sessions(offset=2**63), "offset"),
    ("delete-seq-2**31", lambda s, sid: s.delete_message(sid, 2**31), "seq"),
    ("window-2**31", lambda s, sid: s.context_window(sid, 2**31), "max_tokens"),
    ("nul-model", lambda s, sid: s.add_message(sid, "user", "x", model="m\x00"), "model"),
    ("nul-agent", lambda s, sid: s.add_message(sid, "user", "x", agent_id="a\x00"), "agent_id"),
    ("nul-session-id", lambda s, sid: s.get_messages(sid + "\x00"), "session_id"),
    ("nul-aria-id", lambda s, sid: s.find_by_aria_session_id("f\x00"), "aria_session_id"),
    ("nan-ghost-minutes", lambda s, sid: s.delete_ghost_sessions(float("nan")),
     "older_than_minutes"),
    ("huge-prune-days", lambda s, sid: s.prune_old_sessions(days=1e300), "days"),
    ("naive-since", lambda s, sid: s.get_messages(sid, since=datetime(2024, 1, 1)), "since"),
    ("batch-with-one-bad", lambda s, sid: s.add_messages(
        sid, [NewMessage("user", "fine"), NewMessage("user", "bad\x00")]), "content"),
    ("import-nul", lambda s, sid: s.import_session(
        Session("imp-bad", "main", None, "chat", "active", {}, _OLD, _OLD, None, None, 0, 0),
        [Message("imp-bad", 1, "user", "x\x00", None, None, 1, {}, _OLD)]), "content"),
    ("key-name-nul", lambda s, sid: s.keys.create(admin=True, name="k\x00"), "name"),
]  # fmt: skip


BAD_SEARCHES: list[tuple[str, Call, str]] = [
    ("nul-search", lambda s, sid: s.search_messages("hello\x00"), "q"),
    ("nul-list-search", lambda s, sid: s.list_sessions(search="hello\x00"), "q"),
    ("surrogate-search", lambda s, sid: s.search_messages("hello \ud800"), "q"),
]

BAD_DATES: list[tuple[str, Call, str]] = [
    ("created-at-past-9999", lambda s, sid: s.add_message(sid, "user", "x", created_at=_FAR_AHEAD),
     "created_at"),
    ("created-at-before-1", lambda s, sid: s.add_message(sid, "user", "x", created_at=_FAR_BACK),
     "created_at"),
    ("since-before-1", lambda s, sid: s.get_messages(sid, since=_FAR_BACK), "since"),
    ("created-after-past-9999", lambda s, sid: s.list_sessions(created_after=_FAR_AHEAD),
     "created_after"),
]  # fmt: skip


async def _snapshot(store: Store, sid: str) -> tuple[Any, ...]:
    stats = await store.get_stats()
    session = await store.get_session(sid)
    return (
        stats.total_sessions,
        stats.total_messages,
        stats.total_tokens,
        session,
        await store.get_messages(sid),
        [k.key_id for k in await store.keys.list(include_revoked=True)],
        (await store.list_sessions(limit=100)).items,
    )


@pytest.mark.parametrize(
    ("call", "field"),
    [pytest.param(c, f, id=i) for i, c, f in BAD_INPUTS]
    + [pytest.param(c, f, id=i) for i, c, f in BAD_SEARCHES]
    + [pytest.param(c, f, id=i) for i, c, f in BAD_DATES],
)
async def test_refused_values_are_invalid_input_and_change_nothing(
    store: Store, call: Call, field: str
) -> None:
    s = await store.create_session(title="target", metadata={"keep": True})
    await store.add_message(s.session_id, "user", "hello world", metadata={"a": 1})
    before = await _snapshot(store, s.session_id)
    with pytest.raises(SessionkeeperError) as info:
        await call(store, s.session_id)
    _ours(info.value)
    assert isinstance(info.value, InvalidInput), repr(info.value)
    named = info.value.details.get("field")
    # Metadata errors may name the path inside it ("metadata.k", "metadata key").
    assert isinstance(named, str) and named.startswith(field), (
        f"field {named!r}, expected {field!r}: {info.value}"
    )
    assert await _snapshot(store, s.session_id) == before


async def test_unknown_session_is_not_found_everywhere(store: Store) -> None:
    for call in (
        store.get_session("nope"),
        store.get_messages("nope"),
        store.add_message("nope", "user", "x"),
        store.add_messages("nope", [NewMessage("user", "x")]),
        store.add_messages("nope", []),
        store.delete_message("nope", 1),
        store.pop_message("nope"),
        store.clear_messages("nope"),
        store.context_window("nope", 10),
        store.update_session("nope", title="x"),
        store.end_session("nope"),
        store.delete_session("nope"),
    ):
        with pytest.raises(NotFound):
            await call
    assert (await store.get_stats()).total_sessions == 0


# ── no driver name outside the backends ────────────────────────────────────


# ``import --from`` reads other programs' databases (an Agents SDK SQLite file, a LangGraph
# checkpointer's PostgreSQL tables, …) read-only, with the drivers: transfer/sources.py is the
# one module that opens them, and it translates their errors itself.
FOREIGN_SOURCES = "transfer/sources.py"


def test_driver_names_only_under_backends_and_migrations() -> None:
    """``grep -rn "asyncpg\\.\\|sqlite3\\." src/sessionkeeper``: only backends/ and migrat*
    (and the reader of foreign databases)."""
    pattern = re.compile(r"asyncpg\.|sqlite3\.")
    allowed = ("store/backends/", "store/migrat", FOREIGN_SOURCES)
    found = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line) and not rel.startswith(allowed):
                found.append(f"{rel}:{n}: {line.strip()}")
    assert found == []


def test_no_driver_exception_is_caught_outside_the_store() -> None:
    """Code above the store imports no driver and catches no SQLAlchemy error (but the
    reader of foreign databases)."""
    allowed = ("store/backends/", "store/migrat", FOREIGN_SOURCES)
    found = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith(allowed):
            continue
        text = path.read_text()
        for n, line in enumerate(text.splitlines(), 1):
            stripped = line.strip()
            if re.match(r"(import|from)\s+(asyncpg|sqlite3|aiosqlite)\b", stripped):
                found.append(f"{rel}:{n}: {stripped}")
            if re.search(r"except\s*\(?[^:]*\b(sqlalchemy|SQLAlchemyError|OperationalError|"
                         r"DBAPIError|InterfaceError)\b", stripped):  # fmt: skip
                found.append(f"{rel}:{n}: {stripped}")
    assert found == []

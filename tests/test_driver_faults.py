"""Driver faults at the Store's boundary: no driver exception ever leaves a public method.

Issue 15, "one translating context per driver". Every public coroutine method of ``Store``
(enumerated with ``inspect``, so a new method without a call here fails the test), of
``store.keys``, ``store.checkpoints`` and the ADK storage (``store.adk``) is called
while the database is broken; each must return or raise a ``sessionkeeper.errors`` type,
never ``sqlite3.*``, ``asyncpg.*`` or an ``OSError`` of the driver:

- SQLite: the database file's directory removed while a store is open; the file replaced by
  a directory (what "made unreadable" must be here: the tests may run as root, for whom
  ``chmod 000`` blocks nothing); opening a store where its directory cannot be made.
- PostgreSQL (a private cluster, ``tests/pgcluster.py``): the cluster killed (SIGKILL of its
  postmaster and backends, by pid) between calls: every call raises ``Unavailable``.
- PostgreSQL frozen (SIGSTOP of the private cluster's postmaster and its children) with a
  timeout of 2 s: every kind of call, transactional ones included (delete/pop, clear,
  import, ADK create/append, checkpoints) and ones frozen in the middle of their
  transaction, answers ``Unavailable`` within 3 s (the deadline covers the ROLLBACK too).

Fault tests start what they break and end only processes they started, by pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pgcluster import PgCluster
from sessionkeeper.errors import SessionkeeperError, Unavailable
from sessionkeeper.models import Message, NewMessage, Session
from sessionkeeper.store.adk import AdkSessions, Scopes
from sessionkeeper.store.backends.frameworks.adk_base import AdkKey
from sessionkeeper.store.backends.frameworks.checkpoints_base import CheckpointRow, WriteRow
from sessionkeeper.store.checkpoints import Checkpoints
from sessionkeeper.store.core import Store
from sessionkeeper.store.keys import ApiKeys

ROUNDS = 4  # the SQLite bug showed on 3 calls of 16: repeat, and once all at once
FROZEN_TIMEOUT = 2.0
FROZEN_BOUND = 3.0  # the bound for a frozen server with a 2 s timeout
FREEZE_S = 9.0  # how long the cluster stays frozen


# ── what is called ─────────────────────────────────────────────────────────


@dataclass
class Seeded:
    sid: str
    session: Session
    messages: list[Message]
    thread: str
    adk: AdkKey
    key_id: str
    token: str


def _public_coroutines(cls: type, prefix: str, skip: tuple[str, ...] = ()) -> set[str]:
    found = set()
    for name, fn in inspect.getmembers(cls):
        if name.startswith("_") or name in skip:
            continue
        if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
            found.add(prefix + name)
    return found


def public_methods() -> set[str]:
    """Every public coroutine (or async iterator) method of the store and its parts."""
    return (
        # (class methods that open their own connections: see the open tests)
        _public_coroutines(Store, "", skip=("open", "from_engine", "upgrade", "close"))
        | {"job_lock"}  # returns an async context manager
        | _public_coroutines(ApiKeys, "keys.")
        | _public_coroutines(Checkpoints, "checkpoints.")
        | _public_coroutines(AdkSessions, "adk.")
    )


async def seed(store: Store) -> Seeded:
    s = await store.create_session(title="faults", metadata={"aria_session_id": "aria-1"})
    await store.add_message(s.session_id, "user", "hello world")
    await store.add_message(s.session_id, "assistant", "hello to you")
    thread = (await store.create_session(session_type="graph")).session_id
    await store.checkpoints.put(CheckpointRow(thread, "", "1", None, "json", b"{}", {}, {}), [])
    adk = AdkKey("app", "user", "adk-1")
    await store.adk.create(adk, Scopes({}, {"a": 1}, {}), update_time=time.time())
    key, token = await store.keys.create(admin=True, name="faults")
    return Seeded(
        s.session_id,
        await store.get_session(s.session_id),
        await store.get_messages(s.session_id),
        thread,
        adk,
        key.key_id,
        token,
    )


async def _drain(items: AsyncIterator[Any]) -> None:
    async for _ in items:
        pass


async def _job_lock(store: Store) -> None:
    async with store.job_lock("faults"):
        pass


async def _summary(messages: list[Any]) -> str:
    return f"{len(messages)} messages"


def calls(store: Store, d: Seeded) -> dict[str, Callable[[], Awaitable[Any]]]:
    """One plausible call per public method (names as ``public_methods`` gives them)."""
    cp = store.checkpoints
    adk = store.adk
    sid = d.sid
    none = Scopes({}, {}, {})
    row = CheckpointRow(d.thread, "", "2", "1", "json", b"{}", {}, {})
    return {
        "ping": lambda: store.ping(),
        "schema_revision": lambda: store.schema_revision(),
        "database_role": lambda: store.database_role(),
        "vacuum": lambda: store.vacuum(),
        "job_lock": lambda: _job_lock(store),
        # Keyed (issue 18): the keyed paths are the ones with more than one statement.
        "create_session": lambda: store.create_session(title="new", idempotency_key="c"),
        "session_exists": lambda: store.session_exists(sid),
        "get_session": lambda: store.get_session(sid),
        "list_sessions": lambda: store.list_sessions(search="faults"),
        "update_session": lambda: store.update_session(sid, title="renamed"),
        "change_metadata": lambda: store.change_metadata(sid, lambda m: {**m, "k": 1}),
        "end_session": lambda: store.end_session(sid),
        "delete_session": lambda: store.delete_session(d.thread),
        "find_by_aria_session_id": lambda: store.find_by_aria_session_id("aria-1"),
        "iter_sessions": lambda: _drain(store.iter_sessions()),
        "add_message": lambda: store.add_message(sid, "user", "more"),
        "add_messages": lambda: store.add_messages(
            sid, [NewMessage("user", "a")] * 2, idempotency_key="m"
        ),
        "get_messages": lambda: store.get_messages(sid, last=5),
        "delete_message": lambda: store.delete_message(sid, 1),
        "pop_message": lambda: store.pop_message(sid),
        "clear_messages": lambda: store.clear_messages(sid),
        "search_messages": lambda: store.search_messages("hello"),
        "search_with_neighbours": lambda: store.search_with_neighbours("hello"),
        "context_window": lambda: store.context_window(sid, 1000),
        "fork_session": lambda: store.fork_session(sid),
        "rewind_session": lambda: store.rewind_session(sid, 1),
        "list_branches": lambda: store.list_branches(sid),
        "compact_session": lambda: store.compact_session(
            sid, keep_last_tokens=0, summarize=_summary
        ),
        "get_compaction": lambda: store.get_compaction(sid),
        "get_compactions": lambda: store.get_compactions(sid),
        "set_usage": lambda: store.set_usage(sid, 1, {"input_tokens": 1}),
        "get_usage": lambda: store.get_usage(sid),
        "usage_totals": lambda: store.usage_totals(),
        "delete_ghost_sessions": lambda: store.delete_ghost_sessions(0),
        "delete_expired_idempotency_keys": lambda: store.delete_expired_idempotency_keys(0),
        "ghost_sessions": lambda: store.ghost_sessions(0),
        "prune_old_sessions": lambda: store.prune_old_sessions(1, dry_run=True),
        "get_stats": lambda: store.get_stats(),
        "forget_user": lambda: store.forget_user("nobody"),
        "set_policy": lambda: store.set_policy("a", delete_after="30d"),
        "get_policies": lambda: store.get_policies(),
        "delete_policy": lambda: store.delete_policy("a"),
        "run_policies": lambda: store.run_policies(dry_run=True),
        "import_session": lambda: store.import_session(d.session, d.messages, replace=True),
        "import_session_stream": lambda: store.import_session_stream(
            d.session, iter(d.messages), replace=True
        ),
        "keys.create": lambda: store.keys.create(agent_ids=["main"]),
        "keys.list": lambda: store.keys.list(),
        "keys.any_active": lambda: store.keys.any_active(),
        "keys.revoke": lambda: store.keys.revoke(d.key_id),
        "keys.verify": lambda: store.keys.verify(d.token),
        "checkpoints.plan_list": lambda: cp.plan_list(d.thread, "", "items", "v1", []),
        "checkpoints.put": lambda: cp.put(row, [], messages=[NewMessage("user", "cp")]),
        "checkpoints.put_writes": lambda: cp.put_writes(
            d.thread, "", "1", [WriteRow("task", 0, "ch", "json", b"1")]
        ),
        "checkpoints.get": lambda: cp.get(d.thread),
        "checkpoints.list": lambda: _drain(cp.list(thread_id=d.thread)),
        "checkpoints.delete_thread": lambda: cp.delete_thread(d.thread),
        "checkpoints.delete_for_runs": lambda: cp.delete_for_runs(["run-1"]),
        "checkpoints.copy_thread": lambda: cp.copy_thread(d.thread, "copied-thread"),
        "checkpoints.prune": lambda: cp.prune([d.thread], strategy="delete"),
        "adk.create": lambda: adk.create(AdkKey("app", "user", "adk-2"), none, update_time=1.0),
        "adk.get": lambda: adk.get(d.adk),
        "adk.pages": lambda: _drain(adk.pages("app")),
        "adk.delete": lambda: adk.delete(AdkKey("app", "user", "adk-missing")),
        "adk.user_state": lambda: adk.user_state("app", "user"),
        "adk.append": lambda: adk.append(
            d.adk, NewMessage("user", "event"), none, update_time=time.time()
        ),
    }


async def outcome(call: Callable[[], Awaitable[Any]]) -> BaseException | None:
    try:
        await call()
    except Exception as exc:
        return exc
    return None


def driver_escapes(results: list[tuple[str, BaseException | None]]) -> list[str]:
    """Every result that is an exception but not one of sessionkeeper's."""
    return [
        f"{name}: {type(exc).__module__}.{type(exc).__name__}: {exc}"
        for name, exc in results
        if exc is not None and not isinstance(exc, SessionkeeperError)
    ]


async def call_everything(store: Store, d: Seeded) -> list[tuple[str, BaseException | None]]:
    """Every call ROUNDS times one after the other, then all of them at once."""
    table = calls(store, d)
    missing = public_methods() - set(table)
    assert not missing, f"public methods without a call in this test: {sorted(missing)}"
    results = []
    for _ in range(ROUNDS):
        for name, call in table.items():
            results.append((name, await outcome(call)))
    names = list(table) * 2
    together = await asyncio.gather(*(outcome(table[n]) for n in names))
    results += list(zip(names, together, strict=True))
    return results


# ── SQLite ──────────────────────────────────────────────────────────────────


async def _sqlite_store(tmp_path: Path) -> tuple[Store, Seeded, Path]:
    path = tmp_path / "data" / "sessions.db"
    store = await Store.open(f"sqlite:///{path}", timeout=1)
    return store, await seed(store), path


def _unavailable(results: list[tuple[str, BaseException | None]]) -> list[str]:
    return [name for name, exc in results if isinstance(exc, Unavailable)]


async def test_sqlite_directory_removed_no_driver_exception(tmp_path: Path) -> None:
    store, d, path = await _sqlite_store(tmp_path)
    try:
        shutil.rmtree(path.parent)
        results = await call_everything(store, d)
        assert driver_escapes(results) == []
        # Connections open before keep the removed file (so some calls still succeed); a new
        # one (a reader thread opens its own on first use, as in the calls all at once)
        # cannot open it: the bug, get_stats raising sqlite3.OperationalError.
        assert _unavailable(results), "the fault had no effect"
    finally:
        await store.close()


async def test_sqlite_writes_are_refused_once_the_file_is_gone(tmp_path: Path) -> None:
    """SQLite would go on writing to the unlinked file; each write it acknowledged would be
    lost. The writer checks the file is still the one it opened: nothing is acknowledged."""
    store, d, path = await _sqlite_store(tmp_path)
    try:
        moved = path.with_name("elsewhere.db")
        path.rename(moved)  # replaced: a new file where the old one was
        path.write_bytes(b"")
        with pytest.raises(Unavailable, match="removed or replaced"):
            await store.add_message(d.sid, "user", "lost?")
        shutil.rmtree(path.parent)  # removed
        with pytest.raises(Unavailable, match="removed or replaced"):
            await store.create_session()
    finally:
        await store.close()


async def test_sqlite_file_replaced_by_a_directory_no_driver_exception(tmp_path: Path) -> None:
    """The database cannot be read any more. Not with chmod 000: as root it blocks nothing;
    the file (and its -wal/-shm) removed and a directory put in its place fails for anyone."""
    store, d, path = await _sqlite_store(tmp_path)
    try:
        for extra in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{path}{extra}")
        os.mkdir(path)
        results = await call_everything(store, d)
        assert driver_escapes(results) == []
        assert _unavailable(results), "the fault had no effect"
    finally:
        await store.close()


async def test_sqlite_open_where_no_directory_can_be_made(tmp_path: Path) -> None:
    (tmp_path / "plain-file").write_text("not a directory")
    exc = await outcome(lambda: Store.open(f"sqlite:///{tmp_path}/plain-file/sub/s.db"))
    assert isinstance(exc, SessionkeeperError), repr(exc)
    path = tmp_path / "a-directory"
    path.mkdir()
    exc = await outcome(lambda: Store.open(f"sqlite:///{path}"))
    assert isinstance(exc, SessionkeeperError), repr(exc)
    for url in (f"sqlite:///{tmp_path}/plain-file/sub/s.db", f"sqlite:///{path}"):
        exc = await outcome(lambda url=url: Store.upgrade(url))
        assert isinstance(exc, SessionkeeperError), repr(exc)


# ── PostgreSQL: a private cluster ──────────────────────────────────────────


async def test_postgres_killed_between_calls_every_method_unavailable(
    pg_cluster: PgCluster,
) -> None:
    store = await Store.open(pg_cluster.url, timeout=2)
    try:
        d = await seed(store)
        await store.get_stats()  # pooled connections exist when the server goes
        pg_cluster.kill9()  # postmaster and backends, by pid; waits until they are gone
        results = await call_everything(store, d)
        assert driver_escapes(results) == []
        wrong = [f"{n}: {e!r}" for n, e in results if not isinstance(e, Unavailable)]
        assert wrong == [], "expected Unavailable from every call of a stopped cluster"
        for opening in (Store.open, Store.upgrade):  # class methods, their own connections
            exc = await outcome(lambda opening=opening: opening(pg_cluster.url, timeout=2))
            assert isinstance(exc, Unavailable), repr(exc)
        pg_cluster.restart()
        await store.ping()  # and the store recovers without a restart
    finally:
        await store.close()


async def _timed(call: Callable[[], Awaitable[Any]]) -> tuple[BaseException | None, float]:
    start = time.monotonic()
    exc = await outcome(call)
    return exc, time.monotonic() - start


async def _collect(
    tasks: dict[str, asyncio.Task[tuple[BaseException | None, float]]],
    label: str,
    timings: dict[str, float],
) -> list[str]:
    """Wait for the calls (a call that hangs is cancelled, reported, and not waited for
    longer than the freeze); what is wrong with their answers."""
    done, _ = await asyncio.wait(tasks.values(), timeout=FREEZE_S - 1)
    problems = []
    for name, task in tasks.items():
        if task not in done:
            task.cancel()
            problems.append(f"{label} {name}: no answer within {FREEZE_S - 1:g} s")
            continue
        exc, took = task.result()
        timings[f"{label} {name}"] = took
        if not isinstance(exc, Unavailable) or took >= FROZEN_BOUND:
            problems.append(f"{label} {name}: {exc!r} after {took:.2f} s")
    return problems


async def test_postgres_frozen_every_kind_of_call_answers_within_3_s(
    pg_cluster: PgCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    """Frozen mid-transaction (blocked on a row lock another connection holds when the
    cluster is SIGSTOPped) and frozen before the call: Unavailable within 3 s each."""
    import asyncpg

    store = await Store.open(pg_cluster.url, timeout=FROZEN_TIMEOUT)
    locker = None
    timings: dict[str, float] = {}
    problems: list[str] = []
    try:
        d = await seed(store)
        table = calls(store, d)
        adk = store.adk
        # The calls that write the session rows a lock holder keeps: they BEGIN, then wait.
        blocked = {
            "delete_message": table["delete_message"],
            "pop_message": table["pop_message"],
            "clear_messages": table["clear_messages"],
            "import_session": table["import_session"],
            "import_session_stream": table["import_session_stream"],
            "add_message": table["add_message"],
            "adk.append": table["adk.append"],
            "checkpoints.put": table["checkpoints.put"],
            "checkpoints.delete_thread": lambda: store.checkpoints.delete_thread(
                d.thread,
                session_type="graph",  # deletes the session row: waits for its lock
            ),
            # Its last statement merges the app's state: waits for that row's lock.
            "adk.create": lambda: adk.create(
                AdkKey("app", "user", "adk-3"), Scopes({}, {"b": 2}, {}), update_time=1.0
            ),
        }
        # Enough pooled connections for all of them at once before the freeze.
        await asyncio.gather(*(store.get_stats() for _ in range(len(blocked))))
        locker = await asyncpg.connect(pg_cluster.url)
        await locker.execute("BEGIN")
        adk_sid = (await adk.get(d.adk)).session_id  # type: ignore[union-attr]
        await locker.execute(
            "SELECT 1 FROM sessions WHERE session_id = ANY($1::text[]) FOR UPDATE",
            [d.sid, d.thread, adk_sid],
        )
        await locker.execute("SELECT 1 FROM adk_app_state WHERE app_name = 'app' FOR UPDATE")

        tasks = {name: asyncio.create_task(_timed(call)) for name, call in blocked.items()}
        await asyncio.sleep(0.5)  # each is now waiting for the row lock, inside the server
        frozen_at = time.monotonic()
        pg_cluster.freeze()
        problems += await _collect(tasks, "mid-transaction", timings)

        # Frozen before the call: every kind, all at once (more than the pool holds).
        before = [
            "get_session",
            "get_messages",
            "list_sessions",
            "add_message",
            "delete_message",
            "pop_message",
            "clear_messages",
            "import_session",
            "import_session_stream",
            "create_session",
            "adk.create",
            "adk.append",
            "adk.get",
            "checkpoints.put",
            "checkpoints.put_writes",
            "checkpoints.get",
            "checkpoints.delete_thread",
            "checkpoints.copy_thread",
            "checkpoints.prune",
            "job_lock",
            "ping",
        ]
        tasks = {name: asyncio.create_task(_timed(table[name])) for name in before}
        problems += await _collect(tasks, "frozen", timings)
        left = FREEZE_S - (time.monotonic() - frozen_at)
        if left > 0:
            await asyncio.sleep(left)
    finally:
        pg_cluster.thaw()
        if locker is not None:
            locker.terminate()
        try:
            with capsys.disabled():
                print("\nfrozen PostgreSQL, seconds per call (timeout 2 s):")
                for name, took in timings.items():
                    print(f"  {took:5.2f}  {name}")
        finally:
            await store.close()
    assert problems == [], "\n".join(problems)
    # Thawed: the store answers again without a restart.
    store = await Store.open(pg_cluster.url, timeout=FROZEN_TIMEOUT)
    try:
        await store.ping()
    finally:
        await store.close()

"""PostgreSQL connections of one backend: a pool per event loop, every call bounded.

- **Connections per event loop.** An asyncpg connection belongs to the loop that made it;
  agent frameworks run ``asyncio.run`` per call. So the backend keeps a small LIFO pool per
  loop (``Pool``), dropping the pools of loops that have closed. The pool is minimal on
  purpose: only single statements or whole transactions run on a connection, so it needs
  no reset between uses (``asyncpg.Pool``'s acquire/release machinery cost ~0.11 ms per call
  here, 18 % of an append).
- **Bounded.** ``statement_timeout`` on every connection stops the server's work; a client
  deadline (``asyncio.timeout``) covers a server that does not answer at all (frozen,
  unreachable), and the connect timeout the same for new connections. A connection whose
  statement did not finish cleanly is discarded: its protocol state is unknown.
- **Transactions bounded whole** (``_transaction``): BEGIN, the body and COMMIT run within
  one deadline; after a failure ROLLBACK is tried only within what is left of it (without a
  deadline: at most the timeout), and a connection whose state is unknown (a timeout, a
  lost socket) or whose ROLLBACK does not answer in time is terminated instead: the server
  rolls back by itself. So a frozen server answers Unavailable at the deadline, not when it
  thaws. A timeout during COMMIT is Unavailable though the COMMIT may have landed.
- **Errors translated once**: ``postgres_pool.translating`` guards connecting (and its
  settings), every statement and transaction, and ``postgres_pool.translate`` is the one
  mapping.

The backend (``postgres.py``) and its framework parts (``frameworks/postgres_*.py``) run
their statements through ``_conn``, ``_transaction`` and ``_run``.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any
from weakref import WeakKeyDictionary

import asyncpg

from sessionkeeper.errors import InvalidInput, Unavailable
from sessionkeeper.store.backends.postgres_pool import (
    DRIVER_ERRORS,
    Pool,
    Stepped,
    clean_after,
    may_roll_back,
    translating,
)
from sessionkeeper.store.url import DatabaseConfig
from sessionkeeper.store.validate import json_text

POOL_SIZE = 10

# Deletes, within a transaction on the connection given, the rows of the sessions named in
# every table keyed by session (``PostgresBackend.delete_rows``: parts that delete sessions
# use it, as there is no foreign key to do it).
DeleteRows = Callable[[Any, Sequence[str]], Awaitable[None]]


class Connections:
    """The connections of one PostgreSQL database: settings, pools, bounded use."""

    def __init__(self, cfg: DatabaseConfig) -> None:
        self.cfg = cfg
        self.timeout = cfg.timeout
        kwargs = dict(cfg.connect_kwargs)
        self.pool_size = kwargs.pop("pool_size", POOL_SIZE)
        if (
            isinstance(self.pool_size, bool)
            or not isinstance(self.pool_size, int)
            or not (1 <= self.pool_size <= 1000)
        ):
            raise InvalidInput(
                f"pool_size must be an integer from 1 to 1000, got {self.pool_size!r}"
            )
        known = set(inspect.signature(asyncpg.connect).parameters)
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise InvalidInput(f"unknown PostgreSQL connection options: {', '.join(unknown)}")
        self._connect_kwargs = kwargs
        settings = dict(cfg.server_settings)
        # The server stops a statement that runs past the timeout (the client stops waiting
        # just after); a caller's own setting wins.
        settings.setdefault("statement_timeout", str(int(self.timeout * 1000)))
        self._server_settings = settings
        self._pools: WeakKeyDictionary[asyncio.AbstractEventLoop, Pool] = WeakKeyDictionary()
        self._pools_lock = threading.Lock()
        self._closed = False
        # Uses finished so far (``_run``, ``_conn``, ``_transaction``): a read on a standby
        # compares it with what it last synchronised to, to know whether this store may have
        # written since (``postgres_reads.py``). Counted when a use ends, so a write that has
        # returned is always in it.
        self.uses = 0

    async def connect(self) -> Any:
        """A new connection with the store's settings (also what migrations run on)."""
        timeout = self.cfg.connect_timeout or self.timeout
        # Refused at the door (no such database, login refused, not accepting connections,
        # starting up): nothing this call could fix, so Unavailable, not a DatabaseError.
        with translating(timeout, connecting=True):
            async with asyncio.timeout(timeout):
                conn = await asyncpg.connect(
                    self.cfg.dsn,
                    timeout=timeout,
                    server_settings=self._server_settings,
                    **self._connect_kwargs,
                )
                try:
                    # A message row's metadata is validate.Checked: its JSON text, made by
                    # the check, is sent as it is (json_text), not serialised again.
                    await conn.set_type_codec(
                        "jsonb", encoder=json_text, decoder=json.loads, schema="pg_catalog"
                    )
                except BaseException:
                    conn.terminate()
                    raise
        return conn

    def _pool(self) -> Pool:
        if self._closed:
            raise Unavailable("the store is closed")
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            # Loops in other threads may arrive at once: the pools map changes under a lock.
            with self._pools_lock:
                stale = [(other, p) for other, p in self._pools.items() if other.is_closed()]
                for other, _ in stale:
                    self._pools.pop(other, None)
                pool = self._pools.setdefault(loop, Pool(self.connect, self.pool_size))
            for _, old in stale:
                old.terminate()
        return pool

    async def close(self) -> None:
        self._closed = True
        with self._pools_lock:
            pools, self._pools = list(self._pools.items()), WeakKeyDictionary()
        current = asyncio.get_running_loop()
        for loop, pool in pools:
            if loop is current:
                await pool.close()
            else:
                pool.terminate()

    @asynccontextmanager
    async def _conn(
        self, *, deadline: float | None = -1.0, counted: bool = True
    ) -> AsyncIterator[Any]:
        """A connection for single statements (each its own transaction), within the
        deadline. Several statements that must commit together: ``_transaction``.
        ``counted=False``: left out of ``uses`` (for statements that write nothing)."""
        limit = self.timeout if deadline == -1.0 else deadline
        pool = self._pool()
        conn = None
        reusable = False
        with translating(self.timeout):
            try:
                async with asyncio.timeout(limit):
                    conn = await pool.acquire()
                    yield conn
                reusable = True
            except BaseException as exc:
                reusable = clean_after(exc)
                raise
            finally:
                if conn is not None:
                    pool.release(conn, reusable)
                self.uses += counted

    @asynccontextmanager
    async def _transaction(self, *, deadline: float | None = -1.0) -> AsyncIterator[Any]:
        """A connection in a transaction: acquiring, BEGIN, the body and COMMIT all within
        the deadline (default: the timeout; None: none). With a longer deadline (imports,
        maintenance) each of those steps, and each statement of the body, is also bounded
        by the timeout (``Stepped``; the server's statement_timeout is the same), so a
        server that stops answering is noticed within the timeout all the same.

        After a failure, ROLLBACK is tried only within what is left of the deadline (without
        one: at most the timeout); a connection in an unknown state, or whose ROLLBACK does
        not answer in time, is terminated instead (the server then rolls back by itself), so
        a frozen server never holds the caller past the deadline. A timeout during COMMIT is
        Unavailable though the COMMIT may have landed (the caller cannot know; as for any
        single statement)."""
        limit = self.timeout if deadline == -1.0 else deadline
        step = None if limit is not None and limit <= self.timeout else self.timeout
        loop = asyncio.get_running_loop()
        end = None if limit is None else loop.time() + limit
        pool = self._pool()
        conn = None
        reusable = False
        with translating(self.timeout):
            try:
                failure: BaseException | None = None
                async with asyncio.timeout_at(end):
                    async with asyncio.timeout(step):
                        conn = await pool.acquire()
                    stepped = conn if step is None else Stepped(conn, step)
                    await stepped.execute("BEGIN")
                    try:
                        yield stepped
                    except BaseException as exc:
                        if not may_roll_back(exc):
                            raise  # the deadline's cancellation becomes its TimeoutError
                        failure = exc
                    else:
                        await stepped.execute("COMMIT")
                        reusable = True
                if failure is not None:
                    # Outside the deadline's block: its expiry must not replace the body's
                    # error by a timeout; the ROLLBACK has its own bound.
                    reusable = await self._roll_back(conn, end, step)
                    raise failure
            finally:
                if conn is not None:
                    pool.release(conn, reusable)  # not reusable: terminated
                self.uses += 1

    async def _roll_back(self, conn: Any, end: float | None, step: float | None) -> bool:
        """ROLLBACK within what is left until ``end`` and within ``step``; whether it did.
        When it did not, the caller terminates the connection."""
        bound = min(
            self.timeout if end is None and step is None else math.inf,
            math.inf if end is None else end - asyncio.get_running_loop().time(),
            math.inf if step is None else step,
        )
        if bound <= 0 or conn.is_closed():
            return False
        try:
            async with asyncio.timeout(bound):
                await conn.execute("ROLLBACK")
        except DRIVER_ERRORS:
            return False
        return True

    async def _run(self, method: str, stmt: str, *args: Any) -> Any:
        """One statement, its own transaction: ``_conn`` written out, as every append and
        hot read takes this path (the context manager's generator cost ~5% of an append)."""
        pool = self._pool()
        conn = None
        reusable = False
        with translating(self.timeout):
            try:
                async with asyncio.timeout(self.timeout):
                    conn = await pool.acquire()
                    result = await getattr(conn, method)(stmt, *args)
                reusable = True
                return result
            except BaseException as exc:
                reusable = clean_after(exc)
                raise
            finally:
                if conn is not None:
                    pool.release(conn, reusable)
                self.uses += 1

"""PostgreSQL connections: a minimal pool per event loop, and failures translated once.

Every touch of the driver (connecting and its settings, every statement, BEGIN, COMMIT,
ROLLBACK, advisory locks, migrations) runs inside ``translating()``, and ``translate`` is the
one mapping from asyncpg and network failures to the store's errors (like httpx's
``map_httpcore_exceptions``): no asyncpg exception, and no OSError or TimeoutError of the
driver, leaves the backend. ``clean_after`` says whether a connection may be reused after a
failure.

The pool is minimal on purpose: only single statements or whole transactions run on a
connection, so it needs no reset between uses (``asyncpg.Pool``'s acquire/release machinery
cost ~0.11 ms per call here, 18 % of an append). A connection belongs to the event loop that
made it; the backend keeps one pool per loop.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import asyncpg

from sessionkeeper.errors import (
    Conflict,
    DatabaseError,
    InvalidInput,
    SessionkeeperError,
    Unavailable,
)

# Failures after which the connection's state is unknown (or the server is gone): discard it.
DISCARD = (
    OSError,
    TimeoutError,
    asyncio.CancelledError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,  # e.g. "another operation is in progress"
)
UNAVAILABLE = (
    asyncpg.PostgresConnectionError,  # 08***: connection exceptions
    asyncpg.CannotConnectNowError,  # 57P03: starting up, shutting down, in recovery
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.QueryCanceledError,  # 57014: statement_timeout
    asyncpg.InsufficientResourcesError,  # 53***: too many connections, out of memory or disk
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    asyncpg.LockNotAvailableError,
    asyncpg.ReadOnlySQLTransactionError,  # a standby
)
# What the driver raises (a cancellation is not a failure: it passes untouched).
DRIVER_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
    TimeoutError,
)


def translate(
    exc: BaseException, timeout: float, *, connecting: bool = False
) -> SessionkeeperError:
    """An asyncpg (or network) failure as the store's own error type.

    ``connecting``: refused at the door (no such database, login refused, not accepting
    connections, starting up) is nothing the call could fix, so Unavailable, not a
    DatabaseError."""
    if isinstance(exc, SessionkeeperError):
        return exc
    text = str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError):
        return Unavailable(f"PostgreSQL did not answer within {timeout:g} s; retry")
    if isinstance(exc, OSError):
        return Unavailable(f"cannot reach PostgreSQL: {text}")
    if connecting and isinstance(exc, asyncpg.PostgresError):
        return Unavailable(f"cannot connect to PostgreSQL: {text}")
    if isinstance(exc, asyncpg.UniqueViolationError):
        return Conflict(f"the database refused a duplicate: {text}")
    if isinstance(exc, UNAVAILABLE):
        return Unavailable(f"PostgreSQL is not available: {text}")
    if isinstance(exc, asyncpg.DataError):  # class 22, and arguments asyncpg cannot encode
        return InvalidInput(f"the database refused a value: {text}")
    if isinstance(exc, asyncpg.InterfaceError | asyncpg.exceptions.InternalClientError):
        return Unavailable(f"lost the PostgreSQL connection: {text}")
    return DatabaseError(f"PostgreSQL: {text}")


@contextlib.contextmanager
def translating(timeout: float, *, connecting: bool = False) -> Iterator[None]:
    """The one guard around the driver: what it raises leaves as ``translate`` says.

    Put it outside any ``asyncio.timeout`` it should cover: the deadline's cancellation
    becomes a TimeoutError only when it leaves that block."""
    try:
        yield
    except DRIVER_ERRORS as exc:
        raise translate(exc, timeout, connecting=connecting) from exc


def clean_after(exc: BaseException) -> bool:
    """Whether a connection is fit for reuse after ``exc`` left a statement on it: a value
    or statement the server refused leaves it fine; a server going away (57P01-57P03,
    08***, …), a timeout, a cancellation or a lost socket leave its protocol state unknown."""
    if isinstance(exc, SessionkeeperError):
        return True
    return isinstance(exc, asyncpg.PostgresError) and not isinstance(exc, UNAVAILABLE)


def may_roll_back(exc: BaseException) -> bool:
    """Whether a transaction that ``exc`` interrupted may be rolled back on its connection
    (anything but an unknown protocol state or a server going away: the body's own errors,
    a statement the server refused); else the connection is terminated and the server
    rolls back by itself."""
    return not isinstance(exc, (*DISCARD, *UNAVAILABLE))


class Stepped:
    """A connection whose every statement must answer within ``step`` seconds (executemany:
    ``step`` per hundred rows), for transactions too long for one deadline: a server that
    stops answering is noticed within a step; the server's ``statement_timeout`` bounds
    each statement the same way on its side."""

    def __init__(self, conn: Any, step: float) -> None:
        self.conn = conn
        self.step = step

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        async with asyncio.timeout(self.step):
            return await self.conn.execute(*args, **kwargs)

    async def executemany(self, stmt: str, rows: Any, **kwargs: Any) -> Any:
        rows = list(rows)
        async with asyncio.timeout(self.step * max(1, math.ceil(len(rows) / 100))):
            return await self.conn.executemany(stmt, rows, **kwargs)

    async def fetch(self, *args: Any, **kwargs: Any) -> Any:
        async with asyncio.timeout(self.step):
            return await self.conn.fetch(*args, **kwargs)

    async def fetchrow(self, *args: Any, **kwargs: Any) -> Any:
        async with asyncio.timeout(self.step):
            return await self.conn.fetchrow(*args, **kwargs)

    async def fetchval(self, *args: Any, **kwargs: Any) -> Any:
        async with asyncio.timeout(self.step):
            return await self.conn.fetchval(*args, **kwargs)


class Pool:
    """At most ``size`` connections of one event loop, reused newest-first."""

    def __init__(self, connect: Callable[[], Awaitable[Any]], size: int) -> None:
        self.connect = connect
        self.size = size
        self.idle: list[Any] = []
        self.opened = 0
        self.waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def acquire(self) -> Any:
        while True:
            while self.idle:
                conn = self.idle.pop()
                if not conn.is_closed():
                    return conn
                self.opened -= 1  # the server ended it while idle (restart, failover)
            if self.opened < self.size:
                self.opened += 1
                try:
                    return await self.connect()
                except BaseException:
                    self.opened -= 1
                    self._wake()  # a waiter may open one in its place (was: waited forever)
                    raise
            waiter = asyncio.get_running_loop().create_future()
            self.waiters.append(waiter)
            try:
                await waiter
            finally:
                with contextlib.suppress(ValueError):
                    self.waiters.remove(waiter)

    def release(self, conn: Any, reusable: bool) -> None:
        if reusable and not conn.is_closed():
            self.idle.append(conn)
        else:
            conn.terminate()
            self.opened -= 1
        self._wake()

    def _wake(self) -> None:
        """Let the first waiter try again: a connection is idle, or one may be opened."""
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    def terminate(self) -> None:
        """Drop every idle connection without a goodbye (its loop may be gone)."""
        while self.idle:
            conn = self.idle.pop()
            self.opened -= 1
            with contextlib.suppress(Exception):
                conn.terminate()

    async def close(self) -> None:
        while self.idle:
            conn = self.idle.pop()
            self.opened -= 1
            try:
                await asyncio.wait_for(conn.close(), 2)
            except Exception:
                conn.terminate()

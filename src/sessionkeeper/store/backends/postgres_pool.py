"""PostgreSQL connections: a minimal pool per event loop, and failures translated once.

The pool is minimal on purpose: only single statements or whole transactions run on a
connection, so it needs no reset between uses (``asyncpg.Pool``'s acquire/release machinery
cost ~0.11 ms per call here, 18 % of an append). A connection belongs to the event loop that
made it; the backend keeps one pool per loop.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Awaitable, Callable
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


def translate(exc: BaseException, timeout: float) -> SessionkeeperError:
    """An asyncpg (or network) failure as the store's own error type."""
    if isinstance(exc, SessionkeeperError):
        return exc
    text = str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError):
        return Unavailable(f"PostgreSQL did not answer within {timeout:g} s; retry")
    if isinstance(exc, OSError):
        return Unavailable(f"cannot reach PostgreSQL: {text}")
    if isinstance(exc, asyncpg.UniqueViolationError):
        return Conflict(f"the database refused a duplicate: {text}")
    if isinstance(exc, UNAVAILABLE):
        return Unavailable(f"PostgreSQL is not available: {text}")
    if isinstance(exc, asyncpg.DataError):  # class 22, and arguments asyncpg cannot encode
        return InvalidInput(f"the database refused a value: {text}")
    if isinstance(exc, asyncpg.InterfaceError | asyncpg.exceptions.InternalClientError):
        return Unavailable(f"lost the PostgreSQL connection: {text}")
    return DatabaseError(f"PostgreSQL: {text}")


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

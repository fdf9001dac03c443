"""Standby reads: where a PostgreSQL read goes when the store has a read URL.

Listings, searches, gets and windows (the backend's ``_reading()``) run on a standby's
connections (``DatabaseConfig.read_dsn``: a read URL, or the same hosts with
``target_session_attrs=prefer-standby``); everything else, writes above all, stays on the
primary's. A standby replays the primary's WAL a little later, so a client that writes and
then reads could miss its own write. The rule that prevents it, per store:

- The primary's connections count their uses (``Connections.uses``, counted when a use
  ends). When a read finds the count moved since it last looked, this store may have written:
  it asks the primary for its WAL position (``pg_current_wal_lsn()``), which every commit
  that had returned is at or before, and makes that the *target*.
- The read takes a standby connection and checks that that standby has replayed the target
  (``pg_last_wal_replay_lsn()``; remembered per connection, so a caught-up connection is
  not asked again). If not, it polls for up to ``read_wait`` seconds, then gives up on the
  standby and reads from the primary. A standby that cannot be reached sends the read to
  the primary too; a read that fails on the standby once it has started is not repeated.
- A connection that ``prefer-standby`` put on a primary (no standby up) is caught up by
  definition.

The cost: none for a read when nothing was written since the last one; one round trip to
the primary (and usually one to the standby) for the first read after writes. The promise is
per store (one process, e.g. one API replica): a client whose write and read land on two
replicas may read from a standby that has not replayed its write yet.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from weakref import WeakKeyDictionary

from sessionkeeper.errors import Unavailable
from sessionkeeper.store.backends.postgres_conn import Connections

POLL_S = 0.002  # between two looks at a standby's replay position

CURRENT_LSN = "SELECT pg_current_wal_lsn()::text"
REPLAYED_LSN = "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()::text END"


def lsn(text: str) -> int:
    """A pg_lsn's text ('16/B374D848') as a number that orders like it."""
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


class ReadRoute:
    """Routes the reads of one backend between its primary and its standby connections."""

    def __init__(self, primary: Connections, standby: Connections, wait: float) -> None:
        self.primary = primary
        self.standby = standby
        self.wait = wait
        self.target = 0  # the WAL position the standby must have replayed
        self.synced = 0  # primary.uses when ``target`` was taken
        self.replayed: WeakKeyDictionary[Any, int] = WeakKeyDictionary()
        self.on_standby = 0  # reads served by the standby / by the primary (for tests,
        self.on_primary = 0  # benches and metrics)

    async def close(self) -> None:
        await self.standby.close()

    async def _target(self) -> int:
        uses = self.primary.uses
        if uses != self.synced:
            async with self.primary._conn(counted=False) as conn:
                position = lsn(await conn.fetchval(CURRENT_LSN))
            self.target = max(self.target, position)
            self.synced = uses
        return self.target

    async def _caught_up(self, conn: Any, target: int) -> bool:
        if self.replayed.get(conn, -1) >= target:
            return True
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.wait
        while True:
            found = await conn.fetchval(REPLAYED_LSN)
            position = 2**64 if found is None else lsn(found)  # None: a primary
            self.replayed[conn] = position
            if position >= target:
                return True
            if loop.time() >= give_up:
                return False
            await asyncio.sleep(POLL_S)

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[Any]:
        """A connection to read on: a standby that has replayed this store's writes, else
        the primary."""
        target = await self._target()
        started = False
        try:
            async with self.standby._conn() as conn:
                if await self._caught_up(conn, target):
                    started = True
                    self.on_standby += 1
                    yield conn
        except Unavailable:
            if started:
                raise
        if started:
            return
        self.on_primary += 1
        async with self.primary._conn(counted=False) as conn:
            yield conn

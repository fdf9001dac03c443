"""Ghost purge, prune and stats: the set-wide queries over ``sessions``.

All three read only the sessions table (counters make that enough). Deletes run in bounded
batches, each its own short transaction, so a purge of 100,000 rows never holds a long lock
nor builds a giant IN list; every batch re-checks its condition in the DELETE itself, so a
session that receives a message between the pick and the delete is not removed (on
PostgreSQL the row lock makes the outer WHERE be re-evaluated on the latest row version).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, case, delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from sessionkeeper.models import PruneResult, Stats
from sessionkeeper.store.schema import UTCDateTime, sessions

GHOST_BATCH = 2_000


async def _delete_in_batches(engine: AsyncEngine, *where: Any, batch: int) -> int:
    deleted = 0
    while True:
        pick = select(sessions.c.session_id).where(*where).limit(batch).scalar_subquery()
        stmt = delete(sessions).where(sessions.c.session_id.in_(pick), *where)
        async with engine.connect() as conn:
            conn = await conn.execution_options(sk_write=True)
            async with conn.begin():
                count = (await conn.execute(stmt)).rowcount
        deleted += count
        if count < batch:
            return deleted


# PostgreSQL: each batch is picked through the partial ghost index in created_at order and
# deleted by primary key. ``= ANY(ARRAY(subquery))`` makes the planner run the pick first;
# ``IN (subquery)`` became a semi-join scanning all of sessions once per batch (bench/ghosts).
# SKIP LOCKED lets GHOST_WORKERS connections purge disjoint batches side by side: the cost
# is the foreign key's per-row cascade check, which one backend would run serially.
_PG_GHOSTS = text(
    """
    DELETE FROM sessions
    WHERE session_id = ANY(ARRAY(
            SELECT session_id FROM sessions
            WHERE message_count = 0 AND created_at < :cutoff
            ORDER BY created_at
            LIMIT :batch
            FOR UPDATE SKIP LOCKED))
      AND message_count = 0 AND created_at < :cutoff
    """
).bindparams(bindparam("cutoff", type_=UTCDateTime()))
GHOST_WORKERS = 2


async def delete_ghosts(engine: AsyncEngine, older_than_minutes: float, now: datetime) -> int:
    cutoff = now - timedelta(minutes=older_than_minutes)
    if engine.dialect.name != "postgresql":
        return await _delete_in_batches(
            engine,
            sessions.c.message_count == 0,
            sessions.c.created_at < cutoff,
            batch=GHOST_BATCH,
        )

    async def worker() -> int:
        deleted = 0
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            while True:
                # One statement per batch, its own short transaction. The outer WHERE is
                # re-checked on the latest row version: a session that got a message stays.
                result = await conn.execute(_PG_GHOSTS, {"cutoff": cutoff, "batch": GHOST_BATCH})
                deleted += result.rowcount
                if result.rowcount == 0:
                    return deleted

    return sum(await asyncio.gather(*(worker() for _ in range(GHOST_WORKERS))))


async def prune(
    engine: AsyncEngine, days: float, now: datetime, dry_run: bool, batch: int
) -> PruneResult:
    cutoff = now - timedelta(days=days)
    stale = sessions.c.updated_at < cutoff
    if dry_run:
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        func.count(), func.coalesce(func.sum(sessions.c.message_count), 0)
                    ).where(stale)
                )
            ).one()
        return PruneResult(int(row[0]), int(row[1]), True, days, cutoff)
    pruned = messages_gone = 0
    while True:
        # Pick a batch, then delete only what is still stale, counting its messages.
        async with engine.connect() as conn:
            conn = await conn.execution_options(sk_write=True)
            async with conn.begin():
                pick = select(sessions.c.session_id).where(stale).limit(batch).scalar_subquery()
                rows = (
                    await conn.execute(
                        delete(sessions)
                        .where(sessions.c.session_id.in_(pick), stale)
                        .returning(sessions.c.message_count)
                    )
                ).all()
        pruned += len(rows)
        messages_gone += sum(int(r[0]) for r in rows)
        if len(rows) < batch:
            return PruneResult(pruned, messages_gone, False, days, cutoff)


async def stats(
    engine: AsyncEngine,
    now: datetime,
    ghost_minutes: float,
    stale_days: float,
    agent_ids: Sequence[str] | None,
) -> Stats:
    ghost_cutoff = now - timedelta(minutes=ghost_minutes)
    stale_cutoff = now - timedelta(days=stale_days)
    scope = [sessions.c.agent_id.in_(list(agent_ids))] if agent_ids is not None else []

    def count_if(*cond: Any) -> Any:
        return func.coalesce(
            func.sum(case((cond[0] if len(cond) == 1 else cond[0] & cond[1], 1), else_=0)), 0
        )

    totals = select(
        func.count(),
        func.coalesce(func.sum(sessions.c.message_count), 0),
        func.coalesce(func.sum(sessions.c.token_count), 0),
        count_if(sessions.c.status == "active"),
        count_if(sessions.c.status == "ended"),
        count_if(sessions.c.message_count == 0, sessions.c.created_at < ghost_cutoff),
        count_if(sessions.c.updated_at < stale_cutoff),
        func.count(sessions.c.agent_id.distinct()),
        func.min(sessions.c.created_at),
        func.max(sessions.c.updated_at),
    ).where(*scope)
    by_agent = (
        select(sessions.c.agent_id, func.count())
        .where(*scope)
        .group_by(sessions.c.agent_id)
        .order_by(func.count().desc(), sessions.c.agent_id)
    )
    by_type = (
        select(sessions.c.session_type, func.count())
        .where(*scope)
        .group_by(sessions.c.session_type)
        .order_by(func.count().desc(), sessions.c.session_type)
    )
    async with engine.connect() as conn:
        t = (await conn.execute(totals)).one()
        agents = {str(a): int(n) for a, n in await conn.execute(by_agent)}
        types = {str(a): int(n) for a, n in await conn.execute(by_type)}
    return Stats(
        total_sessions=int(t[0]),
        total_messages=int(t[1]),
        total_tokens=int(t[2]),
        active_sessions=int(t[3]),
        ended_sessions=int(t[4]),
        ghost_sessions=int(t[5]),
        stale_sessions=int(t[6]),
        active_agents=int(t[7]),
        by_agent=agents,
        by_type=types,
        oldest_session=_aware(t[8]),
        newest_activity=_aware(t[9]),
        ghost_threshold_minutes=ghost_minutes,
        stale_threshold_days=stale_days,
    )


def _aware(value: Any) -> datetime | None:
    # min()/max() lose the column type on SQLite: re-apply the UTC decoding.
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    result: datetime | None = UTCDateTime().process_result_value(value, None)  # type: ignore[arg-type]
    return result

"""PostgreSQL: forgetting a user (``forgetting.py``), each step inside the caller's transaction.

A deleted row leaves every query at once: no table answers with it and no index leads to
it (the ``tsv`` column and its GIN entries are the row's). Its bytes stay in the table and
index files as a dead tuple until VACUUM (or autovacuum) removes it; VACUUM FULL rewrites
the files. Write-ahead log segments, replicas' copies and backups keep their history as
they always do. README "Forgetting a user" has the measurements.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sessionkeeper.models import ForgetCounts
from sessionkeeper.store.backends.forgetting import ForgetPlan

DeleteRows = Callable[[Any, Sequence[str]], Awaitable[None]]

# API keys whose users are this user alone ($1), or this user and others; of the agent ($2)
# alone when the forget is for one agent. (JSON path tests: a value that is not a list
# matches nothing and raises nothing.)
_OTHER_THAN = "jsonb_path_exists({column}, '$[*] ? (@ != $v)', jsonb_build_object('v', {value}))"
_ONLY_USER = (
    "jsonb_typeof(user_ids) = 'array' AND user_ids @> jsonb_build_array($1::text) "
    f"AND NOT {_OTHER_THAN.format(column='user_ids', value='$1::text')}"
)
_AMONG_USERS = (
    "jsonb_typeof(user_ids) = 'array' AND user_ids @> jsonb_build_array($1::text) "
    f"AND {_OTHER_THAN.format(column='user_ids', value='$1::text')}"
)
_ONLY_AGENT = (
    " AND jsonb_typeof(agent_ids) = 'array' AND agent_ids @> jsonb_build_array($2::text) "
    f"AND NOT {_OTHER_THAN.format(column='agent_ids', value='$2::text')}"
)


def _scope(plan: ForgetPlan, first: int) -> tuple[str, list[Any]]:
    """The user's sessions (of the agent) as a condition, numbered from ``$first``."""
    if plan.agent_id is None:
        return f"user_id = ${first}", [plan.user_id]
    return f"user_id = ${first} AND agent_id = ${first + 1}", [plan.user_id, plan.agent_id]


async def found(conn: Any, plan: ForgetPlan) -> list[tuple[str, int]]:
    """(session id, message count) of the user's sessions."""
    where, params = _scope(plan, 1)
    rows = await conn.fetch(
        f"SELECT session_id, message_count FROM sessions WHERE {where} ORDER BY session_id",
        *params,
    )
    return [(r[0], int(r[1])) for r in rows]


async def _count(
    conn: Any, ids: Sequence[str], checkpoint_tables: Sequence[str], adk_tables: Sequence[str]
) -> ForgetCounts:
    """The rows of sessions ``ids`` in every table keyed by session (one round trip)."""

    def total(tables: Sequence[str]) -> str:
        each = [f"(SELECT count(*) FROM {t} WHERE session_id = ANY($1::text[]))" for t in tables]
        return " + ".join(each) or "0"

    row = await conn.fetchrow(
        f"SELECT {total(['messages'])}, {total(checkpoint_tables)}, {total(adk_tables)}",
        list(ids),
    )
    return ForgetCounts(sessions=len(ids), messages=row[0], checkpoints=row[1], adk_state=row[2])


async def delete_batch(
    conn: Any,
    plan: ForgetPlan,
    ids: Sequence[str] | None,
    checkpoint_tables: Sequence[str],
    adk_tables: Sequence[str],
    delete_rows: DeleteRows,
) -> ForgetCounts:
    """Delete those of ``ids`` (None: all) that are still the user's, then their rows in
    every table (``delete_rows``, the backend's delete path); what went, per kind. The
    session rows go first: the DELETE waits for a writer holding one's lock, and a writer
    coming after finds it gone."""
    if ids is None:
        where, params = _scope(plan, 1)
    else:
        where, params = _scope(plan, 2)
        where = f"session_id = ANY($1::text[]) AND {where}"
        params = [list(ids), *params]
    deleted = await conn.fetch(f"DELETE FROM sessions WHERE {where} RETURNING session_id", *params)
    gone = [r[0] for r in deleted]
    if not gone:
        return ForgetCounts()
    counts = await _count(conn, gone, checkpoint_tables, adk_tables)
    await delete_rows(conn, gone)
    return counts


async def _user_state_apps(conn: Any, plan: ForgetPlan) -> list[str]:
    rows = await conn.fetch("SELECT app_name FROM adk_user_state WHERE user_id = $1", plan.user_id)
    return [r[0] for r in rows if plan.adk_app(r[0])]


def _keys(plan: ForgetPlan, which: str) -> tuple[str, list[Any]]:
    if plan.agent_id is None:
        return which, [plan.user_id]
    return which + _ONLY_AGENT, [plan.user_id, plan.agent_id]


async def preview(
    conn: Any, plan: ForgetPlan, checkpoint_tables: Sequence[str], adk_tables: Sequence[str]
) -> ForgetCounts:
    """What a forget would delete now."""
    ids = [session_id for session_id, _ in await found(conn, plan)]
    counts = await _count(conn, ids, checkpoint_tables, adk_tables)
    only, only_params = _keys(plan, _ONLY_USER)
    among, among_params = _keys(plan, _AMONG_USERS)
    return counts + ForgetCounts(
        adk_state=len(await _user_state_apps(conn, plan)),
        keys=await conn.fetchval(f"SELECT count(*) FROM api_keys WHERE {only}", *only_params),
        keys_narrowed=await conn.fetchval(
            f"SELECT count(*) FROM api_keys WHERE {among}", *among_params
        ),
    )


async def finish(
    conn: Any,
    plan: ForgetPlan,
    checkpoint_tables: Sequence[str],
    adk_tables: Sequence[str],
    delete_rows: DeleteRows,
    so_far: ForgetCounts,
) -> ForgetCounts:
    """The forget's last transaction: the user's sessions made since they were found, the
    user's ADK user state, the keys, the record. Returns the forget's counts."""
    assert plan.record is not None
    rest = await delete_batch(conn, plan, None, checkpoint_tables, adk_tables, delete_rows)
    counts = so_far + rest
    apps = await _user_state_apps(conn, plan)
    if apps:
        await conn.execute(
            "DELETE FROM adk_user_state WHERE user_id = $1 AND app_name = ANY($2::text[])",
            plan.user_id,
            apps,
        )
    only, only_params = _keys(plan, _ONLY_USER)
    among, among_params = _keys(plan, _AMONG_USERS)
    keys = await conn.execute(f"DELETE FROM api_keys WHERE {only}", *only_params)
    narrowed = await conn.execute(
        f"UPDATE api_keys SET user_ids = user_ids - $1::text WHERE {among}", *among_params
    )
    counts += ForgetCounts(
        adk_state=len(apps), keys=_rowcount(keys), keys_narrowed=_rowcount(narrowed)
    )
    record = plan.record
    await conn.execute(
        "INSERT INTO forgotten_users (forget_id, user_hash, agent_id, counts, forgotten_at) "
        "VALUES ($1, $2, $3, $4, $5)",
        record.forget_id,
        record.user_hash,
        plan.agent_id,
        counts.counts(),
        record.forgotten_at,
    )
    return counts


def _rowcount(status: str) -> int:
    """The row count of a command status (``DELETE 3``, ``UPDATE 1``)."""
    return int(status.split()[-1])

"""SQLite: forgetting a user (``forgetting.py``), leaving no byte of them in the file.

Each function runs inside the caller's transaction on the writer's connection (or a read
transaction for ``preview``). Why no byte remains once ``SqliteBackend.forget_user`` returns:

- **Deleted rows**: every writer connection runs with ``secure_delete`` on
  (``sqlite_threads.connect``), so SQLite overwrites deleted cells and freed pages with
  zeros, at every delete and every update, not only the forget's: an old title or a message
  deleted last week left no copy in a page's free space or on the freelist either.
- **The search index** (FTS5, external content over the ``messages_terms`` view): deleting a
  message adds a delete marker to a new index segment (the trigger of migration 0008); the
  terms stay in the older segments until they are merged. ``finish`` runs FTS5's
  ``optimize``, which merges every segment into one and drops the deleted entries; the old
  segments' pages are freed, and zeroed. Messages still noted in ``messages_unindexed``
  were never in the index.
- **The WAL** holds the old pages until a checkpoint copies them back: ``truncate_wal``
  checkpoints and truncates it to nothing (a reader of another process holding an old
  snapshot can delay that: retried for WAL_TRIES × WAL_WAIT_MS, then reported).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from sessionkeeper.models import ForgetCounts
from sessionkeeper.store.backends.forgetting import ForgetPlan
from sessionkeeper.store.backends.statements import sqlite_time

WAL_TRIES = 10
WAL_WAIT_MS = 200

_IDS = "SELECT value FROM json_each(?1)"
# API keys whose users are this user alone (?1), or this user and others; of the agent (?2)
# alone when the forget is for one agent.
_ONLY_USER = (
    "json_array_length(user_ids) > 0 "
    "AND NOT EXISTS (SELECT 1 FROM json_each(api_keys.user_ids) WHERE value IS NOT ?1)"
)
_AMONG_USERS = (
    "EXISTS (SELECT 1 FROM json_each(api_keys.user_ids) WHERE value = ?1) "
    "AND EXISTS (SELECT 1 FROM json_each(api_keys.user_ids) WHERE value IS NOT ?1)"
)
_ONLY_AGENT = (
    " AND json_array_length(agent_ids) > 0 "
    "AND NOT EXISTS (SELECT 1 FROM json_each(api_keys.agent_ids) WHERE value IS NOT ?2)"
)


def _scope(plan: ForgetPlan) -> tuple[str, list[Any]]:
    """The user's sessions (of the agent) as a condition on ``sessions``, with ?2 (and ?3)."""
    if plan.agent_id is None:
        return "user_id = ?2", [plan.user_id]
    return "user_id = ?2 AND agent_id = ?3", [plan.user_id, plan.agent_id]


def found(conn: sqlite3.Connection, plan: ForgetPlan) -> list[tuple[str, int]]:
    """(session id, message count) of the user's sessions (one scan of ``sessions``)."""
    where, params = _scope(plan)
    stmt = f"SELECT session_id, message_count FROM sessions WHERE {where} ORDER BY session_id"
    # ?1 is unused here; the numbering is shared with the statements that use it.
    return [(r[0], int(r[1])) for r in conn.execute(stmt, [None, *params])]


def _count(
    conn: sqlite3.Connection,
    ids: str,
    params: Sequence[Any],
    checkpoint_tables: Sequence[str],
    adk_tables: Sequence[str],
) -> ForgetCounts:
    """The rows of the sessions ``ids`` (a subquery) in every table keyed by session."""

    def total(tables: Sequence[str]) -> str:
        each = [f"(SELECT count(*) FROM {t} WHERE session_id IN ({ids}))" for t in tables]
        return " + ".join(each) or "0"

    row = conn.execute(
        f"SELECT (SELECT count(*) FROM sessions WHERE session_id IN ({ids})), "
        f"{total(['messages'])}, {total(checkpoint_tables)}, {total(adk_tables)}",
        params,
    ).fetchone()
    return ForgetCounts(sessions=row[0], messages=row[1], checkpoints=row[2], adk_state=row[3])


def delete_batch(
    conn: sqlite3.Connection,
    plan: ForgetPlan,
    ids: Sequence[str],
    checkpoint_tables: Sequence[str],
    adk_tables: Sequence[str],
) -> ForgetCounts:
    """Delete those of ``ids`` that are still the user's, with their rows in every table
    (the foreign keys' cascade); what went, per kind."""
    where, params = _scope(plan)
    live = [
        r[0]
        for r in conn.execute(
            f"SELECT session_id FROM sessions WHERE session_id IN ({_IDS}) AND {where}",
            [json.dumps(list(ids)), *params],
        )
    ]
    if not live:
        return ForgetCounts()
    chosen = [json.dumps(live)]
    counts = _count(conn, _IDS, chosen, checkpoint_tables, adk_tables)
    conn.execute(f"DELETE FROM sessions WHERE session_id IN ({_IDS})", chosen)
    return counts


def _user_state_apps(conn: sqlite3.Connection, plan: ForgetPlan) -> list[str]:
    rows = conn.execute("SELECT app_name FROM adk_user_state WHERE user_id = ?", (plan.user_id,))
    return [r[0] for r in rows if plan.adk_app(r[0])]


def _keys(plan: ForgetPlan, which: str) -> tuple[str, list[Any]]:
    if plan.agent_id is None:
        return which, [plan.user_id]
    return which + _ONLY_AGENT, [plan.user_id, plan.agent_id]


def preview(
    conn: sqlite3.Connection,
    plan: ForgetPlan,
    checkpoint_tables: Sequence[str],
    adk_tables: Sequence[str],
) -> ForgetCounts:
    """What a forget would delete now (in the caller's read transaction)."""
    where, params = _scope(plan)
    ids = f"SELECT session_id FROM sessions WHERE {where}"
    counts = _count(conn, ids, [None, *params], checkpoint_tables, adk_tables)
    only, only_params = _keys(plan, _ONLY_USER)
    among, among_params = _keys(plan, _AMONG_USERS)
    keys = conn.execute(f"SELECT count(*) FROM api_keys WHERE {only}", only_params).fetchone()
    narrowed = conn.execute(f"SELECT count(*) FROM api_keys WHERE {among}", among_params)
    return counts + ForgetCounts(
        adk_state=len(_user_state_apps(conn, plan)),
        keys=keys[0],
        keys_narrowed=narrowed.fetchone()[0],
    )


def finish(
    conn: sqlite3.Connection,
    plan: ForgetPlan,
    checkpoint_tables: Sequence[str],
    adk_tables: Sequence[str],
    so_far: ForgetCounts,
) -> ForgetCounts:
    """The forget's last transaction: the user's sessions made since they were found, the
    user's ADK user state, the keys, the record; then the search index rewritten without
    the deleted terms. Returns the forget's counts (``so_far`` and these)."""
    assert plan.record is not None
    rest = [session_id for session_id, _ in found(conn, plan)]
    counts = so_far + delete_batch(conn, plan, rest, checkpoint_tables, adk_tables)
    apps = _user_state_apps(conn, plan)
    if apps:
        conn.execute(
            "DELETE FROM adk_user_state WHERE user_id = ?1 AND app_name IN "
            "(SELECT value FROM json_each(?2))",
            (plan.user_id, json.dumps(apps)),
        )
    only, only_params = _keys(plan, _ONLY_USER)
    among, among_params = _keys(plan, _AMONG_USERS)
    keys = conn.execute(f"DELETE FROM api_keys WHERE {only}", only_params).rowcount
    narrowed = conn.execute(
        "UPDATE api_keys SET user_ids = (SELECT json_group_array(value) "
        f"FROM json_each(api_keys.user_ids) WHERE value IS NOT ?1) WHERE {among}",
        among_params,
    ).rowcount
    counts += ForgetCounts(adk_state=len(apps), keys=keys, keys_narrowed=narrowed)
    record = plan.record
    conn.execute(
        "INSERT INTO forgotten_users (forget_id, user_hash, agent_id, counts, forgotten_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (
            record.forget_id,
            record.user_hash,
            plan.agent_id,
            json.dumps(counts.counts()),
            sqlite_time(record.forgotten_at),
        ),
    )
    # Every segment merged into one, without the deleted entries (see the module docstring).
    conn.execute("INSERT INTO messages_fts(messages_fts) VALUES ('optimize')")
    return counts


def truncate_wal(conn: sqlite3.Connection) -> bool:
    """Checkpoint the WAL and truncate it to nothing (outside a transaction, on the writer);
    False if readers held old snapshots throughout the retries."""
    before = conn.execute("PRAGMA busy_timeout").fetchone()[0]
    conn.execute(f"PRAGMA busy_timeout={WAL_WAIT_MS}")
    try:
        for _ in range(WAL_TRIES):
            # (busy, log frames, checkpointed frames): busy is reported, not raised.
            if conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0:
                return True
        return False
    finally:
        conn.execute(f"PRAGMA busy_timeout={before}")

"""SQL of the retention policies, shared by both backends.

``store/retention.py`` says what the rules mean; ``statements.Params`` gives each dialect
its placeholders.

A rule's WHERE clause is written once (``rule_where``) and used twice in the statement that
applies it: to pick a bounded batch of rows, and again on each row the statement ends or
deletes, where it is evaluated on the row's latest version under its lock. A write to a
session (an append, a framework write, an update) moves ``updated_at`` to its own time, past
every cutoff, so a session written while a run is under way no longer matches and is left
alone; a writer that comes second waits for the batch's commit and then finds no session
(``NotFound``: nothing was acknowledged). The shapes are the prune's (``postgres_sql.PRUNE``,
``SqliteBackend.prune``): PostgreSQL picks its batch ``FOR UPDATE SKIP LOCKED`` (a row a
writer holds is skipped, never waited for) and the backend deletes the session's other rows
in the same transaction (``delete_rows``); SQLite's foreign keys cascade.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sessionkeeper.models import Policy
from sessionkeeper.store.backends.base import RuleScope
from sessionkeeper.store.backends.statements import Params

POLICY_COLUMNS = "agent_id, end_idle_minutes, delete_ended_days, delete_after_days, updated_at"
LIST_POLICIES = f"SELECT {POLICY_COLUMNS} FROM retention_policies ORDER BY agent_id"
PINNED = {"pinned": True}


def put_policy(dialect: str, policy: Policy) -> tuple[str, list[Any]]:
    """Insert or replace (both databases read ``ON CONFLICT … DO UPDATE`` alike)."""
    p = Params(dialect)
    values = ", ".join(
        [
            p(policy.agent_id),
            p(policy.end_idle_minutes),
            p(policy.delete_ended_days),
            p(policy.delete_after_days),
            p.time(policy.updated_at),
        ]
    )
    sql = (
        f"INSERT INTO retention_policies ({POLICY_COLUMNS}) VALUES ({values}) "
        "ON CONFLICT (agent_id) DO UPDATE SET end_idle_minutes = excluded.end_idle_minutes, "
        "delete_ended_days = excluded.delete_ended_days, "
        "delete_after_days = excluded.delete_after_days, updated_at = excluded.updated_at"
    )
    return sql, p.values


def delete_policy(dialect: str, agent_id: str) -> tuple[str, list[Any]]:
    p = Params(dialect)
    sql = (
        f"DELETE FROM retention_policies WHERE agent_id = {p(agent_id)} RETURNING {POLICY_COLUMNS}"
    )
    return sql, p.values


def rule_where(p: Params, scope: RuleScope) -> str:
    """The sessions ``scope``'s rule takes: the policy's agents, the rule's condition, and
    never a pinned session (metadata ``"pinned": true``; a session without metadata is not
    pinned)."""
    terms: list[str] = []
    if scope.agent_id is not None:
        terms.append(f"agent_id = {p(scope.agent_id)}")
    elif scope.others:
        terms.append(f"NOT ({p.one_of('agent_id', scope.others)})")
    cutoff = p.time(scope.cutoff)
    if scope.rule == "delete_after":  # no activity since the cutoff
        terms.append(f"updated_at < {cutoff}")
    elif scope.rule == "delete_ended_after":  # ended, and neither ended nor used since
        terms += ["status = 'ended'", f"ended_at < {cutoff}", f"updated_at < {cutoff}"]
    elif scope.rule == "end_idle_after":
        terms += ["status = 'active'", f"updated_at < {cutoff}"]
    else:  # pragma: no cover - the Store only makes the rules above
        raise ValueError(f"unknown retention rule {scope.rule!r}")
    terms.append(f"NOT COALESCE({p.metadata_match(PINNED)}, FALSE)")
    return " AND ".join(terms)


def rule_sessions(dialect: str, scope: RuleScope) -> tuple[str, list[Any]]:
    """(session_id, message_count) of what the rule would take now, oldest activity first."""
    p = Params(dialect)
    sql = (
        f"SELECT session_id, message_count FROM sessions WHERE {rule_where(p, scope)} "
        "ORDER BY updated_at, session_id"
    )
    return sql, p.values


def apply_rule(dialect: str, scope: RuleScope, now: datetime, batch: int) -> tuple[str, list[Any]]:
    """One batch of the rule: at most ``batch`` sessions ended (``end_idle_after``: status
    and ``ended_at`` only; ``updated_at`` keeps the last activity) or deleted, RETURNING
    (session_id, message_count). The rule is evaluated again on every row it changes."""
    p = Params(dialect)
    where = rule_where(p, scope)  # its placeholders serve both places it is written
    lock = " FOR UPDATE SKIP LOCKED" if p.pg else ""
    picked = (
        f"SELECT session_id FROM sessions WHERE {where} "
        f"ORDER BY updated_at LIMIT {int(batch):d}{lock}"
    )
    among = f"session_id = ANY(ARRAY({picked}))" if p.pg else f"session_id IN ({picked})"
    if scope.rule == "end_idle_after":
        head = f"UPDATE sessions SET status = 'ended', ended_at = {p.time(now)}"
    else:
        head = "DELETE FROM sessions"
    sql = f"{head} WHERE {among} AND {where} RETURNING session_id, message_count"
    return sql, p.values

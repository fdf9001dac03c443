"""SQL text both backends share, built once per shape with the dialect's placeholders.

Statements are plain strings: PostgreSQL takes ``$1, $2 …`` (asyncpg), SQLite ``?1, ?2 …``
(sqlite3). ``Params`` hands out the right placeholder as values are added, so a listing's
WHERE clause is written once for both. What differs by dialect (full-text matching, lists,
timestamps on SQLite stored as text) is asked of ``Params``, not branched on by callers.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

from sessionkeeper.models import USAGE_FIELDS, Message, Session, Usage
from sessionkeeper.store.backends.base import KeyRow, ListQuery
from sessionkeeper.store.search import fts5_query, pg_query, query_terms

# Column lists in the order of the value types' fields (the columns are named as the fields):
# backends build a Session, Message or KeyRow from a row positionally. A message's usage is
# six columns (migration 0012), Usage's fields in order, after the others; its ``model`` is
# the column ``usage_model``. ``requests`` is NULL exactly when the message has no usage.
# MESSAGE_COLUMNS are the columns every message row is written with (framework parts and
# copies use them too); a message read whole is MESSAGE_READ: those and its usage.
USAGE_COLUMN_NAMES = tuple("usage_model" if f == "model" else f for f in USAGE_FIELDS)
USAGE_COLUMNS = ", ".join(USAGE_COLUMN_NAMES)
MESSAGE_COLUMNS = ", ".join(f.name for f in fields(Message) if f.name != "usage")
MESSAGE_READ = f"{MESSAGE_COLUMNS}, {USAGE_COLUMNS}"
# SQLite reads the usage as one column, a JSON array of the six (NULL: no usage): six more
# columns per row made reading the last 50 messages 1.8x the bare read instead of 1.4x
# (bench/ last50); the array is built only for the rows that have usage.
SQLITE_MESSAGE_READ = (
    f"{MESSAGE_COLUMNS}, CASE WHEN requests IS NULL THEN NULL ELSE json_array({USAGE_COLUMNS}) END"
)


def message_read(dialect: str) -> str:
    """The columns of a message read whole on ``dialect`` (see MESSAGE_READ)."""
    return SQLITE_MESSAGE_READ if dialect == "sqlite" else MESSAGE_READ


USAGE_AT = len(fields(Message)) - 1  # the first usage column of a MESSAGE_READ row
_REQUESTS = USAGE_AT + USAGE_FIELDS.index("requests")


def usage_of(r: Sequence[Any]) -> Usage | None:
    """The usage in a MESSAGE_READ row (None: none recorded, or a MESSAGE_COLUMNS row)."""
    if len(r) <= _REQUESTS or r[_REQUESTS] is None:
        return None
    a = USAGE_AT
    return Usage(r[a], r[a + 1], r[a + 2], r[a + 3], r[a + 4], r[a + 5])


def usage_values(usage: Usage | None) -> tuple[Any, ...]:
    """The usage columns' values for a message (all NULL: no usage)."""
    if usage is None:
        return (None,) * len(USAGE_FIELDS)
    return tuple(getattr(usage, f) for f in USAGE_FIELDS)


SESSION_COLUMNS = ", ".join(f.name for f in fields(Session))
KEY_COLUMNS = ", ".join(f.name for f in fields(KeyRow))

# Nullable sort columns go through a total expression so keyset paging is exact.
SORT_SQL = {
    "created_at": "created_at",
    "updated_at": "updated_at",
    "last_message_at": "COALESCE(last_message_at, created_at)",
    "title": "COALESCE(title, '')",
}

# A ghost: a session nobody used: no messages, and no storage part holds state for it (each
# part marks the row while it does: ``held_by``, migration 0007). The row alone decides, so
# a purge re-checks it under the row lock, and the partial index ix_sessions_ghosts holds
# exactly these (created_at) rows.
GHOST = "message_count = 0 AND held_by = 0"

# The exact expression of index ix_sessions_aria_session_id (migration 0003), so it is used.
METADATA_KEY_SQL = {
    "postgresql": "(metadata ->> 'aria_session_id')",
    "sqlite": "json_extract(metadata, '$.aria_session_id')",
}


def sqlite_time(value: datetime) -> str:
    """How SQLite stores a timestamp: naive UTC ISO text with microseconds (sorts as text)."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


class Params:
    """Collects statement parameters, answering each with its placeholder."""

    def __init__(self, dialect: str) -> None:
        self.pg = dialect == "postgresql"
        self.values: list[Any] = []

    def __call__(self, value: Any) -> str:
        self.values.append(value)
        # Numbered on both (SQLite's ?NNN), so text order need not follow value order.
        return f"${len(self.values)}" if self.pg else f"?{len(self.values)}"

    def time(self, value: datetime) -> str:
        return self(value if self.pg else sqlite_time(value))

    def one_of(self, column: str, values: Sequence[str]) -> str:
        if self.pg:
            return f"{column} = ANY({self(list(values))}::text[])"
        return f"{column} IN (SELECT value FROM json_each({self(json.dumps(list(values)))}))"

    def metadata_match(self, wanted: dict[str, Any], column: str = "metadata") -> str:
        """A WHERE term: every pair of ``wanted`` (JSON scalars) is in ``column``'s object.
        PostgreSQL: jsonb containment, which the GIN index ``ix_sessions_metadata`` serves.
        SQLite: each key's JSON type and value."""
        if self.pg:
            return f"{column} @> {self(wanted)}::jsonb"  # the connection encodes jsonb
        terms = []
        for key, value in wanted.items():
            path = self("$." + json.dumps(key))
            if value is None or isinstance(value, bool):
                kind = "null" if value is None else ("true" if value else "false")
                terms.append(f"json_type({column}, {path}) = '{kind}'")
            elif isinstance(value, str):
                terms.append(
                    f"(json_type({column}, {path}) = 'text' "
                    f"AND json_extract({column}, {path}) = {self(value)})"
                )
            else:
                terms.append(
                    f"(json_type({column}, {path}) IN ('integer', 'real') "
                    f"AND json_extract({column}, {path}) = {self(value)})"
                )
        return "(" + " AND ".join(terms) + ")"

    def session_filters(
        self, user_ids: list[str] | None, metadata: dict[str, Any] | None, prefix: str = ""
    ) -> list[str]:
        """WHERE terms on a session row (``prefix``: its alias and a dot) for a user scope
        and a metadata filter."""
        where: list[str] = []
        if user_ids is not None:
            if len(user_ids) == 1:
                where.append(f"{prefix}user_id = {self(user_ids[0])}")
            else:
                where.append(self.one_of(f"{prefix}user_id", user_ids))
        if metadata is not None:
            where.append(self.metadata_match(metadata, f"{prefix}metadata"))
        return where

    def fts_match(self, query: str) -> str:
        """A WHERE term on ``sessions``: some message of the session matches ``query``."""
        if not query_terms(query):
            return "FALSE"
        if self.pg:
            return (
                "session_id IN (SELECT m.session_id FROM messages m "
                f"WHERE m.tsv @@ {self(pg_query(query))}::tsquery)"
            )
        # SQLite: the index, and the messages noted but not indexed yet (sqlite_index.py).
        return (
            "(session_id IN (SELECT m.session_id FROM messages_fts "
            "JOIN messages m ON m.rowid = messages_fts.rowid "
            f"WHERE messages_fts MATCH {self(fts5_query(query))}) "
            "OR session_id IN (SELECT m.session_id FROM messages_unindexed u "
            "CROSS JOIN messages m ON m.rowid = u.message_rowid "  # the notes drive the join
            f"WHERE {self.noted_match(query_terms(query))}))"
        )

    def noted_match(self, parts: Sequence[Sequence[str]]) -> str:
        """SQLite: a message ``m`` holds every part of a query (a phrase of terms: a run of
        the message's terms, as the store's analyser gives them). For the few messages not
        indexed yet; the index does this for the rest."""
        if not parts:
            return "0"
        terms = "(' ' || sessionkeeper_terms(m.content) || ' ')"
        return " AND ".join(
            f"instr({terms}, {self(' ' + ' '.join(part) + ' ')}) > 0" for part in parts
        )


def listing(dialect: str, q: ListQuery) -> tuple[str, str | None, list[Any], list[Any]]:
    """(page SQL, count SQL or None, page params, count params) for a validated listing."""
    p = Params(dialect)
    where: list[str] = []
    if q.agent_ids is not None:
        if len(q.agent_ids) == 1:  # the common case: plain equality, the index's best case
            where.append(f"agent_id = {p(q.agent_ids[0])}")
        else:
            where.append(p.one_of("agent_id", q.agent_ids))
    where += p.session_filters(q.user_ids, q.metadata)
    if q.session_type is not None:
        where.append(f"session_type = {p(q.session_type)}")
    if q.status is not None:
        where.append(f"status = {p(q.status)}")
    if q.search is not None:
        escaped = q.search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        like = "ILIKE" if p.pg else "LIKE"
        where.append(f"(title {like} {p(f'%{escaped}%')} ESCAPE '\\' OR {p.fts_match(q.search)})")
    for column, op, value in (
        ("created_at", ">", q.created_after),
        ("created_at", "<", q.created_before),
        ("updated_at", ">", q.updated_after),
        ("updated_at", "<", q.updated_before),
    ):
        if value is not None:
            where.append(f"{column} {op} {p.time(value)}")
    count_params = list(p.values)
    count_where = f"WHERE {' AND '.join(where)}" if where else ""
    key = SORT_SQL[q.sort]
    if q.after is not None:
        value, last_id = q.after
        v = p(value) if q.sort == "title" else p.time(value)
        i = p(last_id)
        # (key, id) strictly past the last row seen, written so the leading key uses its index.
        if q.order == "desc":
            where.append(f"{key} <= {v} AND ({key} < {v} OR session_id < {i})")
        else:
            where.append(f"{key} >= {v} AND ({key} > {v} OR session_id > {i})")
    direction = "DESC" if q.order == "desc" else "ASC"
    page_where = f"WHERE {' AND '.join(where)}" if where else ""
    page = (
        f"SELECT {SESSION_COLUMNS}, {key} AS sort_key FROM sessions {page_where} "
        f"ORDER BY {key} {direction}, session_id {direction} "
        # Literals, not parameters (both are validated ints): with parameters PostgreSQL
        # planned the page afresh on every call (127 µs against 88 µs, bench/).
        f"LIMIT {int(q.limit) + 1:d} OFFSET {int(q.offset):d}"
    )
    count = f"SELECT count(*) FROM sessions {count_where}" if q.with_total else None
    return page, count, p.values, count_params


def messages_page(
    dialect: str,
    session_id: str,
    *,
    limit: int,
    offset: int,
    since: datetime | None,
    after_seq: int | None,
    newest_first: bool,
) -> tuple[str, list[Any]]:
    p = Params(dialect)
    where = f"session_id = {p(session_id)}"
    if since is not None:
        where += f" AND created_at > {p.time(since)}"
    if after_seq is not None:
        where += f" AND seq > {p(after_seq)}"
    order = "DESC" if newest_first else "ASC"
    sql = (
        f"SELECT {message_read(dialect)} FROM messages WHERE {where} "
        f"ORDER BY seq {order} LIMIT {p(limit)} OFFSET {p(offset)}"
    )
    return sql, p.values


@functools.lru_cache(maxsize=128)
def message_ranges(count: int) -> str:
    """SQLite: the messages of ``count`` (session_id, first seq, last seq) ranges, in the
    ranges' order, each range by seq and read by the primary key (the ranges drive the join;
    a message in two ranges comes twice). PostgreSQL reads them inside its search statement
    (``postgres_sql.SEARCH_AROUND``)."""
    rows = ", ".join("(?, ?, ?)" for _ in range(count))
    return (
        f"WITH r(sid, lo, hi) AS (VALUES {rows}) SELECT {SQLITE_MESSAGE_READ} FROM r "
        "CROSS JOIN messages ON session_id = r.sid AND seq BETWEEN r.lo AND r.hi"
    )


def stats(
    dialect: str,
    ghost_cutoff: datetime,
    stale_cutoff: datetime,
    agent_ids: list[str] | None,
    user_ids: list[str] | None = None,
) -> tuple[str, str, str, list[Any], list[Any]]:
    """(totals SQL, by-agent SQL, by-type SQL, totals params, group params)."""
    p = Params(dialect)
    where = [] if agent_ids is None else [p.one_of("agent_id", agent_ids)]
    where += p.session_filters(user_ids, None)
    scope = f"WHERE {' AND '.join(where)}" if where else ""
    group_params = list(p.values)
    ghost = p.time(ghost_cutoff)
    stale = p.time(stale_cutoff)
    totals = f"""
        SELECT count(*), COALESCE(sum(message_count), 0), COALESCE(sum(token_count), 0),
               COALESCE(sum(CASE WHEN status = 'active' THEN 1 ELSE 0 END), 0),
               COALESCE(sum(CASE WHEN status = 'ended' THEN 1 ELSE 0 END), 0),
               COALESCE(sum(CASE WHEN {GHOST} AND created_at < {ghost}
                                 THEN 1 ELSE 0 END), 0),
               COALESCE(sum(CASE WHEN updated_at < {stale} THEN 1 ELSE 0 END), 0),
               count(DISTINCT agent_id), min(created_at), max(updated_at)
        FROM sessions {scope}"""
    # Placeholders are numbered, so the scope's come first in both statements' values.
    by_agent = (
        f"SELECT agent_id, count(*) FROM sessions {scope} "
        "GROUP BY agent_id ORDER BY count(*) DESC, agent_id"
    )
    by_type = (
        f"SELECT session_type, count(*) FROM sessions {scope} "
        "GROUP BY session_type ORDER BY count(*) DESC, session_type"
    )
    return totals, by_agent, by_type, p.values, group_params


def set_usage(
    dialect: str,
    session_id: str,
    seq: int,
    usage: Usage | None,
    details: dict[str, Any] | None = None,
) -> tuple[str, list[Any]]:
    """UPDATE of one message's usage (None: remove it) RETURNING the message; a usage
    without a model takes the message's own model. ``details`` (the usage as its framework
    reported it) goes to ``metadata["usage_details"]``, in the same statement; None removes
    one kept earlier."""
    p = Params(dialect)
    values = usage_values(usage)
    sets = [f"{c} = {p(v)}" for c, v in zip(USAGE_COLUMN_NAMES[:-1], values[:-1], strict=True)]
    model = p(values[-1])
    fallback = "NULL" if usage is None else "model"
    sets.append(f"usage_model = COALESCE({model}, {fallback})")
    if p.pg:
        kept = "jsonb_set(COALESCE(metadata, '{{}}'::jsonb), '{{usage_details}}', {v}::jsonb)"
        removed = "metadata - 'usage_details'"
        value = None if details is None else p(details)  # the connection encodes jsonb
    else:
        kept = "json_set(COALESCE(metadata, '{{}}'), '$.usage_details', json({v}))"
        removed = "json_remove(metadata, '$.usage_details')"
        value = None if details is None else p(json.dumps(details))
    sets.append(f"metadata = {removed if value is None else kept.format(v=value)}")
    sql = (
        f"UPDATE messages SET {', '.join(sets)} "
        f"WHERE session_id = {p(session_id)} AND seq = {p(seq)} "
        f"RETURNING {message_read(dialect)}"
    )
    return sql, p.values


def usage_totals(
    dialect: str,
    session_id: str | None,
    agent_ids: list[str] | None,
    user_ids: list[str] | None,
) -> tuple[str, list[Any]]:
    """Usage by model of one session, or of the sessions in a scope of agents and users.

    Served by ix_messages_usage (migration 0012): a partial index over the messages that carry
    usage, holding every column summed, so the totals read the index alone."""
    p = Params(dialect)
    # SQLite without ANALYZE statistics takes the primary key (then reads every row of the
    # session: 23 ms instead of 1 ms for 10,000 messages, bench/usage.py): name the index.
    usage_index = "" if p.pg else " INDEXED BY ix_messages_usage"
    sums = (
        "count(*), COALESCE(sum(m.requests), 0), COALESCE(sum(m.input_tokens), 0), "
        "COALESCE(sum(m.output_tokens), 0), COALESCE(sum(m.cached_tokens), 0), "
        "COALESCE(sum(m.reasoning_tokens), 0)"
    )
    if session_id is not None:
        return (
            f"SELECT m.usage_model, {sums} FROM messages m{usage_index} "
            f"WHERE m.session_id = {p(session_id)} AND m.requests IS NOT NULL "
            "GROUP BY m.usage_model ORDER BY m.usage_model",
            p.values,
        )
    where = [] if agent_ids is None else [p.one_of("s.agent_id", agent_ids)]
    where += p.session_filters(user_ids, None, "s.")
    scope = f"WHERE {' AND '.join(where)}" if where else ""
    sql = (
        f"SELECT m.usage_model, {sums} FROM sessions s "
        f"JOIN messages m{usage_index} ON m.session_id = s.session_id AND m.requests IS NOT NULL "
        f"{scope} GROUP BY m.usage_model ORDER BY m.usage_model"
    )
    return sql, p.values


def ghosts(dialect: str, cutoff: datetime, limit: int | None) -> tuple[str, list[Any]]:
    """The ghosts created before ``cutoff``, oldest first (the rule the purge applies)."""
    p = Params(dialect)
    sql = (
        f"SELECT {SESSION_COLUMNS} FROM sessions WHERE {GHOST} AND created_at < {p.time(cutoff)} "
        "ORDER BY created_at, session_id"
    )
    if limit is not None:
        sql += f" LIMIT {int(limit):d}"
    return sql, p.values


def ghosts_by_id(dialect: str, cutoff: datetime, ids: Sequence[str]) -> tuple[str, list[Any]]:
    """DELETE of those of ``ids`` that are still ghosts created before ``cutoff``."""
    p = Params(dialect)
    sql = (
        f"DELETE FROM sessions WHERE {p.one_of('session_id', ids)} "
        f"AND {GHOST} AND created_at < {p.time(cutoff)}"
    )
    return sql, p.values

"""Checkpoint storage on PostgreSQL, run by the PostgreSQL backend (see ``checkpoints_base.py``).

One round trip for each hot operation, as for appends:
- **put** is one statement: a data-modifying CTE bumps the session row (its lock serialises
  writers to the thread; ``updated_at`` moves, so an active thread is not pruned as idle;
  the seqs of mirrored messages come from ``last_seq`` exactly as in ``APPEND_MANY``), then
  inserts the mirrored messages, the new items, the new channel values and the checkpoint.
  Nothing is written when the session is missing (the bump returns no row).
- **get** is one statement: the checkpoint row with its values, list items and pending
  writes gathered by sub-selects (arrays of rows), looked up by primary key.
Maintenance (prune, delete_for_runs) runs per thread in a transaction that locks the
session row first, so it waits for a put in flight and a put waits for it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sessionkeeper.errors import Conflict, DatabaseError, InvalidInput
from sessionkeeper.store.backends.frameworks.checkpoints_base import (
    CP_COLUMNS,
    CP_REST,
    DELTA_METADATA_KEYS,
    HELD,
    HOLDER_BIT,
    ITEM_REST,
    TABLES,
    VALUE_REST,
    WRITE_REST,
    CheckpointRow,
    ItemLog,
    ItemRow,
    ListFilter,
    StoredCheckpoint,
    ValueRow,
    WriteRow,
    dump_metadata,
    dump_ranges,
    expand,
    filterable,
    live_items,
    load_ranges,
)
from sessionkeeper.store.backends.postgres_conn import Connections, DeleteRows
from sessionkeeper.store.backends.statements import (
    MESSAGE_COLUMNS,
    USAGE_COLUMNS,
    usage_values,
)
from sessionkeeper.store.terms import tsvector

_MAINTENANCE_S = 60.0

PUT = f"""
WITH bump AS (
    UPDATE sessions
    SET last_seq = last_seq + $3, message_count = message_count + $3,
        token_count = token_count + $4, updated_at = $2,
        last_message_at = CASE WHEN $3 > 0 THEN $2 ELSE last_message_at END,
        held_by = held_by | {HOLDER_BIT}
    WHERE session_id = $1
    RETURNING last_seq
), mirrored AS (
    INSERT INTO messages ({MESSAGE_COLUMNS}, tsv, {USAGE_COLUMNS})
    SELECT $1, bump.last_seq - $3 + t.n, t.role, t.content, t.agent_id, t.model,
           t.token_count, t.metadata, COALESCE(t.created_at, $2), t.tsv::tsvector,
           t.u_in, t.u_out, t.u_cached, t.u_reasoning, t.u_requests, t.u_model
    FROM bump, unnest($5::text[], $6::text[], $7::text[], $8::text[], $9::int[],
                      $10::jsonb[], $11::timestamptz[], $31::text[], $32::int[], $33::int[],
                      $34::int[], $35::int[], $36::int[], $37::text[])
         WITH ORDINALITY AS t(role, content, agent_id, model, token_count, metadata,
                              created_at, tsv, u_in, u_out, u_cached, u_reasoning,
                              u_requests, u_model, n)
), items AS (
    INSERT INTO lg_channel_items (session_id, {ITEM_REST})
    SELECT $1, $12::text, t.* FROM bump,
           unnest($13::text[], $14::int[], $15::bytea[], $16::text[], $17::text[], $18::bytea[])
           AS t(channel, item_no, digest, key, type, value)
), vals AS (
    INSERT INTO lg_channel_values (session_id, {VALUE_REST})
    SELECT $1, $12::text, t.* FROM bump,
           unnest($19::text[], $20::text[], $21::text[], $22::bytea[], $23::json[])
           AS t(channel, version, type, value, items)
    ON CONFLICT DO NOTHING
)
INSERT INTO lg_checkpoints ({CP_COLUMNS})
SELECT $1, $12::text, $24::text, $25::text, $26::text, $27::bytea, $28::json, $29::json,
       $30::text
FROM bump
ON CONFLICT (session_id, checkpoint_ns, checkpoint_id) DO UPDATE SET
    parent_checkpoint_id = EXCLUDED.parent_checkpoint_id, type = EXCLUDED.type,
    checkpoint = EXCLUDED.checkpoint, metadata = EXCLUDED.metadata,
    channels = EXCLUDED.channels, run_id = EXCLUDED.run_id
RETURNING (SELECT last_seq FROM bump)
"""

# Sub-selects of a checkpoint row ``c``: its values, its list items, its pending writes.
_LOADS = """
    ARRAY(SELECT ROW(v.channel, v.type, v.value, v.items::text)
          FROM json_each_text(c.channels) j
          JOIN lg_channel_values v ON v.session_id = c.session_id
           AND v.checkpoint_ns = c.checkpoint_ns AND v.channel = j.key AND v.version = j.value
    ) AS vals,
    ARRAY(SELECT ROW(v.channel, i.item_no, i.type, i.value)
          FROM json_each_text(c.channels) j
          JOIN lg_channel_values v ON v.session_id = c.session_id
           AND v.checkpoint_ns = c.checkpoint_ns AND v.channel = j.key AND v.version = j.value
           AND v.items IS NOT NULL
          CROSS JOIN LATERAL json_array_elements(v.items) WITH ORDINALITY AS r(rng, ord)
          JOIN lg_channel_items i ON i.session_id = c.session_id
           AND i.checkpoint_ns = c.checkpoint_ns AND i.channel = v.channel
           AND i.item_no BETWEEN (r.rng ->> 0)::int AND (r.rng ->> 1)::int
          ORDER BY v.channel, r.ord, i.item_no
    ) AS items,
    ARRAY(SELECT ROW(w.task_id, w.idx, w.channel, w.type, w.value, w.task_path)
          FROM lg_writes w
          WHERE w.session_id = c.session_id AND w.checkpoint_ns = c.checkpoint_ns
            AND w.checkpoint_id = c.checkpoint_id
          ORDER BY w.task_path, w.task_id, w.idx
    ) AS writes
"""
_ORDER = "ORDER BY checkpoint_id DESC, session_id DESC, checkpoint_ns DESC"
GET_LATEST = f"""
WITH c AS (SELECT {CP_COLUMNS} FROM lg_checkpoints
           WHERE session_id = $1 AND checkpoint_ns = $2
           ORDER BY checkpoint_id DESC LIMIT 1)
SELECT c.*, {_LOADS} FROM c
"""
GET_ONE = f"""
WITH c AS (SELECT {CP_COLUMNS} FROM lg_checkpoints
           WHERE session_id = $1 AND checkpoint_ns = $2 AND checkpoint_id = $3)
SELECT c.*, {_LOADS} FROM c
"""
PUT_WRITES = f"""
WITH s AS (UPDATE sessions SET held_by = held_by | {HOLDER_BIT} WHERE session_id = $1
           RETURNING session_id),
w AS (
    INSERT INTO lg_writes (session_id, checkpoint_ns, checkpoint_id, task_id, idx, channel,
                           type, value, task_path)
    SELECT s.session_id, $2::text, $3::text, t.* FROM s,
           unnest($4::text[], $5::int[], $6::text[], $7::text[], $8::bytea[], $9::text[])
           AS t(task_id, idx, channel, type, value, task_path)
    ON CONFLICT (session_id, checkpoint_ns, checkpoint_id, task_id, idx) {{action}}
)
SELECT count(*) FROM s
"""
_REPLACE = (
    "DO UPDATE SET channel = EXCLUDED.channel, type = EXCLUDED.type, value = EXCLUDED.value, "
    "task_path = EXCLUDED.task_path"
)
COPY_SESSION = f"""
INSERT INTO sessions (session_id, agent_id, title, session_type, status, metadata, created_at,
                      updated_at, ended_at, last_message_at, message_count, token_count, last_seq,
                      held_by, user_id)
SELECT $1, agent_id, title, session_type, status, metadata, $3, $3, ended_at, last_message_at,
       message_count, token_count, last_seq, {HOLDER_BIT}, user_id
FROM sessions WHERE session_id = $2
"""
# After maintenance: marked while any row of the thread is left.
REMARK = f"""
UPDATE sessions SET held_by = CASE WHEN {HELD.format(sid="$1")} THEN held_by | {HOLDER_BIT}
                                   ELSE held_by & ~{HOLDER_BIT} END
WHERE session_id = $1
"""
COPY_MESSAGES = f"""
INSERT INTO messages ({MESSAGE_COLUMNS}, tsv)
SELECT $1, {MESSAGE_COLUMNS.removeprefix("session_id, ")}, tsv FROM messages WHERE session_id = $2
"""


class PostgresCheckpoints:
    session_tables: tuple[str, ...] = TABLES
    ghost_tables: tuple[str, ...] = ()  # every write marks the session

    def __init__(self, connections: Connections, delete_rows: DeleteRows) -> None:
        self.b = connections
        self._delete_rows = delete_rows  # a session's rows in every table (the backend's)

    async def put(
        self,
        row: CheckpointRow,
        values: Sequence[ValueRow],
        items: Sequence[ItemRow],
        messages: Sequence[dict[str, Any]],
        now: datetime,
    ) -> list[int] | None:
        n = len(messages)
        async with self.b._conn() as conn:
            last = await conn.fetchval(
                PUT,
                row.thread_id,
                now,
                n,
                sum(m["token_count"] for m in messages),
                [m["role"] for m in messages],
                [m["content"] for m in messages],
                [m["agent_id"] for m in messages],
                [m["model"] for m in messages],
                [m["token_count"] for m in messages],
                [m["metadata"] for m in messages],
                [m["created_at"] for m in messages],
                row.checkpoint_ns,
                [i.channel for i in items],
                [i.item_no for i in items],
                [i.digest for i in items],
                [i.key for i in items],
                [i.type for i in items],
                [i.value for i in items],
                [v.channel for v in values],
                [v.version for v in values],
                [v.type for v in values],
                [v.value for v in values],
                [dump_ranges(v.items) for v in values],
                row.checkpoint_id,
                row.parent_checkpoint_id,
                row.type,
                row.checkpoint,
                dump_metadata(row.metadata),
                json.dumps(row.channels),
                row.run_id,
                [tsvector(m["content"]) for m in messages],
                *_usage_arrays(messages),
            )
        if last is None:
            return None
        return list(range(last - n + 1, last + 1))

    async def put_writes(
        self,
        thread_id: str,
        checkpoint_ns: str,
        checkpoint_id: str,
        writes: Sequence[WriteRow],
        *,
        replace: bool,
    ) -> bool:
        stmt = PUT_WRITES.format(action=_REPLACE if replace else "DO NOTHING")
        async with self.b._conn() as conn:
            found = await conn.fetchval(
                stmt,
                thread_id,
                checkpoint_ns,
                checkpoint_id,
                [w.task_id for w in writes],
                [w.idx for w in writes],
                [w.channel for w in writes],
                [w.type for w in writes],
                [w.value for w in writes],
                [w.task_path for w in writes],
            )
        return bool(found)

    async def get(
        self, thread_id: str, checkpoint_ns: str, checkpoint_id: str | None
    ) -> StoredCheckpoint | None:
        async with self.b._conn() as conn:
            if checkpoint_id is None:
                found = await conn.fetchrow(GET_LATEST, thread_id, checkpoint_ns)
            else:
                found = await conn.fetchrow(GET_ONE, thread_id, checkpoint_ns, checkpoint_id)
        return None if found is None else _load(found)

    async def page(self, query: ListFilter) -> list[StoredCheckpoint]:
        where, params = _where(query)
        params.append(query.limit)
        stmt = (
            f"WITH c AS (SELECT {CP_COLUMNS} FROM lg_checkpoints {where} {_ORDER} "
            f"LIMIT ${len(params)}) SELECT c.*, {_LOADS} FROM c {_ORDER}"
        )
        async with self.b._conn() as conn:
            rows = await conn.fetch(stmt, *params)
        return [_load(r) for r in rows]

    async def item_log(self, thread_id: str, checkpoint_ns: str, channel: str) -> ItemLog:
        async with self.b._conn() as conn:
            rows = await conn.fetch(
                "SELECT item_no, digest, key FROM lg_channel_items "
                "WHERE session_id = $1 AND checkpoint_ns = $2 AND channel = $3",
                thread_id,
                checkpoint_ns,
                channel,
            )
        log = ItemLog()
        for no, digest, key in rows:
            log.by_digest[bytes(digest)] = no
            log.next_no = max(log.next_no, no + 1)
            if key is not None:
                log.keys.add(key)
        return log

    async def delete_thread(self, thread_id: str, session_type: str | None) -> None:
        async with self.b._transaction() as conn:
            if session_type is not None and await conn.fetchval(
                "DELETE FROM sessions WHERE session_id = $1 AND session_type = $2 RETURNING 1",
                thread_id,
                session_type,
            ):
                await self._delete_rows(conn, [thread_id])
                return
            await _delete_all(conn, thread_id)
            await conn.execute(REMARK, thread_id)

    async def delete_for_runs(self, run_ids: Sequence[str]) -> list[str]:
        ids = list(run_ids)
        async with self.b._conn() as conn:
            threads = [
                r[0]
                for r in await conn.fetch(
                    "SELECT DISTINCT session_id FROM lg_checkpoints WHERE run_id = ANY($1::text[])",
                    ids,
                )
            ]
        for sid in sorted(threads):  # one short transaction per thread
            async with self.b._transaction(deadline=_MAINTENANCE_S) as conn:
                await _lock(conn, sid)
                await conn.execute(
                    "DELETE FROM lg_writes w USING lg_checkpoints c "
                    "WHERE c.session_id = $1 AND c.run_id = ANY($2::text[]) "
                    "AND w.session_id = $1 AND w.checkpoint_ns = c.checkpoint_ns "
                    "AND w.checkpoint_id = c.checkpoint_id",
                    sid,
                    ids,
                )
                await conn.execute(
                    "DELETE FROM lg_checkpoints WHERE session_id = $1 AND run_id = ANY($2::text[])",
                    sid,
                    ids,
                )
                await _collect_garbage(conn, sid)
                await conn.execute(REMARK, sid)
        return sorted(threads)

    async def copy_thread(self, source: str, target: str, now: datetime) -> bool:
        async with self.b._transaction(deadline=_MAINTENANCE_S) as conn:
            if not await _lock(conn, source, share=True) or not await _has_checkpoints(
                conn, source
            ):
                return False
            if await _lock(conn, target):
                if await _has_checkpoints(conn, target):
                    raise Conflict(f"thread {target!r} already has checkpoints")
                await _delete_all(conn, target)  # leftovers of a pruned thread, if any
                await conn.execute(
                    f"UPDATE sessions SET updated_at = $2, held_by = held_by | {HOLDER_BIT} "
                    "WHERE session_id = $1",
                    target,
                    now,
                )
            else:
                await conn.execute(COPY_SESSION, target, source, now)
                await conn.execute(COPY_MESSAGES, target, source)
            for table, cols in (
                ("lg_checkpoints", CP_REST),
                ("lg_channel_values", VALUE_REST),
                ("lg_channel_items", ITEM_REST),
                ("lg_writes", WRITE_REST),
            ):
                await conn.execute(
                    f"INSERT INTO {table} (session_id, {cols}) SELECT $1, {cols} FROM {table} "
                    "WHERE session_id = $2",
                    target,
                    source,
                )
        return True

    async def prune(self, thread_ids: Sequence[str], *, keep_latest: bool) -> None:
        ids = list(thread_ids)
        if keep_latest:
            test = " OR ".join(f"metadata::jsonb ? '{k}'" for k in DELTA_METADATA_KEYS)
            async with self.b._conn() as conn:
                delta = [
                    r[0]
                    for r in await conn.fetch(
                        "SELECT DISTINCT session_id FROM lg_checkpoints "
                        f"WHERE session_id = ANY($1::text[]) AND ({test}) ORDER BY 1",
                        ids,
                    )
                ]
            if delta:
                raise InvalidInput(
                    "keep_latest cannot prune threads that use a DeltaChannel: " + ", ".join(delta),
                    field="thread_ids",
                )
        for sid in ids:  # one short transaction per thread
            async with self.b._transaction(deadline=_MAINTENANCE_S) as conn:
                if not await _lock(conn, sid):
                    continue
                if keep_latest:
                    await _keep_latest(conn, sid)
                else:
                    await _delete_all(conn, sid)
                await conn.execute(REMARK, sid)


# ── reading ─────────────────────────────────────────────────────────────────


def _load(r: Any) -> StoredCheckpoint:
    sid, ns = r[0], r[1]
    row = CheckpointRow(
        sid, ns, r[2], r[3], r[4], bytes(r[5]), json.loads(r[6]), json.loads(r[7]), r[8]
    )
    values: dict[str, tuple[str, bytes | None]] = {}
    ranges: dict[str, list[tuple[int, int]]] = {}
    for channel, type_, value, items in r[9]:
        if items is None:
            values[channel] = (type_, value)
        else:
            ranges[channel] = load_ranges(items) or []
    found: dict[str, list[tuple[int, str, bytes]]] = {}
    for channel, no, type_, value in r[10]:
        found.setdefault(channel, []).append((no, type_, value))
    lists: dict[str, list[tuple[str, bytes]]] = {}
    for channel, spans in ranges.items():
        numbers = expand(spans)
        rows = found.get(channel, [])
        if [no for no, _, _ in rows] == numbers:  # the usual case: read in the list's order
            lists[channel] = [(t, v) for _, t, v in rows]
            continue
        by_no = {no: (t, v) for no, t, v in rows}
        try:
            lists[channel] = [by_no[no] for no in numbers]
        except KeyError as exc:
            raise DatabaseError(
                f"thread {sid!r}: item {exc.args[0]} of channel {channel!r} is missing"
            ) from None
    writes = [WriteRow(*w) for w in r[11]]
    return StoredCheckpoint(row, values, lists, writes)


def _where(query: ListFilter) -> tuple[str, list[Any]]:
    conds: list[str] = []
    params: list[Any] = []

    def p(value: Any) -> str:
        params.append(value)
        return f"${len(params)}"

    for column, value in (
        ("session_id", query.thread_id),
        ("checkpoint_ns", query.checkpoint_ns),
        ("checkpoint_id", query.checkpoint_id),
    ):
        if value is not None:
            conds.append(f"{column} = {p(value)}")
    if query.before is not None:
        conds.append(f"checkpoint_id < {p(query.before)}")
    if query.after is not None:
        cid, sid, ns = query.after
        conds.append(f"(checkpoint_id, session_id, checkpoint_ns) < ({p(cid)}, {p(sid)}, {p(ns)})")
    for key, value in query.metadata.items():
        if filterable(key):
            try:
                json.dumps(value, allow_nan=False)
            except (TypeError, ValueError):
                continue  # not JSON: only the exact test in Python can tell
            # The connection's jsonb codec serialises the value.
            conds.append(f"(metadata::jsonb -> {p(key)}) = {p(value)}::jsonb")
    return ("WHERE " + " AND ".join(conds)) if conds else "", params


# ── writing ─────────────────────────────────────────────────────────────────


async def _lock(conn: Any, sid: str, *, share: bool = False) -> bool:
    """Lock the session row (a put bumps it, so it waits); False if there is none."""
    mode = "FOR SHARE" if share else "FOR UPDATE"
    found = await conn.fetchval(f"SELECT 1 FROM sessions WHERE session_id = $1 {mode}", sid)
    return found is not None


async def _has_checkpoints(conn: Any, sid: str) -> bool:
    found = await conn.fetchval("SELECT 1 FROM lg_checkpoints WHERE session_id = $1 LIMIT 1", sid)
    return found is not None


async def _delete_all(conn: Any, sid: str) -> None:
    for table in TABLES:
        await conn.execute(f"DELETE FROM {table} WHERE session_id = $1", sid)


async def _keep_latest(conn: Any, sid: str) -> None:
    """Keep the newest checkpoint of each namespace (and its writes); drop the rest, the
    values and items no kept checkpoint uses, and finished subgraph calls: a namespace with
    a task id after ":" whose root checkpoint is saved but not the one kept (LangGraph's own
    PostgresSaver prunes the same way)."""
    heads = {
        ns: (head, json.loads(meta))
        for ns, head, meta in await conn.fetch(
            "SELECT DISTINCT ON (checkpoint_ns) checkpoint_ns, checkpoint_id, metadata "
            "FROM lg_checkpoints WHERE session_id = $1 "
            "ORDER BY checkpoint_ns, checkpoint_id DESC",
            sid,
        )
    }
    root_head = heads[""][0] if "" in heads else None
    calls = []
    for ns, (_, meta) in heads.items():
        root = (meta.get("parents") or {}).get("")
        if ":" in ns and root and root != root_head:
            saved = await conn.fetchval(
                "SELECT 1 FROM lg_checkpoints WHERE session_id = $1 AND checkpoint_ns = '' "
                "AND checkpoint_id = $2",
                sid,
                root,
            )
            if saved:
                calls.append(ns)
    for table in TABLES:
        await conn.execute(
            f"DELETE FROM {table} WHERE session_id = $1 AND checkpoint_ns = ANY($2::text[])",
            sid,
            calls,
        )
    for ns, (head, _) in heads.items():
        if ns in calls:
            continue
        # Writes go by the checkpoints deleted: a run may save writes before their checkpoint.
        await conn.execute(
            "DELETE FROM lg_writes WHERE session_id = $1 AND checkpoint_ns = $2 AND checkpoint_id "
            "IN (SELECT checkpoint_id FROM lg_checkpoints WHERE session_id = $1 "
            "AND checkpoint_ns = $2 AND checkpoint_id <> $3)",
            sid,
            ns,
            head,
        )
        await conn.execute(
            "DELETE FROM lg_checkpoints WHERE session_id = $1 AND checkpoint_ns = $2 "
            "AND checkpoint_id <> $3",
            sid,
            ns,
            head,
        )
        await conn.execute(
            "UPDATE lg_checkpoints SET parent_checkpoint_id = NULL WHERE session_id = $1 "
            "AND checkpoint_ns = $2 AND checkpoint_id = $3",
            sid,
            ns,
            head,
        )
    await _collect_garbage(conn, sid)


async def _collect_garbage(conn: Any, sid: str) -> None:
    """Delete the values no checkpoint of the thread uses, then the items no value uses."""
    used = {
        (ns, channel, version)
        for ns, channels in await conn.fetch(
            "SELECT checkpoint_ns, channels FROM lg_checkpoints WHERE session_id = $1", sid
        )
        for channel, version in json.loads(channels).items()
    }
    dead: list[tuple[str, str, str]] = []
    kept: list[tuple[str, str, str | None]] = []
    for ns, channel, version, items in await conn.fetch(
        "SELECT checkpoint_ns, channel, version, items::text FROM lg_channel_values "
        "WHERE session_id = $1",
        sid,
    ):
        if (ns, channel, version) in used:
            kept.append((ns, channel, items))
        else:
            dead.append((ns, channel, version))
    if dead:
        await conn.execute(
            "DELETE FROM lg_channel_values WHERE session_id = $1 AND (checkpoint_ns, channel, "
            "version) IN (SELECT * FROM unnest($2::text[], $3::text[], $4::text[]))",
            sid,
            *(list(column) for column in zip(*dead, strict=True)),
        )
    live = live_items(kept)
    gone = [
        (ns, channel, no)
        for ns, channel, no in await conn.fetch(
            "SELECT checkpoint_ns, channel, item_no FROM lg_channel_items WHERE session_id = $1",
            sid,
        )
        if no not in live.get((ns, channel), ())
    ]
    if gone:
        await conn.execute(
            "DELETE FROM lg_channel_items WHERE session_id = $1 AND (checkpoint_ns, channel, "
            "item_no) IN (SELECT * FROM unnest($2::text[], $3::text[], $4::int[]))",
            sid,
            *(list(column) for column in zip(*gone, strict=True)),
        )


def _usage_arrays(messages: Sequence[dict[str, Any]]) -> list[list[Any]]:
    """The mirrored messages' usage columns, one array per column (migration 0012)."""
    values = [usage_values(m.get("usage")) for m in messages]
    return [[v[i] for v in values] for i in range(len(usage_values(None)))]

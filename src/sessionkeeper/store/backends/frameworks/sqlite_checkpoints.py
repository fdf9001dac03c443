"""Checkpoint storage on SQLite, run by the SQLite backend (see ``checkpoints_base.py``).

Writes go to the backend's writer thread, each one ``BEGIN IMMEDIATE … COMMIT`` (a
checkpoint, its values, its items and the messages it mirrors: one transaction, one fsync).
Reading a checkpoint is a hot read: it runs inline on the calling thread, several SELECTs on
one snapshot. Listings and maintenance reads go to the reader threads.
"""

from __future__ import annotations

import functools
import json
import sqlite3
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
from sessionkeeper.store.backends.sqlite_rows import INSERT_MESSAGE, message_params
from sessionkeeper.store.backends.sqlite_threads import Runner, read_txn
from sessionkeeper.store.backends.statements import MESSAGE_COLUMNS, sqlite_time

# The same counters an append keeps (backends/sqlite.py): seq from last_seq, under the lock.
# Every write marks the session as holding checkpoints (HOLDER_BIT).
_BUMP = (
    "UPDATE sessions SET last_seq = last_seq + ?, message_count = message_count + ?, "
    f"token_count = token_count + ?, updated_at = ?, last_message_at = ?, "
    f"held_by = held_by | {HOLDER_BIT} WHERE session_id = ? RETURNING last_seq"
)
_TOUCH = (
    f"UPDATE sessions SET updated_at = ?, held_by = held_by | {HOLDER_BIT} "
    "WHERE session_id = ? RETURNING last_seq"
)
_MARK = f"UPDATE sessions SET held_by = held_by | {HOLDER_BIT} WHERE session_id = ? RETURNING 1"
# After maintenance: marked while any row of the thread is left.
_REMARK = (
    f"UPDATE sessions SET held_by = CASE WHEN {HELD.format(sid='?1')} "
    f"THEN held_by | {HOLDER_BIT} ELSE held_by & ~{HOLDER_BIT} END WHERE session_id = ?1"
)
_INSERT_ITEM = f"INSERT INTO lg_channel_items (session_id, {ITEM_REST}) VALUES (?,?,?,?,?,?,?,?)"
_INSERT_VALUE = (
    f"INSERT INTO lg_channel_values (session_id, {VALUE_REST}) VALUES (?,?,?,?,?,?,?) "
    "ON CONFLICT DO NOTHING"
)
_UPSERT_CHECKPOINT = (
    f"INSERT INTO lg_checkpoints ({CP_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?) "
    "ON CONFLICT (session_id, checkpoint_ns, checkpoint_id) DO UPDATE SET "
    "parent_checkpoint_id = excluded.parent_checkpoint_id, type = excluded.type, "
    "checkpoint = excluded.checkpoint, metadata = excluded.metadata, "
    "channels = excluded.channels, run_id = excluded.run_id"
)
_INSERT_WRITE = f"INSERT INTO lg_writes (session_id, {WRITE_REST}) VALUES (?,?,?,?,?,?,?,?,?)"
_SELECT = f"SELECT {CP_COLUMNS} FROM lg_checkpoints"
# A copied thread is a new session holding the source's conversation (same seqs, counters).
_COPY_SESSION = (
    "INSERT INTO sessions (session_id, agent_id, title, session_type, status, metadata, "
    "created_at, updated_at, ended_at, last_message_at, message_count, token_count, last_seq, "
    "held_by, user_id) "
    "SELECT ?, agent_id, title, session_type, status, metadata, ?, ?, ended_at, "
    f"last_message_at, message_count, token_count, last_seq, {HOLDER_BIT}, user_id "
    "FROM sessions WHERE session_id = ?"
)
_COPY_MESSAGES = (
    f"INSERT INTO messages ({MESSAGE_COLUMNS}) "  # not the usage: paid once, by the source
    f"SELECT ?, {MESSAGE_COLUMNS.removeprefix('session_id, ')} FROM messages "
    "WHERE session_id = ? ORDER BY seq"
)
# CROSS JOIN keeps json_each outside: one primary-key lookup per channel.
_VALUES = (
    "SELECT v.channel, v.type, v.value, v.items FROM json_each(?1) j "
    "CROSS JOIN lg_channel_values v ON v.session_id = ?2 AND v.checkpoint_ns = ?3 "
    "AND v.channel = j.key AND v.version = j.value"
)
_ITEMS = (
    "SELECT i.item_no, i.type, i.value FROM json_each(?4) r "
    "CROSS JOIN lg_channel_items i ON i.session_id = ?1 AND i.checkpoint_ns = ?2 "
    "AND i.channel = ?3 "
    "AND i.item_no BETWEEN json_extract(r.value, '$[0]') AND json_extract(r.value, '$[1]')"
)
_WRITES = (
    "SELECT task_id, idx, channel, type, value, task_path FROM lg_writes "
    "WHERE session_id = ? AND checkpoint_ns = ? AND checkpoint_id = ? "
    "ORDER BY task_path, task_id, idx"
)
_CHUNK = 500


class SqliteCheckpoints:
    session_tables: tuple[str, ...] = TABLES
    ghost_tables: tuple[str, ...] = ()  # every write marks the session

    def __init__(self, runner: Runner) -> None:
        self.b = runner

    async def put(
        self,
        row: CheckpointRow,
        values: Sequence[ValueRow],
        items: Sequence[ItemRow],
        messages: Sequence[dict[str, Any]],
        now: datetime,
    ) -> list[int] | None:
        stamp = sqlite_time(now)
        sid, ns = row.thread_id, row.checkpoint_ns
        n = len(messages)
        tokens = sum(m["token_count"] for m in messages)
        item_params = [
            (sid, ns, i.channel, i.item_no, i.digest, i.key, i.type, i.value) for i in items
        ]
        value_params = [
            (sid, ns, v.channel, v.version, v.type, v.value, dump_ranges(v.items)) for v in values
        ]
        checkpoint = (
            sid,
            ns,
            row.checkpoint_id,
            row.parent_checkpoint_id,
            row.type,
            row.checkpoint,
            dump_metadata(row.metadata),
            json.dumps(row.channels),
            row.run_id,
        )

        def write(conn: sqlite3.Connection) -> list[int] | None:
            if n:
                bumped = conn.execute(_BUMP, (n, n, tokens, stamp, stamp, sid)).fetchone()
            else:
                bumped = conn.execute(_TOUCH, (stamp, sid)).fetchone()
            if bumped is None:
                return None
            first = bumped[0] - n + 1
            if n:
                conn.executemany(
                    INSERT_MESSAGE,
                    [message_params(sid, first + i, m, stamp) for i, m in enumerate(messages)],
                )
            if item_params:
                conn.executemany(_INSERT_ITEM, item_params)
            if value_params:
                conn.executemany(_INSERT_VALUE, value_params)
            conn.execute(_UPSERT_CHECKPOINT, checkpoint)
            return list(range(first, first + n))

        return await self.b._write(write)

    async def put_writes(
        self,
        thread_id: str,
        checkpoint_ns: str,
        checkpoint_id: str,
        writes: Sequence[WriteRow],
        *,
        replace: bool,
    ) -> bool:
        stmt = _INSERT_WRITE + (
            " ON CONFLICT DO UPDATE SET channel = excluded.channel, type = excluded.type, "
            "value = excluded.value, task_path = excluded.task_path"
            if replace
            else " ON CONFLICT DO NOTHING"
        )
        params = [
            (thread_id, checkpoint_ns, checkpoint_id, w.task_id, w.idx, w.channel, w.type)
            + (w.value, w.task_path)
            for w in writes
        ]

        def write(conn: sqlite3.Connection) -> bool:
            if conn.execute(_MARK, (thread_id,)).fetchone() is None:
                return False
            conn.executemany(stmt, params)
            return True

        return await self.b._write(write)

    async def get(
        self, thread_id: str, checkpoint_ns: str, checkpoint_id: str | None
    ) -> StoredCheckpoint | None:
        if checkpoint_id is None:
            stmt = f"{_SELECT} WHERE session_id = ? AND checkpoint_ns = ? "
            stmt += "ORDER BY checkpoint_id DESC LIMIT 1"
            params: tuple[str, ...] = (thread_id, checkpoint_ns)
        else:
            stmt = f"{_SELECT} WHERE session_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?"
            params = (thread_id, checkpoint_ns, checkpoint_id)

        def read(conn: sqlite3.Connection) -> StoredCheckpoint | None:
            found = conn.execute(stmt, params).fetchone()
            return None if found is None else _load(conn, found)

        return await self.b._read(read_txn(read), inline=True)

    async def page(self, query: ListFilter) -> list[StoredCheckpoint]:
        where, params = _where(query)
        stmt = (
            f"{_SELECT} {where} ORDER BY checkpoint_id DESC, session_id DESC, "
            "checkpoint_ns DESC LIMIT ?"
        )

        def read(conn: sqlite3.Connection) -> list[StoredCheckpoint]:
            rows = conn.execute(stmt, [*params, query.limit]).fetchall()
            return [_load(conn, r) for r in rows]

        return await self.b._read(read_txn(read))

    async def item_log(self, thread_id: str, checkpoint_ns: str, channel: str) -> ItemLog:
        def read(conn: sqlite3.Connection) -> ItemLog:
            log = ItemLog()
            for no, digest, key in conn.execute(
                "SELECT item_no, digest, key FROM lg_channel_items "
                "WHERE session_id = ? AND checkpoint_ns = ? AND channel = ?",
                (thread_id, checkpoint_ns, channel),
            ):
                log.by_digest[bytes(digest)] = no
                log.next_no = max(log.next_no, no + 1)
                if key is not None:
                    log.keys.add(key)
            return log

        return await self.b._read(read, inline=True)

    async def delete_thread(self, thread_id: str, session_type: str | None) -> None:
        def write(conn: sqlite3.Connection) -> None:
            if (
                session_type is not None
                and conn.execute(
                    "DELETE FROM sessions WHERE session_id = ? AND session_type = ?",
                    (thread_id, session_type),
                ).rowcount
            ):
                return  # its checkpoints went with it (the foreign keys, ON DELETE CASCADE)
            _delete_all(conn, thread_id)
            conn.execute(_REMARK, (thread_id,))

        await self.b._write(write)

    async def delete_for_runs(self, run_ids: Sequence[str]) -> list[str]:
        threads = await self.b._read(lambda c: _run_threads(c, run_ids))
        for sid in sorted(threads):  # one short transaction per thread

            def write(conn: sqlite3.Connection, sid: str = sid) -> None:
                for start in range(0, len(run_ids), _CHUNK):
                    chunk = list(run_ids[start : start + _CHUNK])
                    marks = ",".join("?" * len(chunk))
                    picked = (
                        "SELECT checkpoint_ns, checkpoint_id FROM lg_checkpoints "
                        f"WHERE session_id = ? AND run_id IN ({marks})"
                    )
                    conn.execute(
                        "DELETE FROM lg_writes WHERE session_id = ? AND "
                        f"(checkpoint_ns, checkpoint_id) IN ({picked})",
                        [sid, sid, *chunk],
                    )
                    conn.execute(
                        f"DELETE FROM lg_checkpoints WHERE session_id = ? AND run_id IN ({marks})",
                        [sid, *chunk],
                    )
                _collect_garbage(conn, sid)
                conn.execute(_REMARK, (sid,))

            await self.b._write(write)
        return sorted(threads)

    async def copy_thread(self, source: str, target: str, now: datetime) -> bool:
        stamp = sqlite_time(now)

        def write(conn: sqlite3.Connection) -> bool:
            if not _has_checkpoints(conn, source):
                return False
            if _has_checkpoints(conn, target):
                raise Conflict(f"thread {target!r} already has checkpoints")
            if _exists(conn, target):
                _delete_all(conn, target)  # leftovers of a pruned thread, if any
                conn.execute(_TOUCH, (stamp, target))
            else:
                conn.execute(_COPY_SESSION, (target, stamp, stamp, source))
                conn.execute(_COPY_MESSAGES, (target, source))
            for table, cols in (
                ("lg_checkpoints", CP_REST),
                ("lg_channel_values", VALUE_REST),
                ("lg_channel_items", ITEM_REST),
                ("lg_writes", WRITE_REST),
            ):
                conn.execute(
                    f"INSERT INTO {table} (session_id, {cols}) SELECT ?, {cols} FROM {table} "
                    "WHERE session_id = ?",
                    (target, source),
                )
            return True

        return await self.b._write(write, bounded=False)

    async def prune(self, thread_ids: Sequence[str], *, keep_latest: bool) -> None:
        if keep_latest:
            delta = await self.b._read(lambda c: _delta_threads(c, thread_ids))
            if delta:
                raise InvalidInput(
                    "keep_latest cannot prune threads that use a DeltaChannel: " + ", ".join(delta),
                    field="thread_ids",
                )
        prune = _keep_latest if keep_latest else _delete_all

        def write(conn: sqlite3.Connection, sid: str) -> None:
            prune(conn, sid)
            conn.execute(_REMARK, (sid,))

        for sid in thread_ids:  # one short transaction per thread
            await self.b._write(functools.partial(write, sid=sid))


# ── reading ─────────────────────────────────────────────────────────────────


def _load(conn: sqlite3.Connection, r: Sequence[Any]) -> StoredCheckpoint:
    sid, ns = r[0], r[1]
    row = CheckpointRow(
        sid, ns, r[2], r[3], r[4], bytes(r[5]), json.loads(r[6]), json.loads(r[7]), r[8]
    )
    values: dict[str, tuple[str, bytes | None]] = {}
    lists: dict[str, list[tuple[str, bytes]]] = {}
    if row.channels:
        for channel, type_, value, items in conn.execute(_VALUES, (r[7], sid, ns)):
            if items is None:
                values[channel] = (type_, value)
            else:
                lists[channel] = _items(conn, sid, ns, channel, items)
    writes = [WriteRow(*w) for w in conn.execute(_WRITES, (sid, ns, row.checkpoint_id))]
    return StoredCheckpoint(row, values, lists, writes)


def _items(
    conn: sqlite3.Connection, sid: str, ns: str, channel: str, ranges: str
) -> list[tuple[str, bytes]]:
    numbers = expand(load_ranges(ranges) or [])
    rows = conn.execute(_ITEMS, (sid, ns, channel, ranges)).fetchall()
    if [r[0] for r in rows] == numbers:  # the usual case: read in the list's order
        return [(t, v) for _, t, v in rows]
    by_no = {no: (t, v) for no, t, v in rows}
    try:
        return [by_no[no] for no in numbers]
    except KeyError as exc:
        raise DatabaseError(
            f"thread {sid!r}: item {exc.args[0]} of channel {channel!r} is missing"
        ) from None


def _where(query: ListFilter) -> tuple[str, list[Any]]:
    conds: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("session_id", query.thread_id),
        ("checkpoint_ns", query.checkpoint_ns),
        ("checkpoint_id", query.checkpoint_id),
    ):
        if value is not None:
            conds.append(f"{column} = ?")
            params.append(value)
    if query.before is not None:
        conds.append("checkpoint_id < ?")
        params.append(query.before)
    if query.after is not None:
        conds.append("(checkpoint_id, session_id, checkpoint_ns) < (?, ?, ?)")
        params.extend(query.after)
    for key, value in query.metadata.items():
        if filterable(key):
            cond, args = _metadata_condition(f'$."{key}"', value)
            conds.append(cond)
            params.extend(args)
    return ("WHERE " + " AND ".join(conds)) if conds else "", params


def _metadata_condition(path: str, value: Any) -> tuple[str, list[Any]]:
    """Narrows rows to those whose metadata value at ``path`` may equal ``value`` (the exact
    test is ``checkpoints_base.matches``): a type check, and for scalars the value itself."""
    kind = "json_type(metadata, ?)"
    if value is None:
        return f"{kind} = 'null'", [path]
    if isinstance(value, bool):
        return f"{kind} = ?", [path, "true" if value else "false"]
    if isinstance(value, int | float):
        return (
            f"{kind} IN ('integer', 'real') AND json_extract(metadata, ?) = ?",
            [path, path, value],
        )
    if isinstance(value, str):
        return f"{kind} = 'text' AND json_extract(metadata, ?) = ?", [path, path, value]
    return f"{kind} IN ('object', 'array')", [path]


# ── writing ─────────────────────────────────────────────────────────────────


def _exists(conn: sqlite3.Connection, sid: str) -> bool:
    found = conn.execute("SELECT 1 FROM sessions WHERE session_id = ?", (sid,))
    return found.fetchone() is not None


def _has_checkpoints(conn: sqlite3.Connection, sid: str) -> bool:
    found = conn.execute("SELECT 1 FROM lg_checkpoints WHERE session_id = ? LIMIT 1", (sid,))
    return found.fetchone() is not None


def _delete_all(conn: sqlite3.Connection, sid: str) -> None:
    for table in TABLES:
        conn.execute(f"DELETE FROM {table} WHERE session_id = ?", (sid,))


def _run_threads(conn: sqlite3.Connection, run_ids: Sequence[str]) -> set[str]:
    threads: set[str] = set()
    for start in range(0, len(run_ids), _CHUNK):
        chunk = list(run_ids[start : start + _CHUNK])
        marks = ",".join("?" * len(chunk))
        threads.update(
            r[0]
            for r in conn.execute(
                f"SELECT DISTINCT session_id FROM lg_checkpoints WHERE run_id IN ({marks})", chunk
            )
        )
    return threads


def _delta_threads(conn: sqlite3.Connection, thread_ids: Sequence[str]) -> list[str]:
    found: set[str] = set()
    test = " OR ".join(f"json_type(metadata, '$.{k}') IS NOT NULL" for k in DELTA_METADATA_KEYS)
    for start in range(0, len(thread_ids), _CHUNK):
        chunk = list(thread_ids[start : start + _CHUNK])
        marks = ",".join("?" * len(chunk))
        found.update(
            r[0]
            for r in conn.execute(
                f"SELECT DISTINCT session_id FROM lg_checkpoints "
                f"WHERE session_id IN ({marks}) AND ({test})",
                chunk,
            )
        )
    return sorted(found)


def _keep_latest(conn: sqlite3.Connection, sid: str) -> None:
    """Keep the newest checkpoint of each namespace (and its writes); drop the rest, the
    values and items no kept checkpoint uses, and finished subgraph calls (see postgres)."""
    heads = dict(
        conn.execute(
            "SELECT checkpoint_ns, max(checkpoint_id) FROM lg_checkpoints "
            "WHERE session_id = ? GROUP BY checkpoint_ns",
            (sid,),
        ).fetchall()
    )
    calls = []
    for ns, head in heads.items():
        if ":" not in ns:
            continue
        meta = conn.execute(
            "SELECT metadata FROM lg_checkpoints WHERE session_id = ? AND checkpoint_ns = ? "
            "AND checkpoint_id = ?",
            (sid, ns, head),
        ).fetchone()
        root = (json.loads(meta[0]).get("parents") or {}).get("")
        if (
            root
            and root != heads.get("")
            and conn.execute(
                "SELECT 1 FROM lg_checkpoints WHERE session_id = ? AND checkpoint_ns = '' "
                "AND checkpoint_id = ?",
                (sid, root),
            ).fetchone()
        ):
            calls.append(ns)
    for ns in calls:
        for table in TABLES:
            conn.execute(
                f"DELETE FROM {table} WHERE session_id = ? AND checkpoint_ns = ?", (sid, ns)
            )
    for ns, head in heads.items():
        if ns in calls:
            continue
        # Writes go by the checkpoints deleted: a run may save writes before their checkpoint.
        conn.execute(
            "DELETE FROM lg_writes WHERE session_id = ?1 AND checkpoint_ns = ?2 AND checkpoint_id "
            "IN (SELECT checkpoint_id FROM lg_checkpoints WHERE session_id = ?1 "
            "AND checkpoint_ns = ?2 AND checkpoint_id <> ?3)",
            (sid, ns, head),
        )
        conn.execute(
            "DELETE FROM lg_checkpoints WHERE session_id = ? AND checkpoint_ns = ? "
            "AND checkpoint_id <> ?",
            (sid, ns, head),
        )
        conn.execute(
            "UPDATE lg_checkpoints SET parent_checkpoint_id = NULL WHERE session_id = ? "
            "AND checkpoint_ns = ? AND checkpoint_id = ?",
            (sid, ns, head),
        )
    _collect_garbage(conn, sid)


def _collect_garbage(conn: sqlite3.Connection, sid: str) -> None:
    """Delete the values no checkpoint of the thread uses, then the items no value uses."""
    used = {
        (ns, channel, version)
        for ns, channels in conn.execute(
            "SELECT checkpoint_ns, channels FROM lg_checkpoints WHERE session_id = ?", (sid,)
        )
        for channel, version in json.loads(channels).items()
    }
    dead: list[tuple[str, str, str, str]] = []
    kept: list[tuple[str, str, str | None]] = []
    for ns, channel, version, items in conn.execute(
        "SELECT checkpoint_ns, channel, version, items FROM lg_channel_values WHERE session_id = ?",
        (sid,),
    ):
        if (ns, channel, version) in used:
            kept.append((ns, channel, items))
        else:
            dead.append((sid, ns, channel, version))
    conn.executemany(
        "DELETE FROM lg_channel_values WHERE session_id = ? AND checkpoint_ns = ? "
        "AND channel = ? AND version = ?",
        dead,
    )
    live = live_items(kept)
    gone = [
        (sid, ns, channel, no)
        for ns, channel, no in conn.execute(
            "SELECT checkpoint_ns, channel, item_no FROM lg_channel_items WHERE session_id = ?",
            (sid,),
        )
        if no not in live.get((ns, channel), ())
    ]
    conn.executemany(
        "DELETE FROM lg_channel_items WHERE session_id = ? AND checkpoint_ns = ? "
        "AND channel = ? AND item_no = ?",
        gone,
    )

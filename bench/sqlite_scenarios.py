"""SQLite scenarios: the store against bare ``sqlite3`` on the same file and tables, with the
pragmas the store sets on every connection (sessionkeeper/store/engine.py)."""

from __future__ import annotations

import itertools
import sqlite3
from datetime import UTC, datetime
from typing import Any

import datagen
from harness import Result, Target, compare, from_samples

INSERT_MESSAGE = (
    "INSERT INTO messages (session_id, seq, role, content, agent_id, model, token_count, "
    "metadata, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def bare_connect(path: str) -> sqlite3.Connection:
    from sessionkeeper.store.engine import SQLITE_BUSY_TIMEOUT_S

    conn = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_S)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
    return conn


async def append(store: Any, path: str, scale: dict[str, Any]) -> list[Result]:
    from sessionkeeper import tokens

    n, warm = scale["append_n"], scale["append_warmup"]
    store_sid = (await store.create_session(agent_id="bench")).session_id
    base_sid = (await store.create_session(agent_id="bench")).session_id
    tok = tokens.get_tokenizer("cl100k_base").count(datagen.APPEND_TEXT)
    conn = bare_connect(path)
    seqs = itertools.count(1)

    async def store_op() -> None:
        await store.add_message(store_sid, "user", datagen.APPEND_TEXT)

    async def base_op() -> None:
        # Same text as the store stores: naive UTC, with microseconds.
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        conn.execute(
            INSERT_MESSAGE,
            (base_sid, next(seqs), "user", datagen.APPEND_TEXT, None, None, tok, None, now),
        )
        conn.commit()

    try:
        s, b = await compare(store_op, base_op, n=n, warmup=warm)
        conn.execute(datagen.FIX_COUNTERS_SQLITE, (base_sid,))
        conn.commit()
    finally:
        conn.close()
    return [
        from_samples(
            "append",
            "sqlite",
            s,
            b,
            Target("ratio_max", 1.5),
            note="store.add_message (tokenizer, BEGIN IMMEDIATE, counters + seq, INSERT, FTS "
            "trigger) vs bare sqlite3 INSERT + commit (WAL, synchronous=FULL, FTS trigger)",
        )
    ]

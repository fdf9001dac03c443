"""Synthetic data and bulk loaders (bare driver: COPY on PostgreSQL, executemany on SQLite).

Loaded data keeps the store's invariants: every session's message_count / token_count /
last_seq equal its messages' count / token sum / max seq, and seqs run 1..n.

Message text comes from a fixed pool of pseudo-English sentences (deterministic: same seed,
same data), so full-text indexes see a realistic Zipf-like vocabulary. Two marker words are
planted for the search scenarios: ``RARE_WORD`` in a handful of messages and ``MEDIUM_WORD``
in one message of every ``medium_every``.
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sessionkeeper.store import schema

RARE_WORD = "zyxquorbin"
MEDIUM_WORD = "plovermint"

# The tables' columns in order, from their one description (store/schema.py); ``held_by``
# keeps its default (0: no framework state, as for any plain session), and the corpus's
# messages carry no usage (its columns, migration 0012, stay NULL).
SESSION_COLS = [
    c.name
    for c in schema.sessions.columns
    if c.name not in ("held_by", "user_id", "parent_session_id", "fork_seq")
]
_USAGE_COLS = ("input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens", "requests")
MESSAGE_COLS = [
    c.name for c in schema.messages.columns if c.name not in (*_USAGE_COLS, "usage_model")
]

# A typical chat turn, used by the write scenarios (same text for store and baseline).
APPEND_TEXT = (
    "Could you summarise the deployment checklist we discussed yesterday, including the "
    "database migration step and the rollback plan if the health checks fail?"
)


def _vocabulary(rng: random.Random, size: int) -> list[str]:
    onsets = ["b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w"]
    vowels = ["a", "e", "i", "o", "u", "ai", "ea", "oo"]
    words: set[str] = set()
    while len(words) < size:
        n = rng.choice((1, 2, 2, 3))
        words.add("".join(rng.choice(onsets) + rng.choice(vowels) for _ in range(n)))
    return sorted(words)


def text_pool(size: int = 4096, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    vocab = _vocabulary(rng, 3000)
    weights = [1 / (rank + 1) for rank in range(len(vocab))]  # Zipf
    pool = []
    for _ in range(size):
        words = rng.choices(vocab, cum_weights=None, weights=weights, k=rng.randint(8, 40))
        pool.append(" ".join(words).capitalize() + ".")
    assert not any(RARE_WORD in t or MEDIUM_WORD in t for t in pool)
    return pool


@dataclass
class Corpus:
    """``sessions`` sessions over ``agents`` agents, min_msgs..max_msgs messages each
    (uniform), plus optionally one session ``big`` with ``big_msgs`` messages (agent ``big``)
    and ``ghost_sessions`` sessions without messages, older than all the others."""

    sessions: int
    agents: int = 10
    min_msgs: int = 1
    max_msgs: int = 20
    big_msgs: int = 0
    rare_hits: int = 3
    medium_every: int = 1000
    prefix: str = "c"
    agent_prefix: str = "agent-"
    span_days: float = 30.0
    ghost_sessions: int = 0  # extra sessions with no messages (created before the others)

    def counts(self) -> list[int]:
        span = self.max_msgs - self.min_msgs + 1
        return [self.min_msgs + (i * 7919 + 13) % span for i in range(self.sessions)]

    def total_messages(self) -> int:
        return sum(self.counts()) + self.big_msgs

    def agent(self, i: int) -> str:
        return f"{self.agent_prefix}{i % self.agents:02d}"


BIG_SESSION = "big-session"


def ghost_records(corpus: Corpus, now: datetime | None = None) -> list[tuple[Any, ...]]:
    """Just the ghost sessions of ``corpus`` (to put them back after a purge)."""
    sessions, _ = generate(corpus, now, ghosts_only=True)
    return sessions


def generate(
    corpus: Corpus, now: datetime | None = None, *, ghosts_only: bool = False
) -> tuple[list[tuple[Any, ...]], Iterator[tuple[Any, ...]]]:
    """Session records (a list) and message records (a lazy iterator), in COPY column order."""
    now = now or datetime.now(UTC)
    pool = text_pool()
    start = now - timedelta(days=corpus.span_days)
    step = timedelta(days=corpus.span_days) / max(1, corpus.sessions + corpus.ghost_sessions)
    counts = corpus.counts()
    total = sum(counts) + corpus.big_msgs
    rare_at = {total * (k + 1) // (corpus.rare_hits + 1) for k in range(corpus.rare_hits)}

    sessions: list[tuple[Any, ...]] = []
    plan: list[tuple[str, str, datetime, int]] = []
    for g in range(corpus.ghost_sessions):
        created = start + step * g
        sessions.append(
            (
                f"{corpus.prefix}g{g:07d}",
                corpus.agent(g),
                f"ghost {g}",
                "chat",
                "active",
                None,
                created,
                created,
                None,
                None,
                0,
                0,
                0,
            )
        )
    if ghosts_only:
        return sessions, iter(())
    k = 0  # global message index, drives content choice
    token_sums: list[int] = []
    for n in counts:
        tokens = 0
        for seq in range(n):
            tokens += _tokens(pool[(k + seq) % len(pool)])
        k += n
        token_sums.append(tokens)
    k = 0
    specs = [(f"{corpus.prefix}{i:07d}", corpus.agent(i), n) for i, n in enumerate(counts)]
    if corpus.big_msgs:
        specs.append((BIG_SESSION, "big", corpus.big_msgs))
        token_sums.append(sum(_tokens(pool[(k2) % len(pool)]) for k2 in range(sum(counts), total)))
    for i, (sid, agent, n) in enumerate(specs):
        created = start + step * (corpus.ghost_sessions + i)
        last = created + timedelta(seconds=n) if n else None
        sessions.append(
            (
                sid,
                agent,
                f"session {i}",
                "chat",
                "active",
                None,
                created,
                last or created,
                None,
                last,
                n,
                token_sums[i],
                n,
            )
        )
        plan.append((sid, agent, created, n))

    def messages() -> Iterator[tuple[Any, ...]]:
        k = 0
        for sid, agent, created, n in plan:
            for seq in range(1, n + 1):
                content = pool[k % len(pool)]
                tok = _tokens(content)
                if k in rare_at:
                    content = content[:-1] + f" {RARE_WORD}."
                elif k % corpus.medium_every == corpus.medium_every // 2:
                    content = content[:-1] + f" {MEDIUM_WORD}."
                role = "user" if seq % 2 else "assistant"
                yield (
                    sid,
                    seq,
                    role,
                    content,
                    agent,
                    None,
                    tok,
                    None,
                    created + timedelta(seconds=seq),
                )
                k += 1

    return sessions, messages()


def _tokens(content: str) -> int:
    return max(1, len(content) // 4)


def chunks(it: Iterator[tuple[Any, ...]], size: int) -> Iterator[list[tuple[Any, ...]]]:
    buf: list[tuple[Any, ...]] = []
    for rec in it:
        buf.append(rec)
        if len(buf) >= size:
            yield buf
            buf = []
    if buf:
        yield buf


# ── PostgreSQL ───────────────────────────────────────────────────────────────


def tsvector_binary(content: str) -> bytes:
    """PostgreSQL's binary ``tsvector`` of ``content``'s terms (the store's analyser): what
    COPY needs, as asyncpg has no codec of its own for the type. The format (tsvectorrecv):
    the number of lexemes, then each lexeme NUL-terminated, its number of positions and
    the positions (uint16, at most 16,383, at most 256 of them)."""
    import struct

    from sessionkeeper.store import terms

    positions: dict[str, list[int]] = {}
    for i, term in enumerate(terms.terms(content), 1):
        positions.setdefault(term, []).append(min(i, 16_383))
    out = [struct.pack("!i", len(positions))]
    for term, found in positions.items():
        ps = sorted(set(found))[:256]
        out.append(term.encode() + b"\0" + struct.pack(f"!H{len(ps)}H", len(ps), *ps))
    return b"".join(out)


async def pg_truncate(conn: Any) -> None:
    await conn.execute("TRUNCATE messages, sessions CASCADE")  # and rows that reference them


async def pg_load(dsn: str, corpus: Corpus, *, writers: int = 2) -> dict[str, Any]:
    """COPY a corpus into empty tables. The GIN index is dropped during the load and rebuilt
    from its own definition (much faster than maintaining it row by row); the tsv column
    holds each message's terms, as the store writes them (``tsvector_binary``)."""
    import asyncio
    import time

    import asyncpg

    t0 = time.perf_counter()
    sessions, messages = generate(corpus)
    conn = await asyncpg.connect(dsn)
    try:
        gin = await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes "
            "WHERE tablename = 'messages' AND indexdef ILIKE '%USING gin%'"
        )
        for row in gin:
            await conn.execute(f'DROP INDEX "{row["indexname"]}"')
        await conn.copy_records_to_table("sessions", records=sessions, columns=SESSION_COLS)
        queue: asyncio.Queue[list[tuple[Any, ...]] | None] = asyncio.Queue(maxsize=writers * 2)

        async def writer() -> None:
            wconn = await asyncpg.connect(dsn)
            await wconn.set_type_codec(
                "tsvector",
                schema="pg_catalog",
                encoder=tsvector_binary,
                decoder=bytes,
                format="binary",
            )
            content = MESSAGE_COLS.index("content")
            try:
                while (batch := await queue.get()) is not None:
                    await wconn.copy_records_to_table(
                        "messages",
                        records=[(*r, r[content]) for r in batch],
                        columns=[*MESSAGE_COLS, "tsv"],
                    )
            finally:
                await wconn.close()

        tasks = [asyncio.create_task(writer()) for _ in range(writers)]
        for batch in chunks(messages, 50_000):
            await queue.put(batch)
        for _ in tasks:
            await queue.put(None)
        await asyncio.gather(*tasks)
        await conn.execute("SET maintenance_work_mem = '512MB'")
        for row in gin:
            await conn.execute(row["indexdef"])
        await conn.execute("VACUUM ANALYZE sessions")
        await conn.execute("VACUUM ANALYZE messages")
    finally:
        await conn.close()
    return {
        "sessions": len(sessions),
        "messages": corpus.total_messages(),
        "load_s": round(time.perf_counter() - t0, 2),
    }


async def pg_check_invariants(conn: Any) -> int:
    """Number of sessions whose counters disagree with their messages (must be 0)."""
    return int(
        await conn.fetchval(
            """
            SELECT count(*) FROM sessions s LEFT JOIN (
                SELECT session_id, count(*) c, coalesce(sum(token_count), 0) t, max(seq) mx
                FROM messages GROUP BY session_id) m USING (session_id)
            WHERE s.message_count <> coalesce(m.c, 0)
               OR s.token_count <> coalesce(m.t, 0)
               OR s.last_seq < coalesce(m.mx, 0)
            """
        )
    )


FIX_COUNTERS_PG = """
UPDATE sessions s SET message_count = m.c, token_count = m.t, last_seq = m.mx
FROM (SELECT session_id, count(*) c, sum(token_count) t, max(seq) mx
      FROM messages WHERE session_id = $1 GROUP BY session_id) m
WHERE s.session_id = m.session_id
"""

SQLITE_INVARIANTS = """
SELECT count(*) FROM sessions s LEFT JOIN (
    SELECT session_id, count(*) c, coalesce(sum(token_count), 0) t, max(seq) mx
    FROM messages GROUP BY session_id) m USING (session_id)
WHERE s.message_count <> coalesce(m.c, 0) OR s.token_count <> coalesce(m.t, 0)
   OR s.last_seq < coalesce(m.mx, 0)
"""


# ── SQLite ───────────────────────────────────────────────────────────────────


# The store's pragmas on its writer (backends/sqlite.py): WAL, synchronous=FULL, FKs.
SQLITE_BUSY_MS = 10_000


def sqlite_time(value: datetime | None = None) -> str:
    """A timestamp as the store keeps it in SQLite: naive UTC ISO text with microseconds."""
    value = value or datetime.now(UTC)
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def sqlite_connect(path: str, *, query_only: bool = False) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path, isolation_level=None, timeout=SQLITE_BUSY_MS / 1000, check_same_thread=False
    )
    for pragma in (
        "journal_mode=WAL",
        "synchronous=FULL",
        "foreign_keys=ON",
        f"busy_timeout={SQLITE_BUSY_MS}",
    ):
        conn.execute(f"PRAGMA {pragma}")
    if query_only:
        conn.execute("PRAGMA query_only=ON")
    # The FTS5 index's triggers call the store's analyser (migration 0008): a bare INSERT
    # into messages does the same indexing work as the store's.
    from sessionkeeper.store import terms

    conn.create_function(terms.TERMS_FUNCTION, 1, terms.index_text, deterministic=True)
    return conn


def to_sqlite(record: tuple[Any, ...]) -> tuple[Any, ...]:
    """A COPY record (datetimes, dicts) as SQLite stores it (text, JSON text)."""
    return tuple(
        sqlite_time(v) if isinstance(v, datetime) else json.dumps(v) if isinstance(v, dict) else v
        for v in record
    )


def sqlite_load(path: str, corpus: Corpus) -> dict[str, Any]:
    """Insert a corpus into the (empty) tables of a store's SQLite file. The FTS5 triggers are
    dropped during the load and the index rebuilt in one pass ('rebuild'), then the triggers
    are put back from their own definitions: the SQLite analogue of the GIN rebuild above."""
    import time


    t0 = time.perf_counter()
    sessions, messages = generate(corpus)
    conn = sqlite_connect(path)
    try:
        triggers = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'messages'"
        ).fetchall()
        conn.execute("BEGIN IMMEDIATE")
        for name, _ in triggers:
            conn.execute(f'DROP TRIGGER "{name}"')
        cols = ", ".join(SESSION_COLS)
        conn.executemany(
            f"INSERT INTO sessions ({cols}) VALUES ({', '.join('?' * len(SESSION_COLS))})",
            (to_sqlite(r) for r in sessions),
        )
        mcols = ", ".join(MESSAGE_COLS)
        conn.executemany(
            f"INSERT INTO messages ({mcols}) VALUES ({', '.join('?' * len(MESSAGE_COLS))})",
            (to_sqlite(r) for r in messages),
        )
        conn.execute("INSERT INTO messages_fts(messages_fts) VALUES ('rebuild')")
        for _, ddl in triggers:
            conn.execute(ddl)
        conn.execute("COMMIT")
        conn.execute("ANALYZE")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        conn.close()
    return {
        "sessions": len(sessions),
        "messages": corpus.total_messages(),
        "load_s": round(time.perf_counter() - t0, 2),
    }


def sqlite_check_invariants(conn: Any) -> int:
    return int(conn.execute(SQLITE_INVARIANTS).fetchone()[0])


FIX_COUNTERS_SQLITE = """
UPDATE sessions SET
  message_count = (SELECT count(*) FROM messages m WHERE m.session_id = sessions.session_id),
  token_count = (SELECT coalesce(sum(token_count), 0) FROM messages m
                 WHERE m.session_id = sessions.session_id),
  last_seq = max(last_seq, (SELECT coalesce(max(seq), 0) FROM messages m
                            WHERE m.session_id = sessions.session_id))
WHERE session_id = ?
"""

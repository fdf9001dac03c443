"""PostgreSQL-only scenarios: the GIN pending list after appends, and flatness of the
listing / session read with the database's size. See README.md."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import bare
import datagen
from harness import Result, Target, compare, from_samples

SEED_COUNT = "SELECT COUNT(*) AS total FROM sessions s WHERE s.agent_id = $1"
# The seed's listing (aria_engine NativeSessionManager.list_sessions) on our tables: the page
# with message_count / last_message_at computed by a JOIN. For contrast in ``flat`` only.
SEED_PAGE = """
SELECT s.session_id, s.title, s.agent_id, s.session_type, s.metadata, s.created_at,
       s.updated_at, COUNT(m.seq) AS message_count, MAX(m.created_at) AS last_message_at
FROM sessions s LEFT JOIN messages m ON m.session_id = s.session_id
WHERE s.agent_id = $1
GROUP BY s.session_id
ORDER BY s.updated_at DESC
LIMIT 20 OFFSET 0
"""
SEED_GET = """
SELECT s.session_id, s.title, s.agent_id, s.session_type, s.metadata, s.created_at,
       s.updated_at, COUNT(m.seq) AS message_count, MAX(m.created_at) AS last_message_at
FROM sessions s LEFT JOIN messages m ON m.session_id = s.session_id
WHERE s.session_id = $1
GROUP BY s.session_id
"""


async def _gin_pending(conn: asyncpg.Connection) -> int | None:
    """Pages in the GIN pending list (needs pgstattuple; None where it is not available)."""
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pgstattuple")
        return int(
            await conn.fetchval("SELECT pending_pages FROM pgstatginindex('ix_messages_tsv')")
        )
    except asyncpg.PostgresError:
        return None


async def search_after_appends(ctx: Any, info: dict[str, Any]) -> Result:
    """The rare-word search again after the store has appended messages. The GIN index is
    built with fastupdate (PostgreSQL's default): new entries wait in a pending list (up to
    gin_pending_list_limit, 4 MB) that every search scans linearly until VACUUM or a full
    list merges it. The search scenario above runs on a freshly built index; this is the
    steady state of a store that is being written to."""
    n, warm = ctx.scale["search_n"] // 2, ctx.scale["search_warmup"]
    appends = ctx.scale["pending_appends"]
    sid = await ctx.new_session("pending")
    pool = datagen.text_pool()
    for i in range(0, appends, 10):
        await ctx.store.add_messages(
            sid, [{"role": "user", "content": pool[(i + k) % len(pool)]} for k in range(10)]
        )
    conn = await asyncpg.connect(ctx.target)
    try:
        pending = await _gin_pending(conn)
        word = datagen.RARE_WORD

        async def store_op() -> None:
            await ctx.store.search_messages(word)

        async def base_op() -> None:
            await conn.fetch(bare.PG_SEARCH, bare.tsquery_of(word))

        s, b = await compare(store_op, base_op, n=n, warmup=warm)
    finally:
        await conn.close()
    pages = f"{pending} pending pages" if pending is not None else "pending list size unknown"
    return from_samples(
        "search-after-appends",
        "postgresql",
        s,
        b,
        Target("report", text="info (p50 < 1 ms wanted)"),
        note=f"search_messages({word!r}) after {appends:,} store appends ({pages} in the GIN "
        "index, fastupdate on); both sides scan the pending list",
        extra={"gin_pending_pages": pending},
    )


# ── 4b. flat: list page and get_session at 10 vs 100,000 messages ─────────────


async def flat(ctx: Any) -> list[Result]:
    """Two extra databases, one with 10 sessions of 1 message, one with the same 10 sessions
    of 10,000 messages each, each with its own store; the same calls alternate between them,
    so machine drift lands on both sizes."""
    n, warm = ctx.scale["list_n"] * 3, ctx.scale["list_warmup"]
    sizes = {"small": 1, "big": ctx.scale["flat_big_msgs"] // 10}
    admin = await asyncpg.connect(ctx.extra["admin_dsn"])
    base_name = ctx.target.rsplit("/", 1)[-1].split("?")[0]
    stores: dict[str, Any] = {}
    conns: dict[str, asyncpg.Connection] = {}
    names = {label: f"{base_name}_flat_{label}" for label in sizes}
    agent, sid = "flat-00", "f0000005"
    try:
        for label, per in sizes.items():
            await admin.execute(f'CREATE DATABASE "{names[label]}"')
            dsn = ctx.target.rsplit("/", 1)[0] + "/" + names[label]
            stores[label] = await ctx.extra["open_store"](dsn)
            spec = datagen.Corpus(sessions=10, agents=1, prefix="f", agent_prefix="flat-")
            spec.counts = lambda per=per: [per] * 10  # type: ignore[method-assign]
            info = await datagen.pg_load(dsn, spec)
            ctx.log(f"  flat/{label}: {info['messages']:,} messages in the database")
            conns[label] = await asyncpg.connect(dsn)
            assert (await stores[label].get_session(sid)).message_count == per

        def ops(label: str) -> dict[str, Callable[[], Awaitable[Any]]]:
            store, conn = stores[label], conns[label]

            async def list_op() -> None:
                await store.list_sessions(agent_id=agent)

            async def get_op() -> None:
                await store.get_session(sid)

            async def seed_list() -> None:
                await conn.fetchval(SEED_COUNT, agent)
                await conn.fetch(SEED_PAGE, agent)

            async def seed_get() -> None:
                await conn.fetch(SEED_GET, sid)

            return {"list": list_op, "get": get_op, "seed_list": seed_list, "seed_get": seed_get}

        big, small = ops("big"), ops("small")
        timings = {}
        for key in big:
            timings[key] = await compare(big[key], small[key], n=n, warmup=warm)
    finally:
        for conn in conns.values():
            await conn.close()
        for store in stores.values():
            await store.close()
        for name in names.values():
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    out = []
    msgs = f"{ctx.scale['flat_big_msgs']:,} vs 10 messages (10 sessions, two databases)"
    for key, name, target in (
        ("list", "flat-list", Target("ratio_max", 1.3, "~1 (<= 1.3)")),
        ("get", "flat-get", Target("ratio_max", 1.3, "~1 (<= 1.3)")),
        ("seed_list", "flat-list-seed", Target("report")),
        ("seed_get", "flat-get-seed", Target("report")),
    ):
        big_t, small_t = timings[key]
        out.append(
            from_samples(
                name,
                "postgresql",
                big_t,
                small_t,
                target,
                store_label="big database",
                base_label="small database",
                note=f"same call at {msgs}: 'store' column = big, 'baseline' = small"
                + ("; the seed's COUNT/JOIN query, for contrast" if "seed" in key else ""),
            )
        )
    return out

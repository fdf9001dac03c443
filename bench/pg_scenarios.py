"""PostgreSQL scenarios: the store (``Store.open(url)``) against bare asyncpg on the same
database and tables. See README.md for what each one measures and why."""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import datagen
from harness import Result, Target, compare, from_samples, pct, time_block

INSERT_MESSAGE = (
    "INSERT INTO messages (session_id, seq, role, content, agent_id, model, token_count, "
    "metadata, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
)
LAST50 = (
    "SELECT session_id, seq, role, content, agent_id, model, token_count, metadata, created_at "
    "FROM messages WHERE session_id = $1 ORDER BY seq DESC LIMIT 50"
)
# The seed's listing (aria_engine NativeSessionManager.list_sessions), on our tables: a COUNT
# for the total, then the page with message_count / last_message_at computed by a JOIN.
# GROUP BY the primary key only (the seed also grouped by every selected column, which is
# slower): the baseline is the charitable version of the seed.
SEED_COUNT = "SELECT COUNT(*) AS total FROM sessions s WHERE s.agent_id = $1"
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
BARE_GET = "SELECT * FROM sessions WHERE session_id = $1"
BARE_LIST = (
    "SELECT * FROM sessions WHERE agent_id = $1 ORDER BY updated_at DESC, session_id DESC LIMIT 21"
)
BARE_SEARCH = """
SELECT session_id, seq, ts_rank(tsv, q) AS rank
FROM messages, websearch_to_tsquery('english', $1) q
WHERE tsv @@ q
ORDER BY rank DESC
LIMIT 20
"""
BARE_GHOSTS = """
DELETE FROM sessions s
WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.session_id = s.session_id)
  AND s.created_at < now()
"""


class PgContext:
    def __init__(
        self,
        store: Any,
        dsn: str,
        scale: dict[str, Any],
        log: Callable[[str], None],
        *,
        admin_dsn: str,
        open_store: Callable[[str], Awaitable[Any]],
    ):
        self.store = store
        self.dsn = dsn
        self.scale = scale
        self.log = log
        self.admin_dsn = admin_dsn
        self.open_store = open_store  # Store.open for the extra databases

    async def bare(self, *, custom_plans: bool = False) -> asyncpg.Connection:
        """A bare asyncpg connection with the driver's defaults, or one that plans every
        statement for its actual parameters (``custom_plans``; see ``_last50``). Never use
        ``custom_plans`` for writes: the session setting also re-plans the foreign-key
        cascade's internal query for every deleted row (measured: 4x slower purge)."""
        settings = {"plan_cache_mode": "force_custom_plan"} if custom_plans else {}
        return await asyncpg.connect(self.dsn, server_settings=settings)

    async def new_session(self, agent: str = "bench") -> str:
        return (await self.store.create_session(agent_id=agent)).session_id


def _now() -> datetime:
    return datetime.now(UTC)


class BareAppender:
    """Bare autocommit INSERTs with explicit seq into one session (counters fixed after)."""

    def __init__(self, sid: str, seqs: Iterator[int] | None = None):
        self.sid = sid
        self.seqs = seqs or itertools.count(1)
        self.tokens = self._tokens()

    @staticmethod
    def _tokens() -> int:
        from sessionkeeper import tokens

        return tokens.get_tokenizer("cl100k_base").count(datagen.APPEND_TEXT)

    def op(self, conn: asyncpg.Connection) -> Callable[[], Awaitable[Any]]:
        async def insert() -> None:
            await conn.execute(
                INSERT_MESSAGE,
                self.sid,
                next(self.seqs),
                "user",
                datagen.APPEND_TEXT,
                None,
                None,
                self.tokens,
                None,
                _now(),
            )

        return insert


# ── 1. append ────────────────────────────────────────────────────────────────


async def append(ctx: PgContext) -> list[Result]:
    n, warm = ctx.scale["append_n"], ctx.scale["append_warmup"]
    store_sid, base_sid = await ctx.new_session(), await ctx.new_session()
    conn = await ctx.bare()
    try:

        async def store_op() -> None:
            await ctx.store.add_message(store_sid, "user", datagen.APPEND_TEXT)

        base = BareAppender(base_sid)
        s, b = await compare(store_op, base.op(conn), n=n, warmup=warm)
        await conn.execute(datagen.FIX_COUNTERS_PG, base_sid)
    finally:
        await conn.close()
    return [
        from_samples(
            "append",
            "postgresql",
            s,
            b,
            Target("ratio_max", 1.45),
            note="store.add_message (tokenizer + CTE: counters, seq, insert, FTS) vs one bare "
            "autocommit INSERT with explicit seq",
        )
    ]


# ── 2. concurrent ────────────────────────────────────────────────────────────


async def concurrent(ctx: PgContext) -> list[Result]:
    writers, per = ctx.scale["conc_writers"], ctx.scale["conc_per_writer"]
    rounds = ctx.scale["conc_rounds"]
    store_sid, base_sid = await ctx.new_session(), await ctx.new_session()
    conns = [await ctx.bare() for _ in range(writers)]
    seqs = itertools.count(1)  # one event loop: a plain counter hands out unique seqs
    base = BareAppender(base_sid, seqs)
    lat_s: list[float] = []
    lat_b: list[float] = []

    async def run(
        make_op: Callable[[int], Callable[[], Awaitable[Any]]], sink: list[float], k: int
    ) -> float:
        async def worker(w: int) -> None:
            sink.extend(await time_block(make_op(w), k))

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(writers)))
        return (time.perf_counter() - t0) / (writers * k)

    def store_maker(_w: int) -> Callable[[], Awaitable[Any]]:
        async def op() -> None:
            await ctx.store.add_message(store_sid, "user", datagen.APPEND_TEXT)

        return op

    def base_maker(w: int) -> Callable[[], Awaitable[Any]]:
        return base.op(conns[w])

    try:
        await run(store_maker, [], max(2, per // 5))  # warm-up: fill the pool, prepare
        await run(base_maker, [], max(2, per // 5))
        per_op_s: list[float] = []
        per_op_b: list[float] = []
        for r in range(rounds):
            sides = [(store_maker, lat_s, per_op_s), (base_maker, lat_b, per_op_b)]
            if r % 2:
                sides.reverse()
            for maker, lat, out in sides:
                out.append(await run(maker, lat, per))
        await conns[0].execute(datagen.FIX_COUNTERS_PG, base_sid)
        bad = await datagen.pg_check_invariants(conns[0])
        seq_ok = await conns[0].fetchval(
            "SELECT count(*) = max(seq) AND min(seq) = 1 FROM messages WHERE session_id = $1",
            store_sid,
        )
    finally:
        for c in conns:
            await c.close()
    res = Result(
        scenario="concurrent",
        db="postgresql",
        store_s=statistics.median(per_op_s),
        base_s=statistics.median(per_op_b),
        store_p95=pct(lat_s, 0.95),
        base_p95=pct(lat_b, 0.95),
        n=len(lat_s),
        target=Target("ratio_max", 2.4),
        note=f"{writers} asyncio tasks (own pooled connections) into one session; time/op = "
        f"wall time / ops, median of {rounds} rounds; p95 = per-call latency. "
        f"store seqs gapless: {seq_ok}; sessions with bad counters: {bad}",
        extra={
            "per_round_store": per_op_s,
            "per_round_base": per_op_b,
            "median_latency_store": statistics.median(lat_s),
            "median_latency_base": statistics.median(lat_b),
        },
    )
    return [res.finish()]


# ── 8. batch ─────────────────────────────────────────────────────────────────


async def batch(ctx: PgContext, db: str = "postgresql") -> list[Result]:
    return await batch_common(ctx.store, ctx.scale, db)


async def batch_common(store: Any, scale: dict[str, Any], db: str) -> list[Result]:
    n, warm = scale["batch_n"], scale["batch_warmup"]
    single_sid = (await store.create_session(agent_id="bench")).session_id
    batch_sid = (await store.create_session(agent_id="bench")).session_id
    items = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": datagen.APPEND_TEXT}
        for i in range(10)
    ]

    async def batch_op() -> None:
        await store.add_messages(batch_sid, items)

    async def single_op() -> None:
        await store.add_message(single_sid, "user", datagen.APPEND_TEXT)

    b, s = await compare(batch_op, single_op, n=n, warmup=warm)
    per_msg_batch = [t / 10 for t in b]
    res = from_samples(
        "batch",
        db,
        per_msg_batch,
        s,
        Target("ratio_max", 0.25, "<= 0.25x (rate >= 4x)"),
        note="time per message: store.add_messages(10 messages) / 10 vs store.add_message",
    )
    res.extra["rate_speedup"] = (1 / res.ratio) if res.ratio else None
    if res.ratio:
        res.note += f"; batch rate = {1 / res.ratio:.1f}x single rate"
    return [res]


# ── 3/4/5. corpus: last50, list page, search ─────────────────────────────────


async def corpus(ctx: PgContext, only: set[str] | None) -> list[Result]:
    spec = datagen.Corpus(
        sessions=ctx.scale["corpus_sessions"],
        agents=ctx.scale["corpus_agents"],
        min_msgs=1,
        max_msgs=20,
        big_msgs=ctx.scale["big_msgs"],
    )
    conn = await ctx.bare()
    results: list[Result] = []
    try:
        await datagen.pg_truncate(conn)
        ctx.log(
            f"loading corpus: {spec.sessions + 1:,} sessions, "
            f"{spec.total_messages():,} messages (COPY)"
        )
        info = await datagen.pg_load(ctx.dsn, spec)
        ctx.log(f"  loaded in {info['load_s']} s")
        assert await datagen.pg_check_invariants(conn) == 0
        want = lambda name: only is None or name in only  # noqa: E731
        if want("last50"):
            results += await _last50(ctx, conn, info)
        if want("list"):
            results += await _list_page(ctx, conn, spec, info)
        if want("search"):
            results += await _search(ctx, conn, info)
        if want("ghosts"):
            results += await _ghosts(ctx, conn, info)
    finally:
        await conn.close()
    return results


async def _last50(ctx: PgContext, conn: asyncpg.Connection, info: dict[str, Any]) -> list[Result]:
    n, warm = ctx.scale["read_n"], ctx.scale["read_warmup"]
    sid = datagen.BIG_SESSION
    got = await ctx.store.get_messages(sid, last=50)
    assert [m.seq for m in got] == list(
        range(ctx.scale["big_msgs"] - 49, ctx.scale["big_msgs"] + 1)
    )

    # asyncpg prepares every statement; after 5 executions PostgreSQL may switch to a generic
    # plan that ignores the parameter. With a skewed key (one 10,000-message session among
    # ~10-message ones) that plan can be a bitmap scan + sort of the whole session: ~7 ms
    # instead of ~0.4 ms (seen at 10k sessions). The baseline is the driver at its best, so
    # its read connection plans for the actual value; the defaults are timed too, for the note.
    custom = await ctx.bare(custom_plans=True)

    async def store_op() -> None:
        await ctx.store.get_messages(sid, last=50)

    async def base_op() -> None:
        await custom.fetch(LAST50, sid)

    try:
        s, b = await compare(store_op, base_op, n=n, warmup=warm)
    finally:
        await custom.close()

    async def generic_op() -> None:
        await conn.fetch(LAST50, sid)

    generic = await time_block(generic_op, 60)
    generic_s = statistics.median(generic[20:])
    return [
        from_samples(
            "last50",
            "postgresql",
            s,
            b,
            Target("ratio_max", 1.5),
            note=f"get_messages(last=50) of a {ctx.scale['big_msgs']:,}-message session "
            f"({info['messages']:,} messages in the database) vs bare ORDER BY seq DESC LIMIT 50 "
            f"(custom plans; with asyncpg's defaults the bare query takes {generic_s * 1e3:.2f} ms "
            "once PostgreSQL switches to a generic plan)",
            extra={"bare_generic_plan_s": generic_s},
        )
    ]


async def _list_page(
    ctx: PgContext, conn: asyncpg.Connection, spec: datagen.Corpus, info: dict[str, Any]
) -> list[Result]:
    n, warm = ctx.scale["list_n"], ctx.scale["list_warmup"]
    agent = spec.agent(3)
    page = await ctx.store.list_sessions(agent_id=agent)
    seed_rows = await conn.fetch(SEED_PAGE, agent)
    assert [s.session_id for s in page.items] == [r["session_id"] for r in seed_rows]
    assert [s.message_count for s in page.items] == [r["message_count"] for r in seed_rows]

    async def store_op() -> None:
        await ctx.store.list_sessions(agent_id=agent)

    async def base_op() -> None:
        await conn.fetchval(SEED_COUNT, agent)
        await conn.fetch(SEED_PAGE, agent)

    s, b = await compare(store_op, base_op, n=n, warmup=warm)
    target = Target("ratio_max", 0.06)
    note = (
        f"first page (20) of agent {agent} ({page.total:,} of {info['sessions']:,} sessions, "
        f"{info['messages']:,} messages) vs seed COUNT(*) + LEFT JOIN/GROUP BY page"
    )
    if not ctx.scale["full"]:
        target = Target("report", text="<= 0.06x at full scale")
        note += "; the target is defined at full scale (100k sessions / 1M messages)"
    results = [from_samples("list", "postgresql", s, b, target, note=note)]

    # Where the store's time goes: the same page with the bare driver (no COUNT, no ORM).
    async def bare_list() -> None:
        await conn.fetch(BARE_LIST, agent)

    async def store_no_total() -> None:
        await ctx.store.list_sessions(agent_id=agent, with_total=False)

    s2, b2 = await compare(store_no_total, bare_list, n=n, warmup=warm)
    results.append(
        from_samples(
            "list-detail",
            "postgresql",
            s2,
            b2,
            Target("report"),
            store_label="store (with_total=False)",
            base_label="bare page query",
            note="diagnostic: list_sessions(with_total=False) vs the same page by bare asyncpg",
        )
    )
    return results


async def _search(ctx: PgContext, conn: asyncpg.Connection, info: dict[str, Any]) -> list[Result]:
    n, warm = ctx.scale["search_n"], ctx.scale["search_warmup"]
    results = []
    for word, label, target in (
        (datagen.RARE_WORD, "search", Target("abs_max", 1e-3)),
        (datagen.MEDIUM_WORD, "search-common", Target("report")),
    ):
        hits = await ctx.store.search_messages(word)
        bare_hits = await conn.fetch(BARE_SEARCH, word)
        total = await conn.fetchval(
            "SELECT count(*) FROM messages WHERE tsv @@ websearch_to_tsquery('english', $1)", word
        )

        async def store_op(word: str = word) -> None:
            await ctx.store.search_messages(word)

        async def base_op(word: str = word) -> None:
            await conn.fetch(BARE_SEARCH, word)

        s, b = await compare(store_op, base_op, n=n, warmup=warm)
        results.append(
            from_samples(
                label,
                "postgresql",
                s,
                b,
                target,
                note=f"search_messages({word!r}): {total:,} matching of {info['messages']:,} "
                f"messages, {len(hits)} hits returned (bare: {len(bare_hits)}); baseline = bare "
                "tsv @@ websearch_to_tsquery ORDER BY ts_rank LIMIT 20 (no snippets)",
            )
        )
    plan = await conn.fetch(
        "EXPLAIN (ANALYZE, BUFFERS) SELECT session_id, seq FROM messages, "
        "websearch_to_tsquery('english', $1) q WHERE tsv @@ q LIMIT 20",
        datagen.RARE_WORD,
    )
    results[0].extra["bare_plan"] = [r[0] for r in plan]
    results.append(await _search_after_appends(ctx, conn, info))
    return results


async def _gin_pending(conn: asyncpg.Connection) -> int | None:
    """Pages in the GIN pending list (needs pgstattuple; None where it is not available)."""
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pgstattuple")
        return int(
            await conn.fetchval("SELECT pending_pages FROM pgstatginindex('ix_messages_tsv')")
        )
    except asyncpg.PostgresError:
        return None


async def _search_after_appends(
    ctx: PgContext, conn: asyncpg.Connection, info: dict[str, Any]
) -> Result:
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
    pending = await _gin_pending(conn)
    word = datagen.RARE_WORD

    async def store_op() -> None:
        await ctx.store.search_messages(word)

    async def base_op() -> None:
        await conn.fetch(BARE_SEARCH, word)

    s, b = await compare(store_op, base_op, n=n, warmup=warm)
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


async def flat(ctx: PgContext) -> list[Result]:
    """Two extra databases, one with 10 sessions of 1 message, one with the same 10 sessions
    of 10,000 messages each, each with its own store; the same calls alternate between them,
    so machine drift lands on both sizes."""
    n, warm = ctx.scale["list_n"] * 3, ctx.scale["list_warmup"]
    sizes = {"small": 1, "big": ctx.scale["flat_big_msgs"] // 10}
    admin = await asyncpg.connect(ctx.admin_dsn)
    base_name = ctx.dsn.rsplit("/", 1)[-1].split("?")[0]
    stores: dict[str, Any] = {}
    conns: dict[str, asyncpg.Connection] = {}
    names = {label: f"{base_name}_flat_{label}" for label in sizes}
    agent, sid = "flat-00", "f0000005"
    try:
        for label, per in sizes.items():
            await admin.execute(f'CREATE DATABASE "{names[label]}"')
            dsn = ctx.dsn.rsplit("/", 1)[0] + "/" + names[label]
            stores[label] = await ctx.open_store(dsn)
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


# ── 6. ghosts ────────────────────────────────────────────────────────────────


async def _ghosts(ctx: PgContext, conn: asyncpg.Connection, info: dict[str, Any]) -> list[Result]:
    """Ghosts are added to the loaded corpus (whose sessions all have messages), purged, and
    put back (COPY) before the next purge: ghosts own no messages, so the messages table is
    the same for every purge. Sides alternate store, bare, bare, store, …"""
    ghosts_n, reps = ctx.scale["ghosts"], ctx.scale["ghost_reps"]
    spec = datagen.Corpus(sessions=0, ghost_sessions=ghosts_n, prefix="g", agent_prefix="ghost-")
    records = datagen.ghost_records(spec)
    total_sessions = info["sessions"] + ghosts_n
    store_t: list[float] = []
    base_t: list[float] = []

    async def reload() -> None:
        await conn.execute("VACUUM sessions")
        await conn.copy_records_to_table("sessions", records=records, columns=datagen.SESSION_COLS)
        await conn.execute("VACUUM ANALYZE sessions")
        await conn.execute("CHECKPOINT")

    for r in range(reps * 2):
        side = "store" if (r % 2 == 0) == (r // 2 % 2 == 0) else "base"
        await reload()
        t0 = time.perf_counter()
        if side == "store":
            deleted = await ctx.store.delete_ghost_sessions(0)
        else:
            status = await conn.execute(BARE_GHOSTS)
            deleted = int(status.split()[-1])
        dt = time.perf_counter() - t0
        assert deleted == ghosts_n, (side, deleted)
        (store_t if side == "store" else base_t).append(dt)
        ctx.log(f"  ghosts rep {r}: {side} deleted {deleted:,} in {dt:.3f} s")
    # Where the baseline's time goes (rolled back, so nothing changes).
    await reload()
    tr = conn.transaction()
    await tr.start()
    try:
        plan = [r[0] for r in await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + BARE_GHOSTS)]
    finally:
        await tr.rollback()
    await conn.execute("DELETE FROM sessions WHERE message_count = 0")
    target = Target("ratio_max", 0.8)
    if not ctx.scale["full"]:
        # At small scale the per-row cascade trigger, paid by both sides, dominates.
        target = Target("report", text="<= 0.8x at full scale")
    return [
        from_samples(
            "ghosts",
            "postgresql",
            store_t,
            base_t,
            target,
            note=f"purge {ghosts_n:,} ghosts among {total_sessions:,} sessions "
            f"({info['messages']:,} messages); one purge per reload, {reps} per side; baseline "
            "= one DELETE … NOT EXISTS (no counters)",
            extra={"bare_plan": plan},
        )
    ]

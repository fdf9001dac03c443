#!/usr/bin/env python
"""Speed of the sessionkeeper store as cost ratios against the bare driver, same run, same
database and tables. See bench/README.md.

    .venv/bin/python bench/run.py --db both --scale small
    .venv/bin/python bench/run.py --db postgresql --scale full --only list,search
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import cli_startup  # noqa: E402
import harness  # noqa: E402

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SCENARIOS = ["append", "concurrent", "batch", "flat", "last50", "list", "search", "ghosts", "cli"]
PG_ONLY = {"concurrent", "flat", "last50", "list", "search", "ghosts"}

SCALES: dict[str, dict[str, Any]] = {
    "small": dict(
        full=False,
        append_n=300,
        append_warmup=30,
        conc_writers=8,
        conc_per_writer=15,
        conc_rounds=4,
        batch_n=100,
        batch_warmup=10,
        corpus_sessions=10_000,
        corpus_agents=10,
        big_msgs=10_000,
        read_n=400,
        read_warmup=40,
        list_n=60,
        list_warmup=5,
        search_n=200,
        pending_appends=2_000,
        search_warmup=20,
        flat_big_msgs=100_000,
        ghosts=10_000,
        ghost_reps=2,
    ),
    "full": dict(
        full=True,
        append_n=2000,
        append_warmup=100,
        conc_writers=8,
        conc_per_writer=60,
        conc_rounds=6,
        batch_n=400,
        batch_warmup=20,
        corpus_sessions=100_000,
        corpus_agents=10,
        big_msgs=10_000,
        read_n=2000,
        read_warmup=100,
        list_n=100,
        list_warmup=5,
        search_n=1000,
        pending_appends=2_000,
        search_warmup=50,
        flat_big_msgs=100_000,
        ghosts=100_000,
        ghost_reps=3,
    ),
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pg_urls() -> tuple[str, str, str]:
    """(admin asyncpg DSN, bench asyncpg DSN, bench store URL)."""
    from sqlalchemy.engine import make_url

    admin = make_url(os.environ.get("SESSIONKEEPER_BENCH_PG_URL", DEFAULT_PG_URL))
    admin = admin.set(drivername="postgresql")
    bench = admin.set(database=f"sk_bench_{os.getpid()}")
    render = lambda u: u.render_as_string(hide_password=False)  # noqa: E731
    return render(admin), render(bench), render(bench)


async def run_pg(
    scale: dict[str, Any], only: set[str]
) -> tuple[list[harness.Result], dict[str, Any]]:
    import asyncpg
    import datagen
    import pg_scenarios as pg

    from sessionkeeper.store.core import Store

    admin_dsn, dsn, url = pg_urls()
    dbname = dsn.rsplit("/", 1)[-1].split("?")[0]
    admin = await asyncpg.connect(admin_dsn)
    env: dict[str, Any] = {
        "pg_version": await admin.fetchval("SHOW server_version"),
        "database": dbname,
    }
    for setting in ("shared_buffers", "synchronous_commit", "fsync", "work_mem", "jit"):
        env[setting] = await admin.fetchval(f"SHOW {setting}")
    await admin.execute(f'CREATE DATABASE "{dbname}"')
    log(f"postgresql: created database {dbname}")
    results: list[harness.Result] = []
    store = None
    try:

        async def open_store(store_url: str) -> Store:
            return await Store.open(store_url)

        store = await open_store(url)
        ctx = pg.PgContext(store, dsn, scale, log, admin_dsn=admin_dsn, open_store=open_store)
        steps = [
            ("append", lambda: pg.append(ctx)),
            ("concurrent", lambda: pg.concurrent(ctx)),
            ("batch", lambda: pg.batch(ctx)),
            ("flat", lambda: pg.flat(ctx)),
        ]
        for name, step in steps:
            if name in only:
                log(f"postgresql: {name}")
                results += await step()
        if only & {"append", "concurrent", "batch"}:
            check = await asyncpg.connect(dsn)
            try:
                bad = await datagen.pg_check_invariants(check)
            finally:
                await check.close()
            assert bad == 0, f"{bad} sessions with counters that disagree with their messages"
            log("postgresql: counters consistent after the write scenarios")
        corpus_parts = only & {"last50", "list", "search", "ghosts"}
        if corpus_parts:
            log(f"postgresql: {', '.join(sorted(corpus_parts))}")
            results += await pg.corpus(ctx, corpus_parts)
        if "cli" in only:
            log("postgresql: cli")
            results += cli_startup.run("postgresql", url)
    finally:
        if store is not None:
            await store.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        await admin.close()
        log(f"postgresql: dropped database {dbname}")
    return results, env


async def run_sqlite(
    scale: dict[str, Any], only: set[str]
) -> tuple[list[harness.Result], dict[str, Any]]:
    import sqlite3

    import pg_scenarios
    import sqlite_scenarios as sq

    from sessionkeeper.store.core import Store

    results: list[harness.Result] = []
    # A directory on the real disk (not tmpfs): fsync cost is part of what is measured.
    with tempfile.TemporaryDirectory(prefix="sk_bench_", dir=HERE.parent / "bench") as tmp:
        path = str(Path(tmp) / "bench.db")
        url = f"sqlite:///{path}"
        store = await Store.open(url)
        try:
            if "append" in only:
                log("sqlite: append")
                results += await sq.append(store, path, scale)
            if "batch" in only:
                log("sqlite: batch")
                results += await pg_scenarios.batch_common(store, scale, "sqlite")
        finally:
            await store.close()
        check = sqlite3.connect(path)
        try:
            bad = check.execute(SQLITE_INVARIANTS).fetchone()[0]
        finally:
            check.close()
        assert bad == 0, f"{bad} sessions with counters that disagree with their messages"
        log("sqlite: counters consistent after the write scenarios")
        if "cli" in only:
            log("sqlite: cli")
            results += cli_startup.run("sqlite", url)
        env = {"sqlite_version": sqlite3.sqlite_version, "db_dir": tmp}
    return results, env


SQLITE_INVARIANTS = """
SELECT count(*) FROM sessions s LEFT JOIN (
    SELECT session_id, count(*) c, coalesce(sum(token_count), 0) t, max(seq) mx
    FROM messages GROUP BY session_id) m USING (session_id)
WHERE s.message_count <> coalesce(m.c, 0) OR s.token_count <> coalesce(m.t, 0)
   OR s.last_seq < coalesce(m.mx, 0)
"""


def environment() -> dict[str, Any]:
    import asyncpg
    import sqlalchemy

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "python": platform.python_version(),
        "sqlalchemy": sqlalchemy.__version__,
        "asyncpg": asyncpg.__version__,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "git_commit": commit,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--scale", choices=sorted(SCALES), default="small")
    parser.add_argument(
        "--only",
        default="",
        help=f"comma-separated scenarios (default: all): {', '.join(SCENARIOS)}",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results", help="JSON results directory")
    args = parser.parse_args(argv)
    only = {s.strip() for s in args.only.split(",") if s.strip()} or set(SCENARIOS)
    unknown = only - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    scale = SCALES[args.scale]
    dbs = ["postgresql", "sqlite"] if args.db == "both" else [args.db]

    results: list[harness.Result] = []
    env = environment()
    started = time.time()
    for db in dbs:
        runner = run_pg if db == "postgresql" else run_sqlite
        if db == "sqlite" and not (only - PG_ONLY):
            continue
        got, db_env = asyncio.run(runner(scale, only))
        results += got
        env[db] = db_env
    elapsed = time.time() - started

    print()
    print(
        f"sessionkeeper bench — scale {args.scale}, {elapsed:.0f} s, "
        f"load average {os.getloadavg()[0]:.1f} (2+ means a busy machine: noisy figures)"
    )
    print(harness.table(results))
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = args.out / f"{stamp}-{args.scale}-{args.db}.json"
    out.write_text(
        json.dumps(
            {
                "scale": args.scale,
                "scale_params": scale,
                "environment": env,
                "load_average": os.getloadavg(),
                "elapsed_s": round(elapsed, 1),
                "results": [r.to_json() for r in results],
            },
            indent=2,
            default=str,
        )
    )
    print(f"\nresults: {out}")
    failed = [r for r in results if r.passed is False]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

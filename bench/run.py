#!/usr/bin/env python
"""Speed of the sessionkeeper store as cost ratios against the bare driver doing the same
work on the same tables, in the same run. See bench/README.md.

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
from urllib.parse import urlsplit, urlunsplit

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import cli_startup  # noqa: E402
import harness  # noqa: E402

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SCENARIOS = [
    "append",
    "concurrent",
    "processes",
    "batch",
    "flat",
    "last50",
    "list",
    "search",
    "ghosts",
    "cli",
    "serve",
    "search1m",
]
WRITES = {"append", "concurrent", "processes", "batch"}
CORPUS = {"last50", "list", "search", "ghosts", "cli"}
PG_ONLY = {"flat"}
SQLITE_ONLY = {"serve"}
# Not in the default set at small scale: a 1M-message load (the PostgreSQL search target).
FULL_ONLY = {"search1m"}

SCALES: dict[str, dict[str, Any]] = {
    "small": dict(
        full=False,
        append_n=300,
        append_warmup=30,
        conc_writers=8,
        conc_per_writer=15,
        conc_rounds=4,
        proc_workers=4,
        proc_per_worker=50,
        proc_rounds=8,
        batch_n=100,
        batch_warmup=10,
        corpus_sessions=10_000,
        corpus_max_msgs=3,
        corpus_agents=10,
        big_msgs=10_000,
        read_n=400,
        read_warmup=40,
        list_n=200,
        list_warmup=10,
        search_n=200,
        search_warmup=20,
        pending_appends=2_000,
        flat_big_msgs=100_000,
        ghosts=10_000,
        ghost_reps=2,
        serve_reads_idle=300,
        serve_reads_load=1_000,
        m1_sessions=100_000,
        m1_max_msgs=19,
    ),
    # The sizes: a 10,000-message session, 100,000 sessions, 200,000 messages; the
    # PostgreSQL search target is at 1M messages (search1m: 100,000 sessions of 1-19).
    "full": dict(
        full=True,
        append_n=2000,
        append_warmup=100,
        conc_writers=8,
        conc_per_writer=60,
        conc_rounds=6,
        proc_workers=4,
        proc_per_worker=150,
        proc_rounds=10,
        batch_n=400,
        batch_warmup=20,
        corpus_sessions=100_000,
        corpus_max_msgs=3,
        corpus_agents=10,
        big_msgs=10_000,
        read_n=2000,
        read_warmup=100,
        list_n=500,
        list_warmup=20,
        search_n=1000,
        search_warmup=50,
        pending_appends=2_000,
        flat_big_msgs=100_000,
        ghosts=100_000,
        ghost_reps=3,
        serve_reads_idle=500,
        serve_reads_load=3_000,
        m1_sessions=100_000,
        m1_max_msgs=19,
    ),
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pg_urls() -> tuple[str, str]:
    """(admin DSN, bench DSN); the bench DSN is also the store's URL."""
    admin = os.environ.get("SESSIONKEEPER_BENCH_PG_URL", DEFAULT_PG_URL)
    parts = urlsplit(admin)
    scheme = "postgresql" if parts.scheme.startswith("postgres") else parts.scheme
    admin = urlunsplit((scheme, parts.netloc, parts.path, parts.query, ""))
    bench = urlunsplit((scheme, parts.netloc, f"/sk_bench_{os.getpid()}", parts.query, ""))
    return admin, bench


async def _corpus_steps(ctx: Any, only: set[str], results: list[harness.Result]) -> None:
    """last50, list, search, cli, ghosts on a loaded corpus (the caller loads it)."""
    import scenarios as sc

    info = ctx.extra["info"]
    spec = ctx.extra["spec"]
    if "last50" in only:
        log(f"{ctx.db}: last50")
        results += await sc.last50(ctx, info)
    if "list" in only:
        log(f"{ctx.db}: list")
        results += await sc.list_page(ctx, spec, info)
    if "search" in only:
        log(f"{ctx.db}: search")
        results += await sc.search(ctx, info)
        if ctx.db == "postgresql":
            import pg_scenarios

            log("postgresql: search after appends")
            results.append(await pg_scenarios.search_after_appends(ctx, info))
    if "cli" in only:
        log(f"{ctx.db}: cli")
        results += await asyncio.to_thread(cli_startup.run, ctx.db, ctx.url)
    if "ghosts" in only:
        log(f"{ctx.db}: ghosts")
        results += await sc.ghosts(ctx, info)


async def _write_steps(ctx: Any, only: set[str], results: list[harness.Result]) -> None:
    import scenarios as sc

    for name, step in (
        ("append", sc.append),
        ("concurrent", sc.concurrent),
        ("processes", sc.processes),
        ("batch", sc.batch),
    ):
        if name in only:
            log(f"{ctx.db}: {name}")
            results += await step(ctx)


async def run_pg(
    scale: dict[str, Any], only: set[str]
) -> tuple[list[harness.Result], dict[str, Any]]:
    import asyncpg
    import datagen
    import scenarios as sc

    from sessionkeeper.store.core import Store

    admin_dsn, dsn = pg_urls()
    dbname = urlsplit(dsn).path.lstrip("/")
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
        store = await Store.open(dsn)
        ctx = sc.Ctx(
            "postgresql",
            store,
            dsn,
            dsn,
            scale,
            log,
            extra={"admin_dsn": admin_dsn, "open_store": Store.open},
        )
        await _write_steps(ctx, only, results)
        if only & WRITES:
            check = await asyncpg.connect(dsn)
            try:
                bad = await datagen.pg_check_invariants(check)
            finally:
                await check.close()
            assert bad == 0, f"{bad} sessions with counters that disagree with their messages"
            log("postgresql: counters consistent after the write scenarios")
        if "flat" in only:
            import pg_scenarios

            log("postgresql: flat")
            results += await pg_scenarios.flat(ctx)
        if only & CORPUS:
            spec = sc.corpus_spec(scale)
            await _pg_load(ctx, spec)
            await _corpus_steps(ctx, only, results)
        if "search1m" in only:
            spec = sc.corpus_spec(
                scale, sessions=scale["m1_sessions"], max_msgs=scale["m1_max_msgs"]
            )
            await _pg_load(ctx, spec)
            log("postgresql: search at 1M")
            results += await sc.search(ctx, ctx.extra["info"], label="search@1M")
    finally:
        if store is not None:
            await store.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        await admin.close()
        log(f"postgresql: dropped database {dbname}")
    return results, env


async def _pg_load(ctx: Any, spec: Any) -> None:
    import asyncpg
    import datagen

    conn = await asyncpg.connect(ctx.target)
    try:
        await datagen.pg_truncate(conn)
        log(
            f"postgresql: loading {spec.sessions + 1:,} sessions, "
            f"{spec.total_messages():,} messages (COPY)"
        )
        info = await datagen.pg_load(ctx.target, spec)
        log(f"  loaded in {info['load_s']} s")
        assert await datagen.pg_check_invariants(conn) == 0
    finally:
        await conn.close()
    ctx.extra.update(info=info, spec=spec)


async def run_sqlite(
    scale: dict[str, Any], only: set[str]
) -> tuple[list[harness.Result], dict[str, Any]]:
    import sqlite3

    import datagen
    import scenarios as sc

    from sessionkeeper.store.core import Store

    results: list[harness.Result] = []
    # A directory on the real disk (not tmpfs): fsync cost is part of what is measured.
    with tempfile.TemporaryDirectory(prefix="sk_bench_", dir=HERE) as tmp:

        async def open_ctx(name: str) -> Any:
            path = str(Path(tmp) / name)
            url = f"sqlite:///{path}"
            store = await Store.open(url)
            return sc.Ctx("sqlite", store, url, path, scale, log)

        if only & WRITES:
            ctx = await open_ctx("writes.db")
            try:
                await _write_steps(ctx, only, results)
            finally:
                await ctx.store.close()
            check = sqlite3.connect(ctx.target)
            try:
                bad = datagen.sqlite_check_invariants(check)
            finally:
                check.close()
            assert bad == 0, f"{bad} sessions with counters that disagree with their messages"
            log("sqlite: counters consistent after the write scenarios")
        if only & CORPUS:
            ctx = await open_ctx("corpus.db")
            try:
                _sqlite_load(ctx, sc.corpus_spec(scale))
                await _corpus_steps(ctx, only, results)
            finally:
                await ctx.store.close()
        if "serve" in only:
            import serve

            ctx = await open_ctx("serve.db")
            try:
                sid = await ctx.new_session("serve")
                pool = datagen.text_pool()
                for i in range(0, scale["big_msgs"], 500):
                    await ctx.store.add_messages(
                        sid,
                        [
                            {"role": "user", "content": pool[(i + k) % len(pool)]}
                            for k in range(500)
                        ],
                    )
            finally:
                await ctx.store.close()
            log("sqlite: serve")
            results += await asyncio.to_thread(serve.run, ctx.url, ctx.target, sid, scale, log)
        if "search1m" in only:
            ctx = await open_ctx("search1m.db")
            try:
                spec = sc.corpus_spec(
                    scale, sessions=scale["m1_sessions"], max_msgs=scale["m1_max_msgs"]
                )
                _sqlite_load(ctx, spec)
                log("sqlite: search at 1M")
                results += await sc.search(ctx, ctx.extra["info"], label="search@1M")
            finally:
                await ctx.store.close()
        env = {"sqlite_version": sqlite3.sqlite_version, "db_dir": tmp}
    return results, env


def _sqlite_load(ctx: Any, spec: Any) -> None:
    import datagen

    log(f"sqlite: loading {spec.sessions + 1:,} sessions, {spec.total_messages():,} messages")
    info = datagen.sqlite_load(ctx.target, spec)
    log(f"  loaded in {info['load_s']} s")
    ctx.extra.update(info=info, spec=spec)


SNAPSHOT_ENV = "SESSIONKEEPER_BENCH_SNAPSHOT"


def _run_snapshot(rev: str, argv: list[str]) -> int:
    """Re-run this script with src/ at ``rev`` first on PYTHONPATH."""
    repo = HERE.parent
    commit = subprocess.run(
        ["git", "rev-parse", "--verify", f"{rev}^{{commit}}"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="sk_src_") as tmp:
        archive = subprocess.run(
            ["git", "archive", commit, "src"], cwd=repo, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        env = {
            **os.environ,
            SNAPSHOT_ENV: commit,
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(Path(tmp) / "src"), os.environ.get("PYTHONPATH")) if p
            ),
        }
        log(f"benchmarking src/ at {commit[:12]} ({tmp}/src)")
        return subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), *argv], env=env
        ).returncode


def environment() -> dict[str, Any]:
    import asyncpg

    def out(*cmd: str) -> str:
        try:
            return subprocess.run(cmd, cwd=HERE, capture_output=True, text=True).stdout.strip()
        except OSError:
            return ""

    import sessionkeeper

    snapshot = os.environ.get(SNAPSHOT_ENV)
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "src": (
            f"snapshot of {snapshot}"
            if snapshot
            else "working tree"
            if Path(sessionkeeper.__file__).parent == HERE.parent / "src" / "sessionkeeper"
            else f"imported from {Path(sessionkeeper.__file__).parent}"
        ),
        "sessionkeeper_path": str(Path(sessionkeeper.__file__).parent),
        "python": platform.python_version(),
        "asyncpg": asyncpg.__version__,
        "nproc": out("nproc"),
        "uname_r": platform.release(),
        "platform": platform.platform(),
        "git_commit": out("git", "rev-parse", "--short", "HEAD"),
        "git_dirty_src": bool(out("git", "status", "--porcelain", "--", "../src")),
        "load_average_start": os.getloadavg(),
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
        help=f"comma-separated scenarios (default: all): {', '.join(SCENARIOS)} "
        "(search1m only at --scale full unless named)",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results", help="JSON results directory")
    parser.add_argument(
        "--snapshot",
        metavar="REV",
        help="benchmark src/ as committed at REV (git archive into a temporary directory, "
        "first on PYTHONPATH, also for the CLI, server and worker subprocesses), not the "
        "working tree that others may be editing",
    )
    args = parser.parse_args(argv)
    if args.snapshot and not os.environ.get(SNAPSHOT_ENV):
        return _run_snapshot(args.snapshot, sys.argv[1:] if argv is None else argv)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = only - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    scale = SCALES[args.scale]
    if not only:
        only = set(SCENARIOS) - (set() if scale["full"] else FULL_ONLY)
    dbs = ["postgresql", "sqlite"] if args.db == "both" else [args.db]

    results: list[harness.Result] = []
    env = environment()
    started = time.time()
    for db in dbs:
        mine = only - (SQLITE_ONLY if db == "postgresql" else PG_ONLY)
        if not mine:
            continue
        runner = run_pg if db == "postgresql" else run_sqlite
        got, db_env = asyncio.run(runner(scale, mine))
        results += got
        env[db] = db_env
    elapsed = time.time() - started
    env["load_average_end"] = os.getloadavg()

    print()
    print(
        f"sessionkeeper bench — src {env['src']}, scale {args.scale}, {elapsed:.0f} s, "
        f"{env['nproc']} CPUs, "
        f"load average {env['load_average_start'][0]:.2f} at start, "
        f"{env['load_average_end'][0]:.2f} at end (2+ on 2 CPUs: a busy machine, noisy figures)"
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

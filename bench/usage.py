#!/usr/bin/env python
"""Usage totals: why usage is six columns with a covering partial index (migration 0012), and
what recording usage costs an append, on SQLite and PostgreSQL (issue 19 item 4).

    .venv/bin/python bench/usage.py                      # both databases (~1 min)
    .venv/bin/python bench/usage.py --db sqlite --messages 2000 --rounds 5

One session of ``--messages`` messages, every other one carrying usage (2 models), written
through the Store; each usage is also copied into the message's metadata (``metadata.usage``)
so the JSON alternative is measured on the same rows. Timed, in alternating rounds (the order
flips every round), medians reported:

- ``store``: ``Store.get_usage(sid)``: the indexed query, the rows shaped, the cost priced;
- ``columns``: the same query with the bare driver (what the index serves);
- ``json``: the same sums read from ``metadata.usage`` (``json_extract`` / ``->>``), the
  design not taken;
- appends: ``add_message`` with usage against ``add_message`` without (one commit each).

SQLite files live in a temporary directory under bench/ (the real disk); PostgreSQL gets a
database ``sk_bench_usage_<pid>`` on ``$SESSIONKEEPER_BENCH_PG_URL`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``), dropped at the end, also on failure.
"""

# ruff: noqa: E402 - the import path is fixed first (see below)

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

import asyncpg

from sessionkeeper import NewMessage, Store, Usage
from sessionkeeper.store.backends import statements as sql

PG_URL = os.environ.get(
    "SESSIONKEEPER_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
SUMS = "count(*), sum({r}), sum({i}), sum({o}), sum({c}), sum({x})"
COLUMNS = (
    "SELECT usage_model, "
    + SUMS.format(
        r="requests", i="input_tokens", o="output_tokens", c="cached_tokens", x="reasoning_tokens"
    )
    + " FROM messages WHERE session_id = {p} AND requests IS NOT NULL GROUP BY usage_model"
)


def json_sql(pg: bool) -> str:
    def get(key: str) -> str:
        if pg:
            return f"(metadata -> 'usage' ->> '{key}')::bigint"
        return f"json_extract(metadata, '$.usage.{key}')"

    model = "metadata -> 'usage' ->> 'model'" if pg else "json_extract(metadata, '$.usage.model')"
    present = "metadata ? 'usage'" if pg else "json_extract(metadata, '$.usage') IS NOT NULL"
    sums = SUMS.format(
        r=get("requests"),
        i=get("input_tokens"),
        o=get("output_tokens"),
        c=get("cached_tokens"),
        x=get("reasoning_tokens"),
    )
    p = "$1" if pg else "?"
    return f"SELECT {model}, {sums} FROM messages WHERE session_id = {p} AND {present} GROUP BY 1"


async def load(store: Store, sid: str, n: int) -> None:
    await store.create_session(session_id=sid)
    batch: list[NewMessage] = []
    for i in range(1, n + 1):
        if i % 2:
            batch.append(NewMessage("user", f"question {i} " * 20, token_count=60))
        else:
            model = "gpt-4o" if i % 4 else "claude-sonnet-4-5"
            usage = Usage(1000 + i, 50 + i % 97, 10, 5, 1, model)
            meta = {"usage": usage.to_dict()}
            batch.append(
                NewMessage(
                    "assistant",
                    f"answer {i} " * 20,
                    model=model,
                    metadata=meta,
                    usage=usage,
                    token_count=60,
                )
            )
        if len(batch) == 500:
            await store.add_messages(sid, batch)
            batch = []
    if batch:
        await store.add_messages(sid, batch)


async def rounds(
    sides: dict[str, Callable[[], Awaitable[Any]]], n: int, calls: int
) -> dict[str, float]:
    names = list(sides)
    times: dict[str, list[float]] = {name: [] for name in names}
    for name in names:  # warm up
        await sides[name]()
    for r in range(n):
        order = names if r % 2 == 0 else list(reversed(names))
        for name in order:
            gc.collect()
            for _ in range(calls):
                t = time.perf_counter()
                await sides[name]()
                times[name].append(time.perf_counter() - t)
    return {name: statistics.median(v) * 1000 for name, v in times.items()}


async def bench(db: str, messages: int, n_rounds: int) -> dict[str, Any]:
    tmp: tempfile.TemporaryDirectory[str] | None = None
    admin: Any = None
    name = f"sk_bench_usage_{os.getpid()}"
    if db == "sqlite":
        tmp = tempfile.TemporaryDirectory(dir=HERE)
        url = f"sqlite:///{tmp.name}/usage.db"
    else:
        admin = await asyncpg.connect(PG_URL)
        await admin.execute(f"CREATE DATABASE {name}")
        url = PG_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        store = await Store.open(url)
        try:
            await load(store, "big", messages)
            # SQLite indexes appended messages for search in the background, in this process:
            # a search waits for that, so the timings do not share the process with it.
            await store.search_messages("question", limit=1)
            await store.get_usage("big")  # loads the price table (once per process)
            await store.create_session(session_id="appends")
            if db == "sqlite":
                conn = sqlite3.connect(f"{tmp.name}/usage.db")  # type: ignore[union-attr]
                conn.execute("ANALYZE")

                async def columns() -> Any:
                    return conn.execute(COLUMNS.format(p="?"), ("big",)).fetchall()

                json_query = json_sql(False)

                async def from_json() -> Any:
                    return conn.execute(json_query, ("big",)).fetchall()

            else:
                pg = await asyncpg.connect(url)
                await pg.execute("VACUUM ANALYZE messages")

                async def columns() -> Any:
                    return await pg.fetch(COLUMNS.format(p="$1"), "big")

                json_query = json_sql(True)

                async def from_json() -> Any:
                    return await pg.fetch(json_query, "big")

            async def via_store() -> Any:
                return await store.get_usage("big")

            stmt, params = sql.usage_totals(db, "big", None, None)
            if db == "sqlite":
                plan = str(conn.execute(f"EXPLAIN QUERY PLAN {stmt}", params).fetchall())
            else:
                plan = str(await pg.fetch(f"EXPLAIN {stmt}", *params))
            reads = await rounds(
                {"store": via_store, "columns": columns, "json": from_json}, n_rounds, 5
            )
            check = await store.get_usage("big")
            usage = Usage(1200, 80, 10, 5, 1, "gpt-4o")

            async def append_plain() -> Any:
                return await store.add_message("appends", "assistant", "a reply", model="gpt-4o")

            async def append_usage() -> Any:
                return await store.add_message(
                    "appends", "assistant", "a reply", model="gpt-4o", usage=usage
                )

            appends = await rounds(
                {"append": append_plain, "append+usage": append_usage}, n_rounds, 20
            )
            if db == "sqlite":
                conn.close()
            else:
                await pg.close()
        finally:
            await store.close()
    finally:
        if admin is not None:
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            await admin.close()
        if tmp is not None:
            tmp.cleanup()
    return {
        "db": db,
        "messages": messages,
        "usage_rows": check.messages,
        "get_usage_ms": round(reads["store"], 3),
        "columns_ms": round(reads["columns"], 3),
        "json_ms": round(reads["json"], 3),
        "json_vs_columns": round(reads["json"] / reads["columns"], 2),
        "store_vs_columns": round(reads["store"] / reads["columns"], 2),
        "store_plan_uses_usage_index": "ix_messages_usage" in plan,
        "append_ms": round(appends["append"], 3),
        "append_usage_ms": round(appends["append+usage"], 3),
        "append_usage_ratio": round(appends["append+usage"] / appends["append"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    dbs = ("sqlite", "postgresql") if args.db == "both" else (args.db,)
    print(json.dumps({"load_average_start": os.getloadavg()}))
    for db in dbs:
        print(json.dumps(asyncio.run(bench(db, args.messages, args.rounds))))
    print(json.dumps({"load_average_end": os.getloadavg()}))


if __name__ == "__main__":
    main()

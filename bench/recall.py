#!/usr/bin/env python
"""The MCP ``recall`` tool against the store's own search (issue 21: "recall over 200,000
messages: ≤ 2× the store's own search_messages for the same query, same run").

    .venv/bin/python bench/recall.py                          # both databases (~2 min)
    .venv/bin/python bench/recall.py --db sqlite --messages 20000 --rounds 3   # a smoke run

The database holds ``--messages`` messages (bench/datagen.py's corpus: 10,000 sessions of 1
to 39 messages, bulk-loaded, every message in the search index). For each query, in
alternating rounds (``--rounds``, each timing at least ``--repeat`` calls and 0.1 s of either
side, the order switching every round so neither side always runs warm):

- ``search``: ``Store.search_messages(query, limit=20)``, the ranked hits with snippets;
- ``recall``: ``mcp.recall.recall(caller, query)`` with its defaults (5 passages, one
  neighbour each side, 2,000 tokens), which searches for the same 20 hits, merges and
  deduplicates them and reads each passage's messages.

Queries: the corpus's rare word (3 hits), its medium word (one message in 1,000) and a
common word of the pool (thousands of hits, so the search's ranking dominates). The ratio
is the median recall time over the median search time; the target is ≤ 2 for each query.
Exit 1 if one misses. SQLite files live under bench/ (the real disk); PostgreSQL gets a
database ``sk_bench_recall_<pid>`` on ``$SESSIONKEEPER_BENCH_PG_URL``, dropped at the end.
"""

# ruff: noqa: E402 - the import path is fixed first (see below)
from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.append(str(HERE))

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import datagen
from pgdb import pg_database

from sessionkeeper import Store
from sessionkeeper.api.principal import Principal
from sessionkeeper.mcp.recall import recall
from sessionkeeper.mcp.tools import Caller

TARGET = 2.0


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def corpus(messages: int) -> datagen.Corpus:
    # 1..39 messages a session (20 on average): messages // 20 sessions.
    return datagen.Corpus(sessions=max(1, messages // 20), max_msgs=39, prefix="r")


ROUND_S = 0.1  # a round of one side lasts at least this long


async def timed(call: Callable[[], Awaitable[Any]], repeat: int) -> float:
    """Seconds per call, over ``repeat`` calls or as many more as fill ROUND_S (a round of
    20 calls of a 0.1 ms query lasted 2 ms: a scheduler tick moved its figure by half)."""
    done = 0
    t0 = time.perf_counter()
    while done < repeat or time.perf_counter() - t0 < ROUND_S:
        await call()
        done += 1
    return (time.perf_counter() - t0) / done


async def measure(store: Store, query: str, rounds: int, repeat: int) -> dict[str, Any]:
    caller = Caller(store, Principal(name="bench"))

    async def search() -> Any:
        return await store.search_messages(query, limit=20)

    async def passages() -> Any:
        return await recall(caller, query)

    hits = len(await search())
    answer = await passages()  # and warm both
    s_times: list[float] = []
    r_times: list[float] = []
    for r in range(rounds):
        order = [(search, s_times), (passages, r_times)]
        for call, times in order if r % 2 == 0 else reversed(order):
            times.append(await timed(call, repeat))
    s_med, r_med = statistics.median(s_times), statistics.median(r_times)
    return {
        "query": query,
        "hits": hits,
        "passages": len(answer["passages"]),
        "search_ms": round(s_med * 1000, 3),
        "recall_ms": round(r_med * 1000, 3),
        "ratio": round(r_med / s_med, 2),
        "ok": r_med / s_med <= TARGET,
    }


async def bench(db: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    spec = corpus(args.messages)
    async with AsyncExitStack() as stack:
        if db == "sqlite":
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=HERE, prefix="sk_rc_")))
            path = tmp / "recall.db"
            url = f"sqlite:///{path}"
            await (await Store.open(url)).close()  # the schema
            info = datagen.sqlite_load(str(path), spec)
        else:
            url = await stack.enter_async_context(pg_database("recall"))
            await (await Store.open(url)).close()
            info = await datagen.pg_load(url, spec)
        log(f"{db}: loaded {info['messages']} messages in {info['load_s']} s")
        store = await Store.open(url)
        stack.push_async_callback(store.close)
        common = datagen.text_pool()[0].split()[1].lower().strip(".,")
        results = []
        for query in (datagen.RARE_WORD, datagen.MEDIUM_WORD, common):
            row = {"db": db, **await measure(store, query, args.rounds, args.repeat)}
            log(json.dumps(row))
            results.append(row)
        return results


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| db | query | hits (≤20) | passages | search | recall | recall ÷ search | ≤ 2× |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['db']} | {r['query']} | {r['hits']} | {r['passages']} | {r['search_ms']} ms"
            f" | {r['recall_ms']} ms | {r['ratio']} | {'yes' if r['ok'] else 'NO'} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    dbs = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    load_before = os.getloadavg()
    rows: list[dict[str, Any]] = []
    for db in dbs:
        rows += asyncio.run(bench(db, args))
    print(table(rows))
    print(f"\nload average: {load_before[0]:.2f} at start, {os.getloadavg()[0]:.2f} at end")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Compaction's cost to the context window (issue 19: "Compaction adds <= 10% to
``context_window`` of a compacted session vs a plain one of the same window size").

    .venv/bin/python bench/compact.py                    # both databases (~1 min)
    .venv/bin/python bench/compact.py --db sqlite --rounds 5

Two sessions of ``--messages`` messages (user, assistant tool call, tool result, reply, ...):
*plain* and *compacted* (``compact_session`` with a scripted summarizer, untimed). Their
windows are made the same size: the plain session's budget is the compacted one's window
plus nothing else, so both windows hold the same number of raw messages (the compacted one
adds its summary in place of the plain one's oldest message of the window). Timed: the mean
of ``--calls`` ``context_window`` calls, in ``--rounds`` alternating rounds (plain,
compacted, plain, …), medians reported; ratio = compacted / plain. The load average is
printed with the figures: the machine may be shared.

SQLite: a file in a temporary directory under bench/ (the real disk). PostgreSQL: a database
``sk_bench_compact_<pid>`` on ``$SESSIONKEEPER_BENCH_PG_URL`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``), dropped at the end, also on failure.
Exits 1 when a ratio passes --target (default 1.10).
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
import os
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sessionkeeper.models import Message, NewMessage
from sessionkeeper.store.core import Store

PG_ADMIN = os.environ.get(
    "SESSIONKEEPER_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
WINDOW = 4_000  # tokens of raw messages in both windows


def conversation(n: int) -> list[NewMessage]:
    out = [NewMessage("system", "You are a careful assistant.")]
    t = 0
    while len(out) < n:
        call = [{"id": f"c{t}", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
        out += [
            NewMessage("user", f"question {t}: what is the weather in city {t} today?"),
            NewMessage("assistant", "", metadata={"tool_calls": call}),
            NewMessage("tool", f"city {t}: sunny, 21 degrees", metadata={"tool_call_id": f"c{t}"}),
            NewMessage("assistant", f"In city {t} it is sunny and 21 degrees."),
        ]
        t += 1
    return out[:n]


async def summarize(messages: list[Message]) -> str:
    return "Summary of the conversation so far: " + "weather questions answered. " * 20


async def session(store: Store, n: int) -> str:
    s = await store.create_session()
    items = conversation(n)
    for start in range(0, n, 500):
        await store.add_messages(s.session_id, items[start : start + 500])
    return s.session_id


async def mean_call(store: Store, sid: str, budget: int, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        await store.context_window(sid, budget)
    return (time.perf_counter() - start) / calls


@asynccontextmanager
async def pg_database() -> AsyncIterator[str]:
    import asyncpg

    name = f"sk_bench_compact_{os.getpid()}"
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name}")
        await admin.execute(f"CREATE DATABASE {name}")
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


async def run(url: str, args: argparse.Namespace) -> float:
    store = await Store.open(url)
    try:
        plain = await session(store, args.messages)
        compacted = await session(store, args.messages)
        done = await store.compact_session(compacted, keep_last_tokens=WINDOW, summarize=summarize)
        assert done is not None
        summary_cost = done.token_count + 3
        # The same window size: the compacted window's raw messages and its summary; the
        # plain budget that holds as many messages.
        window = await store.context_window(compacted, WINDOW + summary_cost + 100)
        budget = window.total_tokens
        same = await store.context_window(plain, budget)
        print(
            f"  windows: compacted {len(window.messages)} messages / {window.total_tokens} "
            f"tokens (summary {summary_cost}); plain {len(same.messages)} / {same.total_tokens}"
        )
        for sid in (plain, compacted):  # warm up
            await mean_call(store, sid, budget, 20)
        times: dict[str, list[float]] = {"plain": [], "compacted": []}
        for _ in range(args.rounds):
            times["plain"].append(await mean_call(store, plain, budget, args.calls))
            times["compacted"].append(await mean_call(store, compacted, budget, args.calls))
        p = statistics.median(times["plain"])
        c = statistics.median(times["compacted"])
        print(
            f"  context_window: plain {p * 1e3:.3f} ms, compacted {c * 1e3:.3f} ms "
            f"(medians of {args.rounds} rounds of {args.calls}); ratio {c / p:.3f}"
        )
        return c / p
    finally:
        await store.close()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--target", type=float, default=1.10)
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()}")
    ratios: dict[str, float] = {}
    if args.db in ("sqlite", "both"):
        with tempfile.TemporaryDirectory(dir=HERE) as tmp:
            print("SQLite:")
            ratios["sqlite"] = await run(f"sqlite:///{tmp}/compact.db", args)
    if args.db in ("postgresql", "both"):
        async with pg_database() as url:
            print("PostgreSQL:")
            ratios["postgresql"] = await run(url, args)
    print(f"load average at end: {os.getloadavg()}")
    failed = {db: r for db, r in ratios.items() if r > args.target}
    for db, r in ratios.items():
        print(
            f"{db}: compacted / plain = {r:.3f} (target <= {args.target}) "
            f"{'FAIL' if db in failed else 'ok'}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

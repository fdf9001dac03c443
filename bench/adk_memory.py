#!/usr/bin/env python
"""Google ADK memory: ``SessionkeeperMemoryService.search_memory`` against ADK's own
``SqliteMemoryService`` (FTS5, one statement) and ``InMemoryMemoryService`` (a scan), same
data, same run (issue 21, item 2; no target was set: this measures what a recall costs).

    .venv/bin/python bench/adk_memory.py                         # SQLite, 20,000 events
    .venv/bin/python bench/adk_memory.py --db postgresql --events 5000

Memory of 10 users × (``--events`` / 10) events (sentences of 8-20 words from a vocabulary
of 2,000 words, one planted fact per user) is added through each service's public API
(``add_events_to_memory``, untimed, in sessions of 100 events). Then each service's
``search_memory`` is timed for one user with what ``preload_memory`` passes: a whole user
message of 8 words ("what was the name of my cat", …). The bench checks first that every
service finds the planted fact (ours must; a miss of ADK's is reported). Calls alternate in
rounds so drift on the machine lands on every side; medians and p95 of each call timed alone.
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
import random
import statistics
import tempfile
import time
from typing import Any

from google.adk.events.event import Event
from google.adk.memory import InMemoryMemoryService
from google.adk.memory._sqlite_memory_service import SqliteMemoryService
from google.genai import types

from sessionkeeper import open_store
from sessionkeeper.integrations.adk import SessionkeeperMemoryService

APP = "bench_app"
FACT = "My cat is called Miso and she likes tuna."
QUERIES = [
    "what was the name of my cat",
    "remind me what my cat likes to eat",
    "do you remember anything about tuna please",
]
PG_URL = os.environ.get(
    "SESSIONKEEPER_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def sentences(rng: random.Random, vocabulary: list[str], n: int) -> list[str]:
    return [" ".join(rng.choices(vocabulary, k=rng.randint(8, 20))) + "." for _ in range(n)]


def event(text: str, i: int) -> Event:
    author = "user" if i % 2 == 0 else "assistant"
    role = "user" if author == "user" else "model"
    return Event(
        invocation_id=f"i{i}",
        author=author,
        timestamp=1_700_000_000 + i,
        content=types.Content(role=role, parts=[types.Part(text=text)]),
    )


async def load(services: dict[str, Any], events: int) -> None:
    rng = random.Random(7)
    vocabulary = [f"w{rng.randrange(10**6):06d}" for _ in range(2000)]
    vocabulary += ["the", "was", "of", "my", "what", "about", "name"]
    per_user = events // 10
    for u in range(10):
        texts = sentences(rng, vocabulary, per_user)
        texts[per_user // 2] = FACT
        for start in range(0, per_user, 100):
            batch = [event(t, start + i) for i, t in enumerate(texts[start : start + 100])]
            for service in services.values():
                await service.add_events_to_memory(
                    app_name=APP, user_id=f"user{u}", session_id=f"s{start}", events=batch
                )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=HERE) as tmp:
        if args.db == "sqlite":
            url = f"sqlite:///{tmp}/ours.db"
        else:
            import asyncpg

            db_name = f"sk_bench_adkmem_{os.getpid()}"
            admin = await asyncpg.connect(PG_URL)
            await admin.execute(f'CREATE DATABASE "{db_name}"')
            url = PG_URL.rsplit("/", 1)[0] + f"/{db_name}"
        store = await open_store(url)
        theirs = SqliteMemoryService(f"{tmp}/adk_memory.db")
        services: dict[str, Any] = {
            "sessionkeeper": SessionkeeperMemoryService(store),
            "adk SqliteMemoryService": theirs,
            "adk InMemoryMemoryService": InMemoryMemoryService(),
        }
        try:
            started = time.perf_counter()
            await load(services, args.events)
            # What autovacuum does after a burst of appends (on PostgreSQL: merges the GIN
            # pending list and analyses; without it the first searches walk the pending list).
            await store.vacuum()
            print(
                f"loaded {args.events:,} events into each in {time.perf_counter() - started:.0f} s"
            )
            for name, service in services.items():
                for query in QUERIES:
                    found = await service.search_memory(app_name=APP, user_id="user3", query=query)
                    texts = [m.content.parts[0].text for m in found.memories]
                    if FACT not in texts:  # reported: ranking is part of what recall costs
                        print(f"  {name} does not return the fact for {query!r}")
                    assert FACT in texts or name != "sessionkeeper", (query, texts[:3])
            times: dict[str, list[float]] = {name: [] for name in services}
            order = list(services)
            for r in range(args.rounds):
                for name in order if r % 2 == 0 else reversed(order):
                    for query in QUERIES:
                        t = time.perf_counter()
                        await services[name].search_memory(
                            app_name=APP, user_id="user3", query=query
                        )
                        times[name].append(time.perf_counter() - t)
            base = statistics.median(times["adk SqliteMemoryService"])
            print(f"search_memory on {args.db}, {args.rounds} rounds × {len(QUERIES)} queries:")
            for name, values in times.items():
                values.sort()
                median = statistics.median(values)
                p95 = values[int(len(values) * 0.95) - 1]
                print(
                    f"  {name:28s} median {median * 1000:7.2f} ms  p95 {p95 * 1000:7.2f} ms"
                    f"  ({median / base:.2f}× ADK's SqliteMemoryService)"
                )
        finally:
            await theirs.close()
            await store.close()
            if args.db == "postgresql":
                await admin.execute(f'DROP DATABASE "{db_name}" WITH (FORCE)')
                await admin.close()


if __name__ == "__main__":
    asyncio.run(main())

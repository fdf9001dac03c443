#!/usr/bin/env python
"""Google ADK: ``SessionkeeperSessionService`` against ADK's ``DatabaseSessionService``, on
the same database engine, same data, same run (issue 10, "Speed it must reach").

    .venv/bin/python bench/adk.py                 # both databases (~3 min)
    .venv/bin/python bench/adk.py --db sqlite --sessions 2000 --events 500   # a smoke run

Each side gets its own database (both use a table named ``sessions``): on SQLite two files
side by side in a temporary directory under bench/ (on the real disk); on PostgreSQL two
databases ``sk_bench_adk_<pid>_{ours,theirs}`` created on ``$SESSIONKEEPER_BENCH_PG_URL``
(default ``postgresql://postgres@127.0.0.1:5432/postgres``) and dropped at the end, also on
failure. ``DatabaseSessionService`` runs on ``sqlite+aiosqlite`` / ``postgresql+asyncpg``
with its defaults. Both sides are loaded through their public API (untimed):

- 10,000 sessions of one app spread over 100 users (100 each), each created with a little
  session and user state; then ``list_sessions(app_name, user_id)`` of one user is timed
  (target: ≤ 0.05× ``DatabaseSessionService``);
- one session of 3,000 events (user and model text in turn, 100-600 characters, every
  tenth with a state delta), then ``get_session`` with ``GetSessionConfig(
  num_recent_events=20)`` is timed (target: ≤ 0.05×).

The bench checks that both sides return equal sessions before timing. Calls alternate in
rounds (ours, theirs, theirs, ours …) so drift on the machine lands on both; medians and
p95 of each call timed alone. Exit status 1 if a target fails.
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
import random
import tempfile
import time
from contextlib import AsyncExitStack
from typing import Any

import harness
from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions
from google.adk.sessions.base_session_service import BaseSessionService, GetSessionConfig
from google.adk.sessions.database_session_service import DatabaseSessionService
from google.genai import types
from pgdb import pg_databases

from sessionkeeper import open_store
from sessionkeeper.integrations.adk import SessionkeeperSessionService

APP = "bench_app"
BIG = "big-session"
# fmt: off
WORDS = (
    "the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with", "be",
    "by", "on", "not", "this", "are", "or", "from", "at", "which", "trip", "plan", "flight",
    "hotel", "city", "museum", "train", "ticket", "weather", "budget", "day", "night", "tour",
)
# fmt: on
TARGET = harness.Target("ratio_max", 0.05)


def log(msg: str) -> None:
    print(f"[adk] {msg}", file=sys.stderr, flush=True)


def text(rng: random.Random, n_chars: int) -> str:
    out: list[str] = []
    size = 0
    while size < n_chars:
        word = rng.choice(WORDS)
        out.append(word)
        size += len(word) + 1
    return " ".join(out).capitalize() + "."


def events(n: int, seed: int = 7) -> list[Event]:
    rng = random.Random(seed)
    start = time.time() - n
    out = []
    for i in range(n):
        user = i % 2 == 0
        delta = {"turn": i, "user:turns": i} if i % 10 == 0 else {}
        out.append(
            Event(
                invocation_id=f"inv{i // 2}",
                author="user" if user else "planner",
                content=types.Content(
                    role="user" if user else "model",
                    parts=[types.Part(text=text(rng, rng.randint(100, 600)))],
                ),
                actions=EventActions(state_delta=delta),
                timestamp=start + i,
            )
        )
    return out


async def load(
    service: BaseSessionService, sessions: int, users: int, history: list[Event]
) -> float:
    t0 = time.perf_counter()
    for i in range(sessions):
        await service.create_session(
            app_name=APP,
            user_id=f"user{i % users}",
            session_id=f"s{i:05d}",
            state={"topic": f"t{i}", "user:tier": "free"},
        )
    session = await service.create_session(app_name=APP, user_id="user0", session_id=BIG)
    for event in history:
        await service.append_event(session, event.model_copy(deep=True))
    return time.perf_counter() - t0


def same(a: Any, b: Any) -> bool:
    """Equal sessions, ignoring ``last_update_time`` (each side stamped its own)."""
    strip = {"last_update_time"}
    return bool(a.model_dump(exclude=strip) == b.model_dump(exclude=strip))


async def compare(
    db: str, ours: BaseSessionService, theirs: BaseSessionService, n: int
) -> list[Any]:
    listed = "user42"
    config = GetSessionConfig(num_recent_events=20)

    async def list_ours() -> Any:
        return await ours.list_sessions(app_name=APP, user_id=listed)

    async def list_theirs() -> Any:
        return await theirs.list_sessions(app_name=APP, user_id=listed)

    async def get_ours() -> Any:
        return await ours.get_session(app_name=APP, user_id="user0", session_id=BIG, config=config)

    async def get_theirs() -> Any:
        return await theirs.get_session(
            app_name=APP, user_id="user0", session_id=BIG, config=config
        )

    a, b = (await list_ours()).sessions, (await list_theirs()).sessions
    by_id = sorted(a, key=lambda s: s.id), sorted(b, key=lambda s: s.id)
    assert len(a) == len(b) and all(same(x, y) for x, y in zip(*by_id, strict=True)), "lists"
    got_a, got_b = await get_ours(), await get_theirs()
    if not (len(got_a.events) == 20 and same(got_a, got_b)):
        import difflib

        dump = [
            json.dumps(g.model_dump(mode="json"), indent=1).splitlines() for g in (got_a, got_b)
        ]
        print("\n".join(list(difflib.unified_diff(*dump, lineterm=""))[:60]), file=sys.stderr)
        raise AssertionError("get_session differs")
    labels = {"store_label": "SessionkeeperSessionService", "base_label": "DatabaseSessionService"}
    results = []
    for scenario, mine, base in (
        (f"adk list_sessions (1 user of {len(a)} among 10k)", list_ours, list_theirs),
        ("adk get_session (20 newest of 3,000 events)", get_ours, get_theirs),
    ):
        s, t = await harness.compare(mine, base, n=n, warmup=max(5, n // 10))
        results.append(harness.from_samples(scenario, db, s, t, TARGET, **labels))
        log(f"{db}: {scenario}: {results[-1].ratio:.3f}x")
    return results


async def bench(db: str, args: argparse.Namespace) -> tuple[list[Any], dict[str, float]]:
    async with AsyncExitStack() as stack:
        if db == "sqlite":
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=HERE, prefix="sk_adk_")))
            ours_url = f"sqlite:///{tmp / 'ours.db'}"
            theirs_url = f"sqlite+aiosqlite:///{tmp / 'theirs.db'}"
        else:
            pair = pg_databases("adk_ours", "adk_theirs")
            ours_url, pg_theirs = await stack.enter_async_context(pair)
            theirs_url = pg_theirs.replace("postgresql://", "postgresql+asyncpg://", 1)
        store = await open_store(ours_url)
        stack.push_async_callback(store.close)
        ours = SessionkeeperSessionService(store)
        theirs = DatabaseSessionService(theirs_url)
        stack.push_async_callback(theirs.close)
        loads = {}
        history = events(args.events)
        for name, service in (("ours", ours), ("theirs", theirs)):
            loads[name] = round(await load(service, args.sessions, args.users, history), 1)
            log(f"{db}: loaded {name} in {loads[name]} s")
        return await compare(db, ours, theirs, args.calls), loads


async def amain(args: argparse.Namespace) -> int:
    dbs = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    found: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "load_average_start": os.getloadavg(),
        "sizes": {"sessions": args.sessions, "users": args.users, "events": args.events},
    }
    results: list[Any] = []
    for db in dbs:
        got, loads = await bench(db, args)
        results += got
        found[f"{db}_load_s"] = loads
    found["load_average_end"] = os.getloadavg()
    print(harness.table(results))
    print(f"load average {found['load_average_start'][0]:.2f} → {found['load_average_end'][0]:.2f}")
    found["results"] = [r.to_json() for r in results]
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"adk-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(found, indent=2, default=str))
    print(path)
    return 0 if all(r.passed is not False for r in results) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--events", type=int, default=3_000)
    parser.add_argument("--calls", type=int, default=200, help="timed calls per side")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    return asyncio.run(amain(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())

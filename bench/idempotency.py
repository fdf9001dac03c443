#!/usr/bin/env python
"""Idempotent appends: ``add_message(..., idempotency_key=k)`` against ``add_message`` without
a key, on SQLite and PostgreSQL in the same run (issue 18: "idempotent append (with key)
<= 1.15x an append without a key, on both databases").

    .venv/bin/python bench/idempotency.py                     # both databases (~1 min)
    .venv/bin/python bench/idempotency.py --db sqlite --n 200  # a smoke run

Timed with ``harness.compare_many`` (warm-up, then rounds whose order flips every round,
each call timed on its own): ``plain`` appends to one session, ``keyed`` to another with a
new key each call (the key row written in the same transaction), each session already
holding ``--prefill`` messages (the keyed one as many keys) so no side starts on empty
indexes. For information: ``retry``, a keyed append sent again (answered from the key, nothing
written), and batches of 10 with and without a key (per message). The ratio is keyed ÷ plain
(medians); the run exits 1 if it is over 1.15 on any database.

SQLite files live in a temporary directory under bench/ (the real disk: the commit's fsync
is part of both sides); PostgreSQL gets a database ``sk_bench_idem_<pid>`` on
``$SESSIONKEEPER_BENCH_PG_URL`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``),
dropped at the end, also on failure. The load average is printed at start and end.
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
import itertools
import json
import os
import statistics
import time
from contextlib import AsyncExitStack
from typing import Any

from harness import compare_many, pct
from pgdb import scratch_database

from sessionkeeper import Store
from sessionkeeper.models import NewMessage

TARGET = 1.15
TEXT = "Could you summarise the last meeting's action items for the design review?"


def log(msg: str) -> None:
    print(f"[idempotency] {msg}", file=sys.stderr, flush=True)


async def bench(db: str, args: argparse.Namespace) -> dict[str, Any]:
    async with AsyncExitStack() as stack:
        url, _ = await scratch_database(stack, db, "idem")
        store = await Store.open(url)
        stack.push_async_callback(store.close)
        plain_sid = (await store.create_session(title="plain")).session_id
        keyed_sid = (await store.create_session(title="keyed")).session_id
        retry_sid = (await store.create_session(title="retry")).session_id
        batch = [NewMessage("user", TEXT)] * 10
        for start in range(0, args.prefill, 100):  # untimed: both sessions hold history
            n = min(100, args.prefill - start)
            await store.add_messages(plain_sid, batch[:1] * n)
            for i in range(n):
                await store.add_message(keyed_sid, "user", TEXT, idempotency_key=f"pre-{start + i}")
        await store.add_message(retry_sid, "user", TEXT, idempotency_key="again")
        keys = itertools.count()
        ops = {
            "plain": lambda: store.add_message(plain_sid, "user", TEXT),
            "keyed": lambda: store.add_message(
                keyed_sid, "user", TEXT, idempotency_key=f"k-{next(keys)}"
            ),
            "retry": lambda: store.add_message(retry_sid, "user", TEXT, idempotency_key="again"),
            "batch10": lambda: store.add_messages(plain_sid, batch),
            "batch10 keyed": lambda: store.add_messages(
                keyed_sid, batch, idempotency_key=f"b-{next(keys)}"
            ),
        }
        times = await compare_many(ops, n=args.n, warmup=args.warmup, rounds=args.rounds)
        found: dict[str, Any] = {}
        for name, values in times.items():
            per = 10 if name.startswith("batch10") else 1
            found[name] = {
                "median_ms": statistics.median(values) * 1000 / per,
                "p95_ms": pct(values, 0.95) * 1000 / per,
                "calls": len(values),
            }
        found["ratio"] = found["keyed"]["median_ms"] / found["plain"]["median_ms"]
        found["batch_ratio"] = found["batch10 keyed"]["median_ms"] / found["batch10"]["median_ms"]
        # Nothing was written twice: the retry session still holds one message.
        assert (await store.get_session(retry_sid)).message_count == 1
        log(f"{db}: keyed ÷ plain = {found['ratio']:.3f}")
        return found


async def amain(args: argparse.Namespace) -> int:
    dbs = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "load_average_start": os.getloadavg(),
        "n": args.n,
        "rounds": args.rounds,
        "prefill": args.prefill,
    }
    for db in dbs:
        report[db] = await bench(db, args)
    report["load_average_end"] = os.getloadavg()
    print("| database | append (ms) | keyed append (ms) | keyed ÷ plain | target | retry (ms) "
          "| batch of 10, per message: plain / keyed (ms) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    failed = False
    for db in dbs:
        r = report[db]
        ok = r["ratio"] <= TARGET
        failed |= not ok
        print(
            f"| {db} | {r['plain']['median_ms']:.3f} | {r['keyed']['median_ms']:.3f} "
            f"| {r['ratio']:.3f} | ≤ {TARGET} {'ok' if ok else 'FAIL'} "
            f"| {r['retry']['median_ms']:.3f} "
            f"| {r['batch10']['median_ms']:.3f} / {r['batch10 keyed']['median_ms']:.3f} |"
        )
    start, end = report["load_average_start"], report["load_average_end"]
    print(f"load average (1, 5, 15 min) {start} → {end}")
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"idempotency-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    print(out)
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--n", type=int, default=2_000, help="timed calls per operation")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--prefill", type=int, default=2_000, help="messages/keys before timing")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    return asyncio.run(amain(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())

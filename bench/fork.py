#!/usr/bin/env python
"""Forking a session: ``Store.fork_session`` of a 10,000-message session against a bare
``INSERT … SELECT`` of the same rows on the same database (issue 19: "≤ 1.5×").

    .venv/bin/python bench/fork.py                          # both databases (~1 min)
    .venv/bin/python bench/fork.py --db sqlite --messages 1000 --rounds 3   # a smoke run

Timed, in alternating rounds (store first in odd rounds, bare first in even ones), medians
reported:

- ``store``: ``fork_session(source)``, the whole call: validation, one transaction that
  reads the source's last seq, writes the new session's row from the source's row and the
  copied range's totals, and copies the messages (``backends/lineage_sql.py``);
- ``bare``: the floor: one transaction with the bare driver (asyncpg / stdlib sqlite3 with
  the store's pragmas) running only ``INSERT INTO messages (…) SELECT … FROM messages WHERE
  session_id = source`` into a session row made beforehand, outside the timing. The same
  table, indexes and triggers (SQLite: the FTS note per row; PostgreSQL: the tsv copied);
- ``read``: ``get_messages(last=50)`` of the fork ÷ the same read of a plain session (a fork
  is a copy, so this stays ~1.0: no lineage walk on reads).

Copies are deleted between rounds (untimed). SQLite files live in a temporary directory
under bench/ (the real disk, fsync included); PostgreSQL gets a database
``sk_bench_fork_<pid>`` on ``$SESSIONKEEPER_BENCH_PG_URL`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``), dropped at the end, also on failure.
Exit 1 if a target fails.
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
import time
from contextlib import AsyncExitStack
from typing import Any

import datagen
from pgdb import scratch_database

from sessionkeeper import Store
from sessionkeeper.models import NewMessage
from sessionkeeper.store.backends.statements import MESSAGE_COLUMNS

FORK_TARGET = 1.5
READ_TARGET = 1.2
REST = ", ".join(MESSAGE_COLUMNS.split(", ")[1:])


def log(msg: str) -> None:
    print(f"[fork] {msg}", file=sys.stderr, flush=True)


async def load(store: Store, n: int) -> str:
    pool = datagen.text_pool()
    source = await store.create_session(agent_id="bench", title="source")
    for start in range(0, n, 500):
        await store.add_messages(
            source.session_id,
            [
                NewMessage(
                    role="user" if i % 2 else "assistant",
                    content=pool[i % len(pool)],
                    model=None if i % 2 else "gpt-4o",
                    metadata=None if i % 3 else {"i": i},
                )
                for i in range(start, min(n, start + 500))
            ],
        )
    return source.session_id


class BareCopy:
    """The floor: one INSERT … SELECT of the source's rows, in one transaction."""

    def __init__(self, db: str, url: str, path: Path | None) -> None:
        self.db, self.url, self.path = db, url, path
        self.conn: Any = None

    async def open(self) -> None:
        if self.db == "sqlite":
            assert self.path is not None
            self.conn = datagen.sqlite_connect(str(self.path))
        else:
            import asyncpg

            self.conn = await asyncpg.connect(self.url)

    async def close(self) -> None:
        if self.db == "sqlite":
            self.conn.close()
        else:
            await self.conn.close()

    async def copy(self, source: str, target: str) -> int:
        if self.db == "sqlite":
            self.conn.execute("BEGIN IMMEDIATE")
            n = self.conn.execute(
                f"INSERT INTO messages ({MESSAGE_COLUMNS}) SELECT ?2, {REST} FROM messages "
                "WHERE session_id = ?1",
                (source, target),
            ).rowcount
            self.conn.execute("COMMIT")
            return int(n)
        status = await self.conn.execute(
            f"INSERT INTO messages ({MESSAGE_COLUMNS}, tsv) SELECT $2, {REST}, tsv "
            "FROM messages WHERE session_id = $1",
            source,
            target,
        )
        return int(status.split()[-1])


async def read_ratio_of(store: Store, fork_id: str, plain_id: str, n: int) -> float:
    """Median time of ``get_messages(last=50)`` on the fork ÷ on the plain session, the
    reads alternating (the machine is shared: alternation evens out its load)."""
    spent: dict[str, list[float]] = {fork_id: [], plain_id: []}
    for i in range(n):
        for sid in (fork_id, plain_id) if i % 2 else (plain_id, fork_id):
            t0 = time.perf_counter()
            await store.get_messages(sid, last=50)
            spent[sid].append(time.perf_counter() - t0)
    return statistics.median(spent[fork_id]) / statistics.median(spent[plain_id])


async def bench(db: str, args: argparse.Namespace) -> dict[str, Any]:
    async with AsyncExitStack() as stack:
        url, path = await scratch_database(stack, db, "fork")
        store = await Store.open(url)
        stack.push_async_callback(store.close)
        source = await load(store, args.messages)
        await store.search_messages("the")  # index what loading noted (SQLite)
        floor = BareCopy(db, url, path)
        await floor.open()
        stack.push_async_callback(floor.close)
        log(f"{db}: loaded {args.messages} messages")

        store_s: list[float] = []
        bare_s: list[float] = []
        read_ratio: list[float] = []
        for r in range(args.rounds):
            target = (await store.create_session(agent_id="bench")).session_id
            fork_id = None
            order = ("store", "bare") if r % 2 == 0 else ("bare", "store")
            for side in order:
                t0 = time.perf_counter()
                if side == "store":
                    fork = await store.fork_session(source)
                    store_s.append(time.perf_counter() - t0)
                    fork_id = fork.session_id
                    assert fork.message_count == args.messages
                else:
                    copied = await floor.copy(source, target)
                    bare_s.append(time.perf_counter() - t0)
                    assert copied == args.messages
            assert fork_id is not None
            read_ratio.append(await read_ratio_of(store, fork_id, source, args.reads))
            for sid in (fork_id, target):
                await store.delete_session(sid)
            await store.search_messages("the")  # the notes of the copies, off the next round
            log(
                f"{db} round {r + 1}: store {store_s[-1] * 1000:.1f} ms, "
                f"bare {bare_s[-1] * 1000:.1f} ms, read ratio {read_ratio[-1]:.2f}"
            )
        found = {
            "store_ms": statistics.median(store_s) * 1000,
            "bare_ms": statistics.median(bare_s) * 1000,
            "read_ratio": statistics.median(read_ratio),
            "rounds": {"store_s": store_s, "bare_s": bare_s, "read_ratio": read_ratio},
        }
        found["ratio"] = found["store_ms"] / found["bare_ms"]
        return found


async def amain(args: argparse.Namespace) -> int:
    dbs = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "load_average_start": os.getloadavg(),
        "messages": args.messages,
        "rounds": args.rounds,
    }
    for db in dbs:
        report[db] = await bench(db, args)
    report["load_average_end"] = os.getloadavg()
    ok = True
    print(f"fork of a {args.messages}-message session, median of {args.rounds} rounds")
    print(
        "| database | fork_session | bare INSERT … SELECT | ratio (≤ 1.5) "
        "| read last 50: fork ÷ plain |"
    )
    print("|---|---|---|---|---|")
    for db in dbs:
        r = report[db]
        passed = r["ratio"] <= FORK_TARGET and r["read_ratio"] <= READ_TARGET
        ok = ok and passed
        print(
            f"| {db} | {r['store_ms']:.1f} ms | {r['bare_ms']:.1f} ms | {r['ratio']:.2f} "
            f"{'ok' if r['ratio'] <= FORK_TARGET else 'FAIL'} | {r['read_ratio']:.2f} |"
        )
    start, end = report["load_average_start"][0], report["load_average_end"][0]
    print(f"load average {start:.2f} → {end:.2f}")
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"fork-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    print(out)
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--reads", type=int, default=200, help="reads per round, each side")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    return asyncio.run(amain(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())

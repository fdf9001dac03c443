#!/usr/bin/env python
"""Forgetting one user: ``Store.forget_user`` on a user with 1,000 sessions and 100,000
messages, beside other users' data, on SQLite and PostgreSQL (issue 20: "seconds, not
minutes").

    .venv/bin/python bench/forget.py                       # both databases (~2 min)
    .venv/bin/python bench/forget.py --db sqlite --sessions 100 --messages 50   # a smoke run

The database holds the forgotten user's ``--sessions`` sessions of ``--messages`` messages
each, and as many sessions of other users (``--others``, spread over 100 users), loaded
through ``Store.import_session`` (untimed); every message is indexed for search before the
forget, so the forget pays for taking every one of them out of the index. Timed, once each
(a forget is a one-off, and the second run would find nothing):

- ``preview``: ``forget_user(dry_run=True)``, what the CLI shows before asking;
- ``forget``: ``forget_user(user)``, the whole call; of it, ``last transaction``: the last
  step alone (SQLite: with the FTS5 ``optimize`` that rewrites the search index without
  the user's terms, over everyone's messages);
- PostgreSQL ``vacuum``: ``Store.vacuum()`` afterwards (VACUUM (ANALYZE) of the tables
  holding sessions' rows: frees the dead rows' space for reuse), then ``vacuum(full=True)``
  (VACUUM FULL: rewrites them, which takes the dead rows' bytes out of the files).

Then it checks the forget: the user's marker word is found by no search, other users' words
still are, and on SQLite the marker's bytes are in neither the file nor the WAL.
SQLite files live in a temporary directory under bench/ (the real disk); PostgreSQL gets a
database ``sk_bench_forget_<pid>`` on ``$SESSIONKEEPER_BENCH_PG_URL`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``), dropped at the end, also on failure.
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
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import datagen
from pgdb import scratch_database

from sessionkeeper import Store
from sessionkeeper.models import Message, Session
from sessionkeeper.store.backends import postgres_forget, sqlite_forget

USER = "forgotten-user"
MARKER = "vexmorquil"  # in every 10th message of the forgotten user, nowhere else


def log(msg: str) -> None:
    print(f"[forget] {msg}", file=sys.stderr, flush=True)


async def load(store: Store, args: argparse.Namespace) -> int:
    """The forgotten user's sessions and the others', through the Store (one import per
    session); the number of messages loaded."""
    pool = datagen.text_pool()
    start = datetime.now(UTC) - timedelta(days=1)
    loaded = 0
    for n in range(args.sessions + args.others):
        mine = n < args.sessions
        sid = f"s{n:06d}"
        stamp = start + timedelta(seconds=n)
        session = Session(
            sid, "bench", f"chat {n}", "chat", "active", {}, stamp, stamp, None, stamp,
            0, 0, USER if mine else f"user{n % 100}",
        )  # fmt: skip
        items = []
        for seq in range(1, args.messages + 1):
            text = pool[(n * 31 + seq) % len(pool)]
            if mine and seq % 10 == 0:
                text = f"{text} {MARKER}"
            items.append(Message(sid, seq, "user", text, None, None, 8, {}, stamp))
        await store.import_session(session, items)
        loaded += len(items)
        if n % 500 == 499:
            log(f"loaded {n + 1} sessions")
    return loaded


def timed_finish(module: Any) -> tuple[dict[str, float], Callable[[], None]]:
    """Time ``module.finish`` (the forget's last transaction) while the bench runs."""
    spent: dict[str, float] = {}
    original = module.finish

    if asyncio.iscoroutinefunction(original):

        async def wrapped(*a: Any, **k: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return await original(*a, **k)
            finally:
                spent["finish"] = time.perf_counter() - t0

    else:

        def wrapped(*a: Any, **k: Any) -> Any:  # type: ignore[misc]
            t0 = time.perf_counter()
            try:
                return original(*a, **k)
            finally:
                spent["finish"] = time.perf_counter() - t0

    module.finish = wrapped
    return spent, lambda: setattr(module, "finish", original)


def file_bytes(path: Path, needle: bytes) -> int:
    return sum(p.read_bytes().count(needle) for p in (path, Path(f"{path}-wal")) if p.exists())


async def bench(db: str, args: argparse.Namespace) -> dict[str, Any]:
    async with AsyncExitStack() as stack:
        url, path = await scratch_database(stack, db, "forget")
        store = await Store.open(url)
        stack.push_async_callback(store.close)
        t0 = time.perf_counter()
        loaded = await load(store, args)
        other_word = datagen.text_pool()[0].split()[0].lower().strip(".")
        assert await store.search_messages(MARKER)  # every message indexed before the forget
        found: dict[str, Any] = {"messages_in_db": loaded, "load_s": time.perf_counter() - t0}
        log(f"{db}: loaded {loaded} messages in {found['load_s']:.1f} s")

        t0 = time.perf_counter()
        preview = await store.forget_user(USER, dry_run=True)
        found["preview_s"] = time.perf_counter() - t0
        spent, restore = timed_finish(sqlite_forget if db == "sqlite" else postgres_forget)
        try:
            t0 = time.perf_counter()
            receipt = await store.forget_user(USER)
            found["forget_s"] = time.perf_counter() - t0
        finally:
            restore()
        found["last_transaction_s"] = spent["finish"]
        found["receipt"] = receipt.to_dict()
        assert receipt.counts() == preview.counts(), (receipt, preview)
        assert (receipt.sessions, receipt.messages) == (
            args.sessions,
            args.sessions * args.messages,
        ), receipt
        assert await store.search_messages(MARKER) == []
        assert await store.search_messages(other_word)
        if path is not None:
            assert receipt.wal_truncated, receipt
            found["marker_bytes_left"] = file_bytes(path, MARKER.encode())
            assert found["marker_bytes_left"] == 0
        else:
            for key, full in (("vacuum_s", False), ("vacuum_full_s", True)):
                t0 = time.perf_counter()
                await store.vacuum(full=full)
                found[key] = time.perf_counter() - t0
        log(
            f"{db}: forget {found['forget_s']:.2f} s (last transaction "
            f"{found['last_transaction_s']:.2f} s), preview {found['preview_s']:.2f} s"
            + (
                f", vacuum {found['vacuum_s']:.2f} s, vacuum full {found['vacuum_full_s']:.2f} s"
                if "vacuum_s" in found
                else ""
            )
        )
        return found


async def amain(args: argparse.Namespace) -> int:
    dbs = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "load_average_start": os.getloadavg(),
        "sizes": {"sessions": args.sessions, "messages": args.messages, "others": args.others},
    }
    for db in dbs:
        report[db] = await bench(db, args)
    report["load_average_end"] = os.getloadavg()
    print(f"forget one user: {args.sessions} sessions x {args.messages} messages, "
          f"beside {args.others} sessions of other users")  # fmt: skip
    print(
        "| database | forget | of it, last transaction | preview (dry run) "
        "| then VACUUM | then VACUUM FULL |"
    )
    print("|---|---|---|---|---|---|")
    for db in dbs:
        r = report[db]
        vacuum = [f"{r[k]:.2f} s" if k in r else "—" for k in ("vacuum_s", "vacuum_full_s")]
        print(
            f"| {db} | {r['forget_s']:.2f} s | {r['last_transaction_s']:.2f} s "
            f"| {r['preview_s']:.2f} s | {vacuum[0]} | {vacuum[1]} |"
        )
    start, end = report["load_average_start"][0], report["load_average_end"][0]
    print(f"load average {start:.2f} → {end:.2f}")
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"forget-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    print(out)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--sessions", type=int, default=1_000, help="the user's sessions")
    parser.add_argument("--messages", type=int, default=100, help="messages per session")
    parser.add_argument("--others", type=int, default=1_000, help="other users' sessions")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    return asyncio.run(amain(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())

"""LangGraph checkpoints: the sessionkeeper savers against LangGraph's own savers, same run.

The baselines are bench-only dependencies (not dependencies of sessionkeeper):

    .venv/bin/pip install langgraph-checkpoint-sqlite langgraph-checkpoint-postgres

    .venv/bin/python bench/langgraph.py                      # both databases (~1 min)
    .venv/bin/python bench/langgraph.py --db sqlite --steps 200 --threads 6

What is timed is what a graph asks of its checkpointer at each step: ``aput`` of the step's
checkpoint, then ``aget_tuple`` of the thread's latest (targets: ≤ 1.2× AsyncSqliteSaver
on SQLite, ≤ 1.2× AsyncPostgresSaver on PostgreSQL). The thread is a conversation whose
``messages`` channel grows by one message per step (user and assistant in turn, 100-900
characters), with the small channels and versions a ``StateGraph`` step carries and the
step's pending writes (``aput_writes``, timed apart). Threads alternate between the savers
(ours, theirs, theirs, ours …) so drift on the machine lands on both. On SQLite each saver
has its own file (in one file each one's commits would also checkpoint the other's WAL).

Storage: the bytes of a 200-step thread's checkpoint tables and their indexes (SQLite:
``dbstat`` pages; PostgreSQL: ``pg_total_relation_size``) (target: ≤ 0.5× AsyncSqliteSaver).
The sessionkeeper figure counts its four ``lg_*`` tables; the messages it mirrors into the
session (with their full-text index) are reported beside it, as is the whole file.

Our savers mirror the ``messages`` channel into the session (the default), so each of our
puts also appends a message: counted in the timings, as in real use.
"""

# ruff: noqa: E402 - the import path is fixed first (see below)
from __future__ import annotations

import sys
from pathlib import Path

# This file is named like the package it measures: keep its folder off the import path, or
# ``import langgraph`` would import this script.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import argparse
import asyncio
import json
import os
import random
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langgraph.checkpoint.base import BaseCheckpointSaver, empty_checkpoint

from sessionkeeper import open_store
from sessionkeeper.integrations.langgraph import AsyncSessionkeeperSaver

PG_ADMIN = os.environ.get(
    "SESSIONKEEPER_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
_VOCABULARY = (
    "the of and to in a is that for it as was with be by on not he this are or his from at "
    "which but have an they you were her she there been one all we their has would when "
    "graph state node edge checkpoint thread message model tool answer question plan step"
)
WORDS = _VOCABULARY.split()


def text(rng: random.Random, n_chars: int) -> str:
    out: list[str] = []
    size = 0
    while size < n_chars:
        word = rng.choice(WORDS)
        out.append(word)
        size += len(word) + 1
    return " ".join(out).capitalize() + "."


class Conversation:
    """The checkpoints of one thread, step by step, as a StateGraph chatbot writes them."""

    def __init__(self, saver: BaseCheckpointSaver[Any], thread_id: str, seed: int) -> None:
        self.saver = saver
        self.rng = random.Random(seed)
        self.thread = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
        self.parent: dict[str, Any] = self.thread
        self.checkpoint = empty_checkpoint()
        self.messages: list[BaseMessage] = []
        self.step = -1
        self.run_id = str(uuid.uuid4())

    def _bump(self, channel: str) -> Any:
        current = self.checkpoint["channel_versions"].get(channel)
        version = self.saver.get_next_version(current, None)
        self.checkpoint["channel_versions"][channel] = version
        return version

    async def put(self) -> None:
        """The next step: a message more, its checkpoint, then the latest read back."""
        human = len(self.messages) % 2 == 0
        size = self.rng.randint(100, 300) if human else self.rng.randint(300, 900)
        kind = HumanMessage if human else AIMessage
        message = kind(content=text(self.rng, size), id=str(uuid.uuid4()))
        self.messages = [*self.messages, message]
        self.step += 1
        node = "chatbot" if human else "__start__"
        new = {"messages": self._bump("messages"), f"branch:to:{node}": self._bump(node)}
        cp = self.checkpoint
        cp["id"] = _uuid6()
        cp["channel_values"] = {"messages": self.messages, f"branch:to:{node}": None}
        cp["versions_seen"][node] = dict(new)
        self.parent = await self.saver.aput(
            self.parent,
            dict(cp),  # type: ignore[arg-type]
            {"source": "loop", "step": self.step, "parents": {}, "run_id": self.run_id},
            new,
        )
        self.pending = [("messages", [message]), (f"branch:to:{node}", None)]

    async def get(self) -> None:
        found = await self.saver.aget_tuple(self.thread)
        assert found is not None and len(found.checkpoint["channel_values"]["messages"]) == len(
            self.messages
        )

    async def put_writes(self) -> None:
        await self.saver.aput_writes(self.parent, self.pending, str(uuid.uuid4()))


def _uuid6() -> str:
    from langgraph.checkpoint.base.id import uuid6

    return str(uuid6())


async def timed(op: Callable[[], Awaitable[None]]) -> float:
    t0 = time.perf_counter()
    await op()
    return time.perf_counter() - t0


async def run_thread(saver: BaseCheckpointSaver[Any], steps: int, seed: int) -> dict[str, Any]:
    conv = Conversation(saver, f"bench-{uuid.uuid4().hex[:12]}", seed)
    step_times: list[float] = []
    writes: list[float] = []
    for _ in range(steps):
        step_times.append(await timed(conv.put) + await timed(conv.get))
        writes.append(await timed(conv.put_writes))
    return {"steps": step_times, "writes": writes, "thread": conv.thread}


async def compare(
    ours: BaseCheckpointSaver[Any], theirs: BaseCheckpointSaver[Any], steps: int, threads: int
) -> dict[str, Any]:
    await run_thread(ours, 20, 0)  # warm-up: connections, statements, tokenizer
    await run_thread(theirs, 20, 0)
    out: dict[str, list[float]] = {"ours": [], "theirs": [], "ours_w": [], "theirs_w": []}
    for i in range(threads):
        order = [("ours", ours), ("theirs", theirs)]
        for name, saver in order if i % 2 == 0 else reversed(order):
            got = await run_thread(saver, steps, 1000 + i)
            out[name] += got["steps"]
            out[name + "_w"] += got["writes"]
    ratio = sum(out["ours"]) / sum(out["theirs"])
    return {
        "ours_median_ms": statistics.median(out["ours"]) * 1e3,
        "theirs_median_ms": statistics.median(out["theirs"]) * 1e3,
        "ours_mean_ms": statistics.fmean(out["ours"]) * 1e3,
        "theirs_mean_ms": statistics.fmean(out["theirs"]) * 1e3,
        "ratio_mean": ratio,
        "ratio_median": statistics.median(out["ours"]) / statistics.median(out["theirs"]),
        "writes_ours_median_ms": statistics.median(out["ours_w"]) * 1e3,
        "writes_theirs_median_ms": statistics.median(out["theirs_w"]) * 1e3,
    }


def ours(store: Any, args: argparse.Namespace) -> AsyncSessionkeeperSaver:
    return AsyncSessionkeeperSaver(store, mirror_channel=None if args.no_mirror else "messages")


# ── storage ─────────────────────────────────────────────────────────────────


def sqlite_bytes(path: Path, names: tuple[str, ...]) -> int:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT d.name, sum(d.pgsize) FROM dbstat d GROUP BY d.name").fetchall()
        owners = dict(conn.execute("SELECT name, tbl_name FROM sqlite_schema").fetchall())
    finally:
        conn.close()
    return sum(size for name, size in rows if owners.get(name, name) in names)


async def pg_bytes(url: str, names: tuple[str, ...]) -> int:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute("VACUUM ANALYZE")
        return int(
            await conn.fetchval(
                "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
                "WHERE c.relname = ANY($1::text[]) AND c.relkind = 'r'",
                list(names),
            )
        )
    finally:
        await conn.close()


OURS = ("lg_checkpoints", "lg_channel_values", "lg_channel_items", "lg_writes")
MIRROR = (
    "messages",
    "messages_fts",
    "messages_fts_data",
    "messages_fts_idx",
    "messages_fts_docsize",
    "messages_fts_config",
)
THEIRS_SQLITE = ("checkpoints", "writes")
THEIRS_PG = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")


async def storage_sqlite(steps: int, root: Path) -> dict[str, Any]:
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    ours_db, theirs_db = root / "ours.db", root / "theirs.db"
    store = await open_store(f"sqlite:///{ours_db}")
    try:
        await run_thread(AsyncSessionkeeperSaver(store), steps, 7)
        await store.vacuum()
    finally:
        await store.close()
    async with AsyncSqliteSaver.from_conn_string(str(theirs_db)) as theirs:
        await run_thread(theirs, steps, 7)
    sqlite3.connect(theirs_db).execute("VACUUM").connection.close()
    ours = sqlite_bytes(ours_db, OURS)
    theirs_b = sqlite_bytes(theirs_db, THEIRS_SQLITE)
    return {
        "ours_bytes": ours,
        "ours_mirror_bytes": sqlite_bytes(ours_db, MIRROR),
        "ours_file_bytes": ours_db.stat().st_size,
        "theirs_bytes": theirs_b,
        "theirs_file_bytes": theirs_db.stat().st_size,
        "ratio": ours / theirs_b,
    }


async def storage_pg(steps: int, url: str) -> dict[str, Any]:
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    store = await open_store(url)
    try:
        await run_thread(AsyncSessionkeeperSaver(store), steps, 7)
    finally:
        await store.close()
    async with AsyncPostgresSaver.from_conn_string(url) as theirs:
        await theirs.setup()
        await run_thread(theirs, steps, 7)
    ours = await pg_bytes(url, OURS)
    theirs_b = await pg_bytes(url, THEIRS_PG)
    return {
        "ours_bytes": ours,
        "ours_mirror_bytes": await pg_bytes(url, ("messages",)),
        "theirs_bytes": theirs_b,
        "ratio": ours / theirs_b,
    }


# ── the runs ────────────────────────────────────────────────────────────────


async def bench_sqlite(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    # One file each, side by side: in one file, each saver's commits would also checkpoint
    # the other's WAL (the baseline writes ~100 KB per step, ours ~2 KB).
    async with AsyncExitStack() as stack:
        store = await open_store(f"sqlite:///{root / 'speed-ours.db'}")
        stack.push_async_callback(store.close)
        theirs = await stack.enter_async_context(
            AsyncSqliteSaver.from_conn_string(str(root / "speed-theirs.db"))
        )
        speed = await compare(ours(store, args), theirs, args.steps, args.threads)
    return {"speed": speed, "storage": await storage_sqlite(args.storage_steps, root)}


async def bench_pg(args: argparse.Namespace) -> dict[str, Any]:
    import asyncpg
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from sqlalchemy.engine import make_url

    name = f"sk_bench_lg_{os.getpid()}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
    try:
        async with AsyncExitStack() as stack:
            store = await open_store(url)
            stack.push_async_callback(store.close)
            theirs = await stack.enter_async_context(AsyncPostgresSaver.from_conn_string(url))
            await theirs.setup()
            speed = await compare(ours(store, args), theirs, args.steps, args.threads)
        storage_name = name + "_s"
        await admin.execute(f'CREATE DATABASE "{storage_name}"')
        s_url = make_url(PG_ADMIN).set(database=storage_name).render_as_string(False)
        try:
            storage = await storage_pg(args.storage_steps, s_url)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{storage_name}" WITH (FORCE)')
        return {"speed": speed, "storage": storage}
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def report(db: str, found: dict[str, Any], baseline: str) -> bool:
    s, b = found["speed"], found["storage"]
    speed_ok = s["ratio_mean"] <= 1.2
    print(f"\n{db}: sessionkeeper vs {baseline}")
    print(
        f"  put + get_tuple per step  median {s['ours_median_ms']:.2f} ms vs "
        f"{s['theirs_median_ms']:.2f} ms; mean {s['ours_mean_ms']:.2f} vs "
        f"{s['theirs_mean_ms']:.2f} ms  ratio {s['ratio_mean']:.2f} (target ≤ 1.2) "
        f"{'PASS' if speed_ok else 'FAIL'}"
    )
    print(
        f"  put_writes (info)         median {s['writes_ours_median_ms']:.2f} ms vs "
        f"{s['writes_theirs_median_ms']:.2f} ms"
    )
    line = (
        f"  storage of one thread     {b['ours_bytes']:,} B vs {b['theirs_bytes']:,} B "
        f"ratio {b['ratio']:.3f}"
    )
    ok = speed_ok
    if db == "sqlite":
        ok = ok and b["ratio"] <= 0.5
        line += f" (target ≤ 0.5) {'PASS' if b['ratio'] <= 0.5 else 'FAIL'}"
    else:
        line += " (info)"
    print(line)
    print(f"  mirrored messages (info)  {b['ours_mirror_bytes']:,} B in the session's tables")
    if "ours_file_bytes" in b:
        print(
            f"  whole files (info)        {b['ours_file_bytes']:,} B vs "
            f"{b['theirs_file_bytes']:,} B (ours holds the session, messages and search index)"
        )
    return ok


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--steps", type=int, default=200, help="steps per timed thread")
    parser.add_argument("--threads", type=int, default=4, help="timed threads per saver")
    parser.add_argument("--storage-steps", type=int, default=200)
    parser.add_argument(
        "--no-mirror",
        action="store_true",
        help="our savers without mirroring messages into the session (to see its share)",
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    results: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    ok = True
    with tempfile.TemporaryDirectory(dir=Path(__file__).parent) as tmp:
        if args.db in ("sqlite", "both"):
            results["sqlite"] = await bench_sqlite(args, Path(tmp))
            ok &= report("sqlite", results["sqlite"], "AsyncSqliteSaver")
    if args.db in ("postgresql", "both"):
        results["postgresql"] = await bench_pg(args)
        ok &= report("postgresql", results["postgresql"], "AsyncPostgresSaver")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"langgraph-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"\n{path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

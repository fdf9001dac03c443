#!/usr/bin/env python
"""Framework integrations: sessionkeeper's session objects against the frameworks' own
stores, same machine, same data, same run (issue 9, "Speed it must reach").

The baselines are bench-only dependencies (not dependencies of sessionkeeper):

    .venv/bin/pip install 'openai-agents[sqlalchemy]' langchain-postgres 'psycopg[binary]'

    .venv/bin/python bench/integrations.py                  # both databases (~1 min)
    .venv/bin/python bench/integrations.py --db sqlite
    .venv/bin/python bench/integrations.py --snapshot HEAD  # src/ as committed

What is timed (each call on its own; medians and p95; the sides alternate in rounds, ours,
theirs, theirs, ours …, so drift on the machine lands on both; LangChain reads one call per
block, each after a ``gc.collect()``: see bench/README.md, "Framework integrations"):

1. SQLite, ``SessionkeeperSession`` vs the SDK's ``SQLiteSession`` (each its own file, side by
   side in a temporary directory under bench/, so on the real disk and both fsyncing:
   ``journal_mode=WAL``, ``synchronous=FULL`` on both sides):
   ``add_items([item])`` (one item, one commit each) into a session of its own, and
   ``get_items(limit=50)`` of a 10,000-item session. Targets ≤ 1.0× each.
2. PostgreSQL, the same two operations against the SDK's ``SQLAlchemySession``
   (``postgresql+asyncpg``, ``create_tables=True``, the engine's defaults). Targets ≤ 0.4×.
3. PostgreSQL, LangChain: ``SessionkeeperChatMessageHistory(limit=50)`` reading the last 50
   messages of a 10,000-message session (``aget_messages()``, and the blocking ``messages``)
   against langchain-postgres' ``PostgresChatMessageHistory``, which has no windowed read:
   it fetches the whole session and the caller slices (``(await h.aget_messages())[-50:]``,
   ``h.messages[-50:]``). Target ≤ 0.01×.

Items are what an SDK run stores: user messages, assistant output messages (``output_text``
content, ids, status), function calls and their outputs (40 % of turns call a tool), with
pseudo-English text (``datagen.text_pool``). LangChain messages: human, AI (with response
metadata and usage), AI tool calls with their ``ToolMessage``. Both sides are loaded through
their own public API (batches of 100, untimed), and the bench checks that both return equal
items / messages before timing. 100 other sessions of 20 items sit beside the big one.

Rows marked "info" time the store's own call under the integration (``store.get_messages``
of the same 50 messages; ``store.add_messages`` of the same row), so the integration's share
shows. PostgreSQL: a database ``sk_bench_integ_<pid>`` is created on
``$SESSIONKEEPER_BENCH_PG_URL`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``)
and dropped at the end, also on failure. Exit status 1 if a target fails, 2 if a baseline
package is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib.util
import json
import os
import platform
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# bench/ holds scripts named like installed packages (langgraph.py): keep the folder last on
# the import path, so that only our helper modules (harness, datagen) come from it.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.append(str(HERE))

import datagen  # noqa: E402
import harness  # noqa: E402

PG_ADMIN = os.environ.get(
    "SESSIONKEEPER_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
INSTALL = ".venv/bin/pip install 'openai-agents[sqlalchemy]' langchain-postgres 'psycopg[binary]'"
# module -> the package that provides it, per part of the bench
NEEDS = {
    "sqlite": {"agents": "openai-agents"},
    "postgresql": {
        "agents": "openai-agents",
        "sqlalchemy": "openai-agents[sqlalchemy]",
        "asyncpg": "openai-agents[sqlalchemy]",
        "langchain_core": "langchain-core",
        "langchain_postgres": "langchain-postgres",
        "psycopg": "psycopg[binary]",
    },
}
SNAPSHOT_ENV = "SESSIONKEEPER_BENCH_SNAPSHOT"
TOOLS = ("search_docs", "get_weather", "lookup_order", "run_sql", "fetch_url")
SIZES: dict[str, dict[str, int]] = {
    # items in the big session; other sessions x items; calls per side (append, last 50,
    # LangChain reads); LangChain rounds (= calls: each call its own block, after a
    # gc.collect(), so neither side collects the other's garbage nor runs warm); warm-up calls
    "full": dict(
        big=10_000,
        others=100,
        other_items=20,
        append_n=400,
        read_n=400,
        lc_n=30,
        lc_rounds=30,
        warmup=20,
    ),
    "quick": dict(
        big=10_000,
        others=10,
        other_items=20,
        append_n=100,
        read_n=100,
        lc_n=10,
        lc_rounds=10,
        warmup=5,
    ),
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def missing(dbs: list[str]) -> list[str]:
    """The packages a part of this bench needs that are not installed."""
    out: list[str] = []
    for db in dbs:
        for module, package in NEEDS[db].items():
            if importlib.util.find_spec(module) is None and package not in out:
                out.append(package)
    return out


# ── data ───────────────────────────────────────────────────────────────────


@functools.cache
def _pool() -> list[str]:
    return datagen.text_pool()


class Text:
    """Pseudo-English of a given length from the bench's deterministic sentence pool."""

    def __init__(self, seed: int) -> None:
        self.pool = _pool()
        self.rng = random.Random(seed)

    def __call__(self, lo: int, hi: int) -> str:
        want = self.rng.randint(lo, hi)
        out: list[str] = []
        size = 0
        while size < want:
            sentence = self.rng.choice(self.pool)
            out.append(sentence)
            size += len(sentence) + 1
        return " ".join(out)[:want].rstrip() + "."

    def hex(self, n: int) -> str:
        return f"{self.rng.getrandbits(4 * n):0{n}x}"


def sdk_items(n: int, seed: int) -> list[dict[str, Any]]:
    """Input items as an SDK run stores them (``to_input_item`` of the model's output)."""
    t = Text(seed)
    items: list[dict[str, Any]] = []
    while len(items) < n:
        items.append({"role": "user", "content": t(40, 400)})
        if t.rng.random() < 0.4:
            call_id = f"call_{t.hex(24)}"
            args = {"query": t(10, 60), "limit": t.rng.randint(1, 10)}
            items.append(
                {
                    "arguments": json.dumps(args),
                    "call_id": call_id,
                    "name": t.rng.choice(TOOLS),
                    "type": "function_call",
                    "id": f"fc_{t.hex(48)}",
                    "status": "completed",
                }
            )
            results = [{"title": t(10, 40), "snippet": t(60, 200)} for _ in range(3)]
            items.append(
                {
                    "call_id": call_id,
                    "output": json.dumps({"results": results}),
                    "type": "function_call_output",
                }
            )
        items.append(
            {
                "id": f"msg_{t.hex(48)}",
                "content": [
                    {
                        "annotations": [],
                        "text": t(150, 1500),
                        "type": "output_text",
                        "logprobs": [],
                    }
                ],
                "role": "assistant",
                "status": "completed",
                "type": "message",
            }
        )
    return items[:n]


def lc_messages(n: int, seed: int) -> list[Any]:
    """LangChain messages of a chat with tools, as a chat model and tools produce them."""
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

    t = Text(seed)
    out: list[Any] = [SystemMessage(content="You are a helpful assistant. " + t(40, 200))]
    usage = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    while len(out) < n:
        out.append(HumanMessage(content=t(40, 400), id=str(uuid.UUID(int=t.rng.getrandbits(128)))))
        meta = {"model_name": "gpt-4.1-2025-04-14", "finish_reason": "stop"}
        if t.rng.random() < 0.4:
            call_id = f"call_{t.hex(24)}"
            call = {"name": t.rng.choice(TOOLS), "args": {"query": t(10, 60)}, "id": call_id}
            out.append(
                AIMessage(
                    content="",
                    tool_calls=[call],
                    id=f"run-{t.hex(32)}",
                    response_metadata={**meta, "finish_reason": "tool_calls"},
                    usage_metadata={**usage, "input_tokens": 812, "total_tokens": 835},
                )
            )
            out.append(ToolMessage(content=t(100, 600), tool_call_id=call_id, name=call["name"]))
        out.append(
            AIMessage(
                content=t(150, 1500),
                id=f"run-{t.hex(32)}",
                response_metadata=meta,
                usage_metadata={"input_tokens": 900, "output_tokens": 210, "total_tokens": 1110},
            )
        )
    return out[:n]


async def load(add: Callable[[list[Any]], Awaitable[None]], items: list[Any]) -> float:
    t0 = time.perf_counter()
    for i in range(0, len(items), 100):
        await add(items[i : i + 100])
    return time.perf_counter() - t0


class Cycle:
    """The next item of a list, round and round (the append scenarios' items)."""

    def __init__(self, items: list[Any]) -> None:
        self.items = items
        self.i = 0

    def __call__(self) -> Any:
        item = self.items[self.i % len(self.items)]
        self.i += 1
        return item


# ── the comparisons ────────────────────────────────────────────────────────


def result(
    scenario: str,
    db: str,
    got: dict[str, list[float]],
    ours: str,
    theirs: str,
    target: Any,
    *,
    labels: tuple[str, str],
    note: str = "",
) -> Any:
    return harness.from_samples(
        scenario,
        db,
        got[ours],
        got[theirs],
        target,
        store_label=labels[0],
        base_label=labels[1],
        note=note,
    )


async def sdk_compare(
    db: str,
    ours_session: Any,
    theirs_session: Any,
    store: Any,
    big_id: str,
    append_ids: tuple[str, str],
    sizes: dict[str, int],
    target: float,
    theirs_name: str,
) -> list[Any]:
    """Append one item and read the last 50, ours against the SDK's store."""
    from sessionkeeper.integrations.openai_agents import SessionkeeperSession, to_row

    ours_big, theirs_big = ours_session(big_id), theirs_session(big_id)
    ours_app, theirs_app = ours_session(append_ids[0]), theirs_session(append_ids[1])
    mine, their = await ours_big.get_items(limit=50), await theirs_big.get_items(limit=50)
    if not (len(mine) == 50 and mine == their):
        raise AssertionError(f"{db}: the two sides' last 50 items differ")

    append_items = sdk_items(500, seed=99)
    nxt_ours, nxt_theirs, nxt_store = Cycle(append_items), Cycle(append_items), Cycle(append_items)
    store_app = f"{append_ids[0]}-store"
    assert isinstance(ours_app, SessionkeeperSession)
    await ours_session(store_app).add_items([append_items[0]])  # creates the session

    async def ours_append() -> None:
        await ours_app.add_items([nxt_ours()])

    async def theirs_append() -> None:
        await theirs_app.add_items([nxt_theirs()])

    async def store_append() -> None:  # info: the store call under add_items
        await store.add_messages(store_app, [to_row(store, nxt_store())])

    log(f"{db}: append, {sizes['append_n']} calls per side")
    got = await harness.compare_many(
        {"ours": ours_append, "theirs": theirs_append, "store": store_append},
        n=sizes["append_n"],
        warmup=sizes["warmup"],
    )
    labels = ("SessionkeeperSession", theirs_name)
    out = [
        result(
            "append 1 item (1 commit)",
            db,
            got,
            "ours",
            "theirs",
            harness.Target("ratio_max", target),
            labels=labels,
        ),
        result(
            "  info: store.add_messages, same row",
            db,
            got,
            "store",
            "theirs",
            harness.Target("report"),
            labels=("Store", theirs_name),
        ),
    ]

    async def ours_read() -> None:
        assert len(await ours_big.get_items(limit=50)) == 50

    async def theirs_read() -> None:
        assert len(await theirs_big.get_items(limit=50)) == 50

    async def store_read() -> None:  # info: the store call under get_items
        await store.get_messages(big_id, last=50)

    log(f"{db}: last 50 of {sizes['big']:,}, {sizes['read_n']} calls per side")
    got = await harness.compare_many(
        {"ours": ours_read, "theirs": theirs_read, "store": store_read},
        n=sizes["read_n"],
        warmup=sizes["warmup"],
    )
    out += [
        result(
            f"last 50 of {sizes['big']:,} items",
            db,
            got,
            "ours",
            "theirs",
            harness.Target("ratio_max", target),
            labels=labels,
        ),
        result(
            "  info: store.get_messages(last=50)",
            db,
            got,
            "store",
            "theirs",
            harness.Target("report"),
            labels=("Store", theirs_name),
        ),
    ]
    return out


async def load_sdk_sides(
    db: str, ours_session: Any, theirs_session: Any, sizes: dict[str, int], big_id: str
) -> dict[str, float]:
    items = sdk_items(sizes["big"], seed=1)
    log(f"{db}: loading {sizes['big']:,} items into each side's big session (batches of 100)")
    times = {
        "ours_load_s": await load(ours_session(big_id).add_items, items),
        "theirs_load_s": await load(theirs_session(big_id).add_items, items),
    }
    for k in range(sizes["others"]):
        other = sdk_items(sizes["other_items"], seed=1000 + k)
        await ours_session(f"other-{k}").add_items(other)
        await theirs_session(f"other-{k}").add_items(other)
    return {k: round(v, 2) for k, v in times.items()}


async def bench_sqlite(sizes: dict[str, int], root: Path) -> dict[str, Any]:
    from agents import SQLiteSession

    from sessionkeeper import open_store
    from sessionkeeper.integrations.openai_agents import SessionkeeperSession

    load_start = os.getloadavg()
    ours_db, theirs_db = root / "sessionkeeper.db", root / "sdk.db"
    store = await open_store(f"sqlite:///{ours_db}")
    theirs_open: list[Any] = []

    def ours_session(sid: str) -> SessionkeeperSession:
        return SessionkeeperSession(sid, store=store, agent_id="bench")

    def theirs_session(sid: str) -> SQLiteSession:
        session = SQLiteSession(sid, theirs_db)
        theirs_open.append(session)
        return session

    try:
        loads = await load_sdk_sides("sqlite", ours_session, theirs_session, sizes, "big")
        pragmas = {}
        for name, path in (("ours", ours_db), ("theirs", theirs_db)):
            conn = sqlite3.connect(path)
            pragmas[name] = conn.execute("PRAGMA journal_mode").fetchone()[0]
            conn.close()
        results = await sdk_compare(
            "sqlite",
            ours_session,
            theirs_session,
            store,
            "big",
            ("append-ours", "append-theirs"),
            sizes,
            1.0,
            "SQLiteSession",
        )
    finally:
        for session in theirs_open:
            session.close()
        await store.close()
    return {
        "results": results,
        "load_s": loads,
        "journal_mode": pragmas,
        "files": {"ours": str(ours_db), "theirs": str(theirs_db)},
        "load_average": {"start": load_start, "end": os.getloadavg()},
    }


async def bench_langchain(sizes: dict[str, int], url: str, store: Any) -> dict[str, Any]:
    import psycopg
    from langchain_postgres import PostgresChatMessageHistory

    from sessionkeeper.integrations.langchain import SessionkeeperChatMessageHistory

    table = "langchain_chat_history"
    aconn = await psycopg.AsyncConnection.connect(url)
    conn = psycopg.connect(url)
    try:
        await PostgresChatMessageHistory.acreate_tables(aconn, table)
        sid = str(uuid.UUID(int=random.Random(5).getrandbits(128)))
        messages = lc_messages(sizes["big"], seed=2)
        theirs = PostgresChatMessageHistory(table, sid, async_connection=aconn)
        theirs_sync = PostgresChatMessageHistory(table, sid, sync_connection=conn)
        ours_all = SessionkeeperChatMessageHistory(sid, store=store, agent_id="bench")
        ours = SessionkeeperChatMessageHistory(sid, store=store, agent_id="bench", limit=50)
        log(f"postgresql: loading {sizes['big']:,} LangChain messages into each side")
        loads = {
            "ours_load_s": round(await load(ours_all.aadd_messages, messages), 2),
            "theirs_load_s": round(await load(theirs.aadd_messages, messages), 2),
        }
        for k in range(sizes["others"]):
            other_id = str(uuid.UUID(int=random.Random(100 + k).getrandbits(128)))
            other = lc_messages(sizes["other_items"], seed=3000 + k)
            await SessionkeeperChatMessageHistory(other_id, store=store).aadd_messages(other)
            await PostgresChatMessageHistory(table, other_id, async_connection=aconn).aadd_messages(
                other
            )
        await aconn.execute(f"ANALYZE {table}")
        await aconn.commit()
        mine, their = await ours.aget_messages(), (await theirs.aget_messages())[-50:]
        if not (len(mine) == 50 and mine == their and ours.messages == theirs_sync.messages[-50:]):
            raise AssertionError("langchain: the two sides' last 50 messages differ")

        async def ours_read() -> None:
            assert len(await ours.aget_messages()) == 50

        async def theirs_read() -> None:
            assert len((await theirs.aget_messages())[-50:]) == 50

        async def ours_read_sync() -> None:
            assert len(ours.messages) == 50

        async def theirs_read_sync() -> None:
            assert len(theirs_sync.messages[-50:]) == 50

        labels = ("SessionkeeperChatMessageHistory(limit=50)", "PostgresChatMessageHistory")
        out = []
        for name, a, b in (
            ("aget_messages", ours_read, theirs_read),
            ("messages (blocking)", ours_read_sync, theirs_read_sync),
        ):
            log(f"postgresql: LangChain {name}, {sizes['lc_n']} calls per side")
            got = await harness.compare_many(
                {"ours": a, "theirs": b},
                n=sizes["lc_n"],
                warmup=max(2, sizes["warmup"] // 5),
                rounds=sizes["lc_rounds"],
            )
            out.append(
                result(
                    f"LangChain last 50 of {sizes['big']:,}, {name}",
                    "postgresql",
                    got,
                    "ours",
                    "theirs",
                    harness.Target("ratio_max", 0.01),
                    labels=labels,
                    note="" if name != "aget_messages" else "theirs: fetch all, then [-50:]",
                )
            )
        return {"results": out, "load_s": loads}
    finally:
        await aconn.close()
        conn.close()


async def bench_pg(sizes: dict[str, int]) -> dict[str, Any]:
    import asyncpg
    from agents.extensions.memory import SQLAlchemySession
    from sqlalchemy.engine import make_url
    from sqlalchemy.ext.asyncio import create_async_engine

    from sessionkeeper import open_store
    from sessionkeeper.integrations.openai_agents import SessionkeeperSession

    load_start = os.getloadavg()
    name = f"sk_bench_integ_{os.getpid()}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    base = make_url(PG_ADMIN).set(database=name)
    url = base.render_as_string(hide_password=False)
    sa_url = base.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    try:
        store = await open_store(url)
        engine = create_async_engine(sa_url)
        try:

            def ours_session(sid: str) -> SessionkeeperSession:
                return SessionkeeperSession(sid, store=store, agent_id="bench")

            def theirs_session(sid: str) -> SQLAlchemySession:
                return SQLAlchemySession(sid, engine=engine, create_tables=True)

            loads = await load_sdk_sides("postgresql", ours_session, theirs_session, sizes, "big")
            conn = await asyncpg.connect(url)
            try:
                await conn.execute("ANALYZE")
                version = await conn.fetchval("SHOW server_version")
            finally:
                await conn.close()
            results = await sdk_compare(
                "postgresql",
                ours_session,
                theirs_session,
                store,
                "big",
                ("append-ours", "append-theirs"),
                sizes,
                0.4,
                "SQLAlchemySession",
            )
            lc = await bench_langchain(sizes, url, store)
        finally:
            await engine.dispose()
            await store.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return {
        "results": results + lc["results"],
        "load_s": {"sdk": loads, "langchain": lc["load_s"]},
        "server_version": version,
        "database": name,
        "load_average": {"start": load_start, "end": os.getloadavg()},
    }


# ── running ────────────────────────────────────────────────────────────────


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
        return subprocess.run([sys.executable, str(Path(__file__)), *argv], env=env).returncode


def environment() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    import sessionkeeper

    def out(*cmd: str) -> str:
        try:
            return subprocess.run(cmd, cwd=HERE, capture_output=True, text=True).stdout.strip()
        except OSError:
            return ""

    versions = {}
    for package in (
        "openai-agents",
        "sqlalchemy",
        "asyncpg",
        "langchain-core",
        "langchain-postgres",
        "psycopg",
    ):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    snapshot = os.environ.get(SNAPSHOT_ENV)
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "src": f"snapshot of {snapshot}" if snapshot else "working tree",
        "sessionkeeper_path": str(Path(sessionkeeper.__file__).parent),
        "git_commit": out("git", "rev-parse", "--short", "HEAD"),
        "git_dirty_src": bool(out("git", "status", "--porcelain", "--", "../src")),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "versions": versions,
        "nproc": os.cpu_count(),
        "uname_r": platform.release(),
    }


async def amain(args: argparse.Namespace, dbs: list[str]) -> int:
    sizes = SIZES[args.size]
    env = environment()
    env["load_average_start"] = os.getloadavg()
    log(f"load average {env['load_average_start']}; src: {env['src']}")
    found: dict[str, Any] = {"env": env, "sizes": sizes}
    results: list[Any] = []
    if "sqlite" in dbs:
        with tempfile.TemporaryDirectory(dir=HERE, prefix="sk_integ_") as tmp:
            found["sqlite"] = await bench_sqlite(sizes, Path(tmp))
        results += found["sqlite"]["results"]
    if "postgresql" in dbs:
        found["postgresql"] = await bench_pg(sizes)
        results += found["postgresql"]["results"]
    env["load_average_end"] = os.getloadavg()
    print(harness.table(results))
    for db in dbs:
        la = found[db]["load_average"]
        print(
            f"{db}: load average {la['start'][0]:.2f} at start, {la['end'][0]:.2f} at end; "
            f"loads (s) {found[db]['load_s']}"
        )
    for part in ("sqlite", "postgresql"):
        if part in found:
            found[part]["results"] = [r.to_json() for r in found[part]["results"]]
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"integrations-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(found, indent=2, default=str))
    print(path)
    return 0 if all(r.passed is not False for r in results) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument(
        "--size", choices=sorted(SIZES), default="full", help="quick: fewer calls (a smoke run)"
    )
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--snapshot", metavar="REV", help="benchmark src/ as committed at REV")
    args = parser.parse_args()
    if args.snapshot and not os.environ.get(SNAPSHOT_ENV):
        return _run_snapshot(args.snapshot, sys.argv[1:])
    dbs = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    absent = missing(dbs)
    if absent:
        print(
            f"bench/integrations.py needs the frameworks' own stores as baselines; missing: "
            f"{', '.join(absent)}.\nInstall them (bench-only, not sessionkeeper dependencies) "
            f"with:\n    {INSTALL}",
            file=sys.stderr,
        )
        return 2
    return asyncio.run(amain(args, dbs))


if __name__ == "__main__":
    sys.exit(main())

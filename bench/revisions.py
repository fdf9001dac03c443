#!/usr/bin/env python
"""Two revisions of src/ in one run: append and rare-word search, the working tree against REV.

    .venv/bin/python bench/revisions.py --against 227ff99            # both databases
    .venv/bin/python bench/revisions.py --against HEAD~3 --db sqlite --rounds 5

Each measurement is a fresh subprocess with one revision's src/ first on PYTHONPATH, using
only the public API every revision has (``Store.open``, ``create_session``, ``add_message``,
``search_messages``), on a database of its own (each revision migrates its own schema). The
two revisions alternate round by round (REV, tree, tree, REV, …), so drift on the machine
lands on both; the figure is the median over rounds of each round's median, and the ratio
is tree / REV (below 1.0: the working tree is faster).

- append: ``add_message`` of one chat turn into one session, one commit each (APPEND_N after
  a warm-up).
- search: ``search_messages`` of a rare word (3 hits) among SEARCH_CORPUS messages written
  through the store itself (so each revision indexes them its own way).
- last50: ``get_messages(sid, last=50)`` of a session of SEARCH_CORPUS messages.
- list: ``list_sessions(agent_id=…)``, the first page (20 + total) of one agent's 200
  sessions among LIST_SESSIONS.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
APPEND_N, APPEND_WARMUP = 300, 30
SEARCH_CORPUS, SEARCH_N = 3_000, 200
LIST_SESSIONS = 2_000
RARE = "zyxquorbin"

# Run in the subprocess: argv = kind, url. Prints {"median_us": …}.
CHILD = r"""
import asyncio, json, random, statistics, sys, time
from sessionkeeper import Store

TEXT = ("Could you summarise the deployment checklist we discussed yesterday, including the "
        "rollback steps and who owns each item?")
WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike "
         "november oscar papa quebec romeo sierra tango uniform victor whiskey").split()

async def main(kind, url, n, warmup, corpus, rare):
    store = await Store.open(url)
    try:
        s = await store.create_session()
        times = []
        if kind == "append":
            for i in range(warmup + n):
                t = time.perf_counter()
                await store.add_message(s.session_id, "user", TEXT)
                if i >= warmup:
                    times.append(time.perf_counter() - t)
        elif kind == "list":
            for i in range(corpus):
                await store.create_session(agent_id=f"a{i % 10}")
            for i in range(20 + n):
                t = time.perf_counter()
                await store.list_sessions(agent_id="a3")
                if i >= 20:
                    times.append(time.perf_counter() - t)
        else:
            rnd = random.Random(7)
            batch = []
            for i in range(corpus):
                words = rnd.choices(WORDS, k=30)
                if i % (corpus // 3) == 1:
                    words[15] = rare
                batch.append({"role": "user", "content": " ".join(words)})
                if len(batch) == 500:
                    await store.add_messages(s.session_id, batch)
                    batch = []
            if batch:
                await store.add_messages(s.session_id, batch)
            if kind == "search":
                assert len(await store.search_messages(rare)) == 3
            for i in range(20 + n):
                t = time.perf_counter()
                if kind == "search":
                    await store.search_messages(rare)
                else:
                    await store.get_messages(s.session_id, last=50)
                if i >= 20:
                    times.append(time.perf_counter() - t)
        print(json.dumps({"median_us": statistics.median(times) * 1e6}))
    finally:
        await store.close()

kind, url = sys.argv[1], sys.argv[2]
n, warmup, corpus, rare = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
asyncio.run(main(kind, url, n, warmup, corpus, rare))
"""


def export(rev: str, into: Path) -> Path:
    commit = subprocess.run(
        ["git", "rev-parse", "--verify", f"{rev}^{{commit}}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    archive = subprocess.run(
        ["git", "archive", commit, "src"], cwd=REPO, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src"


def pg_database(admin_url: str, name: str, *, drop: bool = False) -> str:
    import asyncio

    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            if not drop:
                await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(run())
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def measure(src: Path, kind: str, db: str, tmp: Path, pg_url: str, tag: str) -> float:
    if db == "sqlite":
        url = f"sqlite:///{tmp / f'{tag}.db'}"
    else:
        url = pg_database(pg_url, f"sk_bench_rev_{os.getpid()}_{tag}")
    try:
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                CHILD,
                kind,
                url,
                str(APPEND_N if kind == "append" else SEARCH_N),
                str(APPEND_WARMUP),
                str(LIST_SESSIONS if kind == "list" else SEARCH_CORPUS),
                RARE,
            ],
            env={**os.environ, "PYTHONPATH": str(src)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return float(json.loads(out.strip().splitlines()[-1])["median_us"])
    finally:
        if db == "postgresql":
            pg_database(pg_url, f"sk_bench_rev_{os.getpid()}_{tag}", drop=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--against", required=True, metavar="REV")
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--only", default="append,search,last50,list")
    args = parser.parse_args()
    pg_url = os.environ.get("SESSIONKEEPER_BENCH_PG_URL", DEFAULT_PG_URL)
    dbs = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    kinds = [k.strip() for k in args.only.split(",") if k.strip()]
    with tempfile.TemporaryDirectory(prefix="sk_rev_", dir=HERE) as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "rev").mkdir()
        sides = {"rev": export(args.against, tmp / "rev"), "tree": REPO / "src"}
        for db in dbs:
            for kind in kinds:
                got: dict[str, list[float]] = {"rev": [], "tree": []}
                for r in range(args.rounds):
                    order = ("rev", "tree") if r % 2 == 0 else ("tree", "rev")
                    for side in order:
                        tag = f"{kind}_{side}_{r}"
                        got[side].append(measure(sides[side], kind, db, tmp, pg_url, tag))
                rev_us, tree_us = statistics.median(got["rev"]), statistics.median(got["tree"])
                print(
                    f"{kind:7} {db:10} {args.against}: {rev_us:8.0f} us   tree: "
                    f"{tree_us:8.0f} us   ratio {tree_us / rev_us:.3f}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())

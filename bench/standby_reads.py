#!/usr/bin/env python
"""Standby reads (issue 18): reads served by a streaming standby against the same reads on
the primary, same load, same run. Target: standby ≤ 1.1× primary.

    .venv/bin/python bench/standby_reads.py                  # ~1 min
    .venv/bin/python bench/standby_reads.py --rounds 7 --tasks 8

A private primary and a hot standby (``tests/pgreplica.py``: pg_basebackup -R) on this
machine; one session of 1,000 messages. Two stores: one reading from the primary (its plain
URL), one with ``read_url=`` the standby. Each round times ``--tasks`` concurrent asyncio
tasks each doing ``--reads`` reads (``get_messages(last=50)``, ``get_session``, a listing
page, a search: in turn) on one store, then on the other (alternating which goes first);
reported per read in ms, medians over the rounds, and the ratio of the medians. The standby
store's route counts prove where its reads went (all on the standby). A third line, for
information: the standby store with a write before every read (read-your-writes: the read
first asks the primary for its WAL position and waits for the standby to replay it).

Both servers run on this machine and share its cores, so the ratio shows the store's own
cost of routing, not the relief a standby on another machine gives the primary.
"""

# ruff: noqa: E402 - the import path is fixed first (see below)
from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.append(str(HERE.parent / "tests"))  # the primary + standby pair lives beside the tests

import argparse
import asyncio
import json
import os
import statistics
import time
from typing import Any

from pgreplica import PgReplica
from sessionkeeper import Store

TARGET = 1.1


async def reads(store: Store, sid: str, n: int, write_first: bool) -> None:
    for i in range(n):
        if write_first:
            await store.add_message(sid, "user", f"write before read {i}")
        kind = i % 4
        if kind == 0:
            await store.get_messages(sid, last=50)
        elif kind == 1:
            await store.get_session(sid)
        elif kind == 2:
            await store.list_sessions(agent_id="bench")
        else:
            await store.search_messages("wombat", session_id=sid, limit=20)


async def timed(store: Store, sid: str, tasks: int, n: int, write_first: bool = False) -> float:
    """ms per read (wall time of the whole load ÷ reads)."""
    started = time.perf_counter()
    await asyncio.gather(*(reads(store, sid, n, write_first) for _ in range(tasks)))
    return (time.perf_counter() - started) * 1000 / (tasks * n)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    pair = PgReplica("bench").start()
    try:
        setup = await Store.open(pair.url)
        sid = (await setup.create_session(agent_id="bench", title="standby bench")).session_id
        for start in range(0, 1000, 100):
            await setup.add_messages(
                sid,
                [
                    {"role": "user", "content": f"wombat {n} " + "text " * 20}
                    for n in range(start, start + 100)
                ],
            )
        await setup.close()
        pair.standby.wait_caught_up()
        primary = await Store.open(pair.url)
        standby = await Store.open(pair.url, read_url=pair.read_url)
        writes = await Store.open(pair.url, read_url=pair.read_url)
        wsid = (await writes.create_session(agent_id="bench-w")).session_id
        for s in (primary, standby):  # warm: connections open, plans cached
            await timed(s, sid, args.tasks, 8)
        on_primary: list[float] = []
        on_standby: list[float] = []
        after_write: list[float] = []
        for r in range(args.rounds):
            order = [(primary, on_primary), (standby, on_standby)]
            for store, out in order if r % 2 == 0 else order[::-1]:
                out.append(await timed(store, sid, args.tasks, args.reads))
            after_write.append(await timed(writes, wsid, args.tasks, args.reads // 4, True))
        route = standby._backend._reads  # type: ignore[attr-defined]
        counted = {"on_standby": route.on_standby, "on_primary": route.on_primary}
        wroute = writes._backend._reads  # type: ignore[attr-defined]
        wcounted = {"on_standby": wroute.on_standby, "on_primary": wroute.on_primary}
        for s in (primary, standby, writes):
            await s.close()
    finally:
        pair.stop()
    p, s = statistics.median(on_primary), statistics.median(on_standby)
    return {
        "scenario": "standby_reads",
        "ms_per_read_primary": round(p, 4),
        "ms_per_read_standby": round(s, 4),
        "ratio": round(s / p, 3),
        "target": TARGET,
        "ok": s / p <= TARGET,
        "rounds_primary": on_primary,
        "rounds_standby": on_standby,
        "standby_store_reads": counted,
        "info_write_then_read_ms_per_pair": round(statistics.median(after_write), 4),
        "info_write_then_read_route": wcounted,
        "tasks": args.tasks,
        "reads_per_task": args.reads,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--reads", type=int, default=200)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    load_start = os.getloadavg()
    result = asyncio.run(main_async(args))
    result["load_start"], result["load_end"] = load_start, os.getloadavg()
    print(json.dumps(result, indent=1))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"standby-reads-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=1))
    print(f"written {path}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

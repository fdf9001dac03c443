"""Appends from several processes into one session (the ``processes`` scenario).

Each worker process opens its own Store (or its own bare connection), warms up, says it is
ready, then runs rounds on command: every round starts at an agreed ``perf_counter`` instant
(CLOCK_MONOTONIC, the same clock in every process on Linux), so the workers of one side
start together. The parent times a round from the earliest start to the latest end.
Store workers and bare workers stay alive side by side; rounds alternate between them.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def worker(
    db: str, target: str, url: str, side: str, sid: str, tokens: int, cmd: Any, out: Any
) -> None:
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    try:
        asyncio.run(_worker(db, target, url, side, sid, tokens, cmd, out))
    except BaseException as exc:  # reported to the parent, which fails the scenario
        out.put(("error", os.getpid(), repr(exc)))
        raise


async def _worker(
    db: str, target: str, url: str, side: str, sid: str, tokens: int, cmd: Any, out: Any
) -> None:
    import datagen

    if side == "store":
        from sessionkeeper.store.core import Store

        store = await Store.open(url)

        async def op() -> None:
            await store.add_message(sid, "user", datagen.APPEND_TEXT)

        async def close() -> None:
            await store.close()
    else:
        import bare

        conn = await (bare.PgBare if db == "postgresql" else bare.SqliteBare).connect(target)

        async def op() -> None:
            await conn.append(sid, tokens)

        close = conn.close
    try:
        for _ in range(5):
            await op()
        out.put(("ready", os.getpid(), None))
        while True:
            msg = await asyncio.to_thread(cmd.get)
            if msg is None:
                return
            k, start_at = msg
            await asyncio.sleep(max(0.0, start_at - time.perf_counter()))
            lat: list[float] = []
            clock = time.perf_counter
            t0 = clock()
            for _ in range(k):
                t = clock()
                await op()
                lat.append(clock() - t)
            out.put(("done", os.getpid(), (t0, clock(), lat)))
    finally:
        await close()


class Side:
    def __init__(self, ctx: Any, side: str, sid: str, n: int, tokens: int) -> None:
        self.mp = mp.get_context("spawn")
        self.out = self.mp.Queue()
        self.cmds = [self.mp.Queue() for _ in range(n)]
        self.procs = [
            self.mp.Process(
                target=worker,
                args=(ctx.db, ctx.target, ctx.url, side, sid, tokens, q, self.out),
                daemon=True,
            )
            for q in self.cmds
        ]

    def start(self) -> None:
        for p in self.procs:
            p.start()

    def _collect(self, kind: str, timeout: float = 120.0) -> list[Any]:
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < len(self.procs):
            what, pid, value = self.out.get(timeout=max(0.1, deadline - time.monotonic()))
            if what == "error":
                raise RuntimeError(f"worker {pid} failed: {value}")
            assert what == kind, (what, kind)
            got.append(value)
        return got

    def ready(self) -> None:
        self._collect("ready")

    def run(self, k: int) -> tuple[float, list[float]]:
        """(wall seconds per append over all workers, per-call latencies)."""
        start_at = time.perf_counter() + 0.05
        for q in self.cmds:
            q.put((k, start_at))
        got = self._collect("done")
        wall = max(e for _, e, _ in got) - min(s for s, _, _ in got)
        lat = [x for _, _, lats in got for x in lats]
        return wall / (k * len(self.procs)), lat

    def stop(self) -> None:
        for q in self.cmds:
            q.put(None)
        for p in self.procs:
            p.join(timeout=30)
            if p.is_alive():
                p.terminate()


def run(ctx: Any, store_sid: str, base_sid: str, tokens: int) -> dict[str, Any]:
    n, k, rounds = ctx.scale["proc_workers"], ctx.scale["proc_per_worker"], ctx.scale["proc_rounds"]
    sides = {
        "store": Side(ctx, "store", store_sid, n, tokens),
        "base": Side(ctx, "base", base_sid, n, tokens),
    }
    try:
        for side in sides.values():
            side.start()
        for side in sides.values():
            side.ready()
        per_op: dict[str, list[float]] = {"store": [], "base": []}
        lat: dict[str, list[float]] = {"store": [], "base": []}
        names = ["store", "base"]
        for name in names:  # one warm round each (first contention, page cache)
            sides[name].run(max(2, k // 5))
        for r in range(rounds):
            for name in names if r % 2 == 0 else reversed(names):
                t, latencies = sides[name].run(k)
                per_op[name].append(t)
                lat[name].extend(latencies)
    finally:
        for side in sides.values():
            side.stop()
    return {
        "per_op": per_op,
        "lat": lat,
        "median": {name: statistics.median(v) for name, v in per_op.items()},
    }

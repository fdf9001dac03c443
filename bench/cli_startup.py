"""CLI start-up: wall time of ``sessionkeeper --db URL --help`` and ``… list`` subprocesses.

``list`` opens the store and reads one page of the loaded corpus, so it includes imports,
connecting and the query: what a user waits for. Targets (issue 7): <= 0.3 s on SQLite,
<= 0.4 s on PostgreSQL, median of ``n`` runs after one warm run (page cache, .pyc files).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from harness import Result, Target, pct, skipped

LIST_TARGET_S = {"sqlite": 0.3, "postgresql": 0.4}


def _exe() -> Path | None:
    exe = Path(sys.executable).parent / "sessionkeeper"
    return exe if exe.exists() else None


def run(db: str, url: str, n: int = 9) -> list[Result]:
    exe = _exe()
    if exe is None:
        return [skipped("cli list", db, "`sessionkeeper` is not in the venv's bin/")]
    env = {**os.environ, "SESSIONKEEPER_DATABASE_URL": url}
    results = []
    for args, target in (
        (["--help"], Target("report")),
        (["list"], Target("abs_max", LIST_TARGET_S[db], f"<= {LIST_TARGET_S[db]:g} s")),
    ):
        name = "cli " + " ".join(args)
        cmd = [str(exe), "--db", url, *args]
        first = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if first.returncode != 0:
            err = (first.stderr.strip().splitlines() or ["?"])[-1][:160]
            results.append(skipped(name, db, f"exit {first.returncode}: {err}", target))
            continue
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            subprocess.run(cmd, env=env, capture_output=True, check=True)
            times.append(time.perf_counter() - t0)
        results.append(
            Result(
                scenario=name,
                db=db,
                store_s=statistics.median(times),
                base_s=None,
                store_p95=pct(times, 0.95),
                n=n,
                target=target,
                note=f"`sessionkeeper --db URL {' '.join(args)}` as a subprocess, wall time, "
                f"median of {n} (min {min(times):.3f} s)",
            ).finish()
        )
    return results

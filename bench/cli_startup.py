"""CLI start-up: wall time of ``sessionkeeper --help`` and ``sessionkeeper list`` subprocesses."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from harness import Result, Target, pct, skipped

TARGET = Target("report", text="< 0.3 s (report only)")


def _exe() -> Path | None:
    exe = Path(sys.executable).parent / "sessionkeeper"
    return exe if exe.exists() else None


def run(db: str, url: str, n: int = 7) -> list[Result]:
    exe = _exe()
    if exe is None:
        return [skipped("cli-startup", db, "`sessionkeeper` is not on the venv's PATH yet", TARGET)]
    env = {**os.environ, "SESSIONKEEPER_DATABASE_URL": url}
    results = []
    for args in (["--help"], ["list"]):
        name = "cli " + " ".join(args)
        first = subprocess.run([str(exe), *args], env=env, capture_output=True, text=True)
        if first.returncode != 0:
            err = (first.stderr.strip().splitlines() or ["?"])[-1][:160]
            results.append(skipped(name, db, f"exit {first.returncode}: {err}", TARGET))
            continue
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            subprocess.run([str(exe), *args], env=env, capture_output=True, check=True)
            times.append(time.perf_counter() - t0)
        res = Result(
            scenario=name,
            db=db,
            store_s=statistics.median(times),
            base_s=None,
            store_p95=pct(times, 0.95),
            n=n,
            target=TARGET,
        ).finish()
        res.passed = None
        res.note = f"{'PASS' if res.store_s < 0.3 else 'over'} 0.3 s (report only)"
        results.append(res)
    return results

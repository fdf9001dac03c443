#!/usr/bin/env python
"""Failover under load (issue 18): the scenario of tests/test_failover.py, measured.

    .venv/bin/python bench/failover.py               # 3 rounds (~3 min), medians
    .venv/bin/python bench/failover.py --rounds 1

Each round builds a private pg_auto_failover formation (monitor + primary + synchronous
secondary on private ports, ``tests/pgformation.py``; ``scripts/ensure-pg-auto-failover.sh``
installs the packages), starts ``sessionkeeper serve`` on its multi-host URL with
``SESSIONKEEPER_DB_TIMEOUT=2``, runs eight writers with ``Idempotency-Key`` and retries,
SIGKILLs the primary node (its pg_autoctl, then its postmaster) and lets pg_auto_failover
promote the secondary (``tests/failover_load.py``). Reported per round and as medians:

- ``first_write_after_s``: from the kill to the first acknowledged write that started
  after it (the time writers wait); ``promoted_after_s``: until the monitor reports the
  new primary;
- ``503``: answers 503 (+ Retry-After) the writers retried; ``500``: any other 5xx;
- ``slowest_request_s``: the longest request (bound: timeout + 1 s = 3 s);
- ``acknowledged``, ``stored``, ``missing``, ``duplicated`` (duplicates are expected only
  from a server that ignores Idempotency-Key: ``keys_honoured``).

The process exits with 1 if a round breaks the promise (``FailoverRun.problems``). The JSON
goes to bench/results/failover-<time>.json with the load average at start and end.
"""

# ruff: noqa: E402 - the import path is fixed first (see below)
from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent / "tests"
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.append(str(TESTS))  # the formation and the scenario live beside the test

import argparse
import json
import os
import statistics
import tempfile
import time
from typing import Any

from failover_load import FailoverRun, run_failover
from pgformation import PgFormation

MEDIANS = ("first_write_after_s", "promoted_after_s", "503", "500", "slowest_request_s")


def one_round() -> FailoverRun:
    formation = PgFormation()
    try:
        formation.start()
        with tempfile.TemporaryDirectory(prefix="sk-bench-failover-") as work:
            return run_failover(formation, Path(work))
    finally:
        leftovers = formation.stop()
        if leftovers:
            print(f"warning: processes of the formation outlived stop(): {leftovers}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    load_start = os.getloadavg()
    rounds: list[dict[str, Any]] = []
    failed = False
    for n in range(args.rounds):
        run = one_round()
        figures = run.figures()
        figures["problems"] = run.problems(duplicates_count=run.keys_honoured)
        failed = failed or bool(figures["problems"])
        rounds.append(figures)
        print(f"round {n + 1}: {json.dumps(figures)}", flush=True)
    medians = {k: statistics.median(r[k] for r in rounds) for k in MEDIANS}
    totals = {k: sum(r[k] for r in rounds) for k in ("acknowledged", "missing", "duplicated")}
    result = {
        "scenario": "failover",
        "rounds": rounds,
        "medians": medians,
        "totals": totals,
        "load_start": load_start,
        "load_end": os.getloadavg(),
    }
    print(f"medians over {args.rounds} rounds: {json.dumps(medians)}; totals {totals}")
    print(f"load average: start {load_start}, end {result['load_end']}")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"failover-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=1, default=str))
    print(f"written {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Failover under load (issue 18): a real ``serve`` on a pg_auto_failover formation's
multi-host URL keeps its promise while the primary is lost and the secondary promoted.

The scenario and its checks are in ``failover_load.py`` (shared with bench/failover.py), the
formation in ``pgformation.py``. The test takes ~1 min (building the formation is most of it),
so it is marked ``failover``: ``make test`` leaves it out and ``make test-failover`` (run by
.ci/run) runs it. Without pg_autoctl it skips loudly locally and FAILS under CI=true
(scripts/ensure-pg-auto-failover.sh installs it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from failover_load import run_failover
from pgcluster import ClusterUnavailable
from pgformation import PgFormation

pytestmark = pytest.mark.failover
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")  # as conftest.py reads it


@pytest.fixture
def pg_formation() -> Iterator[PgFormation]:
    """A fresh formation, always stopped and removed; no process of it may remain."""
    try:
        formation = PgFormation()
    except ClusterUnavailable as exc:
        message = f"cannot build a pg_auto_failover formation: {exc}"
        if IN_CI:
            pytest.fail(f"{message} (CI=true: the failover test must run)", pytrace=False)
        pytest.skip(f"!!! SKIPPING THE FAILOVER TEST: {message}")
    try:
        formation.start()
        yield formation
    finally:
        leftovers = formation.stop()
    assert not leftovers, f"processes of the formation outlived stop(): {leftovers}"


def test_writes_survive_losing_the_primary(pg_formation: PgFormation, tmp_path: Path) -> None:
    run = run_failover(pg_formation, tmp_path)
    print(run.figures())  # pytest -rP shows the figures, also when all is well
    problems = run.problems(duplicates_count=run.keys_honoured)
    assert not problems, "\n- ".join(["", *problems]) + f"\n{run.report()}"
    if not run.keys_honoured and run.duplicates():
        # This server ignores Idempotency-Key (it arrives with issue 18's idempotency work):
        # a retried append that had committed is stored twice. Not a pass.
        pytest.xfail(
            f"{len(run.duplicates())} retried messages stored twice: this server ignores "
            f"Idempotency-Key ({run.figures()})"
        )

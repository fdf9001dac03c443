"""Timing and reporting shared by every scenario.

Every comparison runs the store and the baseline through the same loop (``compare``): warm-up
calls first, then alternating blocks (store, baseline, baseline, store, …) so that drift in the
machine (checkpoints, autovacuum, other tenants of the PostgreSQL server) lands on both sides.
Each call is timed on its own with ``perf_counter``; we report medians and p95.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

Op = Callable[[], Awaitable[Any]]


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank; robust enough for a few hundred samples."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def time_block(op: Op, n: int, *, collect: bool = True) -> list[float]:
    """n timed calls of ``op``; a full garbage collection first (outside the timings) unless
    ``collect`` is False (concurrent callers collect once, before their wall clock starts)."""
    if collect:
        gc.collect()
    out: list[float] = []
    clock = time.perf_counter
    for _ in range(n):
        t0 = clock()
        await op()
        out.append(clock() - t0)
    return out


async def compare_many(
    ops: dict[str, Op], *, n: int, warmup: int, rounds: int = 10
) -> dict[str, list[float]]:
    """Per-call timings of each op, n each, in rounds whose order flips every round
    (a, b, c, c, b, a, a, b, …) so that drift on the machine lands on every side."""
    for op in ops.values():
        await time_block(op, warmup)
    out: dict[str, list[float]] = {name: [] for name in ops}
    names = list(ops)
    per_round = max(1, n // rounds)
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            out[name].extend(await time_block(ops[name], per_round))
    return out


async def compare(
    store_op: Op, base_op: Op, *, n: int, warmup: int, rounds: int = 10
) -> tuple[list[float], list[float]]:
    """Per-call timings of ``store_op`` and ``base_op``, n each, interleaved in rounds."""
    got = await compare_many(
        {"store": store_op, "base": base_op}, n=n, warmup=warmup, rounds=rounds
    )
    return got["store"], got["base"]


@dataclass
class Target:
    """``kind``: "ratio_max" (ratio <= value), "ratio_min" (ratio >= value),
    "abs_max" (store median <= value seconds) or "report" (no verdict)."""

    kind: str
    value: float = 0.0
    text: str = ""

    def check(self, store_s: float, ratio: float | None) -> bool | None:
        if self.kind == "ratio_max":
            return ratio is not None and ratio <= self.value
        if self.kind == "ratio_min":
            return ratio is not None and ratio >= self.value
        if self.kind == "abs_max":
            return store_s <= self.value
        return None

    def describe(self) -> str:
        if self.text:
            return self.text
        if self.kind == "ratio_max":
            return f"<= {self.value:g}x"
        if self.kind == "ratio_min":
            return f">= {self.value:g}x"
        if self.kind == "abs_max":
            return f"p50 <= {fmt_s(self.value)}"
        return "report"


@dataclass
class Result:
    scenario: str
    db: str
    store_s: float | None  # median seconds per operation (store side)
    base_s: float | None  # median seconds per operation (baseline side)
    target: Target
    store_p95: float | None = None
    base_p95: float | None = None
    n: int = 0
    store_label: str = "store"
    base_label: str = "baseline"
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    ratio: float | None = None
    passed: bool | None = None
    skipped: bool = False

    def finish(self) -> Result:
        if self.store_s is not None and self.base_s:
            self.ratio = self.store_s / self.base_s
        if not self.skipped and self.store_s is not None:
            self.passed = self.target.check(self.store_s, self.ratio)
        return self

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["target"] = self.target.describe()
        return data


def from_samples(
    scenario: str,
    db: str,
    store: list[float],
    base: list[float],
    target: Target,
    **kwargs: Any,
) -> Result:
    return Result(
        scenario=scenario,
        db=db,
        store_s=statistics.median(store),
        base_s=statistics.median(base) if base else None,
        store_p95=pct(store, 0.95),
        base_p95=pct(base, 0.95) if base else None,
        n=len(store),
        target=target,
        **kwargs,
    ).finish()


def skipped(scenario: str, db: str, note: str, target: Target | None = None) -> Result:
    return Result(
        scenario=scenario,
        db=db,
        store_s=None,
        base_s=None,
        target=target or Target("report"),
        note=note,
        skipped=True,
    )


def fmt_s(seconds: float | None) -> str:
    if seconds is None or seconds != seconds:
        return "-"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.0f} us"


def table(results: list[Result]) -> str:
    head = ["scenario", "db", "store/op (p95)", "baseline/op (p95)", "ratio", "target", "result"]
    rows = [head]
    for r in results:
        if r.skipped:
            verdict = "SKIP"
        elif r.passed is None:
            verdict = "info"
        else:
            verdict = "PASS" if r.passed else "FAIL"
        rows.append(
            [
                r.scenario,
                r.db,
                f"{fmt_s(r.store_s)} ({fmt_s(r.store_p95)})" if r.store_s is not None else "-",
                f"{fmt_s(r.base_s)} ({fmt_s(r.base_p95)})" if r.base_s is not None else "-",
                f"{r.ratio:.3f}" if r.ratio is not None else "-",
                r.target.describe(),
                verdict,
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = []
    for i, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    notes = [f"  {r.scenario} [{r.db}]: {r.note}" for r in results if r.note]
    if notes:
        lines.append("")
        lines.append("notes:")
        lines.extend(notes)
    return "\n".join(lines)

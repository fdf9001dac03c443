#!/usr/bin/env python
"""A results JSON of ``run.py`` as a Markdown table (for bench/README.md).

.venv/bin/python bench/report.py bench/results/20261201-083616-full-sqlite.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import fmt_s  # noqa: E402


def markdown(data: dict) -> str:
    env = data["environment"]
    lines = [
        f"src: {env.get('src', '?')}; scale {data['scale']}; {data['elapsed_s']:.0f} s; "
        f"load average {env['load_average_start'][0]:.2f} at start, "
        f"{env['load_average_end'][0]:.2f} at end",
        "",
        "| scenario | db | store p50 (p95) | baseline p50 (p95) | ratio | target | result |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in data["results"]:
        if r["skipped"]:
            verdict = "SKIP"
        elif r["passed"] is None:
            verdict = "info"
        else:
            verdict = "**PASS**" if r["passed"] else "**FAIL**"
        store = f"{fmt_s(r['store_s'])} ({fmt_s(r['store_p95'])})" if r["store_s"] else "-"
        base = f"{fmt_s(r['base_s'])} ({fmt_s(r['base_p95'])})" if r["base_s"] else "-"
        ratio = f"{r['ratio']:.2f}" if r["ratio"] is not None else "-"
        target = r["target"].replace("<=", "≤").replace(">=", "≥")
        lines.append(
            f"| {r['scenario']} | {r['db']} | {store} | {base} | {ratio} | {target} | {verdict} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(markdown(json.loads(Path(name).read_text())))
        print()

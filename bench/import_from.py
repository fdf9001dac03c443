#!/usr/bin/env python
"""Import from another store: an OpenAI Agents SDK ``SQLiteSession`` database into SQLite,
against the store's own JSONL import of the same messages, same run (issue 21: "Import from
an OpenAI SQLiteSession database into SQLite: ≥ 0.5× the rate of the store's own JSONL import
of the same messages").

    .venv/bin/python bench/import_from.py                         # 1,000 × 50 items, 5 rounds
    .venv/bin/python bench/import_from.py --sessions 50 --items 20 --rounds 1   # a smoke run

The source database is written by the SDK's own ``SQLiteSession`` (``--sessions`` sessions of
``--items`` items: user and assistant messages, function calls and their outputs). The JSONL
file is what ``export`` writes of that database once imported, so both imports write the same
messages. Each round imports both into fresh SQLite files (``import --from openai-sqlite`` as
``run_foreign_import``, and ``import`` as ``run_import``), alternating which goes first;
the rate is messages per second of the whole import (reading, shaping, writing, committing).
Files live in a temporary directory under bench/ (the real disk).
"""

# ruff: noqa: E402 - the import path is fixed first (see below)
from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import tempfile
import time
from typing import Any

from sessionkeeper import Store
from sessionkeeper.transfer.export import export_sessions
from sessionkeeper.transfer.foreign import open_reader
from sessionkeeper.transfer.imports import plan_import, run_foreign_import, run_import

TARGET = 0.5


def conversation(n: int, items: int) -> list[dict[str, Any]]:
    """``items`` input items of session ``n``: turns of a question, a call, its output and an
    answer."""
    out: list[dict[str, Any]] = []
    turn = 0
    while len(out) < items:
        turn += 1
        call = f"call_{n}_{turn}"
        out += [
            {
                "role": "user",
                "content": f"Question {turn} of session {n}: "
                f"what is the status of order {n * 100 + turn}?",
            },
            {
                "type": "function_call",
                "call_id": call,
                "name": "lookup_order",
                "arguments": json.dumps({"order": n * 100 + turn}),
                "id": f"fc_{n}_{turn}",
                "status": "completed",
            },
            {
                "type": "function_call_output",
                "call_id": call,
                "output": f"order {n * 100 + turn}: shipped",
            },
            {
                "type": "message",
                "id": f"msg_{n}_{turn}",
                "role": "assistant",
                "status": "completed",
                "content": [
                    {
                        "type": "output_text",
                        "text": f"Order {n * 100 + turn} has shipped and arrives on day {turn}.",
                        "annotations": [],
                    }
                ],
            },
        ]
    return out[:items]


async def build_source(path: Path, sessions: int, items: int) -> None:
    from agents import SQLiteSession

    for n in range(sessions):
        session = SQLiteSession(f"session-{n:05d}", str(path))
        await session.add_items(conversation(n, items))  # type: ignore[arg-type]
        session.close()


async def timed_foreign(source: Path, db: Path) -> tuple[float, int]:
    store = await Store.open(f"sqlite:///{db}")
    try:
        start = time.perf_counter()
        reader = await open_reader("openai-sqlite", str(source))
        try:
            summary = await run_foreign_import(store, reader)
        finally:
            await reader.close()
        elapsed = time.perf_counter() - start
    finally:
        await store.close()
    assert not summary.failed, summary.failed[:3]
    return elapsed, summary.messages


async def timed_jsonl(jsonl: Path, db: Path) -> tuple[float, int]:
    store = await Store.open(f"sqlite:///{db}")
    try:
        start = time.perf_counter()
        summary = await run_import(store, plan_import(jsonl, "jsonl"))
        elapsed = time.perf_counter() - start
    finally:
        await store.close()
    assert not summary.failed, summary.failed[:3]
    return elapsed, summary.messages


async def main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(dir=HERE, prefix="import_from_") as tmp:
        work = Path(tmp)
        source = work / "agents.db"
        await build_source(source, args.sessions, args.items)
        jsonl = work / "same.jsonl"
        seconds, _ = await timed_foreign(source, work / "first.db")
        store = await Store.open(f"sqlite:///{work / 'first.db'}")
        try:
            with jsonl.open("w", encoding="utf-8") as handle:
                await export_sessions(store, handle)
        finally:
            await store.close()
        foreign_rates: list[float] = []
        jsonl_rates: list[float] = []
        for round_ in range(args.rounds):
            order = ("foreign", "jsonl") if round_ % 2 == 0 else ("jsonl", "foreign")
            for which in order:
                db = work / f"{which}-{round_}.db"
                if which == "foreign":
                    seconds, messages = await timed_foreign(source, db)
                    foreign_rates.append(messages / seconds)
                else:
                    seconds, messages = await timed_jsonl(jsonl, db)
                    jsonl_rates.append(messages / seconds)
                for suffix in ("", "-wal", "-shm"):
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(f"{db}{suffix}")
    foreign = statistics.median(foreign_rates)
    own = statistics.median(jsonl_rates)
    ratio = foreign / own
    verdict = "PASS" if ratio >= TARGET else "FAIL"
    total = args.sessions * args.items
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    print(f"{args.sessions} sessions x {args.items} items = {total} messages, ", end="")
    print(f"{args.rounds} rounds (medians)")
    print("| import | rate (messages/s) | rounds |")
    print("|---|---|---|")
    rounds = ", ".join(f"{r:,.0f}" for r in foreign_rates)
    print(f"| --from openai-sqlite | {foreign:,.0f} | {rounds} |")
    print(
        f"| jsonl (the store's own) | {own:,.0f} | {', '.join(f'{r:,.0f}' for r in jsonl_rates)} |"
    )
    print(f"ratio {ratio:.2f} (target >= {TARGET}): {verdict}")
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    sys.exit(asyncio.run(main(parser.parse_args())))

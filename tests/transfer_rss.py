"""Peak memory of ``export`` / ``import`` of one big session (tests/test_transfer_memory.py).

Also a script, to measure by hand::

    python tests/transfer_rss.py 200000            # SQLite files in a temp dir
    python tests/transfer_rss.py 200000 --proto    # with a module preloaded (see --help)

Each CLI run is a separate process that writes its own peak RSS (``VmHWM`` of
/proc/self/status) to a file at exit: the high-water mark of the process image after exec,
not ``ru_maxrss``, which on Linux carries the parent's size over fork + exec.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sessionkeeper.models import Message, Session
from sessionkeeper.store.core import Store

SESSION_ID = "big-session"


def message_text(i: int) -> str:
    return f"message {i}: " + "lorem ipsum dolor sit amet " * (1 + i % 7)


async def build(url: str, n: int) -> None:
    """One session of ``n`` messages (written with the import path, in chunks of 20,000
    sessions' worth of rows at a time would need an API; one list is fine in this process)."""
    start = datetime(2025, 1, 1, tzinfo=UTC)
    store = await Store.open(url)
    try:
        session = Session(
            session_id=SESSION_ID,
            agent_id="main",
            title="a big one",
            session_type="chat",
            status="active",
            metadata={"purpose": "memory test"},
            created_at=start,
            updated_at=start + timedelta(seconds=n),
            ended_at=None,
            last_message_at=start + timedelta(seconds=n),
            message_count=n,
            token_count=0,
        )
        messages = [
            Message(
                session_id=SESSION_ID,
                seq=i,
                role="user" if i % 2 else "assistant",
                content=message_text(i),
                agent_id=None,
                model=None if i % 2 else "m",
                token_count=5 + i % 7 * 6,
                metadata={"i": i} if i % 10 == 0 else {},
                created_at=start + timedelta(seconds=i),
            )
            for i in range(1, n + 1)
        ]
        await store.import_session(session, messages)
    finally:
        await store.close()


@dataclass
class Run:
    returncode: int
    peak_mib: float
    seconds: float
    stdout: str
    stderr: str


REPORT = """
import atexit, os, sys

def _report():
    with open("/proc/self/status") as status:
        peak = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    with open(os.environ["RSS_REPORT"], "w") as out:
        out.write(peak)

atexit.register(_report)
{preload}
from sessionkeeper.cli import main
sys.argv[0] = "sessionkeeper"
main()
"""


def measure(argv: list[str], env: dict[str, str], preload: str | None = None) -> Run:
    """Run ``sessionkeeper *argv`` in a child process; its peak RSS (VmHWM)."""
    code = REPORT.format(preload=f"import {preload}" if preload else "")
    began = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "peak"
        done = subprocess.run(
            [sys.executable, "-c", code, *argv],
            env={**env, "RSS_REPORT": str(report)},
            capture_output=True,
            text=True,
            timeout=600,
        )
        peak_kib = int(report.read_text()) if report.exists() else -1
    return Run(done.returncode, peak_kib / 1024, time.monotonic() - began, done.stdout, done.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("n", type=int, nargs="?", default=200_000)
    parser.add_argument(
        "--preload", help="a module imported first (e.g. a Store prototype on PYTHONPATH)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        source = f"sqlite:///{Path(tmp) / 'source.db'}"
        target = f"sqlite:///{Path(tmp) / 'target.db'}"
        began = time.monotonic()
        asyncio.run(build(source, args.n))
        print(f"built {args.n:,} messages in {time.monotonic() - began:.1f} s")
        env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONKEEPER_")}
        env["XDG_DATA_HOME"] = tmp
        dump = Path(tmp) / "big.jsonl"
        run = measure(["--db", source, "export", SESSION_ID, "-o", str(dump)], env, args.preload)
        print(f"export: rc={run.returncode} peak {run.peak_mib:.1f} MiB in {run.seconds:.1f} s")
        print(f"  {dump.stat().st_size / 2**20:.1f} MiB written {run.stderr.strip()}")
        run = measure(["--db", target, "import", str(dump)], env, args.preload)
        print(f"import: rc={run.returncode} peak {run.peak_mib:.1f} MiB in {run.seconds:.1f} s")
        print(f"  {run.stdout.strip()} {run.stderr.strip()}")
        run = measure(["--db", source, "list"], env, args.preload)
        print(f"baseline (list): peak {run.peak_mib:.1f} MiB")


if __name__ == "__main__":
    main()

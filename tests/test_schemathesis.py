"""schemathesis against a real ``sessionkeeper serve``, on SQLite and on PostgreSQL.

Every check (``--checks all``), a fixed seed and a bounded number of examples per operation, so
a run is repeatable and takes well under three minutes for both databases. The server runs
with an admin key (so ``ignored_auth`` has something to check: a request without the key must
be 401); schemathesis sends the key with every other request. The run must end with no
failure of any kind: no server error, no response outside the document, no schema violation,
no valid request refused, no invalid request accepted.

Two settings differ from schemathesis's defaults, each for a reason the document states:

- A refusal with 413 counts as rejecting invalid data (content longer than its ``maxLength``
  is 413, "nothing was stored", as documented).
- Five operations may answer 422 to a request the schema cannot tell is invalid, because
  the rule involves another value or stored data, which JSON Schema cannot express:
  ``list_sessions`` (a ``cursor`` must be one the same listing made, and not be given with
  ``offset``), ``context_window`` (``reserve`` must leave room in ``max_tokens``, and the
  system prompt must fit), ``chat_stream`` (the message must fit the context budget) and
  ``fork_session`` / ``rewind_session`` (``at_seq`` / ``to_seq`` must not be past the
  session's last message).
  Each such 422 names its field, as tests/test_api.py checks.

On failure the message carries schemathesis's summary and the end of the server's log.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from pathlib import Path

from serving import served
from sessionkeeper.store.core import Store

SEED = 20261201
MAX_EXAMPLES = 60
TIMEOUT = 170  # seconds for one database's run; both together stay under three minutes
CONFIG = """
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422",
                     "428", "429", "5xx"]

[[operations]]
include-operation-id = ["list_sessions", "context_window", "chat_stream", "fork_session",
                        "rewind_session"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "403", "404", "409",
                                                     "422", "429", "5xx"]
"""


async def _admin_key(url: str) -> str:
    store = await Store.open(url)
    try:
        _, token = await store.keys.create(admin=True, name="schemathesis")
        return token
    finally:
        await store.close()


def _summary(out: str) -> str:
    start = out.find("=== SUMMARY")
    failures = out.find("=== FAILURES")
    head = out[failures : failures + 6000] if failures != -1 else ""
    return (head + "\n…\n" + out[start:]) if start != -1 else out[-8000:]


def test_schemathesis_finds_nothing(file_db_url: str, tmp_path: Path) -> None:
    token = asyncio.run(_admin_key(file_db_url))
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    with served(file_db_url, tmp_path) as server:
        base, log = server.base, server.log
        argv = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run"]
        argv += [f"{base}/openapi.json", "--checks", "all", "--seed", str(SEED)]
        argv += ["--max-examples", str(MAX_EXAMPLES), "--workers", "1", "--no-color"]
        argv += [
            "--generation-database",
            "none",
            "--continue-on-failure",
            "--output-sanitize",
            "false",
        ]
        argv += ["--header", f"Authorization: Bearer {token}"]
        started = time.monotonic()
        done = subprocess.run(
            argv, cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT, check=False
        )
        took = time.monotonic() - started
        server_log = log.read_text(errors="replace")
    out = done.stdout + done.stderr
    generated = re.search(r"(\d+) generated", out)
    report = f"{_summary(out)}\n--- server log (end) ---\n{server_log[-3000:]}"
    assert generated is not None, report
    assert done.returncode == 0, report
    assert "No failures" in out or " 0 failures" in out or "passed" in out, report
    assert "Exception in ASGI application" not in server_log, report
    # Enough cases to mean something, fast enough to run with every test run.
    assert int(generated.group(1)) >= 1000, report
    assert took < TIMEOUT, report

"""Export and import of one 200,000-message session in bounded memory (issue 8, item 7).

Each step is the real CLI in its own process, its peak RSS (VmHWM) measured by
``transfer_rss.measure``; the budget is 100 MiB. The file is written in the export format
itself, so the round trip (import, then export) must give the same bytes back.

The import streams through ``Store.import_session_stream`` (a chunk of messages in memory).
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sessionkeeper.models import Message, Session
from sessionkeeper.transfer.records import dump_line, message_record, session_record
from transfer_rss import measure, message_text

N = 200_000
BUDGET_MIB = 100.0
SID = "big-session"


def write_export(path: Path, n: int) -> None:
    """One session of ``n`` messages, exactly as ``export`` writes it (one line at a time)."""
    start = datetime(2025, 1, 1, tzinfo=UTC)
    tokens = [5 + i % 7 * 6 for i in range(1, n + 1)]
    session = Session(
        session_id=SID,
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
        token_count=sum(tokens),
    )
    with path.open("w", encoding="utf-8", newline="\n") as out:
        out.write(dump_line(session_record(session)))
        for i in range(1, n + 1):
            message = Message(
                session_id=SID,
                seq=i,
                role="user" if i % 2 else "assistant",
                content=message_text(i),
                agent_id=None,
                model=None if i % 2 else "m",
                token_count=tokens[i - 1],
                metadata={"i": i} if i % 10 == 0 else {},
                created_at=start + timedelta(seconds=i),
            )
            out.write(dump_line(message_record(message)))


def test_200k_message_session_round_trip_in_bounded_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONKEEPER_")}
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    good = tmp_path / "big.jsonl"
    write_export(good, N)

    # A bad last line: found by the checking pass, nothing of the session written.
    bad = tmp_path / "bad.jsonl"
    shutil.copyfile(good, bad)
    with bad.open("a", encoding="utf-8") as out:
        out.write('{"type":"message","seq":1,"role":"user","content":"a duplicate seq"}\n')
    # (no token_count on it: the check must not need the tokenizer, ~65 MiB, to refuse it)
    refused_db = f"sqlite:///{tmp_path / 'refused.db'}"
    refused = measure(["--db", refused_db, "import", str(bad), "--json"], env)
    assert refused.returncode == 1, refused.stderr
    assert '"failed_count": 1' in refused.stdout and "duplicate seq 1" in refused.stdout
    assert refused.peak_mib <= BUDGET_MIB, f"import of a bad file peaked {refused.peak_mib} MiB"

    target = f"sqlite:///{tmp_path / 'target.db'}"
    imported = measure(["--db", target, "import", str(good), "--json"], env)
    assert imported.returncode == 0, imported.stderr
    assert f'"message_count": {N}' in imported.stdout

    copy = tmp_path / "copy.jsonl"
    exported = measure(["--db", target, "export", SID, "-o", str(copy)], env)
    assert exported.returncode == 0, exported.stderr
    assert exported.peak_mib <= BUDGET_MIB, f"export peaked {exported.peak_mib:.1f} MiB"
    assert copy.stat().st_size == good.stat().st_size
    with good.open("rb") as a, copy.open("rb") as b:
        while chunk := a.read(1 << 20):
            assert chunk == b.read(1 << 20)

    print(
        f"\n{N:,} messages: export peak {exported.peak_mib:.1f} MiB, import peak "
        f"{imported.peak_mib:.1f} MiB, refused import peak {refused.peak_mib:.1f} MiB"
    )
    assert imported.peak_mib <= BUDGET_MIB, f"import peaked {imported.peak_mib:.1f} MiB"

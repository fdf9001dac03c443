"""Export / import (the transfer/ package) on SQLite and PostgreSQL.

The round trip is the contract of the JSONL format: export → import into an empty database →
export again gives the same bytes, for 1,000 varied sessions, on both dialects.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sessionkeeper.models import Message, NewMessage
from sessionkeeper.store.core import Store
from sessionkeeper.transfer.export import export_sessions
from sessionkeeper.transfer.imports import plan_import, run_import

UNICODE = [
    "héllo wörld",
    "日本語のテキスト",
    "emoji 🧹🚀 and ZWJ 👩‍💻",
    "RTL: مرحبا بالعالم",
    "combining: e\u0301 a\u0308",
    "line\u2028separator and\u0085next line",
    "quotes \"double\" 'single' and \\ backslash",
]


def varied_content(rng: random.Random, i: int) -> str:
    kind = i % 5
    if kind == 0:
        return rng.choice(UNICODE)
    if kind == 1:
        return "first line\nsecond line\r\nthird\tline\n\n  indented\n"
    if kind == 2:
        return f"message {i} " + "word " * rng.randint(1, 40)
    if kind == 3:
        return "```python\nprint('hi')\n```\n" + rng.choice(UNICODE)
    return ""  # empty content is a legal message


async def build_database(store: Store, n_sessions: int = 1000) -> None:
    """n varied sessions; messages appended with add_messages batches (one per session)."""
    rng = random.Random(42)
    created: list[str] = []

    async def make(i: int) -> None:
        metadata: dict[str, Any] | None = None
        if i % 3 == 0:
            metadata = {
                "zeta": 1,
                "alpha": {"nested": [1, 2.5, "x", None, True], "ü": "ünïcode"},
                "big": 2**53 + 1,
                "float": 0.1,
            }
        session = await store.create_session(
            agent_id=["main", "analyst", "aria-talk", "cron-bot"][i % 4],
            title=None if i % 7 == 0 else f"Session {i} · {UNICODE[i % len(UNICODE)][:40]}",
            session_type=["chat", "cron", "subagent", "delegation"][i % 4],
            metadata=metadata,
        )
        created.append(session.session_id)
        count = 0 if i % 11 == 0 else rng.randint(1, 8)
        batch: list[NewMessage] = []
        if count and i % 4 == 0:
            batch.append(NewMessage("system", "You are a careful assistant.\nBe brief."))
        for j in range(count):
            batch.append(
                NewMessage(
                    "user" if j % 2 == 0 else "assistant",
                    varied_content(rng, i + j),
                    model=None if j % 2 == 0 else "gpt-4o-mini",
                    agent_id="analyst" if j == 3 else None,
                    metadata={"client": {"ip": "127.0.0.1", "ua": "tést"}} if j == 2 else None,
                )
            )
        if i % 6 == 0 and count:
            call = {
                "id": f"call_{i}",
                "type": "function",
                "function": {"name": "lookup", "arguments": json.dumps({"q": "ü", "n": i})},
            }
            batch.append(NewMessage("assistant", "", metadata={"tool_calls": [call]}))
            batch.append(
                NewMessage("tool", '{"result": "ok ✓"}', metadata={"tool_call_id": f"call_{i}"})
            )
        if batch:
            await store.add_messages(session.session_id, batch)
        if i % 13 == 0 and count > 1:
            await store.delete_message(session.session_id, 1)  # a gap in seq must survive
        if i % 17 == 0 and count > 4:  # compacted twice: both summaries travel
            for _ in range(2):
                await store.compact_session(
                    session.session_id,
                    keep_last_tokens=1,
                    summarize=summarize,
                    model="gpt-4o-mini" if i % 2 else None,
                    metadata={"by": "test", "ü": i} if i % 3 else None,
                )
                await store.add_messages(session.session_id, [NewMessage("user", "après ✓")])
        if i % 5 == 0:
            await store.end_session(session.session_id)

    step = 25 if store.dialect == "postgresql" else 1  # SQLite has one writer anyway
    for start in range(0, n_sessions, step):
        await asyncio.gather(*(make(i) for i in range(start, min(start + step, n_sessions))))
    assert len(created) == n_sessions


async def summarize(messages: list[Message]) -> str:
    return f"Résumé of {len(messages)} messages ({messages[-1].seq}): 日本語 ✓\nsecond line"


async def compacted_windows(store: Store) -> dict[str, list[tuple[int, str]]]:
    """The context window of every compacted session: (seq, content) of each message."""
    out: dict[str, list[tuple[int, str]]] = {}
    async for session in store.iter_sessions():
        if await store.get_compactions(session.session_id):
            window = await store.context_window(session.session_id, 100_000)
            out[session.session_id] = [(m.seq, m.content) for m in window.messages]
    return out


async def export_text(store: Store, **kwargs: Any) -> str:
    buffer = io.StringIO()
    await export_sessions(store, buffer, **kwargs)
    return buffer.getvalue()


async def reset_database(url: str, tmp_path: Path, name: str) -> str:
    """An empty database of the same dialect: a new SQLite file, or the PG schema dropped."""
    if url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / name}"
    import asyncpg

    conn = await asyncpg.connect(url, timeout=5)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    finally:
        await conn.close()
    return url


async def test_round_trip_1000_sessions_is_byte_identical(db_url: str, tmp_path: Path) -> None:
    source = await Store.open(db_url)
    try:
        await build_database(source)
        first = await export_text(source)
        stats = await source.get_stats()
        windows = await compacted_windows(source)
    finally:
        await source.close()
    compactions = first.count('{"type":"compaction"')
    assert len(windows) >= 10 and compactions == 2 * len(windows)
    path = tmp_path / "export.jsonl"
    path.write_text(first, encoding="utf-8", newline="\n")
    lines = first.splitlines(keepends=False)
    assert sum(1 for line in first.split("\n") if line.startswith('{"type":"session"')) == 1000
    assert len(first.split("\n")) - 1 == 1000 + stats.total_messages + compactions
    del lines

    target_url = await reset_database(db_url, tmp_path, "copy.db")
    target = await Store.open(target_url)
    try:
        summary = await run_import(target, plan_import(path))
        assert summary.failed == []
        assert len(summary.imported) == 1000
        assert summary.messages == stats.total_messages
        second = await export_text(target)
        assert second.encode() == first.encode()
        # A compacted session's window is what it was: the summaries came along.
        assert await compacted_windows(target) == windows
        # Idempotent: a second import skips every session and changes nothing.
        again = await run_import(target, plan_import(path))
        assert (len(again.imported), len(again.skipped)) == (0, 1000)
        assert (await export_text(target)).encode() == first.encode()
        copied = await target.get_stats()
        assert (copied.total_messages, copied.total_tokens, copied.ended_sessions) == (
            stats.total_messages,
            stats.total_tokens,
            stats.ended_sessions,
        )
    finally:
        await target.close()


async def test_export_shapes_and_markdown(store: Store) -> None:
    session = await store.create_session(title="Café talk", agent_id="main")
    await store.add_message(session.session_id, "user", "Bonjour\nça va ?")
    await store.add_message(session.session_id, "assistant", "Oui ✓", model="m1")
    text = await export_text(store, session_ids=[session.session_id])
    header, first, second = (json.loads(line) for line in text.splitlines())
    assert list(header) == ["type", *session.to_dict()]
    assert header["type"] == "session" and header["message_count"] == 2
    assert list(first) == [
        "type",
        "seq",
        "role",
        "content",
        "timestamp",
        "model",
        "token_count",
        "metadata",
        "agent_id",
    ]
    assert (first["seq"], first["role"], first["content"]) == (1, "user", "Bonjour\nça va ?")
    assert second["model"] == "m1"
    assert "Oui ✓" in text and "\\u" not in text  # UTF-8 as is, not escaped

    md = await export_text(store, session_ids=[session.session_id], fmt="markdown")
    assert md.startswith("# Café talk\n")
    assert f"`{session.session_id}`" in md
    assert "## User · #1" in md and "Bonjour\nça va ?" in md
    assert "## Assistant · #2" in md and "m1" in md

    # A compaction: its line follows the messages, its summary a section of the transcript.
    for i in range(4):
        await store.add_message(session.session_id, "user", f"more {i}")
    done = await store.compact_session(
        session.session_id, keep_last_tokens=1, summarize=summarize, model="m2"
    )
    assert done is not None
    lines = [json.loads(line) for line in (await export_text(store)).splitlines()]
    assert [line["type"] for line in lines] == ["session", *["message"] * 6, "compaction"]
    assert list(lines[-1]) == [
        "type",
        "from_seq",
        "through_seq",
        "message_count",
        "compacted_tokens",
        "summary",
        "token_count",
        "model",
        "metadata",
        "created_at",
    ]
    assert (lines[-1]["through_seq"], lines[-1]["summary"]) == (done.through_seq, done.summary)
    md = await export_text(store, session_ids=[session.session_id], fmt="markdown")
    section = f"## Summary of #1–#{done.through_seq} · "
    assert section in md and md.index(section) > md.index("## User · #6")
    assert md.rstrip().endswith(done.summary.rstrip())


async def test_jsonl_import_replace_and_failures(store: Store, tmp_path: Path) -> None:
    good = await store.create_session(session_id="keep-me", title="original")
    await store.add_message(good.session_id, "user", "v1")
    exported = await export_text(store, session_ids=["keep-me"])
    edited = exported.replace('"content":"v1"', '"content":"v2"')
    bad_role = {
        "type": "session",
        "session_id": "bad-role",
        "created_at": "2025-01-01T00:00:00+00:00",
    }
    bad_msg = {"type": "message", "seq": 1, "role": "wizard", "content": "x", "timestamp": None}
    broken_header = {"type": "session", "session_id": "broken", "created_at": "2025-01-01"}
    too_big = {"type": "session", "session_id": "too-big", "created_at": "2025-01-01T00:00:00Z"}
    big_msg = {"type": "message", "role": "user", "content": "x" * 100_001}
    minimal = {"type": "session", "session_id": "minimal", "created_at": 1700000000}
    minimal_msg = {"type": "message", "role": "user", "content": "no seq, no token count"}
    file = tmp_path / "in.jsonl"
    file.write_text(
        edited
        + "\n".join(
            json.dumps(r)
            for r in (bad_role, bad_msg, broken_header, too_big, big_msg, minimal, minimal_msg)
        )
        + "\n",
        encoding="utf-8",
    )
    # insert a non-JSON line inside "broken"
    text = file.read_text(encoding="utf-8").replace(
        json.dumps(too_big), "{not json\n" + json.dumps(too_big)
    )
    file.write_text(text, encoding="utf-8")

    summary = await run_import(store, plan_import(file))
    assert summary.imported == ["minimal"]
    assert [s["session_id"] for s in summary.skipped] == ["keep-me"]
    failed = {f["session_id"]: f["error"] for f in summary.failed}
    assert set(failed) == {"bad-role", "broken", "too-big"}
    assert "wizard" in failed["bad-role"]
    assert "not valid JSON" in failed["broken"]
    assert "100,000" in failed["too-big"]
    for sid in ("bad-role", "broken", "too-big"):
        with pytest.raises(Exception, match="not found"):
            await store.get_session(sid)
    minimal_msgs = await store.get_messages("minimal")
    assert minimal_msgs[0].seq == 1 and minimal_msgs[0].token_count > 0
    assert (await store.get_messages("keep-me"))[0].content == "v1"

    replaced = await run_import(store, plan_import(file), replace=True)
    assert "keep-me" in replaced.imported
    assert (await store.get_messages("keep-me"))[0].content == "v2"


# ── OpenClaw v3 tree transcripts ──────────────────────────────────────────────

T0 = datetime(2026, 2, 15, 18, 0, 0, tzinfo=UTC)


def iso(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def v3_transcript(sid: str) -> list[dict[str, Any]]:
    return [
        {"type": "session", "version": 3, "id": sid, "timestamp": iso(0), "cwd": "/work"},
        {
            "type": "model_change",
            "id": "e1",
            "parentId": None,
            "timestamp": iso(1),
            "provider": "openai",
            "modelId": "gpt-4o",
        },
        {
            "type": "message",
            "id": "m1",
            "parentId": "e1",
            "timestamp": iso(2),
            "message": {"role": "user", "content": [{"type": "text", "text": "List files"}]},
        },
        {
            "type": "message",
            "id": "m2",
            "parentId": "m1",
            "timestamp": iso(3),
            "message": {
                "role": "assistant",
                "model": "gpt-4o",
                "usage": {"input": 10, "output": 5},
                "content": [
                    {"type": "thinking", "thinking": "I should call ls"},
                    {"type": "text", "text": "Let me look."},
                    {"type": "toolCall", "id": "call_1", "name": "ls", "arguments": {"path": "."}},
                ],
            },
        },
        {
            "type": "message",
            "id": "m3",
            "parentId": "m2",
            "timestamp": iso(4),
            "message": {
                "role": "toolResult",
                "toolCallId": "call_1",
                "toolName": "ls",
                "isError": False,
                "content": [{"type": "text", "text": "a.txt\nb.txt"}],
            },
        },
        # an abandoned branch: a reply that was regenerated
        {
            "type": "message",
            "id": "m4a",
            "parentId": "m3",
            "timestamp": iso(5),
            "message": {"role": "assistant", "content": [{"type": "text", "text": "old"}]},
        },
        {
            "type": "message",
            "id": "m4",
            "parentId": "m3",
            "timestamp": iso(6),
            "message": {
                "role": "assistant",
                "model": "gpt-4o",
                "content": [{"type": "text", "text": "Two files: a.txt, b.txt"}],
            },
        },
        {
            "type": "compaction",
            "id": "c1",
            "parentId": "m4",
            "timestamp": iso(7),
            "summary": "User listed files; there are two.",
        },
        {"type": "thinking_level_change", "id": "t1", "parentId": "c1", "level": "high"},
    ]


def build_openclaw_root(root: Path) -> None:
    sessions = root / "main" / "sessions"
    sessions.mkdir(parents=True)
    sid = "0f6c2a8e-1d2b-4c3d-9e8f-abcdefabcdef"
    updated_ms = int((T0 + timedelta(seconds=60)).timestamp() * 1000)
    index = {
        "agent:main:cron:nightly": {
            "sessionId": sid,
            "updatedAt": updated_ms,
            "label": "nightly files",
            "model": "gpt-4o",
        },
        "agent:main:subagent:s9": {"sessionId": "sub-1", "updatedAt": updated_ms - 1000},
    }
    (sessions / "sessions.json").write_text(json.dumps(index), encoding="utf-8")
    (sessions / f"{sid}.jsonl").write_text(
        "\n".join(json.dumps(r) for r in v3_transcript(sid)) + "\n", encoding="utf-8"
    )
    (sessions / "sub-1.jsonl").write_text(
        json.dumps({"type": "message", "message": {"role": "user", "content": "plain string"}})
        + "\n",
        encoding="utf-8",
    )
    other = root / "analyst" / "sessions"
    other.mkdir(parents=True)
    (other / "sessions.json").write_text(
        json.dumps({"agent:analyst:main": {"sessionId": "an-1", "updatedAt": updated_ms}}),
        encoding="utf-8",
    )  # no transcript: imported without messages, with a warning


async def test_openclaw_v3_import(store: Store, tmp_path: Path) -> None:
    root = tmp_path / "agents"
    build_openclaw_root(root)
    plan = plan_import(root)
    assert (plan.format, plan.total) == ("openclaw", 3)
    summary = await run_import(store, plan)
    assert summary.failed == []
    assert sorted(summary.imported) == sorted(
        ["0f6c2a8e-1d2b-4c3d-9e8f-abcdefabcdef", "sub-1", "an-1"]
    )
    assert any("an-1" in w and "no transcript" in w for w in summary.warnings)

    sid = "0f6c2a8e-1d2b-4c3d-9e8f-abcdefabcdef"
    session = await store.get_session(sid)
    assert (session.agent_id, session.session_type, session.title) == (
        "main",
        "cron",
        "nightly files",
    )
    assert session.metadata["aria_session_id"] == sid
    assert session.metadata["openclaw_key"] == "agent:main:cron:nightly"
    assert session.metadata["openclaw_entry"]["label"] == "nightly files"
    assert session.metadata["openclaw_header"]["cwd"] == "/work"
    assert session.metadata["openclaw_trailing_events"][0]["type"] == "thinking_level_change"
    assert session.created_at == T0
    assert session.updated_at == T0 + timedelta(seconds=60)

    messages = await store.get_messages(sid)
    assert [(m.seq, m.role, m.content) for m in messages] == [
        (1, "user", "List files"),
        (2, "assistant", "Let me look."),
        (3, "tool", "a.txt\nb.txt"),
        (4, "assistant", "old"),
        (5, "assistant", "Two files: a.txt, b.txt"),
        (6, "system", "User listed files; there are two."),
    ]
    assert [m.created_at for m in messages] == [T0 + timedelta(seconds=s) for s in range(2, 8)]
    user, call, result, old, final, summary_msg = messages
    assert user.metadata["openclaw_events"][0]["type"] == "model_change"
    assert user.metadata["openclaw"]["id"] == "m1"
    assert call.model == "gpt-4o"
    assert call.metadata["tool_calls"] == [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "ls", "arguments": '{"path": "."}'},
        }
    ]
    assert call.metadata["openclaw"]["message"]["content"][0]["thinking"] == "I should call ls"
    assert call.metadata["openclaw"]["message"]["usage"] == {"input": 10, "output": 5}
    assert (result.metadata["tool_call_id"], result.metadata["tool_name"]) == ("call_1", "ls")
    assert old.metadata.get("openclaw_off_path") is True
    assert "openclaw_off_path" not in final.metadata
    assert summary_msg.metadata["openclaw_kind"] == "compaction"

    sub = await store.get_messages("sub-1")
    assert [(m.role, m.content) for m in sub] == [("user", "plain string")]
    assert (await store.get_session("sub-1")).session_type == "subagent"
    assert (await store.get_session("an-1")).message_count == 0

    again = await run_import(store, plan_import(root))
    assert len(again.skipped) == 3 and again.imported == []


async def test_aria_session_cache_import(store: Store, tmp_path: Path) -> None:
    cache = tmp_path / "sessions"
    cache.mkdir()
    turns = [
        {"role": "user", "content": "What is 2+2?", "timestamp": 1764919978, "model": "gpt-5.1"},
        {
            "role": "assistant",
            "content": "2+2 equals 4.",
            "timestamp": 1764919978,
            "model": "gpt-5.1",
        },
        {
            "role": "user",
            "content": "Now multiply by 3",
            "timestamp": 1764919980,
            "model": "gpt-5.1",
        },
        {"role": "assistant", "content": "4 * 3 = 12", "timestamp": 1764919980, "model": "gpt-5.1"},
    ]
    first, second = "session_1764919970_hy66or", "session_1764919986_fglktw"
    (cache / f"{first}.jsonl").write_text(
        "\n".join(json.dumps(t) for t in turns) + "\n", encoding="utf-8"
    )
    meta = {
        "id": first,
        "created": 1764919970,
        "modified": 1764919980,
        "turn_count": 4,
        "token_count": 248,
    }
    (cache / f"{first}.meta").write_text(json.dumps(meta), encoding="utf-8")
    (cache / f"{second}.jsonl").write_text("", encoding="utf-8")
    (cache / f"{second}.meta").write_text(
        json.dumps(
            {
                "id": second,
                "created": 1764919986,
                "modified": 1764919986,
                "turn_count": 0,
                "token_count": 0,
            }
        ),
        encoding="utf-8",
    )
    os.symlink(cache / f"{first}.jsonl", cache / "current")

    plan = plan_import(cache)
    assert (plan.format, plan.total) == ("aria-session", 2)
    summary = await run_import(store, plan)
    assert sorted(summary.imported) == [first, second] and summary.failed == []
    assert summary.current == first

    session = await store.get_session(first)
    assert session.created_at == datetime.fromtimestamp(1764919970, UTC)
    assert session.updated_at == datetime.fromtimestamp(1764919980, UTC)
    assert session.metadata["aria_session_meta"] == meta
    messages = await store.get_messages(first)
    # Equal timestamps: the order is the file's (seq), never re-sorted.
    assert [(m.seq, m.role, m.content, m.model) for m in messages] == [
        (i + 1, t["role"], t["content"], "gpt-5.1") for i, t in enumerate(turns)
    ]
    assert [m.created_at.timestamp() for m in messages] == [t["timestamp"] for t in turns]
    assert (await store.get_session(second)).message_count == 0


# ── streaming export and import (bounded memory) ──────────────────────────────


async def make_long_session(store: Store, sid: str, n: int) -> None:
    await store.create_session(session_id=sid, title="long")
    for start in range(0, n, 500):
        await store.add_messages(
            sid,
            [
                NewMessage("user", f"line {i} " + "word " * (i % 9))
                for i in range(start, min(start + 500, n))
            ],
        )


async def test_export_pages_through_a_session(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    await make_long_session(store, "paged", 1200)
    pages: list[int] = []
    original = store.get_messages

    async def spy(session_id: str, **kwargs: Any) -> Any:
        found = await original(session_id, **kwargs)
        pages.append(len(found))
        return found

    monkeypatch.setattr(store, "get_messages", spy)
    text = await export_text(store, session_ids=["paged"])
    assert pages == [500, 500, 200]  # never the whole session at once
    lines = text.splitlines()
    assert len(lines) == 1201
    header = json.loads(lines[0])
    assert header["message_count"] == 1200
    assert header["token_count"] == sum(json.loads(line)["token_count"] for line in lines[1:])


async def test_export_ignores_appends_made_during_it_and_refuses_deletions(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    await make_long_session(store, "moving", 1000)
    original = store.get_messages
    calls = 0

    async def append_meanwhile(session_id: str, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            await store.add_message(session_id, "user", "appended during the export")
        return await original(session_id, **kwargs)

    monkeypatch.setattr(store, "get_messages", append_meanwhile)
    text = await export_text(store, session_ids=["moving"])
    assert len(text.splitlines()) == 1001 and "appended during" not in text

    async def delete_meanwhile(session_id: str, **kwargs: Any) -> Any:
        found = await original(session_id, **kwargs)
        if kwargs.get("after_seq") == 0:
            await store.delete_message(session_id, 700)
        return found

    monkeypatch.setattr(store, "get_messages", delete_meanwhile)
    from sessionkeeper.errors import Conflict

    with pytest.raises(Conflict, match="changed while it was exported"):
        await export_text(store, session_ids=["moving"])


def _compaction(from_seq: int, through_seq: int, **fields: Any) -> str:
    record = {
        "type": "compaction",
        "from_seq": from_seq,
        "through_seq": through_seq,
        "message_count": through_seq - from_seq + 1,
        "compacted_tokens": 30,
        "summary": "what happened before",
        "token_count": 4,
        "model": None,
        "metadata": {},
        "created_at": "2025-01-01T00:00:02+00:00",
        **fields,
    }
    return json.dumps(record)


def long_export(sid: str, n: int) -> list[str]:
    header = {
        "type": "session",
        "session_id": sid,
        "agent_id": "main",
        "created_at": "2025-01-01T00:00:00+00:00",
    }
    lines = [json.dumps(header)]
    for i in range(1, n + 1):
        lines.append(
            json.dumps(
                {
                    "type": "message",
                    "seq": i,
                    "role": "user" if i % 2 else "assistant",
                    "content": f"message {i}",
                    "timestamp": "2025-01-01T00:00:01+00:00",
                    "token_count": 3,
                }
            )
        )
    return lines


@pytest.mark.parametrize(
    ("position", "bad", "why"),
    [
        (1190, "{truncated", "line 1192 is not valid JSON"),
        (1200, '{"type":"message","seq":2,"role":"user","content":"again"}', "duplicate seq 2"),
        (600, '{"type":"message","seq":9999,"role":"wizard","content":"x"}', "role 'wizard'"),
        (1200, '{"type":"message","role":"user","content":"a\\u0000b"}', "NUL"),
        (5, b"\xff\xfe not utf-8".decode("latin-1"), "line 7 is not UTF-8: byte 0xFF at offset 0"),
        # Compaction lines: each held to what compact_session writes.
        (1200, _compaction(1, 1300), "a compaction through seq 1300, past the session's last"),
        (1200, _compaction(5, 4), "stands for seqs 5..4"),
        (1200, _compaction(0, 4), "from_seq must be an integer from 1"),
        (1200, _compaction(1, 4, summary=7), "summary must be a string"),
        (1200, _compaction(1, 4, summary=" "), "the summary is empty"),
        (1200, _compaction(1, 4, created_at="soon"), "bad ISO timestamp 'soon'"),
        (1200, _compaction(1, 4, metadata={"n": float("nan")}), "metadata.n is nan"),
        (1200, _compaction(1, 4) + "\n" + _compaction(2, 4), "two compactions at the same cut"),
        (600, '{"type":"summary","text":"x"}', "unknown record type 'summary'"),
    ],
)
async def test_a_bad_line_anywhere_fails_the_session_before_anything_is_written(
    store: Store, tmp_path: Path, position: int, bad: str, why: str
) -> None:
    lines = long_export("late-failure", 1200)
    lines.insert(position + 1, bad)
    lines += long_export("next-one", 3)
    path = tmp_path / "bad.jsonl"
    path.write_bytes(("\n".join(lines) + "\n").encode("latin-1" if "\xff" in bad else "utf-8"))
    summary = await run_import(store, plan_import(path))
    assert summary.imported == ["next-one"]  # the sessions after it go on
    (failed,) = summary.failed
    assert failed["session_id"] == "late-failure" and why in failed["error"], failed
    with pytest.raises(Exception, match="not found"):
        await store.get_session("late-failure")


async def test_import_from_stdin_is_spooled(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = ("\n".join(long_export("from-stdin", 700)) + "\n").encode()

    class Stdin:
        buffer = io.BytesIO(data)

    monkeypatch.setattr("sys.stdin", Stdin())
    summary = await run_import(store, plan_import(Path("-")))
    assert summary.imported == ["from-stdin"] and summary.messages == 700
    assert (await store.get_session("from-stdin")).message_count == 700


async def test_import_streams_into_the_store_when_it_can(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``Store.import_session_stream`` (the bounded-memory write), the messages reach
    the Store as an iterator read from the file, never as one list."""
    path = tmp_path / "s.jsonl"
    path.write_text("\n".join(long_export("streamed", 1200)) + "\n", encoding="utf-8")
    seen: list[str] = []

    async def import_session_stream(
        session: Any, items: Any, *, compactions: Any = (), replace: bool = False
    ) -> bool:
        assert not isinstance(items, list | tuple)
        seen.append(type(items).__name__)
        messages = list(items)  # the messages first: the compactions are read after them
        return await store.import_session(
            session, messages, compactions=list(compactions), replace=replace
        )

    monkeypatch.setattr(store, "import_session_stream", import_session_stream, raising=False)
    summary = await run_import(store, plan_import(path))
    assert summary.imported == ["streamed"] and seen == ["generator"]
    assert (await store.get_session("streamed")).message_count == 1200
    again = await run_import(store, plan_import(path))  # existing: skipped, lines not re-read
    assert len(again.skipped) == 1 and seen == ["generator"]

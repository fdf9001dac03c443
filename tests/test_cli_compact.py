"""``sessionkeeper compact`` and automatic compaction in ``ask``, in-process, on a SQLite file
and PostgreSQL, with the fake model server writing the summaries."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clitools import isolate_user, make_invoke
from fakellm import FakeLLM, run_fake_llm
from sessionkeeper import SyncStore
from sessionkeeper.chat.compacting import INSTRUCTIONS


def reply(messages: list[dict[str, Any]]) -> str:
    if messages[0]["content"] == INSTRUCTIONS:
        return "SUMMARY so far"
    return "ok"


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    with run_fake_llm(reply=reply) as server:
        yield server


@pytest.fixture
def cli(file_db_url: str, fake: FakeLLM, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    isolate_user(tmp_path / "inproc", monkeypatch)
    monkeypatch.setenv("SESSIONKEEPER_LLM_BASE_URL", fake.base_url)
    monkeypatch.setenv("SESSIONKEEPER_LLM_MODEL", "fake-model")
    return make_invoke(file_db_url)


def test_compact_command(cli: Any, file_db_url: str, tmp_path: Path) -> None:
    with SyncStore.open(file_db_url) as store:
        sid = store.create_session().session_id
        store.add_messages(sid, [{"role": "user", "content": f"line {i}"} for i in range(30)])
    done = cli("compact", sid, "--keep", "20", "--json")
    assert done.exit_code == 0, done.output
    body = json.loads(done.stdout)
    assert body["compacted"] is True and body["compaction"]["summary"] == "SUMMARY so far"
    assert body["compaction"]["model"] == "fake-model"
    text = cli("compact", sid, "--keep", "100000")
    assert text.exit_code == 0 and "Nothing to compact" in text.stdout
    echo = cli("compact", sid, "-m", "echo")
    assert echo.exit_code != 0 and "no model" in echo.output
    assert cli("compact", "nope").exit_code != 0
    with SyncStore.open(file_db_url) as store:
        assert store.get_compaction(sid).through_seq == body["compaction"]["through_seq"]
        assert len(store.get_messages(sid)) == 30
    # show: where the window's cut is (all 30 messages still shown).
    through = body["compaction"]["through_seq"]
    shown = cli("show", sid)
    assert shown.exit_code == 0, shown.output
    assert f"#1–#{through} ({through} messages" in shown.stdout and "line 29" in shown.stdout
    as_json = json.loads(cli("show", sid, "--json").stdout)
    assert as_json["compaction"]["through_seq"] == through and len(as_json["messages"]) == 30
    exported = cli("export", sid, "-o", str(tmp_path / "out.jsonl"))
    assert exported.exit_code == 0 and "(30 messages, 1 compaction)" in exported.stdout
    with SyncStore.open(file_db_url) as store:
        other = store.create_session().session_id
        store.add_message(other, "user", "never compacted")
    plain = cli("show", other, "--json")
    assert plain.exit_code == 0 and json.loads(plain.stdout)["compaction"] is None
    assert "summary of" not in cli("show", other).stdout


def test_ask_compacts_past_the_threshold(
    cli: Any, file_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SESSIONKEEPER_COMPACT_AFTER_TOKENS", '{"*": 30}')
    first = cli("ask", "a first question about the weather", "--json")
    assert first.exit_code == 0, first.output
    sid = json.loads(first.stdout)["session_id"]
    for i in range(6):
        assert cli("ask", f"question {i} about the weather", "--json").exit_code == 0
    with SyncStore.open(file_db_url) as store:
        done = store.get_compaction(sid)
        assert done is not None and done.summary == "SUMMARY so far"
        assert store.get_session(sid).message_count == 14

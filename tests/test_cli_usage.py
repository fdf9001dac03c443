"""``sessionkeeper usage``, and usage/cost in ``show`` and ``list --long`` (issue 19 item 4), on a
SQLite file and PostgreSQL; ``ask`` records the usage the model server reports (the real local
fake server of ``fakellm.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from clitools import Invoke, as_json, isolate_user, make_invoke
from fakellm import FakeLLM, run_fake_llm
from sessionkeeper import SyncStore, Usage

REPORT = {
    "prompt_tokens": 300,
    "completion_tokens": 40,
    "total_tokens": 340,
    "prompt_tokens_details": {"cached_tokens": 100},
}


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    with run_fake_llm(usage=REPORT) as server:
        yield server


@pytest.fixture
def cli(file_db_url: str, fake: FakeLLM, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    isolate_user(tmp_path, monkeypatch)
    monkeypatch.setenv("COLUMNS", "250")  # room for every column
    monkeypatch.setenv("SESSIONKEEPER_LLM_BASE_URL", fake.base_url)
    monkeypatch.setenv("SESSIONKEEPER_LLM_MODEL", "gpt-4o-mini")
    invoke = make_invoke(file_db_url)
    as_json(invoke("db", "upgrade", "--json"))
    return invoke


def test_ask_records_usage_and_usage_shows_it(cli: Invoke, file_db_url: str) -> None:
    first = as_json(cli("ask", "one", "--json"))
    sid = first["session_id"]
    as_json(cli("ask", "two", "--json"))
    as_json(cli("ask", "three", "--json"))
    totals = as_json(cli("usage", "--json"))  # the current session
    assert totals["session_id"] == sid
    assert (totals["messages"], totals["requests"]) == (3, 3)
    assert (totals["input_tokens"], totals["output_tokens"], totals["cached_tokens"]) == (
        900,
        120,
        300,
    )
    assert totals["cost_status"] == "known" and Decimal(totals["cost_usd"]) > 0
    assert totals["by_model"][0]["model"] == "gpt-4o-mini"
    text = cli("usage").stdout
    assert "900 (300 cached)" in text and "gpt-4o-mini" in text and "genai-prices" in text

    shown = as_json(cli("show", sid, "--json"))
    assert shown["usage"] == {**totals, "priced_at": shown["usage"]["priced_at"]}
    assert shown["messages"][1]["usage"]["input_tokens"] == 300
    human = cli("show", sid).stdout
    assert "300 in / 40 out" in human and "cost" in human

    # A session whose model the price table does not know: "unknown", never $0.
    with SyncStore.open(file_db_url) as store:
        store.create_session(session_id="house", agent_id="lab")
        store.add_message("house", "assistant", "x", model="house-model", usage=Usage(10, 5))
    listed = as_json(cli("list", "--long", "--json"))
    by_id = {s["session_id"]: s for s in listed["sessions"]}
    assert by_id["house"]["usage"]["cost_usd"] == "unknown"
    assert by_id[sid]["usage"]["input_tokens"] == 900
    assert "usage" not in as_json(cli("list", "--json"))["sessions"][0]
    table = cli("list", "--long").stdout
    assert "unknown" in table and "900 in / 120 out" in table
    assert "unknown" in cli("usage", "house").stdout

    lab = as_json(cli("usage", "--agent", "lab", "--json"))
    assert (lab["messages"], lab["cost_status"], lab["unknown_models"]) == (
        1,
        "unknown",
        ["house-model"],
    )
    everything = as_json(cli("usage", "--all", "--json"))
    assert everything["messages"] == 4 and everything["cost_status"] == "partial"


def test_usage_refuses_a_session_and_a_scope_together(cli: Invoke) -> None:
    result = cli("usage", "some-id", "--all")
    assert result.exit_code == 2
    assert "not both" in result.stderr
    assert cli("usage", "missing-id").exit_code == 3


def test_usage_of_a_session_without_usage(cli: Invoke, file_db_url: str) -> None:
    as_json(cli("new", "--json"))
    as_json(cli("add", "user", "hello", "--json"))
    totals = as_json(cli("usage", "--json"))
    assert (totals["messages"], totals["cost_usd"]) == (0, "0")
    assert "none recorded" in cli("usage").stdout

"""Usage and cost on messages (issue 19 item 4), on SQLite file, SQLite memory and PostgreSQL."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from genai_prices import Usage as PriceUsage
from genai_prices import calc_price

from sessionkeeper import NewMessage, Usage
from sessionkeeper.errors import InvalidInput, NotFound
from sessionkeeper.store.core import Store
from sessionkeeper.store.usage import price_source
from sessionkeeper.transfer.export import export_sessions
from sessionkeeper.transfer.imports import plan_import, run_import

RUNS = [  # three runs with known usage, as a model reported them
    Usage(input_tokens=1200, output_tokens=300, cached_tokens=200, reasoning_tokens=50),
    Usage(input_tokens=2500, output_tokens=410, cached_tokens=1000, requests=2),
    Usage(input_tokens=900, output_tokens=120, reasoning_tokens=100, requests=3),
]


def _expected_cost(model: str, runs: list[Usage]) -> Decimal:
    return sum(
        (
            Decimal(
                calc_price(
                    PriceUsage(
                        input_tokens=u.input_tokens,
                        output_tokens=u.output_tokens,
                        cache_read_tokens=u.cached_tokens,
                    ),
                    model_ref=model,
                ).total_price
            )
            for u in runs
        ),
        Decimal(0),
    )


async def test_three_runs_give_exact_session_totals(store: Store) -> None:
    await store.create_session(session_id="s1")
    for i, usage in enumerate(RUNS):
        await store.add_message("s1", "user", f"question {i}")
        await store.add_message("s1", "assistant", f"answer {i}", model="gpt-4o", usage=usage)
    totals = await store.get_usage("s1")
    assert totals.session_id == "s1"
    assert totals.messages == 3
    assert totals.requests == 6
    assert totals.input_tokens == 4600
    assert totals.output_tokens == 830
    assert totals.cached_tokens == 1200
    assert totals.reasoning_tokens == 150
    assert totals.total_tokens == 5430
    assert totals.cost_status == "known"
    assert totals.unknown_models == []
    # Cost over the sums equals the sum of each run's cost: prices are linear in tokens.
    assert totals.cost_usd == _expected_cost("gpt-4o", RUNS)
    assert totals.cost_usd is not None and totals.cost_usd > 0
    [by_model] = totals.by_model
    assert (by_model.model, by_model.provider, by_model.messages) == ("gpt-4o", "openai", 3)
    assert totals.price_source == price_source()
    assert totals.price_source.startswith("genai-prices ")
    body = totals.to_dict()
    assert body["cost_usd"] == format(totals.cost_usd.normalize(), "f")
    assert body["total_tokens"] == 5430 and body["by_model"][0]["total_tokens"] == 5430
    assert body["priced_at"] == totals.priced_at.isoformat()
    # Each message reads back with its usage (model defaulted to the message's).
    messages = await store.get_messages("s1")
    assert [m.usage for m in messages if m.role == "user"] == [None, None, None]
    assert [m.usage for m in messages if m.role == "assistant"] == [
        Usage(**{**u.to_dict(), "model": "gpt-4o"}) for u in RUNS
    ]
    assert messages[1].to_dict()["usage"]["input_tokens"] == 1200


async def test_unknown_model_cost_is_unknown_and_a_mix_says_so(store: Store) -> None:
    await store.create_session(session_id="u")
    await store.add_message("u", "assistant", "a", model="my-own-model-7", usage=RUNS[0])
    only_unknown = await store.get_usage("u")
    assert only_unknown.cost_status == "unknown"
    assert only_unknown.cost_usd is None
    assert only_unknown.to_dict()["cost_usd"] == "unknown"
    assert only_unknown.unknown_models == ["my-own-model-7"]
    assert only_unknown.by_model[0].to_dict()["cost_usd"] == "unknown"
    assert only_unknown.input_tokens == 1200  # the tokens are known all the same
    # Usage without any model is unknown too, never 0.
    await store.create_session(session_id="nomodel")
    await store.add_message("nomodel", "assistant", "a", usage={"input_tokens": 5})
    assert (await store.get_usage("nomodel")).to_dict()["cost_usd"] == "unknown"
    # Known and unknown together: the known part, said to be partial.
    await store.add_message("u", "assistant", "b", usage={**RUNS[1].to_dict(), "model": "gpt-4o"})
    mixed = await store.get_usage("u")
    assert mixed.cost_status == "partial"
    assert mixed.unknown_models == ["my-own-model-7"]
    assert mixed.cost_usd == _expected_cost("gpt-4o", [RUNS[1]])
    # Provider-prefixed names are priced as the model of that provider.
    await store.create_session(session_id="p")
    await store.add_message("p", "assistant", "c", model="openai:gpt-4o", usage=RUNS[2])
    assert (await store.get_usage("p")).cost_usd == _expected_cost("gpt-4o", [RUNS[2]])


async def test_a_session_without_usage_costs_nothing_known(store: Store) -> None:
    await store.create_session(session_id="plain")
    await store.add_message("plain", "user", "hi")
    totals = await store.get_usage("plain")
    assert (totals.messages, totals.cost_usd, totals.cost_status) == (0, Decimal(0), "known")
    assert totals.by_model == []
    with pytest.raises(NotFound):
        await store.get_usage("nope")


async def test_totals_by_agent_and_user(store: Store) -> None:
    await store.create_session(session_id="a1", agent_id="alpha", user_id="ann")
    await store.create_session(session_id="a2", agent_id="alpha", user_id="bob")
    await store.create_session(session_id="b1", agent_id="beta", user_id="ann")
    batch: list[NewMessage | dict[str, Any]] = [
        NewMessage("user", "q"),
        NewMessage("assistant", "r", model="gpt-4o", usage=RUNS[0]),
        {"role": "assistant", "content": "s", "model": "claude-sonnet-4-5", "usage": RUNS[1]},
    ]
    for sid in ("a1", "a2", "b1"):
        await store.add_messages(sid, batch)
    alpha = await store.usage_totals(agent_id="alpha")
    assert alpha.agent_ids == ["alpha"]
    assert alpha.messages == 4
    assert alpha.input_tokens == 2 * (1200 + 2500)
    assert [m.model for m in alpha.by_model] == ["claude-sonnet-4-5", "gpt-4o"]
    assert alpha.cost_status == "known"
    ann = await store.usage_totals(user_id="ann")
    assert ann.messages == 4 and ann.user_ids == ["ann"]
    both = await store.usage_totals(agent_id="alpha", user_id="ann")
    assert both.messages == 2
    everyone = await store.usage_totals()
    assert everyone.messages == 6 and everyone.agent_ids is None
    assert everyone.cost_usd == 3 * (alpha.cost_usd or 0) / 2
    outside = await store.usage_totals(agent_id="alpha", agent_ids=["beta"])
    assert (outside.messages, outside.agent_ids) == (0, [])


async def test_set_usage_after_the_message_replaces_and_clears(store: Store) -> None:
    await store.create_session(session_id="late")
    stored = await store.add_message("late", "assistant", "done", model="gpt-4o-mini")
    assert stored.usage is None
    updated = await store.set_usage("late", stored.seq, {"input_tokens": 10, "output_tokens": 2})
    assert updated.usage == Usage(10, 2, model="gpt-4o-mini")
    again = await store.set_usage("late", stored.seq, Usage(20, 4, model="gpt-4o"))
    assert again.usage == Usage(20, 4, model="gpt-4o")
    assert (await store.get_usage("late")).input_tokens == 20
    cleared = await store.set_usage("late", stored.seq, None)
    assert cleared.usage is None
    assert (await store.get_usage("late")).messages == 0
    with pytest.raises(NotFound, match="message 99"):
        await store.set_usage("late", 99, Usage(1))
    with pytest.raises(NotFound):
        await store.set_usage("nope", 1, Usage(1))


@pytest.mark.parametrize(
    ("usage", "field"),
    [
        ({"input_tokens": -1}, "usage.input_tokens"),
        ({"input_tokens": 2**31}, "usage.input_tokens"),
        ({"output_tokens": 1.5}, "usage.output_tokens"),
        ({"requests": True}, "usage.requests"),
        ({"input_tokens": 5, "cached_tokens": 6}, "usage.cached_tokens"),
        ({"tokens": 5}, "usage"),
        ({"input_tokens": 1, "model": ""}, "model"),
        ("lots", "usage"),
    ],
)
async def test_bad_usage_is_refused_and_changes_nothing(
    store: Store, usage: Any, field: str
) -> None:
    await store.create_session(session_id="bad")
    first = await store.add_message("bad", "user", "kept")
    with pytest.raises(InvalidInput) as caught:
        await store.add_message("bad", "assistant", "x", usage=usage)
    assert caught.value.details["field"] == field
    with pytest.raises(InvalidInput):
        await store.set_usage("bad", first.seq, usage)
    assert [m.content for m in await store.get_messages("bad")] == ["kept"]
    assert (await store.get_messages("bad"))[0].usage is None
    assert (await store.get_usage("bad")).messages == 0


async def test_reasoning_tokens_may_exceed_output_tokens(store: Store) -> None:
    """Gemini reports thinking tokens beside the output tokens, not within them: kept as given."""
    await store.create_session(session_id="thinks")
    usage = Usage(input_tokens=10, output_tokens=5, reasoning_tokens=40)
    message = await store.add_message("thinks", "assistant", "x", usage=usage)
    assert message.usage == usage
    assert (await store.get_usage("thinks")).reasoning_tokens == 40


async def test_usage_details_are_kept_with_the_message_and_replaced_with_it(store: Store) -> None:
    """``details`` (the framework's own report) go to metadata["usage_details"] with the usage;
    a later set_usage without details removes them; bad details change nothing."""
    await store.create_session(session_id="det")
    await store.add_message("det", "user", "q", metadata={"keep": 1})
    details = {"input_tokens_details": None, "output_tokens_details": {"reasoning_tokens": 42}}
    done = await store.set_usage("det", 1, Usage(input_tokens=3), details=details)
    assert done.metadata == {"keep": 1, "usage_details": details}
    [message] = await store.get_messages("det")
    assert message.metadata == {"keep": 1, "usage_details": details}
    assert message.usage == Usage(input_tokens=3)
    for bad in ({"x": float("nan")}, ["not", "an", "object"]):
        with pytest.raises(InvalidInput):
            await store.set_usage("det", 1, Usage(input_tokens=9), details=bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        await store.set_usage("det", 1, None, details=details)
    [message] = await store.get_messages("det")
    assert message.usage == Usage(input_tokens=3)
    assert message.metadata["usage_details"] == details
    await store.set_usage("det", 1, Usage(input_tokens=4))
    [message] = await store.get_messages("det")
    assert message.metadata == {"keep": 1}
    assert message.usage == Usage(input_tokens=4)


async def test_usage_round_trips_through_jsonl_export_and_import(
    store: Store, tmp_path: Path
) -> None:
    await store.create_session(session_id="orig", agent_id="exporter")
    await store.add_message("orig", "user", "q")
    await store.add_message("orig", "assistant", "a", model="gpt-4o", usage=RUNS[0])
    await store.add_message("orig", "assistant", "b", usage={"input_tokens": 7})  # no model
    buffer = io.StringIO()
    await export_sessions(store, buffer, session_ids=["orig"])
    text = buffer.getvalue()
    lines = [json.loads(line) for line in text.splitlines()]
    assert "usage" not in lines[1]  # a message without usage: the line as before
    assert lines[2]["usage"] == {**RUNS[0].to_dict(), "model": "gpt-4o"}
    assert lines[3]["usage"]["model"] is None
    before = await store.get_usage("orig")
    await store.delete_session("orig")
    path = tmp_path / "orig.jsonl"
    path.write_text(text, encoding="utf-8")
    summary = await run_import(store, plan_import(path))
    assert summary.failed == [] and summary.imported
    after = await store.get_usage("orig")
    assert after.by_model == before.by_model
    again = io.StringIO()
    await export_sessions(store, again, session_ids=["orig"])
    assert again.getvalue() == text
    # A bad usage in a file fails that session, naming it.
    lines[2]["usage"]["cached_tokens"] = 10**6
    bad = tmp_path / "bad.jsonl"
    lines[0]["session_id"] = "bad"
    bad.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    result = await run_import(store, plan_import(bad))
    assert len(result.failed) == 1 and "cached_tokens" in str(result.failed[0])


def test_the_readme_example_runs_and_prints_what_it_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Usage and cost\n", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found, "no Python example under ## Usage and cost"
    monkeypatch.chdir(tmp_path)  # its database is sqlite:///usage.db, here
    done = subprocess.run(
        [sys.executable, "-c", found.group(1)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")},
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "3451 535 5"
    # The amounts are today's genai-prices; the README shows them for 0.2.5.
    expected = _expected_cost("gpt-4o", [RUNS_README[1], RUNS_README[2]]) + _expected_cost(
        "gpt-4o-mini", [Usage(1)]
    )
    cost, status, unknown = lines[1].split(" ", 2)
    assert (Decimal(cost), status, unknown) == (expected, "partial", "['our-own-model']")
    assert lines[2].startswith(price_source() + " ")
    assert [line.rsplit(" ", 1)[0] for line in lines[3:6]] == [
        "gpt-4o 2",
        "gpt-4o-mini 1",
        "our-own-model 1",
    ]
    assert lines[5].endswith(" None") and Decimal(lines[6]) == expected


RUNS_README = [  # the README example's usage
    Usage(input_tokens=1200, output_tokens=300, cached_tokens=200),
    Usage(input_tokens=2500, output_tokens=410, requests=2),
    Usage(input_tokens=900, output_tokens=120, reasoning_tokens=100),
]


async def test_messages_read_around_search_hits_carry_their_usage(store: Store) -> None:
    """``search_with_neighbours`` (MCP recall) reads the hits' neighbours whole: usage too."""
    s = await store.create_session()
    await store.add_message(s.session_id, "user", "where is the zanzibarite?")
    await store.add_message(
        s.session_id,
        "assistant",
        "in the drawer",
        model="gpt-4o",
        usage={"input_tokens": 30, "output_tokens": 5},
    )
    hits, messages = await store.search_with_neighbours("zanzibarite", context=1)
    assert [h.seq for h in hits] == [1]
    by_seq = {m.seq: m for m in messages}
    assert by_seq[1].usage is None
    assert by_seq[2].usage is not None and by_seq[2].usage.input_tokens == 30

"""Usage and cost over the REST API (issue 19 item 4), on SQLite (file and memory) and
PostgreSQL: messages posted with usage, GET /sessions/{id}/usage, usage on /stats, scoped keys."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest
from fastapi import FastAPI

from sessionkeeper.api import create_app
from sessionkeeper.config import Settings
from sessionkeeper.store.core import Store

API = "/api/engine/sessions"
RUNS = [
    {"input_tokens": 1200, "output_tokens": 300, "cached_tokens": 200, "reasoning_tokens": 50},
    {"input_tokens": 2500, "output_tokens": 410, "cached_tokens": 1000, "requests": 2},
    {"input_tokens": 900, "output_tokens": 120, "reasoning_tokens": 100, "requests": 3},
]


def make_app(db_url: str, store: Store) -> FastAPI:
    return create_app(Settings(database_url=db_url, maintenance=False), store=store)


def client(app: FastAPI, token: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://test", headers=headers)


@pytest.fixture
async def api(store: Store, db_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with client(make_app(db_url, store)) as c:
        yield c


async def test_three_runs_then_session_totals_exact(api: httpx.AsyncClient, store: Store) -> None:
    assert (await api.post(API, json={"session_id": "s"})).status_code == 201
    for i, usage in enumerate(RUNS):
        r = await api.post(f"{API}/s/messages", json={"role": "user", "content": f"q{i}"})
        assert r.status_code == 201 and r.json()["usage"] is None
        body = {"role": "assistant", "content": f"a{i}", "model": "gpt-4o", "usage": usage}
        r = await api.post(f"{API}/s/messages", json=body)
        assert r.status_code == 201, r.text
        assert r.json()["usage"]["model"] == "gpt-4o"
        assert r.json()["usage"]["input_tokens"] == usage["input_tokens"]
    r = await api.get(f"{API}/s/usage")
    assert r.status_code == 200, r.text
    totals = r.json()
    assert {k: totals[k] for k in ("messages", "requests", "input_tokens", "output_tokens")} == {
        "messages": 3,
        "requests": 6,
        "input_tokens": 4600,
        "output_tokens": 830,
    }
    assert (totals["cached_tokens"], totals["reasoning_tokens"]) == (1200, 150)
    assert totals["total_tokens"] == 5430
    assert totals["cost_status"] == "known"
    expected = await store.get_usage("s")
    assert Decimal(totals["cost_usd"]) == expected.cost_usd
    assert totals["price_source"].startswith("genai-prices ")
    assert totals["by_model"][0]["model"] == "gpt-4o"
    # The messages read back with their usage.
    listed = (await api.get(f"{API}/s/messages")).json()["messages"]
    assert [m["usage"]["requests"] for m in listed if m["usage"]] == [1, 2, 3]


async def test_unknown_model_is_unknown_never_zero(api: httpx.AsyncClient) -> None:
    await api.post(API, json={"session_id": "u"})
    one = {"role": "assistant", "content": "x", "model": "house-model", "usage": RUNS[0]}
    assert (await api.post(f"{API}/u/messages", json=one)).status_code == 201
    totals = (await api.get(f"{API}/u/usage")).json()
    assert (totals["cost_usd"], totals["cost_status"]) == ("unknown", "unknown")
    assert totals["by_model"][0]["cost_usd"] == "unknown"
    batch = {
        "messages": [
            {"role": "assistant", "content": "y", "usage": {**RUNS[1], "model": "gpt-4o"}},
        ]
    }
    assert (await api.post(f"{API}/u/messages", json=batch)).status_code == 201
    mixed = (await api.get(f"{API}/u/usage")).json()
    assert mixed["cost_status"] == "partial"
    assert mixed["unknown_models"] == ["house-model"]
    assert Decimal(mixed["cost_usd"]) > 0


@pytest.mark.parametrize(
    ("usage", "field"),
    [
        ({"input_tokens": -1}, "input_tokens"),
        ({"input_tokens": "5"}, "input_tokens"),
        ({"tokens": 5}, "tokens"),
        ({"input_tokens": 1, "cached_tokens": 2}, "usage.cached_tokens"),
    ],
)
async def test_bad_usage_is_422_and_stores_nothing(
    api: httpx.AsyncClient, usage: dict[str, object], field: str
) -> None:
    await api.post(API, json={"session_id": "b"})
    r = await api.post(
        f"{API}/b/messages", json={"role": "assistant", "content": "x", "usage": usage}
    )
    assert r.status_code == 422, r.text
    assert field in r.text
    assert (await api.get(f"{API}/b/messages")).json()["messages"] == []


async def test_usage_of_unknown_session_is_404(api: httpx.AsyncClient) -> None:
    r = await api.get(f"{API}/nope/usage")
    assert r.status_code == 404


async def test_stats_with_usage_keeps_the_keys_scope(store: Store, db_url: str) -> None:
    _, admin = await store.keys.create(admin=True)
    _, scoped = await store.keys.create(agent_ids=["a"])
    for sid, agent in (("sa", "a"), ("sb", "b")):
        await store.create_session(session_id=sid, agent_id=agent)
        await store.add_message(sid, "assistant", "x", model="gpt-4o", usage=RUNS[0])
    app = make_app(db_url, store)
    async with client(app, admin) as c:
        body = (await c.get(f"{API}/stats", params={"usage": "true"})).json()
        assert body["usage"]["messages"] == 2
        assert (await c.get(f"{API}/stats")).json()["usage"] is None
    async with client(app, scoped) as c:
        body = (await c.get(f"{API}/stats", params={"usage": "true"})).json()
        assert body["usage"]["messages"] == 1 and body["usage"]["agent_ids"] == ["a"]
        assert (await c.get(f"{API}/sb/usage")).status_code == 404  # not its agent's
        assert (await c.get(f"{API}/sa/usage")).json()["input_tokens"] == 1200

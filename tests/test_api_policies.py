"""Retention policies over REST, in the maintenance loop and from the settings (issue 20,
item 3), on SQLite file, memory and PostgreSQL: admin keys only, the error body, metrics per
rule, one replica at a time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

import rawdb
from sessionkeeper.api import create_app
from sessionkeeper.api.observability import Metrics, ScheduleListener
from sessionkeeper.config import Settings
from sessionkeeper.errors import InvalidInput
from sessionkeeper.maintenance import (
    RETENTION_JOB,
    MaintenanceRunner,
    apply_configured_policies,
)
from sessionkeeper.store import retention
from sessionkeeper.store.backends.postgres import lock_key
from sessionkeeper.store.core import Store

POLICIES = "/api/engine/policies"


async def old_session(
    store: Store, session_id: str, agent: str, days: float = 2, **kw: Any
) -> None:
    await store.create_session(session_id=session_id, agent_id=agent, **kw)
    await store.add_message(session_id, "user", "hello")
    then = rawdb.when(store, datetime.now(UTC) - timedelta(days=days))
    await rawdb.execute(
        store, "UPDATE sessions SET updated_at = ? WHERE session_id = ?", then, session_id
    )


def samples(app: FastAPI) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for family in text_string_to_metric_families(app.state.metrics.render().decode()):
        for s in family.samples:
            found[(s.name, frozenset(s.labels.items()))] = s.value
    return found


def metric(app: FastAPI, name: str, **labels: str) -> float:
    return samples(app).get((name, frozenset(labels.items())), 0.0)


class Clients:
    def __init__(self, app: FastAPI, admin: httpx.AsyncClient, scoped: httpx.AsyncClient):
        self.app, self.admin, self.scoped = app, admin, scoped


@pytest.fixture
async def api(store: Store, db_url: str) -> AsyncIterator[Clients]:
    _, admin = await store.keys.create(admin=True, name="ops")
    _, scoped = await store.keys.create(agent_ids=["A"], name="bot-a")
    app = create_app(Settings(database_url=db_url, maintenance=False), store=store)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))

    def make(token: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=transport,
            base_url="http://test",
            headers={"Authorization": f"Bearer {token}"},
        )

    async with make(admin) as a, make(scoped) as s:
        yield Clients(app, a, s)


async def test_policies_crud_and_run(api: Clients, store: Store) -> None:
    admin = api.admin
    r = await admin.put(f"{POLICIES}/A", json={"delete_after_days": 1, "end_idle_minutes": 120})
    assert r.status_code == 200, r.text
    made = r.json()
    assert {k: made[k] for k in made if k != "updated_at"} == {
        "agent_id": "A",
        "end_idle_minutes": 120,
        "delete_ended_days": None,
        "delete_after_days": 1,
    }
    assert (await admin.put(f"{POLICIES}/*", json={"delete_ended_days": 7.0})).status_code == 200
    assert (await admin.put(f"{POLICIES}/team/bot", json={})).status_code == 200
    listed = (await admin.get(POLICIES)).json()["policies"]
    assert [p["agent_id"] for p in listed] == ["*", "A", "team/bot"]
    assert (await admin.get(f"{POLICIES}/team%2Fbot")).json()["agent_id"] == "team/bot"
    assert (await admin.get(f"{POLICIES}/*")).json()["delete_ended_days"] == 7
    # PUT replaces the whole policy.
    r = await admin.put(f"{POLICIES}/A", json={"delete_after_days": 1})
    assert r.json()["end_idle_minutes"] is None

    await old_session(store, "a-old", "A")
    await old_session(store, "a-pinned", "A", metadata={"pinned": True})
    await old_session(store, "b-old", "B")
    dry = await admin.post(f"{POLICIES}/run", params={"dry_run": "true"})
    assert dry.status_code == 200, dry.text
    body = dry.json()
    assert (body["dry_run"], body["deleted_count"]) == (True, 1)
    assert [(r["agent_id"], r["rule"], r["session_ids"]) for r in body["rules"]] == [
        ("A", "delete_after", ["a-old"]),
        ("*", "delete_ended_after", []),
    ]
    assert metric(api.app, "sessionkeeper_retention_runs_total", trigger="api") == 0

    done = (await admin.post(f"{POLICIES}/run")).json()
    assert (done["dry_run"], done["deleted_count"], done["rules"][0]["session_ids"]) == (
        False,
        1,
        ["a-old"],
    )
    assert not await store.session_exists("a-old")
    assert await store.session_exists("a-pinned") and await store.session_exists("b-old")
    assert metric(api.app, "sessionkeeper_retention_runs_total", trigger="api") == 1
    labels = {"agent": "A", "rule": "delete_after", "action": "delete"}
    assert metric(api.app, "sessionkeeper_retention_sessions_total", **labels) == 1

    deleted = await admin.delete(f"{POLICIES}/A")
    assert (deleted.status_code, deleted.json()["agent_id"]) == (200, "A")
    missing = await admin.delete(f"{POLICIES}/A")
    assert missing.status_code == 404
    assert missing.json() == {
        "error": "not_found",
        "detail": "no retention policy for agent 'A'",
        "agent_id": "A",
    }
    assert (await admin.get(f"{POLICIES}/A")).status_code == 404


async def test_only_admin_keys(api: Clients, store: Store) -> None:
    await store.set_policy("A", delete_after="1d")
    await old_session(store, "a-old", "A")
    calls = [
        ("GET", POLICIES, None),
        ("GET", f"{POLICIES}/A", None),
        ("PUT", f"{POLICIES}/A", {"delete_after_days": 2}),
        ("DELETE", f"{POLICIES}/A", None),
        ("POST", f"{POLICIES}/run", None),
    ]
    for method, path, body in calls:
        r = await api.scoped.request(method, path, json=body)
        assert r.status_code == 403, (method, path, r.text)
        assert r.json()["error"] == "forbidden"
        anonymous = await api.scoped.request(method, path, json=body, headers={"Authorization": ""})
        assert anonymous.status_code == 401, (method, path)
    assert [p.delete_after_days for p in await store.get_policies()] == [1]
    assert await store.session_exists("a-old")


async def test_bad_input_is_422_with_the_field_and_changes_nothing(
    api: Clients, store: Store
) -> None:
    kept = await store.set_policy("A", delete_after="1d")
    bad: list[tuple[str, Any, str]] = [
        ("A", {"delete_after_days": 0}, "delete_after_days"),
        ("A", {"delete_after_days": 36_601}, "delete_after_days"),
        ("A", {"end_idle_minutes": 1.5}, "end_idle_minutes"),
        ("A", {"delete_after_days": "3"}, "delete_after_days"),
        ("A", {"delete_after": "3d"}, "delete_after"),
        ("A", [], "body"),
        ("a%20b", {}, "agent_id"),
        ("**", {}, "agent_id"),
    ]
    for agent, body, field in bad:
        r = await api.admin.put(f"{POLICIES}/{agent}", json=body)
        assert r.status_code == 422, (agent, body, r.text)
        assert (r.json()["error"], r.json()["field"]) == ("invalid_input", field), r.text
    assert await store.get_policies() == [kept]
    r = await api.admin.get(f"{POLICIES}/a%20b")
    assert (r.status_code, r.json()["field"]) == (422, "agent_id")
    r = await api.admin.post(f"{POLICIES}/run", params={"dry_run": "maybe"})
    assert (r.status_code, r.json()["field"]) == (422, "dry_run")
    # "run" is the run: the other methods are not allowed on it.
    r = await api.admin.get(f"{POLICIES}/run")
    assert (r.status_code, r.headers["allow"]) == (405, "POST")


# ── the maintenance loop and the settings ───────────────────────────────────


async def test_loop_runs_policies_after_their_interval_with_metrics(store: Store) -> None:
    await store.set_policy("A", delete_after="1d", end_idle_after="1h")
    await old_session(store, "a-old", "A")
    await old_session(store, "a-idle", "A", days=0.25)
    metrics = Metrics()
    runner = MaintenanceRunner(
        store,
        ghost_interval_minutes=60,
        retention_interval_minutes=0.1 / 60,
        listener=ScheduleListener(metrics),
    )
    task = asyncio.create_task(runner.run())
    try:
        for _ in range(500):
            if runner.retention.runs >= 1:
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert runner.retention.runs >= 1
    assert not await store.session_exists("a-old")
    assert (await store.get_session("a-idle")).status == "ended"
    found = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            found[(s.name, frozenset(s.labels.items()))] = s.value

    def count(rule: str, action: str) -> float:
        labels = {"agent": "A", "rule": rule, "action": action}
        return found[("sessionkeeper_retention_sessions_total", frozenset(labels.items()))]

    assert (count("delete_after", "delete"), count("end_idle_after", "end")) == (1, 1)
    runs = ("sessionkeeper_retention_runs_total", frozenset({("trigger", "schedule")}))
    assert found[runs] >= 1


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_one_replica_at_a_time(store: Store, db_url: str) -> None:
    await store.set_policy("A", delete_after="1d")
    await old_session(store, "a-old", "A")
    runner = MaintenanceRunner(store)
    other_replica = await asyncpg.connect(db_url)
    try:
        await other_replica.execute("SELECT pg_advisory_lock($1)", lock_key(RETENTION_JOB))
        assert await runner.run_policies_once() is None  # another replica is at it
        assert await store.session_exists("a-old")
    finally:
        await other_replica.close()
    result = await runner.run_policies_once()
    assert result is not None and result.deleted_count == 1


def test_settings_read_policies_from_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "SESSIONKEEPER_RETENTION",
        '{"*": {"delete_after": "30d"}, "A": {"end_idle_after": "2h", "delete_ended_after": "7d"}}',
    )
    settings = Settings(database_url="sqlite://")
    assert settings.retention is not None
    assert retention.configured(settings.retention) == {
        "*": {
            "delete_after": timedelta(days=30),
            "delete_ended_after": None,
            "end_idle_after": None,
        },
        "A": {
            "delete_after": None,
            "delete_ended_after": timedelta(days=7),
            "end_idle_after": timedelta(hours=2),
        },
    }
    for bad, words in [
        ('{"A": {"delete_after": "36h"}}', "retention['A']: delete_after must be a whole number"),
        ('{"A": {"delete_afer": "3d"}}', "unknown rule 'delete_afer'"),
        ('{"a b": {"delete_after": "3d"}}', "invalid agent_id 'a b'"),
        ('{"A": "3d"}', "must be an object of rules"),
        ("[1]", "retention"),
    ]:
        monkeypatch.setenv("SESSIONKEEPER_RETENTION", bad)
        with pytest.raises(ValueError, match="retention") as caught:
            Settings(database_url="sqlite://")
        assert words in str(caught.value), (bad, str(caught.value))
    with pytest.raises(InvalidInput, match="JSON object"):
        retention.configured([1])


async def test_server_start_writes_the_configured_policies(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'config.db'}"
    async with await Store.open(url) as store:
        await store.set_policy("A", delete_after="90d")
        await store.set_policy("B", delete_after="60d")  # not in the settings: it stays
    settings = Settings(
        database_url=url,
        maintenance=False,
        retention={"*": {"delete_after": "30d"}, "A": {"end_idle_after": "2h"}},
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        store = app.state.store
        found = {p.agent_id: p for p in await store.get_policies()}
        assert sorted(found) == ["*", "A", "B"]
        assert (found["A"].end_idle_minutes, found["A"].delete_after_days) == (120, None)
        assert (found["*"].delete_after_days, found["B"].delete_after_days) == (30, 60)
        assert await apply_configured_policies(store, settings)  # idempotent: a second replica
        assert len(await store.get_policies()) == 3


def test_the_document_states_what_a_policy_accepts() -> None:
    document = create_app(Settings(database_url="sqlite://", maintenance=False)).openapi()
    rules = document["components"]["schemas"]["PolicyRules"]
    assert rules["additionalProperties"] is False
    days = rules["properties"]["delete_after_days"]["anyOf"][0]
    minutes = rules["properties"]["end_idle_minutes"]["anyOf"][0]
    assert (days["type"], days["minimum"], days["maximum"]) == ("integer", 1, 36_600)
    assert (minutes["minimum"], minutes["maximum"]) == (1, 100 * 366 * 24 * 60)
    [agent] = document["paths"]["/api/engine/policies/{agent_id}"]["put"]["parameters"]
    assert {"const": "*"} in agent["schema"]["anyOf"]

"""/healthz, /readyz and /metrics on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import rawdb
from sessionkeeper.api import create_app
from sessionkeeper.api.observability import Metrics, ScheduleListener
from sessionkeeper.config import Settings
from sessionkeeper.maintenance import MaintenanceRunner
from sessionkeeper.store.core import Store
from sessionkeeper.store.schema import SCHEMA_REVISION

API = "/api/engine/sessions"


@pytest.fixture
async def client(store: Store, db_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(database_url=db_url, maintenance=False), store=store)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        c.app = app  # type: ignore[attr-defined]
        yield c


def samples(body: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """{(sample name, labels): value} from Prometheus text."""
    found = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            found[(s.name, frozenset(s.labels.items()))] = s.value
    return found


async def scrape(client: httpx.AsyncClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    return samples(r.text)


def value(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


async def test_healthz(client: httpx.AsyncClient) -> None:
    r = await client.get("/healthz")
    assert (r.status_code, r.json()) == (200, {"status": "ok"})


async def test_readyz_ok_then_503_on_a_schema_mismatch(
    client: httpx.AsyncClient, store: Store
) -> None:
    r = await client.get("/readyz")
    assert r.status_code == 200
    body = r.json()
    replication = body.pop("replication")
    assert body == {"status": "ready", "database": "ok", "schema": SCHEMA_REVISION}
    # A lone database (no standby): the primary, nothing behind it.
    assert replication["role"] == "primary"
    assert replication["lag_seconds"] in (None, 0), replication
    assert replication["standbys"] in (None, 0), replication  # SQLite: None; PostgreSQL: 0

    await rawdb.execute(store, "UPDATE alembic_version SET version_num = '0000'")
    r = await client.get("/readyz")
    assert r.status_code == 503
    body = r.json()
    assert (body["status"], body["error"], body["database"]) == (
        "not_ready",
        "schema_mismatch",
        "ok",
    )
    assert (body["schema"], body["expected_schema"]) == ("0000", SCHEMA_REVISION)
    assert "sessionkeeper db upgrade" in body["detail"]
    assert (await client.get("/healthz")).status_code == 200  # liveness does not care

    # The schema gone altogether (the database emptied under the server): no revision at all.
    await rawdb.execute(store, "DROP TABLE alembic_version")
    r = await client.get("/readyz")
    assert r.status_code == 503, r.text
    body = r.json()
    assert (body["error"], body["database"], body["schema"]) == ("schema_mismatch", "ok", None)
    assert "revision none" in body["detail"]


async def _pg_admin(url: str, *statements: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url, timeout=5)
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


async def test_readyz_503_while_postgresql_refuses_connections(pg_database_url: str) -> None:
    """The server's database stops answering: its connections are cut and new ones refused.

    Done for real on a throw-away database of the test server: ``pg_terminate_backend`` ends
    the store's pooled connections and ``ALLOW_CONNECTIONS false`` makes the server refuse
    new ones, as for a database taken offline. The first /readyz meets a dead pooled
    connection, the second a refused new one; both are 503 "unavailable" without the
    driver's message (it names the database) in the body. Allowing connections again makes
    the same store ready again: the 503 was the database, not a broken store.

    PostgreSQL only: an embedded SQLite database has no such state. In WAL mode no other
    connection can keep the store from reading (an exclusive lock from another process
    needs the store's own connections gone), and a deleted file stays readable through the
    open descriptors. SQLite's real not-ready case, the schema gone, is in the test above.
    """
    from sqlalchemy.engine import make_url

    name = f"sk_ready_{uuid.uuid4().hex[:8]}"
    url = make_url(pg_database_url).set(database=name).render_as_string(hide_password=False)
    await _pg_admin(pg_database_url, f'CREATE DATABASE "{name}"')
    try:
        store = await Store.open(url)
        app = create_app(Settings(database_url=url, maintenance=False), store=store)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            assert (await c.get("/readyz")).status_code == 200  # a pooled connection now
            await _pg_admin(
                pg_database_url,
                f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false',
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'",
            )
            for _ in ("the pooled connection is dead", "a new connection is refused"):
                r = await c.get("/readyz")
                assert r.status_code == 503, r.text
                body = r.json()
                assert (body["status"], body["error"], body["database"]) == (
                    "not_ready",
                    "unavailable",
                    "error",
                )
                assert name not in body["detail"]  # the driver's message stays in the log
            assert (await c.get("/healthz")).status_code == 200

            await _pg_admin(pg_database_url, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            r = await c.get("/readyz")
            assert (r.status_code, r.json()["status"]) == (200, "ready")
        await store.close()
    finally:
        await _pg_admin(pg_database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_readyz_503_before_the_store_is_open(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'never.db'}"
    no_store = create_app(Settings(database_url=url, maintenance=False))
    transport = httpx.ASGITransport(app=no_store)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        r = await c.get("/readyz")  # no lifespan ran: the store was never opened
        assert r.status_code == 503 and r.json()["error"] == "unavailable"
    assert not (tmp_path / "never.db").exists()


async def test_metrics_count_sessions_messages_and_maintenance(
    client: httpx.AsyncClient,
) -> None:
    before = await scrape(client)
    for name in (
        "sessionkeeper_sessions_created_total",
        "sessionkeeper_messages_stored_total",
    ):
        assert value(before, name) == 0
    for name in (
        "sessionkeeper_ghosts_purged_total",
        "sessionkeeper_prune_runs_total",
        "sessionkeeper_sessions_pruned_total",
    ):
        for trigger in ("api", "schedule"):
            assert (name, frozenset({("trigger", trigger)})) in before  # exported at 0

    kept = (await client.post(API, json={"title": "kept"})).json()["session_id"]
    await client.post(API, json={"title": "ghost"})
    u = f"{API}/{kept}/messages"
    assert (await client.post(u, json={"role": "user", "content": "one"})).status_code == 201
    batch = {"messages": [{"role": "user", "content": str(i)} for i in range(3)]}
    assert (await client.post(u, json=batch)).status_code == 201
    assert (await client.post(u, json={"role": "robot", "content": "x"})).status_code == 422
    r = await client.delete(f"{API}/ghosts", params={"older_than_minutes": 0})
    assert r.json()["deleted"] == 1
    assert (await client.post(f"{API}/prune", params={"dry_run": True})).status_code == 200
    assert (await client.post(f"{API}/prune")).status_code == 200
    assert (await client.get(f"{API}/{kept}")).status_code == 200
    assert (await client.get("/no/such/page")).status_code == 404

    after = await scrape(client)
    assert value(after, "sessionkeeper_sessions_created_total") == 2
    assert value(after, "sessionkeeper_messages_stored_total") == 4
    assert value(after, "sessionkeeper_ghosts_purged_total", trigger="api") == 1
    assert value(after, "sessionkeeper_prune_runs_total", trigger="api") == 1  # not the dry run
    assert value(after, "sessionkeeper_sessions_pruned_total", trigger="api") == 0

    # Requests are labelled by route template, never by a session id.
    requests = "sessionkeeper_http_requests_total"
    messages_route = f"{API}/{{session_id}}/messages"
    assert value(after, requests, method="POST", route=messages_route, status="201") == 2
    assert value(after, requests, method="POST", route=messages_route, status="422") == 1
    assert value(after, requests, method="POST", route=API, status="201") == 2
    assert value(after, requests, method="GET", route=f"{API}/{{session_id}}", status="200") == 1
    assert value(after, requests, method="GET", route="/no/such/page", status="404") == 0
    assert value(after, requests, method="GET", route="<unmatched>", status="404") == 1
    assert value(after, requests, method="GET", route="/metrics", status="200") == 1
    assert not any(kept in dict(labels).get("route", "") for _, labels in after)
    latency = "sessionkeeper_http_request_duration_seconds_count"
    assert value(after, latency, method="POST", route=messages_route) == 3
    # No standby: no series of where reads were served (test_standby.py has them).
    assert not any(name.startswith("sessionkeeper_database_reads") for name, _ in after)


async def test_each_app_has_its_own_registry(store: Store, db_url: str) -> None:
    settings = Settings(database_url=db_url, maintenance=False)
    one, two = create_app(settings, store=store), create_app(settings, store=store)
    assert one.state.metrics.registry is not two.state.metrics.registry
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=one), base_url="http://test"
    ) as c:
        await c.post(API, json={})
    assert (
        value(samples(one.state.metrics.render().decode()), "sessionkeeper_sessions_created_total")
        == 1
    )
    assert (
        value(samples(two.state.metrics.render().decode()), "sessionkeeper_sessions_created_total")
        == 0
    )


async def test_scheduled_maintenance_reports_to_metrics(store: Store) -> None:
    metrics = Metrics()
    runner = MaintenanceRunner(
        store, ghost_age_minutes=0, prune_days=30, listener=ScheduleListener(metrics)
    )
    await store.create_session()
    await store.create_session()
    assert await runner.purge_ghosts_once() == 2
    result = await runner.prune_once()
    assert result is not None and result.pruned_count == 0
    found = samples(metrics.render().decode())
    assert value(found, "sessionkeeper_ghosts_purged_total", trigger="schedule") == 2
    assert value(found, "sessionkeeper_ghosts_purged_total", trigger="api") == 0
    assert value(found, "sessionkeeper_prune_runs_total", trigger="schedule") == 1

    async def broken(_minutes: float) -> int:
        raise RuntimeError("disk on fire")

    store.delete_ghost_sessions = broken  # type: ignore[method-assign]
    failing = MaintenanceRunner(
        store, ghost_interval_minutes=0.001 / 60, listener=ScheduleListener(metrics)
    )
    task = asyncio.create_task(failing.run())
    try:
        for _ in range(500):
            if failing.ghosts.failures >= 2:
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    found = samples(metrics.render().decode())
    assert value(found, "sessionkeeper_maintenance_failures_total", job="ghost_purge") >= 2


async def test_chat_counts_its_session_and_both_messages(client: httpx.AsyncClient) -> None:
    before = await scrape(client)
    r = await client.post("/api/engine/chat/stream", json={"content": "count me"})
    assert r.status_code == 200 and "event: done" in r.text
    after = await scrape(client)
    created = "sessionkeeper_sessions_created_total"
    stored = "sessionkeeper_messages_stored_total"
    assert value(after, created) - value(before, created) == 1
    assert value(after, stored) - value(before, stored) == 2  # the user turn and the reply

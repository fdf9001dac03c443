"""Standby reads and the node's role (issue 18), on a private primary + streaming standby
(``pgreplica.py``: pg_basebackup -R, a hot standby on its own port).

- With a read URL (or ``read_from=standby``), listings, searches, gets and windows run on
  the standby (counted by its ``pg_stat_activity`` and the backend's route), writes never
  do (the read connections are read-only, and every write succeeds);
- a store that writes and then reads sees its write, also while the standby lags (its
  replay paused): the read waits ``read_wait`` and then reads from the primary; a standby
  that cannot be reached sends reads to the primary too;
- ``SESSIONKEEPER_READ_URL`` reaches ``serve``;
- ``Store.database_role`` and the maintenance jobs: a store on the standby reports
  ``standby`` and runs no job; the primary reports its standby.

One pair serves the module (starting it takes seconds); every test makes its own sessions.
Without initdb/pg_basebackup it skips loudly locally and FAILS under CI=true.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from pgcluster import ClusterUnavailable
from pgreplica import PgReplica
from sessionkeeper import Store
from sessionkeeper.maintenance import MaintenanceRunner

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")  # as conftest.py reads it


@pytest.fixture(scope="module")
def replica() -> Iterator[PgReplica]:
    try:
        pair = PgReplica()
    except ClusterUnavailable as exc:
        message = f"cannot run a private primary + standby: {exc}"
        if IN_CI:
            pytest.fail(f"{message} (CI=true: the standby tests must run)", pytrace=False)
        pytest.skip(f"!!! SKIPPING THE STANDBY TESTS: {message}")
    try:
        pair.start()
        yield pair
    finally:
        leftovers = pair.stop()
    assert not leftovers, f"processes of the primary or standby outlived stop(): {leftovers}"


@pytest.fixture
async def schema(replica: PgReplica) -> PgReplica:
    """The schema on the primary (migrations), replayed on the standby."""
    store = await Store.open(replica.url)
    await store.close()
    replica.standby.wait_caught_up()
    return replica


def route(store: Store) -> Any:
    return store._backend._reads  # type: ignore[attr-defined]


def standby_backends(replica: PgReplica) -> int:
    """Client connections to the test database on the standby, other than psql's own."""
    return int(
        replica.standby.query(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
        )
    )


@pytest.fixture
async def reading_store(schema: PgReplica) -> AsyncIterator[Store]:
    # read_wait: generous, the machine is shared; the lag test sets its own
    store = await Store.open(f"{schema.url}?read_wait=10", read_url=schema.read_url)
    yield store
    await store.close()


async def test_reads_go_to_the_standby_and_writes_never_do(
    schema: PgReplica, reading_store: Store
) -> None:
    store = reading_store
    sid = f"standby-{uuid.uuid4().hex[:8]}"
    await store.create_session(session_id=sid, agent_id="standby", title="read me")
    for n in range(5):
        await store.add_message(sid, "user", f"quokka number {n}")

    # Every kind of read, right after the writes: each sees all of them.
    assert (await store.get_session(sid)).message_count == 5
    assert [m.content for m in await store.get_messages(sid)][-1] == "quokka number 4"
    page = await store.list_sessions(agent_id="standby")
    assert sid in [s.session_id for s in page.items]
    hits = await store.search_messages("quokka", session_id=sid)
    assert len(hits) == 5
    window = await store.context_window(sid, 1000)
    assert len(window.messages) == 5

    r = route(store)
    assert r.on_standby == 5, (r.on_standby, r.on_primary)
    assert r.on_primary == 0
    assert standby_backends(schema) >= 1  # the store's read connection is there
    # … and nothing was written there: the standby refuses writes, and every write above
    # succeeded on the primary.
    with pytest.raises(RuntimeError, match="read-only"):
        schema.standby.query("INSERT INTO sessions (session_id) VALUES ('x')")


async def test_a_read_after_a_write_sees_it_while_the_standby_lags(schema: PgReplica) -> None:
    store = await Store.open(f"{schema.url}?read_wait=0.2", read_url=schema.read_url)
    try:
        sid = f"lag-{uuid.uuid4().hex[:8]}"
        await store.create_session(session_id=sid, agent_id="lag")
        await store.add_message(sid, "user", "before the pause")
        assert len(await store.get_messages(sid)) == 1
        assert route(store).on_standby == 1

        schema.standby.pause_replay()
        try:
            await store.add_message(sid, "user", "while the standby lags")
            seen = [m.content for m in await store.get_messages(sid)]
            assert seen == ["before the pause", "while the standby lags"]
            assert route(store).on_primary == 1  # waited 0.2 s, then read the primary
            # The standby itself has not replayed it: the store did not read there.
            assert (
                schema.standby.query(
                    f"SELECT count(*) FROM messages WHERE session_id = '{sid}'"
                ).strip()
                == "1"
            )
        finally:
            schema.standby.resume_replay()
        schema.standby.wait_caught_up()
        assert len(await store.get_messages(sid)) == 2
        assert route(store).on_standby == 2  # caught up: back on the standby
    finally:
        await store.close()


async def test_read_from_standby_in_the_url(schema: PgReplica) -> None:
    url = f"{schema.hosts_url}?target_session_attrs=read-write&read_from=standby&read_wait=10"
    store = await Store.open(url)
    try:
        sid = f"hosts-{uuid.uuid4().hex[:8]}"
        await store.create_session(session_id=sid, agent_id="hosts")
        await store.add_message(sid, "user", "one URL for both")
        assert [m.content for m in await store.get_messages(sid)] == ["one URL for both"]
        assert (route(store).on_standby, route(store).on_primary) == (1, 0)
        assert (await store.database_role()).role == "primary"  # writes: the primary
    finally:
        await store.close()


async def test_role_and_maintenance_on_each_node(schema: PgReplica) -> None:
    on_primary = await Store.open(schema.url)
    on_standby = await Store.open(schema.read_url)
    try:
        primary = await on_primary.database_role()
        assert primary.role == "primary"
        assert primary.standbys == 1
        standby = await on_standby.database_role()
        assert standby.role == "standby"
        assert standby.lag_seconds is not None and standby.lag_seconds >= 0
        assert standby.lag_bytes is not None and standby.lag_bytes >= 0
        assert standby.standbys is None
        # Maintenance: the primary's runner works, the standby's skips every job.
        assert await MaintenanceRunner(on_primary).purge_ghosts_once() is not None
        runner = MaintenanceRunner(on_standby)
        assert await runner.purge_ghosts_once() is None
        assert await runner.prune_once() is None
        assert await runner.run_policies_once() is None
    finally:
        await on_primary.close()
        await on_standby.close()


def test_a_read_url_needs_postgresql(monkeypatch: pytest.MonkeyPatch) -> None:
    from sessionkeeper.errors import InvalidInput
    from sessionkeeper.store.url import parse

    with pytest.raises(InvalidInput, match="needs PostgreSQL"):
        parse("sqlite:///x.db", read_url="postgresql://u@h/db")
    with pytest.raises(InvalidInput, match="must be a postgresql:// URL"):
        parse("postgresql://u@h/db", read_url="sqlite:///x.db")
    monkeypatch.setenv("SESSIONKEEPER_READ_URL", "postgresql://u@standby/db")
    assert parse("postgresql://u@h/db").read_dsn == "postgresql://u@standby/db"
    with pytest.raises(InvalidInput, match="SESSIONKEEPER_READ_URL"):
        parse("sqlite:///x.db")  # set for another database: said, not ignored
    monkeypatch.delenv("SESSIONKEEPER_READ_URL")
    with pytest.raises(InvalidInput, match="read_from must be one of"):
        parse("postgresql://u@h/db?read_from=replica")
    with pytest.raises(InvalidInput, match="read_wait must be seconds"):
        parse("postgresql://u@h/db?read_wait=soon")


def test_serve_reads_from_the_standby_named_by_the_environment(
    schema: PgReplica, tmp_path: Path
) -> None:
    """``SESSIONKEEPER_READ_URL`` reaches ``serve``: its reads run on the standby (its
    pg_stat_activity shows them), a client reads its own write at once, and /readyz reports
    the primary it writes to and its standby."""
    import httpx

    from serving import served

    env = {"SESSIONKEEPER_READ_URL": f"{schema.read_url}"}
    with (
        served(f"{schema.url}?read_wait=10", tmp_path, env=env) as server,
        httpx.Client(base_url=server.base, trust_env=False, timeout=10) as http,
    ):
        if True:  # the body reads as one block with the server up
            before = standby_backends(schema)
            r = http.post("/api/engine/sessions", json={"agent_id": "serve-standby"})
            assert r.status_code == 201, r.text
            sid = r.json()["session_id"]
            for n in range(3):
                r = http.post(
                    f"/api/engine/sessions/{sid}/messages",
                    json={"role": "user", "content": f"served {n}"},
                )
                assert r.status_code == 201, r.text
                r = http.get(f"/api/engine/sessions/{sid}/messages")
                assert [m["content"] for m in r.json()["messages"]][-1] == f"served {n}"
            assert standby_backends(schema) > before  # serve's read connection
            ready = http.get("/readyz").json()
            assert ready["replication"]["role"] == "primary"
            assert ready["replication"]["standbys"] == 1
            # /metrics: where the reads went (each of the three reads above was served).
            text = http.get("/metrics").text
            served = {
                node: float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                for node in ("standby", "primary")
                if line.startswith(f'sessionkeeper_database_reads_total{{served_by="{node}"}}')
            }
            assert set(served) == {"standby", "primary"}, text
            assert served["standby"] + served["primary"] >= 3


def test_a_multi_host_url_is_masked_whole() -> None:
    from sessionkeeper.store.url import masked

    assert (
        masked("postgresql://app:secret@db1:5432,db2:5432/s?target_session_attrs=read-write")
        == "postgresql://app:***@db1:5432,db2:5432/s?target_session_attrs=read-write"
    )


async def test_an_unreachable_standby_sends_reads_to_the_primary(schema: PgReplica) -> None:
    from pgcluster import free_port

    user, db = schema.primary.user.pw_name, schema.primary.database
    nowhere = f"postgresql://{user}@127.0.0.1:{free_port()}/{db}"
    store = await Store.open(schema.url, read_url=nowhere)
    try:
        sid = f"nowhere-{uuid.uuid4().hex[:8]}"
        await store.create_session(session_id=sid, agent_id="nowhere")
        await store.add_message(sid, "user", "still readable")
        assert [m.content for m in await store.get_messages(sid)] == ["still readable"]
        assert (await store.get_session(sid)).message_count == 1
        assert (route(store).on_standby, route(store).on_primary) == (0, 2)
        assert store.reads_served() == {"standby": 0, "primary": 2}
    finally:
        await store.close()

"""``Idempotency-Key`` over REST (issue 18 item 1), on SQLite and PostgreSQL.

The same key and body twice store one row and answer the same seq; the same key with
another body is a 422 (the IETF Idempotency-Key draft's status for a reused key) that
changes nothing; eight concurrent sends of one key store one row; a keyed create sent
twice makes one session; the header is in the OpenAPI document.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from sessionkeeper.api import create_app
from sessionkeeper.config import Settings
from sessionkeeper.store.core import Store

API = "/api/engine/sessions"


@pytest.fixture
async def client(file_db_url: str) -> AsyncIterator[httpx.AsyncClient]:
    store = await Store.open(file_db_url)
    app = create_app(Settings(database_url=file_db_url, maintenance=False), store=store)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            yield c
    finally:
        await store.close()


def keyed(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


async def _session(client: httpx.AsyncClient) -> str:
    r = await client.post(API, json={})
    assert r.status_code == 201, r.text
    return str(r.json()["session_id"])


async def _messages(client: httpx.AsyncClient, sid: str) -> list[dict[str, Any]]:
    r = await client.get(f"{API}/{sid}/messages")
    assert r.status_code == 200, r.text
    return list(r.json()["messages"])


async def test_same_key_and_body_twice_store_one_row_and_answer_the_same_seq(
    client: httpx.AsyncClient,
) -> None:
    sid = await _session(client)
    body = {"role": "user", "content": "hello", "metadata": {"k": [1, 2]}}
    first = await client.post(f"{API}/{sid}/messages", json=body, headers=keyed("a-1"))
    again = await client.post(f"{API}/{sid}/messages", json=body, headers=keyed("a-1"))
    assert first.status_code == again.status_code == 201, again.text
    assert again.json() == first.json()
    assert first.json()["seq"] == 1
    assert [m["content"] for m in await _messages(client, sid)] == ["hello"]
    # The IETF draft's form, a quoted string, is the same key.
    quoted = await client.post(f"{API}/{sid}/messages", json=body, headers=keyed('"a-1"'))
    assert quoted.json() == first.json()
    assert len(await _messages(client, sid)) == 1


async def test_same_key_other_body_is_422_and_stores_nothing(client: httpx.AsyncClient) -> None:
    sid = await _session(client)
    await client.post(
        f"{API}/{sid}/messages", json={"role": "user", "content": "a"}, headers=keyed("k")
    )
    r = await client.post(
        f"{API}/{sid}/messages", json={"role": "user", "content": "b"}, headers=keyed("k")
    )
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] == "idempotency_key_reused"
    assert body["field"] == "idempotency_key"
    assert "already used for a different request" in body["detail"]
    assert [m["content"] for m in await _messages(client, sid)] == ["a"]
    session = (await client.get(f"{API}/{sid}")).json()
    assert session["message_count"] == 1


async def test_batch_with_a_key_is_answered_again_whole(client: httpx.AsyncClient) -> None:
    sid = await _session(client)
    batch = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    first = await client.post(f"{API}/{sid}/messages", json=batch, headers=keyed("b"))
    again = await client.post(f"{API}/{sid}/messages", json=batch, headers=keyed("b"))
    assert first.status_code == again.status_code == 201
    assert [m["seq"] for m in again.json()["messages"]] == [1, 2]
    assert again.json() == first.json()
    assert len(await _messages(client, sid)) == 2


async def test_eight_concurrent_sends_of_one_key_store_one_row(client: httpx.AsyncClient) -> None:
    sid = await _session(client)
    body = {"role": "user", "content": "once"}
    replies = await asyncio.gather(
        *[client.post(f"{API}/{sid}/messages", json=body, headers=keyed("burst")) for _ in range(8)]
    )
    assert {r.status_code for r in replies} == {201}, [r.text for r in replies]
    assert {r.json()["seq"] for r in replies} == {1}
    assert [m["content"] for m in await _messages(client, sid)] == ["once"]


async def test_keyed_create_twice_makes_one_session(client: httpx.AsyncClient) -> None:
    body = {"title": "plans", "agent_id": "bot"}
    first = await client.post(API, json=body, headers=keyed("c-1"))
    again = await client.post(API, json=body, headers=keyed("c-1"))
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    listed = (await client.get(API, params={"agent_id": "bot"})).json()
    assert listed["total"] == 1
    other = await client.post(API, json={"title": "other", "agent_id": "bot"}, headers=keyed("c-1"))
    assert other.status_code == 422
    assert other.json()["error"] == "idempotency_key_reused"
    burst = await asyncio.gather(
        *[client.post(API, json={"agent_id": "bot"}, headers=keyed("c-2")) for _ in range(8)]
    )
    assert len({r.json()["session_id"] for r in burst}) == 1
    assert (await client.get(API, params={"agent_id": "bot"})).json()["total"] == 2


@pytest.mark.parametrize("bad", ["", "x" * 256])
async def test_a_bad_key_is_422_naming_it(client: httpx.AsyncClient, bad: str) -> None:
    sid = await _session(client)
    r = await client.post(
        f"{API}/{sid}/messages", json={"role": "user", "content": "x"}, headers=keyed(bad)
    )
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "idempotency_key"
    assert await _messages(client, sid) == []


async def test_openapi_documents_the_header(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    for path in (API, API + "/{session_id}/messages"):
        params = doc["paths"][path]["post"]["parameters"]
        header = [p for p in params if p["in"] == "header" and p["name"] == "Idempotency-Key"]
        assert len(header) == 1, path
        assert "retry" in header[0]["description"]
        assert header[0]["required"] is False

"""The chat service records what each reply cost (issue 19 item 4): the model server's usage
report (OpenAI's last stream chunk, asked for with ``stream_options.include_usage``) is stored
on the reply, on SQLite (file and memory) and PostgreSQL, against the real local fake server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from fakellm import FakeLLM, run_fake_llm
from sessionkeeper import Usage
from sessionkeeper.api import create_app
from sessionkeeper.chat.llm import EchoClient, OpenAIChatClient, usage_of
from sessionkeeper.config import Settings
from sessionkeeper.store.core import Store

STREAM = "/api/engine/chat/stream"
REPORT = {
    "prompt_tokens": 812,
    "completion_tokens": 96,
    "total_tokens": 908,
    "prompt_tokens_details": {"cached_tokens": 512},
    "completion_tokens_details": {"reasoning_tokens": 64},
}


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    with run_fake_llm(usage=REPORT) as server:
        yield server


@pytest.fixture
async def client(db_url: str, store: Store, fake: FakeLLM) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        database_url=db_url, maintenance=False, llm_base_url=fake.base_url, llm_model="gpt-4o"
    )
    app = create_app(settings, store=store)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as c:
        yield c
    await app.state.llm.aclose()


async def test_each_reply_carries_the_usage_the_server_reported(
    client: httpx.AsyncClient, store: Store, fake: FakeLLM
) -> None:
    sid = None
    for text in ("one", "two", "three"):
        body: dict[str, Any] = {"content": text}
        if sid:
            body["session_id"] = sid
        r = await client.post(STREAM, json=body)
        assert r.status_code == 200, r.text
        first = r.text.split("data: ", 1)[1].split("\n", 1)[0]
        sid = sid or json.loads(first)["session_id"]
    assert fake.requests[-1]["stream_options"] == {"include_usage": True}
    assert sid is not None
    messages = await store.get_messages(sid)
    replies = [m for m in messages if m.role == "assistant"]
    assert [m.usage for m in replies] == [Usage(812, 96, 512, 64, 1, "gpt-4o")] * 3
    assert all(m.usage is None for m in messages if m.role == "user")
    totals = await store.get_usage(sid)
    assert (totals.requests, totals.input_tokens, totals.output_tokens) == (3, 2436, 288)
    assert (totals.cached_tokens, totals.reasoning_tokens) == (1536, 192)
    assert totals.cost_status == "known" and totals.cost_usd


async def test_a_server_that_reports_nothing_leaves_no_usage(store: Store) -> None:
    with run_fake_llm() as plain:  # reports zeros: a usage of 0 tokens, still one request
        llm = OpenAIChatClient(plain.base_url, "fake-model")
        seen: list[Usage] = []
        text = "".join([p async for p in llm.stream([{"role": "user", "content": "hi"}])])
        assert "stream_options" not in plain.requests[-1]  # not asked: not requested
        async for _ in llm.stream([{"role": "user", "content": "hi"}], on_usage=seen.append):
            pass
        await llm.aclose()
    assert text and seen == [Usage(0, 0, 0, 0, 1, "fake-model")]
    echo: list[Usage] = []
    async for _ in EchoClient().stream([{"role": "user", "content": "x"}], on_usage=echo.append):
        pass
    assert echo == []  # no model ran


def test_usage_of_reads_openai_reports_and_refuses_others() -> None:
    assert usage_of(REPORT, "m") == Usage(812, 96, 512, 64, 1, "m")
    assert usage_of(None, "m") is None
    assert usage_of({"prompt_tokens": -3, "completion_tokens": "x"}, None) == Usage(0, 0)
    odd = {"prompt_tokens": 5, "prompt_tokens_details": {"cached_tokens": 9}}
    assert usage_of(odd, "m" * 200) == Usage(5, 0, 5, 0, 1, None)

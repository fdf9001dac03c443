"""The model clients, against a real local OpenAI-compatible server (tests/fakellm.py)."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest

from fakellm import run_fake_llm, split_chunks
from sessionkeeper.chat.llm import DEFAULT_MODEL, EchoClient, OpenAIChatClient, make_client
from sessionkeeper.errors import Unavailable

MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "first question"},
    {"role": "assistant", "content": "first answer"},
    {"role": "user", "content": "tell me a story about a cat"},
]


async def collect(
    client: Any, messages: list[dict[str, Any]]
) -> tuple[list[str], Exception | None]:
    """The pieces yielded before the stream ended, and the error that ended it, if any."""
    pieces: list[str] = []
    try:
        async for piece in client.stream(messages):
            pieces.append(piece)
    except Exception as exc:
        return pieces, exc
    return pieces, None


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_stream_pieces_join_to_full_reply() -> None:
    with run_fake_llm(chunks=4) as fake:
        async with OpenAIChatClient(fake.base_url, "fake-model") as client:
            pieces, err = await collect(client, MESSAGES)
    assert err is None
    assert len(pieces) == 4
    assert "".join(pieces) == "Reply to: tell me a story about a cat"


async def test_request_body_carries_model_messages_and_stream() -> None:
    with run_fake_llm() as fake:
        async with OpenAIChatClient(fake.base_url + "/", "my-model") as client:
            assert await client.complete(MESSAGES) == "Reply to: tell me a story about a cat"
    assert len(fake.requests) == 1
    body = fake.requests[0]
    assert body["model"] == "my-model"
    assert body["messages"] == MESSAGES
    assert body["stream"] is True
    assert "authorization" not in fake.headers[0]


async def test_authorization_header_sent_with_key() -> None:
    with run_fake_llm() as fake:
        async with OpenAIChatClient(fake.base_url, "m", api_key="sk-test-123") as client:
            await client.complete(MESSAGES)
    assert fake.headers[0]["authorization"] == "Bearer sk-test-123"


async def test_http_500_is_unavailable_with_status_and_error_text() -> None:
    with run_fake_llm(fail_status=500, error_message="GPU on fire") as fake:
        async with OpenAIChatClient(fake.base_url, "m") as client:
            pieces, err = await collect(client, MESSAGES)
    assert pieces == []
    assert isinstance(err, Unavailable)
    assert "500" in str(err)
    assert "GPU on fire" in str(err)
    assert err.details["status"] == 500


async def test_long_error_text_is_truncated_in_message_only() -> None:
    long_text = "x" * 2000
    with run_fake_llm(fail_status=503, error_message=long_text) as fake:
        async with OpenAIChatClient(fake.base_url, "m") as client:
            with pytest.raises(Unavailable) as info:
                await client.complete(MESSAGES)
    assert "503" in info.value.message
    assert "x" * 500 in info.value.message
    assert "x" * 501 not in info.value.message
    assert long_text in str(info.value.details["error"])


async def test_connection_refused_is_unavailable() -> None:
    port = unused_port()
    async with OpenAIChatClient(f"http://127.0.0.1:{port}/v1", "m", timeout=5) as client:
        with pytest.raises(Unavailable) as info:
            await client.complete(MESSAGES)
    assert f"127.0.0.1:{port}" in str(info.value)


async def test_mid_stream_abort_raises_after_partial_pieces() -> None:
    with run_fake_llm(chunks=5, abort_after=2) as fake:
        async with OpenAIChatClient(fake.base_url, "m") as client:
            pieces, err = await collect(client, MESSAGES)
    expected = split_chunks("Reply to: tell me a story about a cat", 5)[:2]
    assert pieces == expected
    assert isinstance(err, Unavailable)


async def test_read_timeout_is_unavailable() -> None:
    with run_fake_llm(delay=0.6) as fake:
        async with OpenAIChatClient(fake.base_url, "m", timeout=0.1) as client:
            with pytest.raises(Unavailable, match="Timeout"):
                await client.complete(MESSAGES)


async def test_consumer_may_stop_early_and_reuse_client() -> None:
    with run_fake_llm(chunks=4) as fake:
        async with OpenAIChatClient(fake.base_url, "m") as client:
            stream = client.stream(MESSAGES)
            async for _ in stream:
                break
            await stream.aclose()  # type: ignore[attr-defined]
            assert await client.complete([{"role": "user", "content": "again"}]) == (
                "Reply to: again"
            )
    assert len(fake.requests) == 2


async def test_fixed_reply_and_non_stream_endpoint() -> None:
    with run_fake_llm(reply="Hi there, friend") as fake:
        async with httpx.AsyncClient() as http:
            resp = await http.post(
                fake.base_url + "/chat/completions",
                json={"model": "m", "messages": MESSAGES},
            )
        async with OpenAIChatClient(fake.base_url, "m") as client:
            assert await client.complete(MESSAGES) == "Hi there, friend"
    assert resp.status_code == 200
    data = resp.json()
    assert data["object"] == "chat.completion"
    assert data["choices"][0]["message"] == {"role": "assistant", "content": "Hi there, friend"}


async def test_sse_parsing_tolerates_comments_and_missing_space() -> None:
    body = (
        ": keep-alive\n\n"
        'data:{"choices":[{"index":0,"delta":{"role":"assistant"}}]}\n\n'
        'data: {"choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}\n\n'
        'data: {"choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}]}\n\n'
        "data: [DONE]\n\n"
    )
    transport = httpx.MockTransport(
        lambda req: httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})
    )
    async with OpenAIChatClient("http://x/v1", "m", transport=transport) as client:
        assert await client.complete(MESSAGES) == "Hello"


async def test_stream_closed_without_finish_is_unavailable() -> None:
    body = 'data: {"choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}\n\n'
    transport = httpx.MockTransport(lambda req: httpx.Response(200, text=body))
    async with OpenAIChatClient("http://x/v1", "m", transport=transport) as client:
        pieces, err = await collect(client, MESSAGES)
    assert pieces == ["Hel"]
    assert isinstance(err, Unavailable)


async def test_echo_client_labels_itself_and_echoes_last_user_message() -> None:
    client = EchoClient()
    assert client.is_echo is True
    assert client.model == "echo"
    pieces, err = await collect(client, MESSAGES)
    assert err is None
    assert len(pieces) > 1
    text = "".join(pieces)
    assert text.startswith("[echo model")
    assert "no LLM configured" in text
    assert "You said: tell me a story about a cat" in text
    assert "(context: 4 messages)" in text
    assert await client.complete(MESSAGES) == text


def test_make_client() -> None:
    assert isinstance(make_client(None, None, None), EchoClient)
    assert isinstance(make_client("", "m", "k"), EchoClient)
    client = make_client("http://localhost:11434/v1/", None, None)
    assert isinstance(client, OpenAIChatClient)
    assert client.model == DEFAULT_MODEL
    assert client.is_echo is False
    assert client.url == "http://localhost:11434/v1/chat/completions"
    named = make_client("http://h/v1", "llama3", "key", timeout=5)
    assert named.model == "llama3"

"""A real, local OpenAI-compatible model server for tests (not a mock).

A small raw-ASGI app served by uvicorn on 127.0.0.1 in a background thread. It implements
``POST /v1/chat/completions`` (streaming SSE in the exact OpenAI chunk format, and
non-streaming) and ``GET /v1/models``, and records every request so tests can assert
exactly what the model was sent::

    with run_fake_llm(reply="Hello there") as fake:
        client = OpenAIChatClient(fake.base_url, "fake-model")
        ...
        assert fake.requests[-1]["messages"] == [...]

Behaviour is set by keyword options (also changeable later on ``fake.options``):

* ``reply``: fixed reply text, or a callable ``messages -> str``; default
  ``"Reply to: <last user content>"``.
* ``chunks``: how many content chunks to stream the reply in (default 4; the reply is
  split on word boundaries, so fewer if it has fewer words).
* ``fail_status``: answer every completion request with this HTTP status and an
  OpenAI-style error body (``error_message``).
* ``abort_after``: stream this many content chunks, then drop the connection mid-stream.
* ``delay``: seconds to sleep before each streamed chunk.
* ``usage``: the OpenAI ``usage`` object to report (default: prompt and completion tokens
  of 0): in a non-streaming answer, and in a streamed one as a last chunk with no choices
  when the request asks for it (``stream_options.include_usage``), as OpenAI does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn

Reply = str | Callable[[list[dict[str, Any]]], str]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


@dataclass
class FakeLLMOptions:
    reply: Reply | None = None
    chunks: int = 4
    fail_status: int | None = None
    error_message: str = "the fake model is failing on purpose"
    abort_after: int | None = None
    delay: float = 0.0
    usage: dict[str, Any] | None = None


def default_reply(messages: list[dict[str, Any]]) -> str:
    last = next((m for m in reversed(messages) if m.get("role") == "user"), None)
    return f"Reply to: {last.get('content', '') if last else ''}"


def split_chunks(text: str, n: int) -> list[str]:
    """Split ``text`` into at most ``n`` pieces on word boundaries; joined they give it back."""
    words = text.split(" ")
    n = max(1, min(n, len(words)))
    size, extra = divmod(len(words), n)
    pieces, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        pieces.append(" ".join(words[start:end]) + (" " if end < len(words) else ""))
        start = end
    return pieces


@dataclass
class FakeLLM:
    options: FakeLLMOptions
    host: str = "127.0.0.1"
    port: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None
    _sock: socket.socket | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    # -- the ASGI app -------------------------------------------------------------------

    async def app(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            event = await receive()
            body += event.get("body", b"")
            if not event.get("more_body"):
                break
        path, method = scope["path"], scope["method"]
        if method == "GET" and path == "/v1/models":
            data = {"object": "list", "data": [{"id": "fake-model", "object": "model"}]}
            await self._json(send, 200, data)
        elif method == "POST" and path == "/v1/chat/completions":
            await self._chat(scope, body, send)
        else:
            await self._json(send, 404, {"error": {"message": f"no route {method} {path}"}})

    async def _json(self, send: Send, status: int, data: Any) -> None:
        raw = json.dumps(data).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(raw))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": raw})

    async def _chat(self, scope: dict[str, Any], body: bytes, send: Send) -> None:
        opts = self.options
        try:
            req = json.loads(body)
        except ValueError:
            await self._json(send, 400, {"error": {"message": "body is not JSON"}})
            return
        self.requests.append(req)
        self.headers.append({k.decode(): v.decode() for k, v in scope["headers"]})
        if opts.fail_status is not None:
            err = {"message": opts.error_message, "type": "server_error", "code": None}
            await self._json(send, opts.fail_status, {"error": err})
            return
        messages = req.get("messages") or []
        reply = opts.reply if opts.reply is not None else default_reply
        text = reply(messages) if callable(reply) else reply
        model = req.get("model", "fake-model")
        cid, created = f"chatcmpl-fake{len(self.requests)}", int(time.time())
        if not req.get("stream"):
            await self._json(
                send,
                200,
                {
                    "id": cid,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": opts.usage
                    or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
                },
            )
            return

        headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})

        async def event(delta: dict[str, Any], finish: str | None = None) -> None:
            chunk = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            data = f"data: {json.dumps(chunk)}\n\n".encode()
            await send({"type": "http.response.body", "body": data, "more_body": True})

        await event({"role": "assistant", "content": ""})
        for i, piece in enumerate(split_chunks(text, opts.chunks)):
            if opts.abort_after is not None and i >= opts.abort_after:
                # Returning with the response incomplete makes uvicorn close the
                # connection: the client sees a chunked body cut off mid-stream.
                return
            if opts.delay:
                await asyncio.sleep(opts.delay)
            await event({"content": piece})
        await event({}, "stop")
        if (req.get("stream_options") or {}).get("include_usage"):
            usage = opts.usage or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
            last = {"id": cid, "object": "chat.completion.chunk", "created": created}
            last |= {"model": model, "choices": [], "usage": usage}
            data = f"data: {json.dumps(last)}\n\n".encode()
            await send({"type": "http.response.body", "body": data, "more_body": True})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        self.port = sock.getsockname()[1]
        self._sock = sock
        config = uvicorn.Config(
            self.app,
            interface="asgi3",
            lifespan="off",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        self._server = server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="fake-llm", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("fake LLM server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
            self._server = self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None


@contextlib.contextmanager
def run_fake_llm(**options: Any) -> Iterator[FakeLLM]:
    """Start a fake OpenAI-compatible server for the ``with`` block; see module docstring."""
    fake = FakeLLM(FakeLLMOptions(**options))
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()

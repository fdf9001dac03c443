"""Chat-model clients: any OpenAI-compatible server, or the offline echo model.

``OpenAIChatClient`` speaks the ``POST {base_url}/chat/completions`` protocol with
``"stream": true`` and reads the server-sent events (``data: {...}`` lines, ending with
``data: [DONE]``), so it works with OpenAI, vLLM, Ollama and llama.cpp servers alike.
Every failure to get an answer — no connection, a non-2xx status, a stream cut short,
garbage on the wire — is raised as :class:`sessionkeeper.errors.Unavailable`. A failure
mid-stream is raised only after the pieces already received were yielded, so a caller
can keep the partial text. Asked for usage (``on_usage``), it requests the final usage chunk
(``stream_options.include_usage``) and reports it (``usage_of``: tokens, cached and
reasoning tokens, the model the server names).

``EchoClient`` is the built-in model used when no server is configured: it answers at
once, offline, and says plainly that it is an echo.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any, Protocol, Self

import httpx

from sessionkeeper.errors import Unavailable
from sessionkeeper.models import Usage

DEFAULT_MODEL = "gpt-4o-mini"
_ERROR_TEXT_LIMIT = 500


UsageSink = Callable[[Usage], None]


def usage_of(report: Any, model: str | None) -> Usage | None:
    """The usage of an OpenAI-style ``usage`` object (``prompt_tokens``,
    ``completion_tokens`` and their details), or None when it is not one."""
    if not isinstance(report, dict):
        return None

    def count(value: Any) -> int:
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0

    prompt = report.get("prompt_tokens_details")
    completion = report.get("completion_tokens_details")
    inp, out = count(report.get("prompt_tokens")), count(report.get("completion_tokens"))
    cached = count(prompt.get("cached_tokens")) if isinstance(prompt, dict) else 0
    reasoning = count(completion.get("reasoning_tokens")) if isinstance(completion, dict) else 0
    return Usage(
        input_tokens=inp,
        output_tokens=out,
        cached_tokens=min(cached, inp),
        reasoning_tokens=min(reasoning, out),
        requests=1,
        model=model if isinstance(model, str) and 0 < len(model) <= 128 else None,
    )


class LLMClient(Protocol):
    """What the rest of sessionkeeper needs from a chat model."""

    model: str
    is_echo: bool

    def stream(
        self, messages: list[dict[str, Any]], *, on_usage: UsageSink | None = None
    ) -> AsyncIterator[str]:
        """Yield the reply in pieces (an async generator in every implementation);
        ``on_usage`` gets the usage the model server reports, if it reports any."""
        ...

    async def complete(self, messages: list[dict[str, Any]]) -> str:
        """The whole reply: the streamed pieces joined."""
        ...

    async def aclose(self) -> None:
        """Release connections; a no-op for clients that hold none."""
        ...


def _text_of(content: Any) -> str:
    """Message content as plain text (a string, or a list of OpenAI content parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(part.get("text", "")) for part in content if isinstance(part, dict)
        ).strip()
    return "" if content is None else str(content)


def _error_text(body: str) -> str:
    """The server's error message: ``error.message`` of a JSON body, else the raw body."""
    try:
        data = json.loads(body)
    except ValueError:
        return body.strip()
    if isinstance(data, dict):
        err = data.get("error", data.get("detail"))
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str) and err:
            return err
    return body.strip()


def _truncate(text: str) -> str:
    return text if len(text) <= _ERROR_TEXT_LIMIT else text[:_ERROR_TEXT_LIMIT] + "…"


class OpenAIChatClient:
    """Streaming client for an OpenAI-compatible ``/chat/completions`` endpoint."""

    is_echo = False

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 120.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.url = f"{self.base_url}/chat/completions"
        headers = {"Accept": "text/event-stream"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._http = httpx.AsyncClient(
            headers=headers, timeout=httpx.Timeout(timeout), transport=transport
        )

    async def stream(
        self, messages: list[dict[str, Any]], *, on_usage: UsageSink | None = None
    ) -> AsyncIterator[str]:
        body: dict[str, Any] = {"model": self.model, "messages": messages, "stream": True}
        if on_usage is not None:
            # OpenAI's servers (and vLLM, Ollama, llama.cpp…) then end with a usage chunk.
            body["stream_options"] = {"include_usage": True}
        finished = False
        try:
            async with self._http.stream("POST", self.url, json=body) as resp:
                if not resp.is_success:
                    text = (await resp.aread()).decode("utf-8", "replace")
                    raise Unavailable(
                        f"model server {self.url} answered HTTP {resp.status_code}: "
                        f"{_truncate(_error_text(text)) or resp.reason_phrase}",
                        status=resp.status_code,
                        error=text,
                    )
                async for line in resp.aiter_lines():
                    if not line.startswith("data:"):
                        continue  # blank separators, ": keep-alive" comments, "event:" lines
                    data = line[5:].strip()
                    if data == "[DONE]":
                        finished = True
                        break
                    for piece, done in self._parse_chunk(data, on_usage):
                        finished = finished or done
                        if piece:
                            yield piece
        except httpx.HTTPError as exc:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise Unavailable(f"model server {self.url} failed: {reason}") from exc
        if not finished:
            raise Unavailable(f"model server {self.url} ended the stream before finishing")

    def _parse_chunk(self, data: str, on_usage: UsageSink | None) -> list[tuple[str, bool]]:
        """(content piece, finished?) for each choice of one SSE ``data:`` payload; a usage
        report goes to ``on_usage``."""
        try:
            chunk = json.loads(data)
        except ValueError as exc:
            raise Unavailable(f"model server sent malformed data: {_truncate(data)}") from exc
        if not isinstance(chunk, dict):
            raise Unavailable(f"model server sent malformed data: {_truncate(data)}")
        if "error" in chunk:
            raise Unavailable(f"model server error: {_truncate(_error_text(data))}")
        if on_usage is not None and (usage := usage_of(chunk.get("usage"), chunk.get("model"))):
            on_usage(usage)
        out: list[tuple[str, bool]] = []
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or choice.get("message") or {}
            content = delta.get("content") if isinstance(delta, dict) else None
            text = content if isinstance(content, str) else ""
            out.append((text, bool(choice.get("finish_reason"))))
        return out

    async def complete(self, messages: list[dict[str, Any]]) -> str:
        return "".join([piece async for piece in self.stream(messages)])

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class EchoClient:
    """Offline stand-in model: repeats the last user message, clearly labelled."""

    model = "echo"
    is_echo = True
    label = "[echo model — no LLM configured]"

    def reply(self, messages: list[dict[str, Any]]) -> str:
        last = next((m for m in reversed(messages) if m.get("role") == "user"), None)
        said = _text_of(last.get("content")) if last else ""
        n = len(messages)
        return f"{self.label} You said: {said} (context: {n} message{'s' if n != 1 else ''})"

    async def stream(
        self, messages: list[dict[str, Any]], *, on_usage: UsageSink | None = None
    ) -> AsyncIterator[str]:
        # No model ran: no usage to report.
        words = self.reply(messages).split(" ")
        for i, word in enumerate(words):
            yield word if i == len(words) - 1 else word + " "

    async def complete(self, messages: list[dict[str, Any]]) -> str:
        return self.reply(messages)

    async def aclose(self) -> None:
        return None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None


def make_client(
    base_url: str | None,
    model: str | None,
    api_key: str | None,
    timeout: float = 120.0,
) -> LLMClient:
    """The configured model client: the echo model when no ``base_url`` is set."""
    if not base_url or not base_url.strip():
        return EchoClient()
    return OpenAIChatClient(base_url.strip(), model or DEFAULT_MODEL, api_key, timeout)

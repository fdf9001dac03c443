"""The HTTP/1.1 protocol ``serve`` runs: uvicorn's h11, with an oversized request head answered.

uvicorn's own protocol resets the connection instead; this one answers 414 or 431 in the
API's error body.

h11 refuses a request line plus headers longer than its buffer limit (``MAX_HEAD_SIZE``,
16 KiB, given to uvicorn as ``h11_max_incomplete_event_size``) while they are incomplete (a
head that arrives whole in one read is held to the same rule by ``api/limits.py``).
uvicorn answers every such refusal with a plain-text 400 and closes the socket at once, while
the client may still be sending: a close with unread data makes the kernel reset the
connection, and the client (curl, httpx, a browser) reports "connection reset" instead of any
answer. Here, for a request head:

- a request line (method, URL, version) over the limit → **414 URI Too Long**;
- a complete request line with headers over the limit → **431 Request Header Fields Too
  Large**; any other malformed head → 400;
- the body is ``ErrorBody`` (``{"error", "detail"}``), with ``Connection: close``;
- then a *lingering close*, as nginx and Apache do: the server stops sending (half-close),
  reads and discards what the client still sends, and closes when the client does, or after
  ``LINGER_SECONDS``.

A protocol error inside a request body (after the head) keeps uvicorn's own answer. ``serve``
names this class as uvicorn's ``http`` protocol, so it runs whether or not httptools is
installed (which uvicorn's "auto" would otherwise prefer, with other limits).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from sessionkeeper.api.errors import error_body
from sessionkeeper.api.limits import MAX_HEAD_SIZE, head_refusal

LINGER_SECONDS = 5.0

_REASONS = {400: b"Bad Request", 414: b"URI Too Long", 431: b"Request Header Fields Too Large"}


def refusal(head: bytes, limit: int) -> tuple[int, str, str]:
    """(status, error code, detail) for a request head h11 refused; ``head`` is what arrived."""
    if len(head) <= limit:
        return 400, "bad_request", "the request is not valid HTTP/1.1"
    line_end = head.find(b"\n")
    return head_refusal(None if line_end == -1 else line_end + 1, len(head), limit)


class RefusingH11Protocol(H11Protocol):
    """uvicorn's ``H11Protocol``; a refused request head is answered (see the module)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        configured = self.config.h11_max_incomplete_event_size
        self.head_limit = MAX_HEAD_SIZE if configured is None else configured
        self.lingering: asyncio.TimerHandle | None = None

    def data_received(self, data: bytes) -> None:
        if self.lingering is not None:
            return  # answered already: discarded until the client closes
        super().data_received(data)

    def eof_received(self) -> None:
        if self.lingering is not None:
            self.transport.close()  # the client is done sending: the lingering is over
        super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.lingering is not None:
            self.lingering.cancel()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        if self.cycle is not None and not self.cycle.response_complete:
            super().send_400_response(msg)  # inside a request body: uvicorn's own answer
            return
        head, _ = self.conn.trailing_data
        status, code, detail = refusal(head, self.head_limit)
        self.logger.warning("refused a request head: %s %s", status, detail)
        body = json.dumps(error_body(code, detail)).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        for event in (
            h11.Response(status_code=status, headers=headers, reason=_REASONS[status]),
            h11.Data(data=body),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event) or b"")
        self.linger()

    def linger(self) -> None:
        """Stop sending, discard what still arrives, close when the client does (or later)."""
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.lingering = self.loop.call_later(LINGER_SECONDS, self.transport.close)

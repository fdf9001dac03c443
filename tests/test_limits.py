"""Request limits on a real ``sessionkeeper serve`` (api/limits.py, api/http11.py).

- A body is never read before the API key is checked, nor past the body limit: four
  concurrent 100 MB POSTs without a key are 401 while the server's peak RSS stays under
  200 MB (it went from 64 MB to 986 MB when bodies were parsed first).
- With a key, a body over the limit is 413 in the error body, announced (Content-Length:
  before it is read) or not (chunked: as soon as the count passes the limit); the default
  limit still takes the largest message the Store accepts, in its longest JSON spelling.
- A request head over 16 KiB is 414 (a long URL) or 431 (big headers) in the error body,
  whether it arrives in pieces (h11 refuses it) or in one read (the middleware does), and
  the client reads that answer instead of a connection reset.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from serving import Server, served
from sessionkeeper.models import MAX_MESSAGE_LENGTH, MAX_METADATA_BYTES
from sessionkeeper.store.core import Store

SESSIONS = "/api/engine/sessions"
LIMIT = 8 * 1024 * 1024  # the default SESSIONKEEPER_MAX_BODY_SIZE
HEAD_LIMIT = 16 * 1024
MB = 1024 * 1024


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    """The server, on a SQLite file with an admin key (so a request without one is 401)."""
    workdir = tmp_path_factory.mktemp("limits")
    url = f"sqlite:///{workdir / 'limits.db'}"

    async def admin_key() -> str:
        async with await Store.open(url) as store:
            _, token = await store.keys.create(admin=True, name="limits")
            return token

    token = asyncio.run(admin_key())
    with served(url, workdir) as server:
        yield server, token


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident size so far (VmHWM), in MB."""
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def chunks(total: int, size: int = MB) -> Iterator[bytes]:
    """``total`` bytes in pieces, so the client never holds a whole big body."""
    piece = b"x" * size
    while total > 0:
        yield piece[: min(size, total)]
        total -= size


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["error"] == code and body["detail"], body
    return body


def test_big_bodies_without_a_key_are_refused_unread(keyed: tuple[Server, str]) -> None:
    server, _ = keyed
    before = peak_rss_mb(server.proc.pid)
    statuses: list[int | str] = []

    def post() -> None:
        headers = {"content-type": "application/json", "content-length": str(100 * MB)}
        try:
            with httpx.Client(base_url=server.base, trust_env=False, timeout=60) as http:
                r = http.post(SESSIONS, content=chunks(100 * MB), headers=headers)
                statuses.append(r.status_code)
        except httpx.HTTPError as exc:
            statuses.append(repr(exc))

    threads = [threading.Thread(target=post) for _ in range(4)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    took = time.monotonic() - started
    peak = peak_rss_mb(server.proc.pid)
    print(f"\n4 × 100 MB, no key: {statuses} in {took:.1f} s, RSS {before:.0f} → {peak:.0f} MB")
    # The key is checked first, so 401 (not 413) although each body is also over the limit.
    assert statuses == [401] * 4, server.log_tail()
    assert peak < 200, f"peak RSS {peak:.0f} MB (it was {before:.0f} MB before the POSTs)"


def test_an_announced_body_over_the_limit_is_413_unread(keyed: tuple[Server, str]) -> None:
    server, token = keyed
    auth = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    with httpx.Client(base_url=server.base, trust_env=False, timeout=60) as http:
        total = http.get(SESSIONS, headers=auth).json()["total"]
        announced = {**auth, "content-length": str(LIMIT + 1)}
        r = http.post(SESSIONS, content=chunks(LIMIT + 1), headers=announced)
        body = assert_error(r, 413, "too_large")
        assert (body["field"], body["limit"]) == ("body", LIMIT)
        assert f"{LIMIT + 1:,} bytes" in body["detail"]
        assert "SESSIONKEEPER_MAX_BODY_SIZE" in body["detail"]
        assert http.get(SESSIONS, headers=auth).json()["total"] == total  # nothing stored
        # The connection was drained, not reset: it answers the next request.
        assert http.get("/healthz").status_code == 200
    assert peak_rss_mb(server.proc.pid) < 200


def test_a_chunked_body_over_the_limit_is_413_as_it_passes(keyed: tuple[Server, str]) -> None:
    server, token = keyed
    sent = 0

    def body() -> Iterator[bytes]:  # no length: httpx sends it chunked
        nonlocal sent
        for piece in chunks(4 * LIMIT, 256 * 1024):
            sent += len(piece)
            yield piece

    auth = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    with httpx.Client(base_url=server.base, trust_env=False, timeout=60) as http:
        r = http.post(SESSIONS, content=body(), headers=auth)
    assert r.request.headers.get("transfer-encoding") == "chunked"
    body_ = assert_error(r, 413, "too_large")
    assert (body_["field"], body_["limit"]) == ("body", LIMIT)
    assert peak_rss_mb(server.proc.pid) < 200


def test_the_largest_message_in_its_longest_spelling_fits(keyed: tuple[Server, str]) -> None:
    """100,000 characters of content and 1,000,000 bytes of metadata, every character a
    4-byte one sent as a \\ud83d\\ude00 escape (Python's json.dumps default): 4.2 MB."""
    server, token = keyed
    emoji = "\U0001f600"
    # {"k": "…"} in the Store's measure (UTF-8, ", " and ": "): 9 bytes + 4 per character.
    metadata = {"k": emoji * ((MAX_METADATA_BYTES - 9) // 4)}
    assert len(json.dumps(metadata, ensure_ascii=False).encode()) <= MAX_METADATA_BYTES
    message = {"role": "user", "content": emoji * MAX_MESSAGE_LENGTH, "metadata": metadata}
    raw = json.dumps(message).encode()
    assert 4_000_000 < len(raw) < LIMIT
    auth = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    with httpx.Client(base_url=server.base, trust_env=False, timeout=60) as http:
        session = http.post(SESSIONS, json={"title": "largest"}, headers=auth).json()
        r = http.post(f"{SESSIONS}/{session['session_id']}/messages", content=raw, headers=auth)
        assert r.status_code == 201, r.text[:500]
        stored = r.json()
    assert stored["content"] == message["content"] and stored["metadata"] == metadata


def raw_exchange(port: int, parts: list[bytes]) -> bytes:
    """Send ``parts`` (a pause between them, so the server reads them apart), then read to
    the end: the whole answer, or the error a reset gives."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        for i, part in enumerate(parts):
            if i:
                time.sleep(0.2)
            sock.sendall(part)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def parse(answer: bytes) -> tuple[int, dict[str, str], Any]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, json.loads(body)


def test_a_megabyte_url_is_414_not_a_reset(keyed: tuple[Server, str]) -> None:
    server, _ = keyed
    port = int(server.base.rsplit(":", 1)[1])
    line = b"GET " + SESSIONS.encode() + b"?search=" + b"a" * MB + b" HTTP/1.1\r\n"
    # In pieces, so h11 refuses the incomplete head; read to the end: a reset would raise.
    parts = [line[: 20 * 1024], line[20 * 1024 :] + b"Host: x\r\n\r\n"]
    status, headers, body = parse(raw_exchange(port, parts))
    assert (status, body["error"]) == (414, "uri_too_long"), body
    assert (headers["content-type"], headers["connection"]) == ("application/json", "close")
    assert "16,384 bytes" in body["detail"]
    with httpx.Client(base_url=server.base, trust_env=False, timeout=30) as http:
        # 20 KB: arrives whole in one read, so the middleware refuses it, the same way.
        r = http.get(SESSIONS, params={"search": "a" * 20_000})
        assert_error(r, 414, "uri_too_long")
        assert http.get("/healthz").status_code == 200


def test_big_headers_are_431(keyed: tuple[Server, str]) -> None:
    server, _ = keyed
    port = int(server.base.rsplit(":", 1)[1])
    fields = b"".join(b"x-filler-%d: %s\r\n" % (i, b"v" * 1000) for i in range(30))
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + fields
    status, _, body = parse(raw_exchange(port, [head[:20_000], head[20_000:] + b"\r\n"]))
    assert (status, body["error"]) == (431, "request_header_fields_too_large"), body
    big = {f"x-filler-{i}": "v" * 1000 for i in range(30)}
    with httpx.Client(base_url=server.base, trust_env=False, timeout=30) as http:
        assert_error(http.get("/healthz", headers=big), 431, "request_header_fields_too_large")
        small = {f"x-filler-{i}": "v" * 1000 for i in range(10)}
        assert http.get("/healthz", headers=small).status_code == 200


def test_refusals_are_counted(keyed: tuple[Server, str]) -> None:
    """Answers given before routing are in the request metrics (under ``<unmatched>``)."""
    server, token = keyed
    admin = {"authorization": f"Bearer {token}"}
    json_ = {"content-type": "application/json"}
    with httpx.Client(base_url=server.base, trust_env=False, timeout=30) as http:

        def count(status: int) -> float:
            text = http.get("/metrics", headers=admin).text
            wanted = f'method="POST",route="<unmatched>",status="{status}"'
            found = [line for line in text.splitlines() if wanted in line and "_total" in line]
            return float(found[0].rsplit(" ", 1)[1]) if found else 0.0

        before = count(401), count(413)
        http.post(SESSIONS, content=b"{}", headers=json_)
        too_big = {**admin, **json_, "content-length": str(LIMIT + 1)}
        http.post(SESSIONS, content=chunks(LIMIT + 1), headers=too_big)
        assert (count(401), count(413)) == (before[0] + 1, before[1] + 1)

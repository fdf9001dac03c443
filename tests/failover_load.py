"""The failover scenario, shared by tests/test_failover.py (which checks it) and
bench/failover.py (which reports it).

A real ``sessionkeeper serve`` (``serving.served``) on the formation's multi-host URL
(``postgresql://…@h1:p1,h2:p2/db?target_session_attrs=read-write``) with
``SESSIONKEEPER_DB_TIMEOUT`` set; eight writer threads append to one session through it, each
message with its own ``Idempotency-Key``, and retry a message that did not get 201 (a 503, or
no answer) with the same key and body until it does: what a well-behaved client does. Then
the primary node is lost (``PgFormation.kill_primary``: SIGKILL of its pg_autoctl and its
postmaster), pg_auto_failover promotes the synchronous secondary, and the writers go on.
Nothing restarts ``serve``.

What comes back (``Outcome`` per request, ``FailoverRun`` for the whole) is judged by
``FailoverRun.problems()``, the issue's promise:
- every acknowledged message is stored exactly once (an append answered 503 may have
  committed: its retry carries the same key, so a server that honours keys stores it once);
- no response is a 500 (or any 5xx but 503), every failure is a 503 with Retry-After;
- no request takes longer than the timeout + 1 s;
- writes succeed again within 30 s of the kill, on the same server process.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from pgformation import PgFormation
from serving import Server, served

API = "/api/engine/sessions"
DB_TIMEOUT = 2.0  # SESSIONKEEPER_DB_TIMEOUT
CLIENT_TIMEOUT = 10.0  # well past the bound: a hang is measured, not cut short
RECOVERY_BOUND = 30.0  # writes must succeed again within this long after the kill
WRITERS = 8


@dataclass
class Outcome:
    writer: int
    key: str
    content: str
    status: int | str  # HTTP status, or the httpx exception's name
    started: float  # time.monotonic()
    elapsed: float
    retry_after: str | None = None
    body: str = ""
    seq: int | None = None

    @property
    def label(self) -> str:
        return str(self.status) if isinstance(self.status, int) else f"no response ({self.status})"


@dataclass
class Writers:
    """``n`` threads, each appending its own numbered messages, retrying each until 201."""

    server: Server
    sid: str
    n: int = WRITERS
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        for w in range(self.n):
            t = threading.Thread(target=self._write, args=(w,), name=f"writer-{w}", daemon=True)
            self._threads.append(t)
            t.start()

    def _write(self, w: int) -> None:
        base = self.server.base
        with httpx.Client(base_url=base, trust_env=False, timeout=CLIENT_TIMEOUT) as http:
            n = 0
            while not self._stop.is_set():
                content = f"w{w}-{n:06d}"
                key = f"failover-{self.sid}-w{w}-{n}"
                while not self._stop.is_set():  # the same key and body until acknowledged
                    o = self._post(http, w, key, content)
                    with self._lock:
                        self.outcomes.append(o)
                    if o.status == 201:
                        break
                    time.sleep(0.05)
                n += 1

    def _post(self, http: httpx.Client, w: int, key: str, content: str) -> Outcome:
        started = time.monotonic()
        try:
            r = http.post(
                f"{API}/{self.sid}/messages",
                json={"role": "user", "content": content},
                headers={"Idempotency-Key": key},
            )
        except httpx.HTTPError as exc:
            return Outcome(w, key, content, type(exc).__name__, started, time.monotonic() - started)
        o = Outcome(
            w,
            key,
            content,
            r.status_code,
            started,
            time.monotonic() - started,
            retry_after=r.headers.get("retry-after"),
            body=r.text[:300] if r.status_code >= 400 else "",
        )
        if r.status_code == 201:
            o.seq = r.json().get("seq")
        return o

    def acked(self) -> int:
        with self._lock:
            return sum(1 for o in self.outcomes if o.status == 201)

    def first_ack_after(self, t: float) -> float | None:
        """When the first request that started after ``t`` was acknowledged (monotonic)."""
        with self._lock:
            after = [o for o in self.outcomes if o.status == 201 and o.started > t]
        done = [o.started + o.elapsed for o in after]
        return min(done) if done else None

    def stop(self) -> list[Outcome]:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=CLIENT_TIMEOUT + 5)
        assert not any(t.is_alive() for t in self._threads), "a writer thread did not stop"
        with self._lock:
            return list(self.outcomes)


@dataclass
class FailoverRun:
    """Everything measured in one run."""

    outcomes: list[Outcome]
    stored: list[dict[str, Any]]  # every message of the session after the run
    message_count: int | None
    old_primary: str
    new_primary: str
    killed: list[int]
    kill_at: float
    promoted_after: float  # s from the kill until the monitor reported the new primary
    first_write_after: float  # s from the kill until the first acknowledged write after it
    server_alive: bool
    server_pid_same: bool
    unhandled: int
    keys_honoured: bool  # the server stores one row for a key sent twice
    diagnosis: str = ""

    # ── figures ──
    def acked(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == 201]

    def by_status(self) -> dict[str, int]:
        return dict(Counter(o.label for o in self.outcomes))

    def slowest(self) -> float:
        return max((o.elapsed for o in self.outcomes), default=0.0)

    def duplicates(self) -> list[str]:
        counts = Counter(m["content"] for m in self.stored)
        return sorted(c for c, k in counts.items() if k > 1)

    def missing(self) -> list[str]:
        present = {m["content"] for m in self.stored}
        return [o.content for o in self.acked() if o.content not in present]

    def figures(self) -> dict[str, Any]:
        return {
            "acknowledged": len(self.acked()),
            "stored": len(self.stored),
            "missing": len(self.missing()),
            "duplicated": len(self.duplicates()),
            "responses": self.by_status(),
            "503": sum(1 for o in self.outcomes if o.status == 503),
            "500": sum(1 for o in self.outcomes if _server_error(o)),
            "slowest_request_s": round(self.slowest(), 3),
            "promoted_after_s": round(self.promoted_after, 2),
            "first_write_after_s": round(self.first_write_after, 2),
            "keys_honoured": self.keys_honoured,
            "old_primary": self.old_primary,
            "new_primary": self.new_primary,
        }

    def problems(self, *, duplicates_count: bool = True) -> list[str]:
        """What breaks the promise (empty: kept). ``duplicates_count=False`` leaves
        duplicates out (a server that ignores Idempotency-Key cannot avoid them)."""
        found = []
        fives = [o for o in self.outcomes if _server_error(o)]
        if fives:
            found.append(f"{len(fives)} responses 5xx other than 503: {_some(fives)}")
        bad = [o for o in self.outcomes if o.status != 201]
        bad = [o for o in bad if not (o.status == 503 and o.retry_after)]
        if bad:
            found.append(f"{len(bad)} failed requests were not 503 + Retry-After: {_some(bad)}")
        hung = [o for o in self.outcomes if o.elapsed > DB_TIMEOUT + 1]
        if hung:
            found.append(f"{len(hung)} requests over {DB_TIMEOUT + 1:g} s: {_some(hung)}")
        if self.unhandled:
            found.append(f"{self.unhandled} unhandled exceptions in the server log")
        missing = self.missing()
        if missing:
            found.append(f"{len(missing)} acknowledged messages missing: {missing[:5]}")
        if duplicates_count and self.duplicates():
            found.append(f"{len(self.duplicates())} messages stored twice: {self.duplicates()[:5]}")
        if self.message_count is not None and self.message_count != len(self.stored):
            found.append(f"message_count {self.message_count} != {len(self.stored)} rows")
        by_seq = [m["content"] for m in sorted(self.stored, key=lambda m: m["seq"])]
        for w in range(WRITERS):
            mine = [c for c in by_seq if c.startswith(f"w{w}-")]
            if mine != sorted(mine):
                found.append(f"writer {w}'s messages are out of order")
        if not any(o.status == 201 and o.started < self.kill_at for o in self.outcomes):
            found.append("no write succeeded before the kill: the load never ran")
        if not self.first_write_after <= RECOVERY_BOUND:
            found.append(f"no write succeeded within {RECOVERY_BOUND:g} s of the kill")
        if not (self.server_alive and self.server_pid_same):
            found.append("the server process died or was replaced")
        if self.new_primary == self.old_primary:
            found.append("the secondary was not promoted")
        return found

    def report(self) -> str:
        return f"{self.figures()}\n{self.diagnosis}"


def _server_error(o: Outcome) -> bool:
    """A 5xx other than 503 (a 500 above all): what must never happen."""
    return isinstance(o.status, int) and o.status >= 500 and o.status != 503


def _some(outcomes: list[Outcome], n: int = 3) -> str:
    return "; ".join(
        f"w{o.writer} {o.label} in {o.elapsed:.2f}s retry-after={o.retry_after!r} {o.body}"
        for o in outcomes[:n]
    )


def list_messages(http: httpx.Client, sid: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    after = 0
    while True:
        r = http.get(f"{API}/{sid}/messages", params={"after_seq": after, "limit": 500})
        r.raise_for_status()
        page = r.json()["messages"]
        if not page:
            return found
        found.extend(page)
        after = page[-1]["seq"]


def keys_honoured(http: httpx.Client) -> bool:
    """Whether this server stores one row for the same Idempotency-Key and body sent twice."""
    r = http.post(API, json={"agent_id": "failover-probe"})
    r.raise_for_status()
    sid = r.json()["session_id"]
    for _ in range(2):
        http.post(
            f"{API}/{sid}/messages",
            json={"role": "user", "content": "probe"},
            headers={"Idempotency-Key": "failover-probe"},
        ).raise_for_status()
    return len(list_messages(http, sid)) == 1


def run_failover(
    formation: PgFormation, workdir: Path, *, before: float = 2.0, after: float = 3.0
) -> FailoverRun:
    """The scenario: load for ``before`` s (and at least 50 acknowledged), lose the primary,
    load on until ``after`` s past the first acknowledged write on the new primary (or the
    recovery bound), then count what is stored."""
    with (
        served(formation.url, workdir, DB_TIMEOUT) as server,
        httpx.Client(base_url=server.base, trust_env=False, timeout=CLIENT_TIMEOUT) as http,
    ):
        pid = server.proc.pid
        honoured = keys_honoured(http)
        r = http.post(
            API,
            json={"agent_id": "failover", "title": "failover"},
            headers={"Idempotency-Key": "failover-session"},
        )
        assert r.status_code == 201, r.text
        sid = r.json()["session_id"]
        writers = Writers(server, sid)
        writers.start()
        started = time.monotonic()
        while (writers.acked() < 50 or time.monotonic() - started < before) and (
            time.monotonic() - started < 30
        ):
            time.sleep(0.05)

        old, killed = formation.kill_primary()
        kill_at = time.monotonic()
        try:
            new = formation.wait_primary(other_than=old, timeout=RECOVERY_BOUND + 30)
        except RuntimeError:
            new = old
        promoted = time.monotonic() - kill_at
        while time.monotonic() - kill_at < RECOVERY_BOUND:
            if writers.first_ack_after(kill_at) is not None:
                break
            time.sleep(0.05)
        time.sleep(after)
        outcomes = writers.stop()
        first = writers.first_ack_after(kill_at)
        stored = list_messages(http, sid)
        session = http.get(f"{API}/{sid}").json()
        alive = server.proc.poll() is None
        return FailoverRun(
            outcomes=outcomes,
            stored=stored,
            message_count=session.get("message_count"),
            old_primary=old,
            new_primary=new,
            killed=killed,
            kill_at=kill_at,
            promoted_after=promoted,
            first_write_after=float("inf") if first is None else first - kill_at,
            server_alive=alive,
            server_pid_same=server.proc.pid == pid,
            unhandled=server.unhandled(),
            keys_honoured=honoured,
            diagnosis=server.diagnosis(),
        )

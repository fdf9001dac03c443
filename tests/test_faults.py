"""Fault tests: the real server (``sessionkeeper serve`` in a subprocess) while its database
is killed, frozen or locked.

The issue's requirements, one test each:

1. PostgreSQL killed with kill -9 under load and restarted: 0 responses with status 500; every
   failed request is 503 with ``Retry-After``; every acknowledged message present exactly once;
   the server recovers without a restart.
2. Frozen PostgreSQL (SIGSTOP): every request answers 503 within the timeout + 1 s.
3. SQLite write lock held by another process past the busy wait: 503, never a raw exception.

Fault tests start what they break: PostgreSQL here is a private cluster (``tests/pgcluster.py``:
initdb into a temp dir, its own port, run as the ``postgres`` user), never the machine's server
on 5432. They end only processes they started, by pid, and check that none is left.
Without initdb (or the ``postgres`` user, when running as root) the PostgreSQL tests skip with
a loud reason locally and FAIL under CI=true.

The server gets ``SESSIONKEEPER_DB_TIMEOUT`` (seconds; every database call is bounded by it)
and no maintenance loop. Every failure message carries the counts per status and the tail of
the server's log.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from pgcluster import PgCluster
from serving import Server, served

API = "/api/engine/sessions"
PG_TIMEOUT = 2.0  # SESSIONKEEPER_DB_TIMEOUT for the PostgreSQL tests
SQLITE_TIMEOUT = 1.0  # … and for the SQLite lock test (its busy wait)
CLIENT_TIMEOUT = 8.0  # well past timeout + 1 s: a hang is measured, not cut short at the bound


# ── a private PostgreSQL cluster ───────────────────────────────────


# ── the server under test ─────────────────────────────────────────


def client(server: Server, timeout: float = CLIENT_TIMEOUT) -> httpx.Client:
    return httpx.Client(base_url=server.base, trust_env=False, timeout=timeout)


# ── requests and what came back ───────────────────────────────────


@dataclass
class Outcome:
    what: str  # "POST messages", "GET /readyz" …
    status: int | str  # the HTTP status, or the httpx exception's name (no response)
    elapsed: float
    retry_after: str | None = None
    content: str | None = None  # the message content a POST carried
    phase: str = ""
    body: str = ""

    @property
    def label(self) -> str:
        return f"{self.status}" if isinstance(self.status, int) else f"no response ({self.status})"


def call(
    http: httpx.Client, method: str, path: str, what: str = "", **kwargs: Any
) -> tuple[Outcome, httpx.Response | None]:
    started = time.monotonic()
    try:
        r = http.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        return Outcome(
            what or f"{method} {path}", type(exc).__name__, time.monotonic() - started
        ), None
    outcome = Outcome(
        what or f"{method} {path}",
        r.status_code,
        time.monotonic() - started,
        retry_after=r.headers.get("retry-after"),
        body=r.text[:300] if r.status_code >= 400 else "",
    )
    return outcome, r


def post_message(http: httpx.Client, sid: str, content: str) -> Outcome:
    outcome, _ = call(
        http,
        "POST",
        f"{API}/{sid}/messages",
        "POST messages",
        json={"role": "user", "content": content},
    )
    outcome.content = content
    return outcome


def counts(outcomes: list[Outcome]) -> str:
    """'POST messages: 201×812, 503×40' per request kind (and per phase when there are)."""
    by: dict[str, Counter[str]] = {}
    for o in outcomes:
        key = f"{o.phase}: {o.what}" if o.phase else o.what
        by.setdefault(key, Counter())[o.label] += 1
    return "; ".join(
        f"{key}: " + ", ".join(f"{s}×{n}" for s, n in sorted(c.items())) for key, c in by.items()
    )


def bad_failures(outcomes: list[Outcome], require_retry_after: bool = True) -> list[Outcome]:
    """Every failed request must be a 503 with Retry-After; the rest are listed."""
    bad = []
    for o in outcomes:
        if isinstance(o.status, int) and o.status < 400:
            continue
        if o.status != 503 or (require_retry_after and not o.retry_after):
            bad.append(o)
    return bad


def describe(outcomes: list[Outcome], limit: int = 5) -> str:
    return "; ".join(
        f"{o.what} → {o.label} in {o.elapsed:.2f}s retry-after={o.retry_after!r} {o.body}"
        for o in outcomes[:limit]
    )


def create_session(http: httpx.Client) -> str:
    r = http.post(API, json={"agent_id": "faults", "title": "fault test"})
    assert r.status_code == 201, r.text
    sid: str = r.json()["session_id"]
    return sid


def list_messages(http: httpx.Client, sid: str) -> list[dict[str, Any]]:
    """Every message of the session, paged by seq."""
    found: list[dict[str, Any]] = []
    after = 0
    while True:
        r = http.get(f"{API}/{sid}/messages", params={"after_seq": after, "limit": 500})
        assert r.status_code == 200, f"listing messages: {r.status_code} {r.text[:300]}"
        page = r.json()["messages"]
        if not page:
            return found
        found.extend(page)
        after = page[-1]["seq"]


def wait_until_ok(http: httpx.Client, sid: str, within: float) -> tuple[float, list[Outcome]]:
    """Seconds until a message POST succeeds again (inf if not within), and what came before."""
    started = time.monotonic()
    seen: list[Outcome] = []
    n = 0
    while time.monotonic() - started < within:
        o = post_message(http, sid, f"recovery-probe-{n}")
        n += 1
        seen.append(o)
        if o.status == 201:
            return time.monotonic() - started, seen
        time.sleep(0.2)
    return float("inf"), seen


# ── load: concurrent writers, each with unique contents ─────────────


@dataclass
class Load:
    server: Server
    sid: str
    writers: int = 4
    phase: str = "before"
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        for w in range(self.writers):
            t = threading.Thread(target=self._write, args=(w,), name=f"load-{w}", daemon=True)
            self._threads.append(t)
            t.start()

    def _write(self, w: int) -> None:
        with client(self.server) as http:
            n = 0
            while not self._stop.is_set():
                phase = self.phase
                o = post_message(http, self.sid, f"w{w}-{n:06d}")
                o.phase = phase
                n += 1
                with self._lock:
                    self.outcomes.append(o)
                if o.status != 201:
                    time.sleep(0.05)

    def acked(self) -> int:
        with self._lock:
            return sum(1 for o in self.outcomes if o.status == 201)

    def stop(self) -> list[Outcome]:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=CLIENT_TIMEOUT + 5)
        assert not any(t.is_alive() for t in self._threads), "a load thread did not stop"
        with self._lock:
            return list(self.outcomes)


# ── 1. kill -9 under load ───────────────────────────────────────


def test_postgres_kill9_under_load_then_restart(pg_cluster: PgCluster, tmp_path: Path) -> None:
    with served(pg_cluster.url, tmp_path, PG_TIMEOUT) as server, client(server) as http:
        sid = create_session(http)
        load = Load(server, sid)
        load.start()
        deadline = time.monotonic() + 20
        while load.acked() < 50 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1)

        load.phase = "down"
        killed = pg_cluster.kill9()
        time.sleep(2)
        pg_cluster.restart()
        load.phase = "after restart"
        time.sleep(5)
        outcomes = load.stop()

        # The server recovers by itself (same process): writes and reads succeed again.
        recovered_in, probes = wait_until_ok(http, sid, within=10)
        after: list[Outcome] = []
        if recovered_in != float("inf"):
            for n in range(5):
                after.append(post_message(http, sid, f"after-{n}"))
                after.append(call(http, "GET", f"{API}/{sid}", "GET session")[0])
            after.append(call(http, "GET", "/readyz")[0])
        try:
            listed = list_messages(http, sid)
            session = http.get(f"{API}/{sid}").json()
            listing_error = ""
        except AssertionError as exc:  # the report below still says what was stored
            listing_error = f"API listing failed ({exc}); counted in the database instead"
            rows = pg_cluster.query(f"SELECT seq, content FROM messages WHERE session_id = '{sid}'")
            listed = [
                {"seq": int(s), "content": c}
                for s, c in (line.split("|", 1) for line in rows.splitlines() if line)
            ]
            session = {"message_count": None}
        assert server.proc.poll() is None, "the server died"

    all_outcomes = outcomes + probes + after
    report = (
        f"killed pids {killed}; {counts(outcomes)}; recovery probes: {counts(probes)}; "
        f"after recovery: {counts(after)}; unhandled exceptions in the server log: "
        f"{server.unhandled()}. {listing_error}"
    )
    problems = []

    errors_500 = [o for o in all_outcomes if isinstance(o.status, int) and o.status >= 500]
    errors_500 = [o for o in errors_500 if o.status != 503]
    if errors_500:
        problems.append(f"{len(errors_500)} responses with status 5xx other than 503")
    bad = bad_failures(all_outcomes)
    if bad:
        problems.append(
            f"{len(bad)} failed requests were not 503 + Retry-After: "
            f"{dict(Counter(o.label for o in bad))}; e.g. {describe(bad, 3)}"
        )
    if server.unhandled():
        problems.append(f"{server.unhandled()} unhandled exceptions logged by the server")

    contents = Counter(m["content"] for m in listed)
    acked = [o.content for o in outcomes + probes + after if o.status == 201]
    missing = [c for c in acked if contents[c] == 0]
    doubled = sorted(c for c, n in contents.items() if n > 1)
    if missing or doubled:
        problems.append(
            f"of {len(acked)} acknowledged messages {len(missing)} are missing "
            f"(e.g. {missing[:5]}); {len(doubled)} contents stored more than once "
            f"(e.g. {doubled[:5]})"
        )
    unacked_stored = sum(
        1 for o in outcomes if o.status != 201 and o.content and contents[o.content]
    )
    seqs = sorted(m["seq"] for m in listed)
    if session["message_count"] is not None and session["message_count"] != len(listed):
        problems.append(f"message_count {session['message_count']} != {len(listed)} rows")
    by_seq = [m["content"] for m in sorted(listed, key=lambda m: m["seq"])]
    for w in range(load.writers):  # one writer's messages keep their order
        mine = [c for c in by_seq if c.startswith(f"w{w}-")]
        if mine != sorted(mine):
            problems.append(f"writer {w}'s messages are out of order")

    post_restart = [o for o in outcomes if o.phase == "after restart"]
    if not any(o.status == 201 for o in post_restart) and recovered_in == float("inf"):
        problems.append("no write succeeded after PostgreSQL came back (server not recovered)")
    elif recovered_in == float("inf"):
        problems.append("writes did not succeed again within 10 s after the load stopped")
    not_ok = [o for o in after if not (isinstance(o.status, int) and o.status < 300)]
    if not_ok:
        problems.append(f"after recovery {len(not_ok)} requests still failed: {describe(not_ok)}")
    if not any(o.status == 201 for o in outcomes if o.phase == "before"):
        problems.append("no write succeeded before the kill: the load never ran")

    report += (
        f" stored {len(listed)} messages (seq {seqs[:1]}…{seqs[-1:]}), "
        f"{unacked_stored} of them from requests that did not get 201."
    )
    print(report)  # the counts, also when all is well (pytest -rP shows them)
    assert not problems, "\n- ".join(["", *problems]) + f"\n{report}\n{server.diagnosis()}"


# ── 2. frozen PostgreSQL ───────────────────────────────────────


Request = tuple[str, str, str, dict[str, Any]]  # what, method, path, httpx keywords


def at_once(server: Server, requests: list[Request], phase: str) -> list[Outcome]:
    """The requests concurrently, each on its own connection; their outcomes."""
    results: list[Outcome] = []
    lock = threading.Lock()

    def one(what: str, method: str, path: str, kwargs: dict[str, Any]) -> None:
        with client(server) as http:
            o, _ = call(http, method, path, what, **kwargs)
        o.phase = phase
        body = kwargs.get("json") or {}
        if "messages" in body:  # a batch: its (first) message stands for it
            body = body["messages"][0]
        o.content = body.get("content")
        with lock:
            results.append(o)

    threads = [threading.Thread(target=one, args=r, daemon=True) for r in requests]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=CLIENT_TIMEOUT + 5)
    return results


def _frozen_round(server: Server, sid: str, n: int) -> list[Outcome]:
    """Seven kinds of request at once."""
    msgs = f"{API}/{sid}/messages"
    return at_once(
        server,
        [
            ("POST messages", "POST", msgs, {"json": {"role": "user", "content": f"frozen-{n}"}}),
            ("POST messages", "POST", msgs, {"json": {"role": "user", "content": f"frozen-{n}b"}}),
            ("GET session", "GET", f"{API}/{sid}", {}),
            ("GET messages", "GET", msgs, {"params": {"last": 10}}),
            ("GET sessions", "GET", API, {}),
            ("POST session", "POST", API, {"json": {"agent_id": "faults"}}),
            ("GET /readyz", "GET", "/readyz", {}),
        ],
        f"frozen round {n}",
    )


def test_postgres_frozen_answers_503_within_the_timeout(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    bound = PG_TIMEOUT + 1
    with served(pg_cluster.url, tmp_path, PG_TIMEOUT) as server, client(server) as http:
        sid = create_session(http)
        for n in range(5):  # pooled connections exist when the database freezes
            assert post_message(http, sid, f"warm-{n}").status == 201
        assert http.get("/readyz").status_code == 200

        frozen_pids = pg_cluster.freeze()
        try:
            outcomes = _frozen_round(server, sid, 1)
            for n in range(2):  # one after the other, after the first round's failures
                o = post_message(http, sid, f"frozen-seq-{n}")
                o.phase = "frozen, sequential"
                outcomes.append(o)
            o, _ = call(http, "GET", "/readyz")
            o.phase = "frozen, sequential"
            outcomes.append(o)
            outcomes += _frozen_round(server, sid, 2)
        finally:
            pg_cluster.thaw()

        recovered_in, probes = wait_until_ok(http, sid, within=15)
        after = [call(http, "GET", f"{API}/{sid}/messages", "GET messages")[0]]
        after.append(call(http, "GET", "/readyz")[0])
        assert server.proc.poll() is None, "the server died"

    report = (
        f"froze pids {frozen_pids}; {counts(outcomes)}; slowest "
        f"{max(o.elapsed for o in outcomes):.2f}s (bound {bound:.1f}s); recovery probes: "
        f"{counts(probes)}; after thaw: {counts(after)}; unhandled exceptions in the server "
        f"log: {server.unhandled()}"
    )
    problems = []
    not_503 = [o for o in outcomes if o.status != 503]
    if not_503:
        problems.append(f"{len(not_503)} requests did not answer 503: {describe(not_503, 7)}")
    no_retry = [
        o for o in outcomes if o.status == 503 and not o.retry_after and "readyz" not in o.what
    ]
    if no_retry:
        problems.append(f"{len(no_retry)} API 503s without Retry-After: {describe(no_retry)}")
    slow = [o for o in outcomes if o.elapsed > bound]
    if slow:
        problems.append(
            f"{len(slow)} of {len(outcomes)} requests took longer than {bound:.1f}s: "
            + ", ".join(f"{o.what} {o.elapsed:.2f}s ({o.label})" for o in slow)
        )
    if recovered_in == float("inf"):
        problems.append(f"writes did not succeed within 15 s of the thaw: {describe(probes)}")
    not_ok = [o for o in after if o.status != 200]
    if not_ok:
        problems.append(f"after the thaw: {describe(not_ok)}")
    if server.unhandled():
        problems.append(f"{server.unhandled()} unhandled exceptions logged by the server")
    print(report)  # the counts, also when all is well (pytest -rP shows them)
    assert not problems, "\n- ".join(["", *problems]) + f"\n{report}\n{server.diagnosis()}"


# ── 3. SQLite write lock held by another process ─────────────────────

HOLD_LOCK = """
import select, sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
db.execute("BEGIN IMMEDIATE")  # the database's write lock, until told to let go
print("locked", flush=True)
select.select([sys.stdin], [], [], 60)
db.execute("ROLLBACK")
print("released", flush=True)
"""


def test_sqlite_write_lock_held_elsewhere_answers_503(tmp_path: Path) -> None:
    # The issue asks for 503 (not a raw exception) and sets no time for SQLite; the bound
    # here only tells a 503 from a hang: a write queued behind the one waiting on the lock
    # may wait its own turn (the store bounds queue + busy wait at timeout + 1 s), plus HTTP.
    bound = SQLITE_TIMEOUT + 1.5
    db = tmp_path / "locked.db"
    with served(f"sqlite:///{db}", tmp_path, SQLITE_TIMEOUT) as server, client(server) as http:
        sid = create_session(http)
        assert post_message(http, sid, "before the lock").status == 201

        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK, str(db)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None and holder.stdin is not None
            assert holder.stdout.readline().strip() == "locked", holder.stderr
            msgs = f"{API}/{sid}/messages"
            batch = {"messages": [{"role": "user", "content": "while-locked-batch"}]}
            writes = at_once(
                server,
                [
                    (
                        "POST messages",
                        "POST",
                        msgs,
                        {"json": {"role": "user", "content": "locked-1"}},
                    ),
                    (
                        "POST messages",
                        "POST",
                        msgs,
                        {"json": {"role": "user", "content": "locked-2"}},
                    ),
                    ("POST batch", "POST", msgs, {"json": batch}),
                    ("POST session", "POST", API, {"json": {"agent_id": "x"}}),
                ],
                "locked",
            )
            reads = [
                call(http, "GET", f"{API}/{sid}/messages", "GET messages")[0],
                call(http, "GET", f"{API}/{sid}", "GET session")[0],
            ]
            lock_held = holder.poll() is None
        finally:
            if holder.stdin is not None:
                with contextlib.suppress(OSError):
                    holder.stdin.write("\n")
                    holder.stdin.close()
            try:
                holder.wait(timeout=15)
            except subprocess.TimeoutExpired:
                holder.kill()
                holder.wait(timeout=10)

        after = post_message(http, sid, "after the lock")
        listed = [m["content"] for m in list_messages(http, sid)]
        assert server.proc.poll() is None, "the server died"

    report = (
        f"{counts(writes + reads)}; slowest write {max(o.elapsed for o in writes):.2f}s "
        f"(bound {bound:.1f}s); after release: {after.label}; unhandled exceptions in the "
        f"server log: {server.unhandled()}"
    )
    problems = []
    if not lock_held:
        problems.append("the lock holder exited early: the test did not test anything")
    not_503 = [o for o in writes if o.status != 503 or not o.retry_after]
    if not_503:
        problems.append(
            f"{len(not_503)} writes under the lock were not 503 + Retry-After: {describe(not_503)}"
        )
    slow = [o for o in writes if o.elapsed > bound]
    if slow:
        problems.append(
            f"{len(slow)} writes took longer than {bound:.1f}s: "
            + ", ".join(f"{o.what} {o.elapsed:.2f}s" for o in slow)
        )
    bad_reads = [o for o in reads if o.status not in (200, 503)]
    bad_reads += [o for o in reads if o.status == 503 and not o.retry_after]
    if bad_reads:
        problems.append(f"reads under the lock: {describe(bad_reads)} (200 or 503 expected)")
    if server.unhandled():
        problems.append(f"{server.unhandled()} unhandled exceptions logged by the server")
    if after.status != 201:
        problems.append(f"the write after the lock was released got {after.label}")
    landed = [o.content for o in writes if o.status == 503 and o.content in listed]
    if landed:
        problems.append(f"writes answered 503 were stored anyway: {landed}")
    print(report)  # the counts, also when all is well (pytest -rP shows them)
    assert not problems, "\n- ".join(["", *problems]) + f"\n{report}\n{server.diagnosis()}"

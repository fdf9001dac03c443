"""Reading the last 50 messages while 4 writers append, through the real HTTP server.

``sessionkeeper --db URL serve --port N`` runs as a subprocess (open mode: no API keys, on
loopback). One session holds ``serve_msgs`` messages. A reader in this process GETs
``/api/engine/sessions/{id}/messages?last=50`` in a closed loop over one keep-alive
connection (http.client: the least client overhead), first alone, then while 4 writer
clients in another process (4 threads, each its own keep-alive connection) POST one message
at a time to the same session, as fast as the server answers. The writers live in another
process so that the reader never waits for the GIL behind them.

Target (issue 7, SQLite): p99 of the reader under load <= 5x its p50 under load.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing as mp
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from harness import Result, Target, fmt_s, pct

PREFIX = "/api/engine/sessions"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _request(
    conn: http.client.HTTPConnection, method: str, path: str, body: Any = None
) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
    resp = conn.getresponse()
    return resp.status, resp.read()


def _writers(port: int, sid: str, n: int, stop: Any, counts: Any, errors: Any) -> None:
    def one(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        body = {"role": "user", "content": f"writer {i}: " + "lorem ipsum dolor sit amet " * 8}
        done = 0
        while not stop.is_set():
            status, _ = _request(conn, "POST", f"{PREFIX}/{sid}/messages", body)
            if status != 201:
                errors.value += 1
            done += 1
        counts[i] = done
        conn.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _read(conn: http.client.HTTPConnection, sid: str, n: int) -> list[float]:
    out = []
    path = f"{PREFIX}/{sid}/messages?last=50"
    clock = time.perf_counter
    for _ in range(n):
        t0 = clock()
        status, body = _request(conn, "GET", path)
        out.append(clock() - t0)
        assert status == 200, (status, body[:200])
    return out


def _message_count(conn: http.client.HTTPConnection, sid: str) -> int:
    status, body = _request(conn, "GET", f"{PREFIX}/{sid}")
    assert status == 200, (status, body[:200])
    return int(json.loads(body)["message_count"])


def run(url: str, db_path: str | None, sid: str, scale: dict[str, Any], log: Any) -> list[Result]:
    exe = Path(sys.executable).parent / "sessionkeeper"
    port = _free_port()
    env = {**os.environ, "SESSIONKEEPER_DATABASE_URL": url}
    env.pop("SESSIONKEEPER_API_KEY", None)
    server = subprocess.Popen(
        [str(exe), "--db", url, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    results: list[Result] = []
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                status, _ = _request(c, "GET", "/healthz")
                c.close()
                if status == 200:
                    break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"serve did not start: {server.stderr.read()[-2000:]}")
            time.sleep(0.1)
        reader = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        n_idle, n_load = scale["serve_reads_idle"], scale["serve_reads_load"]
        _read(reader, sid, 50)  # warm-up
        idle = _read(reader, sid, n_idle)

        ctx = mp.get_context("spawn")
        stop = ctx.Event()
        writers = 4
        counts = ctx.Array("i", writers)
        errors = ctx.Value("i", 0)
        proc = ctx.Process(target=_writers, args=(port, sid, writers, stop, counts, errors))
        proc.start()
        time.sleep(1.0)  # the writers connect and reach a steady state
        w0 = _message_count(reader, sid)
        t0 = time.perf_counter()
        loaded = _read(reader, sid, n_load)
        elapsed = time.perf_counter() - t0
        appended = _message_count(reader, sid) - w0
        stop.set()
        proc.join(timeout=60)
        reader.close()
        wal = None
        if db_path is not None and os.path.exists(db_path + "-wal"):
            wal = os.path.getsize(db_path + "-wal")
        p50, p99 = statistics.median(loaded), pct(loaded, 0.99)
        ratio = p99 / p50
        res = Result(
            scenario="serve last50 p99/p50",
            db="sqlite" if url.startswith("sqlite") else "postgresql",
            store_s=p99,
            base_s=p50,
            store_p95=pct(loaded, 0.999),
            base_p95=pct(loaded, 0.95),
            n=len(loaded),
            target=Target("ratio_max", 5.0, "p99 <= 5x p50"),
            store_label="p99 under load (p99.9)",
            base_label="p50 under load (p95)",
            note=(
                f"GET …/messages?last=50 of a {scale['big_msgs']:,}-message session through "
                f"`serve`, while 4 writer clients POST to it: p50 {fmt_s(p50)}, p95 "
                f"{fmt_s(pct(loaded, 0.95))}, p99 {fmt_s(p99)}, max {fmt_s(max(loaded))}; "
                f"alone: p50 {fmt_s(statistics.median(idle))}, p99 {fmt_s(pct(idle, 0.99))}; "
                f"writers stored {appended:,} messages in {elapsed:.1f} s "
                f"({errors.value} non-201), reader {len(loaded) / elapsed:.0f} req/s"
                + (f"; WAL {wal / 1e6:.1f} MB at the end" if wal is not None else "")
            ),
            extra={
                "idle_p50": statistics.median(idle),
                "idle_p99": pct(idle, 0.99),
                "load_p50": p50,
                "load_p95": pct(loaded, 0.95),
                "load_p99": p99,
                "load_max": max(loaded),
                "appended": appended,
                "writer_errors": errors.value,
                "wal_bytes": wal,
            },
        )
        res.ratio = ratio
        res.passed = ratio <= 5.0
        results.append(res)
        log(f"  serve: p50 {fmt_s(p50)}, p99 {fmt_s(p99)} (x{ratio:.2f}); {appended} appends")
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    return results

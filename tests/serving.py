"""A real ``sessionkeeper serve`` in a subprocess, for the tests that need the whole server
(uvicorn, its HTTP parser, the lifespan): tests/test_faults.py, test_limits.py and
test_schemathesis.py.

``served(db_url, workdir)`` starts it on a free port with no maintenance loop and warnings
only in its log (``workdir/server-<port>.log``), waits for ``/healthz``, and stops it by pid
(SIGTERM, then SIGKILL) on exit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    base: str
    proc: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def diagnosis(self) -> str:
        """For a failure message: the first unhandled exception's traceback, then the log's end
        (runs of repeated lines, like one warning per failed request, collapsed)."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        lines: list[str] = []
        previous, repeats = None, 0
        for line in [*text.splitlines(), None]:
            if line == previous:
                repeats += 1
                continue
            if previous is not None:
                lines.append(previous + (f"  [×{repeats}]" if repeats > 1 else ""))
            previous, repeats = line, 1
        out = ""
        marker = text.find("Exception in ASGI application")
        if marker != -1:
            out = "first unhandled exception (frames in sessionkeeper only):\n"
            out += "\n".join(_our_frames(text[marker:].splitlines()[1:])) + "\n"
        return out + "end of the server log:\n" + "\n".join(lines)[-2500:]

    def unhandled(self) -> int:
        """Unhandled exceptions uvicorn logged: a request that reached the client as a raw 500."""
        try:
            return self.log.read_text(errors="replace").count("Exception in ASGI application")
        except OSError:
            return 0


def _our_frames(traceback: list[str]) -> list[str]:
    """A logged traceback cut to its exception lines and the frames in sessionkeeper's code."""
    kept: list[str] = []
    keep_next = False
    for line in traceback:
        if line.startswith(("INFO:", "WARNING:", "ERROR:")):
            break  # the next log record
        if keep_next or not line.startswith(" ") or "/sessionkeeper/" in line:
            kept.append(line)
        keep_next = line.lstrip().startswith("File ") and "/sessionkeeper/" in line
    return kept


@contextlib.contextmanager
def served(
    db_url: str,
    workdir: Path,
    db_timeout: float | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[Server]:
    """``sessionkeeper --db URL serve`` on a free port; stopped (by pid) on exit. ``db_timeout``
    is its ``SESSIONKEEPER_DB_TIMEOUT``; ``env`` adds to its environment."""
    env = {
        **os.environ,
        "SESSIONKEEPER_MAINTENANCE": "false",
        "SESSIONKEEPER_LOG_LEVEL": "warning",  # no access log: thousands of lines under load
        **(env or {}),
    }
    if db_timeout is not None:
        env["SESSIONKEEPER_DB_TIMEOUT"] = str(db_timeout)
    env.pop("SESSIONKEEPER_DATABASE_URL", None)
    for attempt in range(3):
        port = free_port()
        log = workdir / f"server-{port}.log"
        argv = [sys.executable, "-m", "sessionkeeper", "--db", db_url, "serve"]
        argv += ["--host", "127.0.0.1", "--port", str(port)]
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        server = Server(f"http://127.0.0.1:{port}", proc, log)
        try:
            if _started(server) or attempt == 2:
                break
        except BaseException:
            _stop(proc)
            raise
        # Someone took the port between free_port() and the server's bind: another port.
    try:
        assert proc.poll() is None, f"server exited:\n{server.log_tail()}"
        yield server
    finally:
        _stop(proc)


def _started(server: Server) -> bool:
    """True once /healthz answers; False if the port was taken; fails on anything else."""
    with httpx.Client(base_url=server.base, trust_env=False, timeout=5) as http:
        deadline = time.monotonic() + 60
        while True:
            if server.proc.poll() is not None:
                if "address already in use" in server.log_tail().lower():
                    return False
                raise AssertionError(f"server exited:\n{server.log_tail()}")
            with contextlib.suppress(httpx.TransportError):
                if http.get("/healthz").status_code == 200:
                    return True
            assert time.monotonic() < deadline, f"server did not start:\n{server.log_tail()}"
            time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)

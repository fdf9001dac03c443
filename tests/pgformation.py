"""A private pg_auto_failover formation (monitor + primary + synchronous secondary) that a
failover test may break: tests/test_failover.py and bench/failover.py.

Built with Debian's ``pg_autoctl`` (packages ``pg-auto-failover-cli`` and
``postgresql-N-auto-failover``; ``scripts/ensure-pg-auto-failover.sh`` installs them) into a
fresh directory under /tmp, every node on a private port of 127.0.0.1; the machine's own
PostgreSQL is never touched. Every ``pg_autoctl`` runs as the ``postgres`` OS user (when the
test runs as root) with its configuration, state and pid files inside that directory
(``HOME`` and the ``XDG_*`` directories point there), so nothing is left elsewhere.

Process layout (one per node: ``monitor``, ``node1``, ``node2``)::

    pytest ── supervisor (tests/pgcluster.py run as a script, a child subreaper)
               └─ pg_autoctl run ── pg_autoctl services ── postgres (postmaster) ── backends

The supervisor is pgcluster's: it reaps the orphans a SIGKILL leaves, dies with the test
(PR_SET_PDEATHSIG) and then kills its node, so an aborted run leaves no process behind.
``stop()`` ends every node by pid (its supervisor's descendants) and checks that none is left.

The monitor is tuned to notice a dead node within about two seconds (its health checks, and
how long it waits for an unreachable primary to demote itself): the defaults take 20-30 s,
which is right for a real network and wrong for a test. ``kill_primary()`` loses the primary
node whole: its ``pg_autoctl`` first (it would otherwise restart Postgres in place, and no
failover would happen), then the postmaster, both with SIGKILL.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pgcluster import (
    OS_USER,
    ClusterUnavailable,
    alive,
    descendants_of,
    find_bin_dir,
    free_port,
    remove_stale_shm,
    running_in,
)

PGCLUSTER = str(Path(__file__).with_name("pgcluster.py"))
DATABASE = "faults"
# Monitor settings (pgautofailover.*, milliseconds): a node that stops answering is declared
# unhealthy within ~2 s, and an unreachable primary is given 1 s to demote itself.
FAST_MONITOR = {
    "health_check_period": "500",
    "health_check_timeout": "500",
    "health_check_max_retries": "1",
    "health_check_retry_delay": "200",
    "node_considered_unhealthy_timeout": "1500",
    "primary_demote_timeout": "1000",
}
NODES = ("node1", "node2")


def pg_autoctl() -> str:
    found = shutil.which("pg_autoctl")
    if found is None:
        raise ClusterUnavailable(
            "no pg_autoctl on PATH (run scripts/ensure-pg-auto-failover.sh: Debian packages "
            "pg-auto-failover-cli and postgresql-N-auto-failover)"
        )
    return found


class PgFormation:
    """``start()`` builds the formation; ``url`` is the multi-host URL of both data nodes;
    ``primary()``, ``kill_primary()``, ``wait_primary(other_than=…)``; ``stop()`` always
    cleans up (processes and directory) and returns the pids it found still running."""

    def __init__(self, database: str = DATABASE) -> None:
        self.bindir = find_bin_dir()
        self.autoctl = pg_autoctl()
        if not list(self.bindir.parent.glob("lib/pgautofailover.so")):
            raise ClusterUnavailable(
                f"no pgautofailover extension for {self.bindir.parent.name} "
                "(package postgresql-N-auto-failover)"
            )
        self.database = database
        self.as_root = os.geteuid() == 0
        try:
            self.user = pwd.getpwnam(OS_USER) if self.as_root else pwd.getpwuid(os.geteuid())
        except KeyError as exc:
            raise ClusterUnavailable(f"running as root and no {OS_USER!r} OS user") from exc
        self.base: Path | None = None
        self.ports: dict[str, int] = {}
        self.supervisors: dict[str, subprocess.Popen[bytes]] = {}
        self.killed: list[int] = []

    # ── addresses ──
    @property
    def monitor_uri(self) -> str:
        return f"postgres://autoctl_node@127.0.0.1:{self.ports['monitor']}/pg_auto_failover"

    @property
    def hosts(self) -> str:
        return ",".join(f"127.0.0.1:{self.ports[n]}" for n in NODES)

    @property
    def url(self) -> str:
        """Both data nodes, the writable one chosen at connect time (libpq's multi-host
        form, which asyncpg reads too)."""
        return (
            f"postgresql://{self.user.pw_name}@{self.hosts}/{self.database}"
            "?target_session_attrs=read-write"
        )

    def node_url(self, node: str) -> str:
        return f"postgresql://{self.user.pw_name}@127.0.0.1:{self.ports[node]}/{self.database}"

    def pgdata(self, node: str) -> Path:
        assert self.base is not None
        return self.base / node

    def log(self, node: str) -> Path:
        assert self.base is not None
        return self.base / f"{node}.log"

    def log_tail(self, chars: int = 2500) -> str:
        out = []
        for node in ("monitor", *NODES):
            with contextlib.suppress(OSError):
                out.append(f"--- {node}:\n" + self.log(node).read_text(errors="replace")[-chars:])
        return "\n".join(out)

    # ── running things as the formation's user ──
    def _env(self) -> dict[str, str]:
        assert self.base is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "XDG_"))}
        env.update(
            LC_ALL="C",
            LANG="C",
            TZ="UTC",
            HOME=str(self.base),
            XDG_CONFIG_HOME=str(self.base / "config"),
            XDG_DATA_HOME=str(self.base / "share"),
            XDG_RUNTIME_DIR=str(self.base / "run"),
            PATH=f"{self.bindir}:{env.get('PATH', '/usr/bin:/bin')}",
            PG_CONFIG=str(self.bindir / "pg_config"),
        )
        return env

    def _as_user(self) -> dict[str, object]:
        if not self.as_root:
            return {}
        return {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}

    def _run(self, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv,
            env=self._env(),
            cwd=self.base,
            capture_output=True,
            text=True,
            timeout=timeout,
            **self._as_user(),  # type: ignore[arg-type]
        )

    def psql(self, port: int, sql: str, db: str | None = None, timeout: float = 10) -> str:
        """SQL on one node (unaligned, tuples only); raises on error."""
        done = self._run(
            str(self.bindir / "psql"),
            "-X", "-q", "-A", "-t",
            "-h", "127.0.0.1",
            "-p", str(port),
            "-U", self.user.pw_name,
            "-d", db or self.database,
            "-v", "ON_ERROR_STOP=1",
            "-c", sql,
            timeout=timeout,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"psql on port {port} failed: {done.stderr.strip()}")
        return done.stdout.strip()

    # ── life cycle ──
    def start(self, ready_timeout: float = 120) -> PgFormation:
        # Under /tmp, never pytest's tmp_path: /tmp/pytest-of-root is 0700.
        self.base = Path(tempfile.mkdtemp(prefix="sk-pgformation-", dir="/tmp"))
        os.chmod(self.base, 0o700)
        for sub in ("config", "share", "run"):
            (self.base / sub).mkdir(mode=0o700)
        if self.as_root:
            for path in (self.base, *self.base.iterdir()):
                os.chown(path, self.user.pw_uid, self.user.pw_gid)
        taken: set[int] = set()
        for name in ("monitor", *NODES):
            port = free_port()
            while port in taken:
                port = free_port()
            taken.add(port)
            self.ports[name] = port
        common = ["--pgctl", str(self.bindir / "pg_ctl"), "--hostname", "127.0.0.1"]
        common += ["--auth", "trust", "--no-ssl"]
        self._spawn(
            "monitor",
            [self.autoctl, "create", "monitor", "--pgdata", str(self.pgdata("monitor")),
             "--pgport", str(self.ports["monitor"]), *common, "--run"],
        )  # fmt: skip
        self._wait(lambda: self._monitor_ready(), ready_timeout, "the monitor")
        settings = ", ".join(f"pgautofailover.{k} = {v}" for k, v in FAST_MONITOR.items())
        for name, value in FAST_MONITOR.items():
            self.psql(
                self.ports["monitor"],
                f"ALTER SYSTEM SET pgautofailover.{name} = {value}",
                db="pg_auto_failover",
            )
        self.psql(self.ports["monitor"], "SELECT pg_reload_conf()", db="pg_auto_failover")
        self.monitor_settings = settings
        for node in NODES:
            self._spawn(
                node,
                [self.autoctl, "create", "postgres", "--pgdata", str(self.pgdata(node)),
                 "--pgport", str(self.ports[node]), "--listen", "127.0.0.1",
                 "--username", self.user.pw_name, "--dbname", self.database,
                 "--name", node, "--monitor", self.monitor_uri, *common, "--run"],
            )  # fmt: skip
            # one node at a time: the first becomes the primary, the second its secondary
            want = "single" if node == NODES[0] else "secondary"
            self._wait(lambda n=node, w=want: self.state(n) == w, ready_timeout, f"{node} {want}")
            if node == NODES[0]:
                # pg_basebackup (the secondary's copy) waits for a checkpoint: spread, it took
                # 95 s here. Durability is the replication's job in a test: no fsync either.
                # (postgresql.auto.conf travels with the copy: the secondary gets them too.)
                for sql in (
                    "ALTER SYSTEM SET checkpoint_completion_target = 0",
                    "ALTER SYSTEM SET fsync = off",
                    "SELECT pg_reload_conf()",
                ):
                    self.psql(self.ports[node], sql, db="postgres")
        self._wait(lambda: self.state(NODES[0]) == "primary", ready_timeout, "the primary")
        # the secondary is a synchronous standby: a commit waits for it
        self._wait(
            lambda: self.psql(
                self.ports[NODES[0]],
                "SELECT count(*) FROM pg_stat_replication WHERE sync_state IN ('sync','quorum')",
            ) == "1",
            ready_timeout,
            "synchronous replication",
        )  # fmt: skip
        return self

    def _spawn(self, node: str, argv: list[str]) -> None:
        ids = [str(self.user.pw_uid), str(self.user.pw_gid)] if self.as_root else ["-", "-"]
        with self.log(node).open("ab") as log:
            self.supervisors[node] = subprocess.Popen(
                [sys.executable, PGCLUSTER, "supervise", str(os.getpid()), *ids, "--", *argv],
                env=self._env(),
                cwd=self.base,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C on the terminal is not a fault we inject
            )

    def _wait(self, ready: object, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                if ready():  # type: ignore[operator]
                    return
            dead = [n for n, p in self.supervisors.items() if p.poll() is not None]
            dead = [n for n in dead if not self.killed or n != self._killed_node]
            if dead:
                raise RuntimeError(f"{dead} exited while waiting for {what}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} not ready after {timeout} s:\n{self.log_tail()}")
            time.sleep(0.2)

    def _monitor_ready(self) -> bool:
        return self.psql(self.ports["monitor"], "SELECT 1", db="pg_auto_failover") == "1"

    def nodes(self) -> dict[str, tuple[str, str]]:
        """{node name: (reported state, goal state)} as the monitor sees them."""
        rows = self.psql(
            self.ports["monitor"],
            "SELECT nodename, reportedstate, goalstate FROM pgautofailover.node",
            db="pg_auto_failover",
        )
        found = {}
        for line in rows.splitlines():
            name, reported, goal = line.split("|")
            found[name] = (reported, goal)
        return found

    def state(self, node: str) -> str | None:
        """The node's state when it has reached its goal (else None)."""
        reported, goal = self.nodes().get(node, ("", "-"))
        return reported if reported == goal else None

    def primary(self) -> str | None:
        """The data node that reports (and is assigned) a writable state."""
        for node, (reported, goal) in self.nodes().items():
            if reported == goal and reported in ("primary", "wait_primary", "single"):
                return node
        return None

    def wait_primary(self, other_than: str, timeout: float = 60) -> str:
        """Wait until another node is the writable primary; its name."""
        self._wait(lambda: self.primary() not in (None, other_than), timeout, "a promoted primary")
        found = self.primary()
        assert found is not None
        return found

    # ── faults ──
    _killed_node = ""

    def node_pids(self, node: str) -> list[int]:
        sup = self.supervisors.get(node)
        if sup is None or sup.poll() is not None:
            return []
        return [p for p in descendants_of(sup.pid) if alive(p)]

    def postmaster_pid(self, node: str) -> int | None:
        try:
            first = (self.pgdata(node) / "postmaster.pid").read_text().splitlines()[0]
        except (OSError, IndexError):
            return None
        pid = int(first) if first.strip().isdigit() else None
        return pid if pid in self.node_pids(node) else None

    def kill_primary(self) -> tuple[str, list[int]]:
        """Lose the primary node: SIGKILL its pg_autoctl processes (so nothing restarts
        Postgres in place), then its postmaster; its backends exit on their postmaster's
        death. Returns the node's name and the pids killed."""
        node = self.primary()
        assert node is not None, "kill_primary(): no primary"
        postmaster = self.postmaster_pid(node)
        assert postmaster is not None, f"kill_primary(): {node} has no postmaster"
        keepers = [p for p in self.node_pids(node) if _comm(p) == "pg_autoctl"]
        for pid in keepers:
            _signal(pid, signal.SIGKILL)
        os.kill(postmaster, signal.SIGKILL)
        self._killed_node = node
        self.killed = [*keepers, postmaster]
        return node, self.killed

    def stop(self) -> list[int]:
        """Stop every node whatever its state and remove the directory. Idempotent.

        Returns the pids still running once the supervisors were told to stop and had
        15 s to do it (then killed): a leak, always empty when all is well."""
        if self.base is None:
            return []
        for node in reversed(("monitor", *NODES)):  # data nodes first, the monitor last
            pm = self.postmaster_pid(node)
            for pid in self.node_pids(node):
                if _comm(pid) == "pg_autoctl":
                    _signal(pid, signal.SIGKILL)  # nothing may restart Postgres now
            if pm is not None:
                _signal(pm, signal.SIGQUIT)  # what pg_ctl stop -m immediate sends
        leaked: list[int] = []
        for sup in self.supervisors.values():
            try:
                sup.wait(timeout=15)
            except subprocess.TimeoutExpired:
                rest = [p for p in descendants_of(sup.pid) if alive(p)]
                leaked.extend(rest)
                for pid in rest:
                    _signal(pid, signal.SIGKILL)
                sup.kill()
                sup.wait(timeout=10)
        for node in ("monitor", *NODES):
            remove_stale_shm(self.pgdata(node))
        leaked.extend(self.leftover_pids())
        for pid in leaked:
            _signal(pid, signal.SIGKILL)
        shutil.rmtree(self.base, ignore_errors=True)
        self.base = None
        return leaked

    def leftover_pids(self) -> list[int]:
        """Processes running in the formation's directory (their cwd), whoever their parent."""
        return [] if self.base is None else running_in(self.base)


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _describe() -> str:  # python tests/pgformation.py: build one, print its state, stop it
    formation = PgFormation().start()
    try:
        return json.dumps({"url": formation.url, "nodes": formation.nodes()}, indent=1)
    finally:
        left = formation.stop()
        assert not left, left


if __name__ == "__main__":
    print(_describe())

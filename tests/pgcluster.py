"""A private, throw-away PostgreSQL cluster that a fault test may kill -9, freeze and restart.

The machine's own PostgreSQL (port 5432) is never touched: ``PgCluster`` runs ``initdb`` into a
fresh directory under /tmp, starts its own ``postgres`` on a free port (TCP on 127.0.0.1 and a
Unix socket in the same directory), and only ever signals processes it started itself, found
by pid: the postmaster it launched and that postmaster's descendants.

Process layout::

    pytest ── supervisor (this file run as a script, a child subreaper) ── postgres (postmaster)
                                                                            └─ backends, …

The supervisor exists because kill -9 of a postmaster orphans its backends, and on machines
whose pid 1 does not reap (containers, micro-VMs) every killed orphan would stay a zombie.
As a child subreaper (prctl PR_SET_CHILD_SUBREAPER) the supervisor inherits those orphans,
reaps everything, and exits once the last process of the cluster is gone. It also dies with
its parent (PR_SET_PDEATHSIG) and then kills the cluster, so an aborted test run leaves no
PostgreSQL running. The postmaster's pid is its own ``postmaster.pid`` first line.

When the test runs as root, initdb and postgres run as the ``postgres`` OS user (postgres
refuses to run as root); otherwise as the current user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"
OS_USER = "postgres"


class ClusterUnavailable(RuntimeError):
    """This machine cannot run a private cluster (no initdb, no postgres user…)."""


def find_bin_dir() -> Path:
    """The newest PostgreSQL server bin dir holding initdb, postgres and psql."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: _version_key(p.parent.name),
        reverse=True,
    )
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for bindir in candidates:
        if all((bindir / tool).is_file() for tool in ("initdb", "postgres", "psql")):
            return bindir
    raise ClusterUnavailable(f"no initdb/postgres/psql found in {PG_BIN_GLOB} or on PATH")


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# ── /proc helpers (Linux) ─────────────────────────────────────────


def _parents() -> dict[int, int]:
    """{pid: parent pid} of every process (from /proc/<pid>/stat)."""
    found: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                found[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    return found


def children_of(pid: int) -> list[int]:
    return [child for child, parent in _parents().items() if parent == pid]


def descendants_of(pid: int) -> list[int]:
    """Every descendant of pid (children first, then theirs)."""
    parents = _parents()
    seen: list[int] = []
    todo = [pid]
    while todo:
        current = todo.pop(0)
        for child, parent in parents.items():
            if parent == current and child not in seen:
                seen.append(child)
                todo.append(child)
    return seen


def proc_state(pid: int) -> str | None:
    """The one-letter /proc state (R, S, T, Z …), or None when the pid is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def alive(pid: int) -> bool:
    return proc_state(pid) not in (None, "Z", "X")


def running_in(directory: Path) -> list[int]:
    """Live processes whose working directory is under ``directory``, whoever their parent."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue
        if cwd.startswith(str(directory)) and alive(int(entry)):
            found.append(int(entry))
    return found


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


class PgCluster:
    """One private cluster: ``start()``, then ``url``; ``kill9()``/``restart()``;
    ``freeze()``/``thaw()``; ``stop()`` always cleans up (processes and directory)."""

    def __init__(self, database: str = "faults") -> None:
        self.bindir = find_bin_dir()
        self.database = database
        self.as_root = os.geteuid() == 0
        if self.as_root:
            try:
                self.user = pwd.getpwnam(OS_USER)
            except KeyError as exc:
                raise ClusterUnavailable(f"running as root and no {OS_USER!r} OS user") from exc
        else:
            self.user = pwd.getpwuid(os.geteuid())
        self.port = 0
        self.base: Path | None = None
        self.supervisor: subprocess.Popen[bytes] | None = None
        self.frozen: list[int] = []
        self.started_pids: set[int] = set()  # every postmaster we launched

    # ── paths ──
    @property
    def data(self) -> Path:
        assert self.base is not None
        return self.base / "data"

    @property
    def sockdir(self) -> Path:
        assert self.base is not None
        return self.base / "sock"

    @property
    def logfile(self) -> Path:
        assert self.base is not None
        return self.base / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgresql://{self.user.pw_name}@127.0.0.1:{self.port}/{self.database}"

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.logfile.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    # ── running things as the cluster's user ──
    def _as_user(self) -> dict[str, object]:
        if not self.as_root:
            return {}
        return {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(LC_ALL="C", LANG="C", HOME=str(self.base), TZ="UTC")
        return env

    def _run(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv,
            env=self._env(),
            cwd=self.base,
            capture_output=True,
            text=True,
            timeout=timeout,
            **self._as_user(),  # type: ignore[arg-type]
        )

    # ── life cycle ──
    def _make_dirs(self) -> None:
        """The cluster's directory and socket directory, owned by the user it runs as. Under
        /tmp, never under pytest's tmp_path: /tmp/pytest-of-root is 0700, and the postgres
        user must reach its data directory."""
        self.base = Path(tempfile.mkdtemp(prefix="sk-pgcluster-", dir="/tmp"))
        os.chmod(self.base, 0o700)
        self.sockdir.mkdir(mode=0o700)
        if self.as_root:
            for path in (self.base, self.sockdir):
                os.chown(path, self.user.pw_uid, self.user.pw_gid)

    def start(self) -> PgCluster:
        self._make_dirs()
        done = self._run(
            str(self.bindir / "initdb"),
            "-D", str(self.data),
            "-U", self.user.pw_name,
            "-A", "trust",
            "-E", "UTF8",
            "--locale=C",
            "--no-sync",
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}): {done.stdout}{done.stderr}")
        for attempt in range(3):
            self.port = free_port()
            try:
                self._spawn()
                break
            except RuntimeError:
                if attempt == 2 or "could not bind" not in self.log_tail():
                    raise
        done = self._psql("postgres", f'CREATE DATABASE "{self.database}"')
        if done.returncode != 0:
            raise RuntimeError(f"CREATE DATABASE failed: {done.stderr}")
        return self

    def _spawn(self, ready_timeout: float = 60) -> None:
        assert self.supervisor is None or self.supervisor.poll() is not None
        argv = [
            str(self.bindir / "postgres"),
            "-D", str(self.data),
            "-p", str(self.port),
            "-k", str(self.sockdir),
            "-c", "listen_addresses=127.0.0.1",
            "-c", "fsync=off",
            "-c", "full_page_writes=off",
            "-c", "max_connections=50",
            "-c", "shared_buffers=16MB",
        ]  # fmt: skip
        ids = [str(self.user.pw_uid), str(self.user.pw_gid)] if self.as_root else ["-", "-"]
        with self.logfile.open("ab") as log:
            self.supervisor = subprocess.Popen(
                [sys.executable, __file__, "supervise", str(os.getpid()), *ids, "--", *argv],
                env=self._env(),
                cwd=self.base,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C on the terminal is not a fault we inject
            )
        deadline = time.monotonic() + ready_timeout
        while True:
            pm = self.postmaster_pid()
            # postmaster_pid() ignores a stale file: its pid must be our new supervisor's child
            if pm is not None and self._pid_file_status() == "ready":
                done = self._psql("postgres", "SELECT 1", timeout=10)
                if done.returncode == 0:
                    self.started_pids.add(pm)
                    return
            if self.supervisor.poll() is not None:
                raise RuntimeError(
                    f"postgres exited with {self.supervisor.returncode}:\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"postgres not ready after {ready_timeout} s:\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def _pid_file_lines(self) -> list[str]:
        try:
            return (self.data / "postmaster.pid").read_text().splitlines()
        except OSError:
            return []

    def _pid_file_status(self) -> str:
        lines = self._pid_file_lines()
        return lines[7].strip() if len(lines) > 7 else ""

    def postmaster_pid(self) -> int | None:
        """The running postmaster's pid (first line of postmaster.pid), if it is one of ours."""
        lines = self._pid_file_lines()
        if not lines or not lines[0].strip().isdigit():
            return None
        pid = int(lines[0])
        if self.supervisor is None or pid not in children_of(self.supervisor.pid):
            return None  # stale file (after kill -9) or not started by us
        return pid

    def _psql(self, db: str, sql: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return self._run(
            str(self.bindir / "psql"),
            "-X", "-q", "-A", "-t",
            "-h", "127.0.0.1",
            "-p", str(self.port),
            "-U", self.user.pw_name,
            "-d", db,
            "-v", "ON_ERROR_STOP=1",
            "-c", sql,
            timeout=timeout,
        )  # fmt: skip

    def pids(self) -> list[int]:
        """Every live process of this cluster: all descendants of our supervisor."""
        if self.supervisor is None or self.supervisor.poll() is not None:
            return []
        return [p for p in descendants_of(self.supervisor.pid) if alive(p)]

    def leftover_pids(self) -> list[int]:
        """Processes still running in this cluster's data dir (their cwd), whoever their parent:
        what must be empty after ``stop()``."""
        return [] if self.base is None else running_in(self.base)

    # ── faults ──
    def kill9(self) -> list[int]:
        """SIGKILL the postmaster, then the backends it orphaned; returns the pids killed.

        Returns once every one of them is gone (the supervisor reaps them)."""
        self.thaw()
        pm = self.postmaster_pid()
        assert pm is not None, "kill9(): the cluster is not running"
        os.kill(pm, signal.SIGKILL)
        self._wait_gone([pm])
        killed = [pm]
        # The postmaster's orphans now belong to the supervisor (its subreaper).
        for _round in range(5):
            rest = self.pids()
            if not rest:
                break
            for pid in rest:
                _signal(pid, signal.SIGKILL)
            killed.extend(rest)
            self._wait_gone(rest)
        assert self.supervisor is not None
        self.supervisor.wait(timeout=10)
        return killed

    def restart(self) -> None:
        """Start again on the same directory and port (after kill -9: crash recovery)."""
        assert self.supervisor is None or self.supervisor.poll() is not None, "still running"
        self._spawn()

    def freeze(self) -> list[int]:
        """SIGSTOP the postmaster (first: it forks no more) and every process under it."""
        pm = self.postmaster_pid()
        assert pm is not None, "freeze(): the cluster is not running"
        os.kill(pm, signal.SIGSTOP)
        self.frozen = [pm]
        for _round in range(3):
            fresh = [p for p in self.pids() if p not in self.frozen]
            if not fresh:
                break
            for pid in fresh:
                _signal(pid, signal.SIGSTOP)
            self.frozen.extend(fresh)
        deadline = time.monotonic() + 5  # SIGSTOP is delivered asynchronously
        while any(proc_state(p) not in ("T", None, "Z") for p in self.frozen):
            if time.monotonic() > deadline:
                raise RuntimeError(f"not stopped: {[(p, proc_state(p)) for p in self.frozen]}")
            time.sleep(0.01)
        return list(self.frozen)

    def thaw(self) -> None:
        """SIGCONT everything freeze() stopped (children first, the postmaster last)."""
        live = self.pids()
        for pid in reversed(self.frozen):
            if pid in live:
                _signal(pid, signal.SIGCONT)
        self.frozen = []

    def query(self, sql: str, timeout: float = 30) -> str:
        """Run SQL in the test database with psql (unaligned, tuples only); raise on error."""
        done = self._psql(self.database, sql, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"psql failed: {done.stderr}")
        return done.stdout

    def stop(self) -> list[int]:
        """Stop the cluster whatever its state and remove its directory. Idempotent.

        Returns the pids of this cluster that were still running once the postmaster's
        supervisor had exited (they are then killed): a leak, always empty when all is well."""
        if self.base is None:
            return []
        for pid in self.pids():  # frozen or not: a stopped process cannot shut down
            _signal(pid, signal.SIGCONT)
        self.frozen = []
        pm = self.postmaster_pid()
        if pm is not None:
            os.kill(pm, signal.SIGQUIT)  # what pg_ctl stop -m immediate sends
        if self.supervisor is not None:
            try:
                self.supervisor.wait(timeout=15)
            except subprocess.TimeoutExpired:
                for pid in self.pids():
                    _signal(pid, signal.SIGKILL)
                self.supervisor.kill()
                self.supervisor.wait(timeout=10)
        self._remove_stale_shm()
        leftovers = self.leftover_pids()
        for pid in leftovers:  # cannot happen with the supervisor; belt and braces
            _signal(pid, signal.SIGKILL)
        shutil.rmtree(self.base, ignore_errors=True)
        self.base = None
        return leftovers

    def _remove_stale_shm(self) -> None:
        remove_stale_shm(self.data)

    def _wait_gone(self, pids: list[int], timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while any(alive(p) for p in pids):
            if time.monotonic() > deadline:
                raise RuntimeError(f"still alive after SIGKILL: {[p for p in pids if alive(p)]}")
            time.sleep(0.02)


def remove_stale_shm(data: Path) -> None:
    """After a kill -9 that nothing restarted, the cluster's SysV segment (its id is on line 7
    of its postmaster.pid) has no process attached any more: remove it."""
    try:
        lines = (data / "postmaster.pid").read_text().splitlines()
    except OSError:
        return
    if len(lines) < 7 or len(lines[6].split()) != 2:
        return
    shmid = lines[6].split()[1]
    with contextlib.suppress(OSError):
        for row in Path("/proc/sysvipc/shm").read_text().splitlines()[1:]:
            cols = row.split()
            if cols[1] == shmid and cols[6] == "0":  # shmid, nattch
                subprocess.run(["ipcrm", "-m", shmid], capture_output=True, check=False)


# ── the supervisor (run as a script) ─────────────────────────────


def _supervise(argv: list[str]) -> int:
    """supervise PARENT_PID UID GID -- postgres args…: run postgres, reap every orphan."""
    import ctypes

    parent, uid, gid, sep, *cmd = argv
    assert sep == "--" and cmd
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig, pr_set_child_subreaper = 1, 36
    libc.prctl(pr_set_child_subreaper, 1, 0, 0, 0)
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)

    orphaned = False  # the test died: clean up after the cluster ourselves

    def kill_all(_signum: int = 0, _frame: object = None) -> None:
        nonlocal orphaned
        orphaned = True
        for pid in descendants_of(os.getpid()):
            _signal(pid, signal.SIGCONT)
            _signal(pid, signal.SIGKILL)

    signal.signal(signal.SIGTERM, kill_all)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    user = {} if uid == "-" else {"user": int(uid), "group": int(gid), "extra_groups": []}
    postmaster = subprocess.Popen(cmd, **user)  # type: ignore[call-overload]
    if os.getppid() != int(parent):  # the test died before PDEATHSIG was armed
        kill_all()
    status = 0
    while True:
        try:
            pid, raw = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid == postmaster.pid:
            status = os.waitstatus_to_exitcode(raw)
    if orphaned:
        # postgres -D DIR, or pg_autoctl … --pgdata DIR (tests/pgformation.py reuses this)
        flag = "-D" if "-D" in cmd else "--pgdata"
        data = Path(cmd[cmd.index(flag) + 1])
        remove_stale_shm(data)
        if data.parent.name.startswith(("sk-pgcluster-", "sk-pgformation-")):
            shutil.rmtree(data.parent, ignore_errors=True)
    return status


if __name__ == "__main__" and sys.argv[1:2] == ["supervise"]:
    sys.exit(_supervise(sys.argv[2:]))

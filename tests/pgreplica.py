"""A private primary and its streaming standby, for the standby-read tests
(tests/test_standby.py) and bench/standby_reads.py.

The primary is a ``PgCluster`` (tests/pgcluster.py: initdb, a private port, run as the
``postgres`` user, supervised). The standby is a copy taken with ``pg_basebackup -R``
(which writes ``standby.signal`` and ``primary_conninfo``) and run the same way on a port
of its own: a hot standby streaming from the primary, asynchronously (the tests pause its
replay to make it lag on purpose: ``pause_replay()``). ``stop()`` stops both and removes
their directories; nothing of them stays running.
"""

from __future__ import annotations

import time

from pgcluster import PgCluster, free_port


class PgStandby(PgCluster):
    """A hot standby of ``primary`` (its database included)."""

    def __init__(self, primary: PgCluster) -> None:
        super().__init__(primary.database)
        self.primary = primary

    def start(self) -> PgStandby:
        self._make_dirs()
        done = self._run(
            str(self.bindir / "pg_basebackup"),
            "-h", "127.0.0.1",
            "-p", str(self.primary.port),
            "-U", self.user.pw_name,
            "-D", str(self.data),
            "-R",  # standby.signal + primary_conninfo
            "-X", "stream",
            "--checkpoint=fast",
            "--no-sync",
            timeout=120,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"pg_basebackup failed ({done.returncode}): {done.stderr}")
        self.port = free_port()
        self._spawn()
        return self

    def pause_replay(self) -> None:
        self.query("SELECT pg_wal_replay_pause()")

    def resume_replay(self) -> None:
        self.query("SELECT pg_wal_replay_resume()")

    def wait_caught_up(self, timeout: float = 30) -> None:
        """Until the standby has replayed everything the primary has written so far."""
        target = self.primary.query("SELECT pg_current_wal_lsn()").strip()
        deadline = time.monotonic() + timeout
        while True:
            behind = self.query(
                f"SELECT pg_wal_lsn_diff('{target}', pg_last_wal_replay_lsn()) > 0"
            ).strip()
            if behind == "f":
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the standby did not replay up to {target}")
            time.sleep(0.02)


class PgReplica:
    """A primary and one streaming standby: ``start()``, ``primary``, ``standby``,
    ``url`` (the primary), ``read_url`` (the standby), ``stop()``."""

    def __init__(self, database: str = "replica") -> None:
        self.primary = PgCluster(database)
        self.standby = PgStandby(self.primary)

    def start(self) -> PgReplica:
        self.primary.start()
        self.standby.start()
        return self

    @property
    def url(self) -> str:
        return self.primary.url

    @property
    def read_url(self) -> str:
        return self.standby.url

    @property
    def hosts_url(self) -> str:
        """Both nodes in one URL (writes to the primary), for ``read_from=standby``."""
        user = self.primary.user.pw_name
        hosts = f"127.0.0.1:{self.primary.port},127.0.0.1:{self.standby.port}"
        return f"postgresql://{user}@{hosts}/{self.primary.database}"

    def stop(self) -> list[int]:
        return self.standby.stop() + self.primary.stop()

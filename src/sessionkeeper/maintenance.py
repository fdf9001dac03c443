"""Background maintenance: the ghost purge, the idle-session prune, the retention policies
and the deletion of expired idempotency keys, on a schedule.

One ``MaintenanceRunner`` per process (the API's lifespan starts ``run()`` as a task it owns).
With several API replicas on one PostgreSQL every replica runs the loop, and each job is
guarded by ``Store.job_lock`` (a session-level advisory lock held on a connection of its own
for the job's duration): the replica that gets the lock does the work, the others skip that
round (``None``) instead of queueing to repeat it. On SQLite the lock is per process.
Jobs run on the primary only: a replica whose database URL reaches a standby (read-only,
``Store.database_role``) skips them the same way; after a failover, the replicas whose URL
lists every node (``target_session_attrs=read-write``) write to the new primary.

Schedule: the ghost purge runs at start-up and then every ``ghost_interval``; the prune first
runs one ``prune_interval`` after start-up, the retention policies one ``retention_interval``
after (``apply_configured_policies`` writes the policies of the settings at start-up, before
the loop). Idempotency keys older than ``idempotency_ttl_hours`` (default 24) are deleted on
the ghost purge's interval (``store/idempotency.py``). Each next run is measured from the end of the
previous one, so a slow job never piles up runs. A failing job is logged and retried on its
next turn; only cancellation stops the loop.

An optional ``MaintenanceListener`` hears what each job did (the API's /metrics uses it);
the runner calls it after the work, and a listener that raises is logged, never fatal.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol, TypeVar

from sessionkeeper.models import Policy, PolicyRun, PruneResult

if TYPE_CHECKING:
    from sessionkeeper.config import Settings
    from sessionkeeper.store.core import Store

logger = logging.getLogger(__name__)

# Advisory lock keys, one per job; any constants work as long as every replica agrees.
# Job names for ``Store.job_lock``: one replica at a time runs each.
GHOST_JOB = "ghost-purge"
PRUNE_JOB = "prune"
RETENTION_JOB = "retention"
IDEMPOTENCY_JOB = "idempotency-keys"

T = TypeVar("T")


class MaintenanceListener(Protocol):
    """Told what the scheduled jobs did (e.g. to count it in /metrics)."""

    def ghosts_purged(self, deleted: int) -> None: ...

    def pruned(self, result: PruneResult) -> None: ...

    def policies_run(self, result: PolicyRun) -> None: ...

    def job_failed(self, job: str) -> None: ...


@dataclass(slots=True)
class JobStatus:
    """What a job did last, for logs now and for /metrics and /readyz later."""

    name: str
    runs: int = 0
    skipped: int = 0
    failures: int = 0
    last_started: datetime | None = None
    last_finished: datetime | None = None
    last_error: str | None = None


class MaintenanceRunner:
    """Runs the ghost purge, the prune and the retention policies against ``store``
    (intervals in minutes / hours; fractions are fine, and tests use fractions of a
    second)."""

    def __init__(
        self,
        store: Store,
        *,
        ghost_interval_minutes: float = 10,
        ghost_age_minutes: float = 15,
        prune_interval_hours: float = 6,
        prune_days: float = 30,
        retention_interval_minutes: float = 10,
        idempotency_ttl_hours: float = 24,
        listener: MaintenanceListener | None = None,
    ) -> None:
        if min(ghost_interval_minutes, prune_interval_hours, retention_interval_minutes) <= 0:
            raise ValueError("maintenance intervals must be positive")
        if idempotency_ttl_hours <= 0:
            raise ValueError("the idempotency key TTL must be positive")
        self.store = store
        self.ghost_interval_seconds = ghost_interval_minutes * 60
        self.prune_interval_seconds = prune_interval_hours * 3600
        self.ghost_age_minutes = ghost_age_minutes
        self.prune_days = prune_days
        self.retention_interval_seconds = retention_interval_minutes * 60
        self.ghosts = JobStatus("ghost_purge")
        self.prune = JobStatus("prune")
        self.retention = JobStatus("retention")
        self.idempotency_ttl_hours = idempotency_ttl_hours
        self.idempotency = JobStatus("idempotency_keys")
        self.listener = listener

    @classmethod
    def from_settings(
        cls, store: Store, settings: Settings, *, listener: MaintenanceListener | None = None
    ) -> MaintenanceRunner:
        return cls(
            store,
            ghost_interval_minutes=settings.ghost_interval_minutes,
            ghost_age_minutes=settings.ghost_age_minutes,
            prune_interval_hours=settings.prune_interval_hours,
            prune_days=settings.prune_days,
            retention_interval_minutes=settings.retention_interval_minutes,
            idempotency_ttl_hours=settings.idempotency_ttl_hours,
            listener=listener,
        )

    # ── one run of each job ────────────────────────────────────────────────

    async def _on_primary(self) -> bool:
        """Whether this store writes to a primary: a replica whose URL reaches a standby
        (read-only) skips every job, as if another replica held it."""
        return (await self.store.database_role()).role == "primary"

    async def purge_ghosts_once(self) -> int | None:
        """Delete ghosts now; the count, or None when another replica holds the job (or
        the database is a standby)."""
        if not await self._on_primary():
            return None
        async with self.store.job_lock(GHOST_JOB) as acquired:
            if not acquired:
                return None
            deleted = await self.store.delete_ghost_sessions(self.ghost_age_minutes)
        self._tell(lambda listener: listener.ghosts_purged(deleted))
        return deleted

    async def prune_once(self) -> PruneResult | None:
        """Prune idle sessions now; the result, or None when another replica holds the job
        (or the database is a standby)."""
        if not await self._on_primary():
            return None
        async with self.store.job_lock(PRUNE_JOB) as acquired:
            if not acquired:
                return None
            result = await self.store.prune_old_sessions(self.prune_days)
        self._tell(lambda listener: listener.pruned(result))
        return result

    async def run_policies_once(self) -> PolicyRun | None:
        """Apply the retention policies now; the run, or None when another replica holds
        the job (or the database is a standby)."""
        if not await self._on_primary():
            return None
        async with self.store.job_lock(RETENTION_JOB) as acquired:
            if not acquired:
                return None
            result = await self.store.run_policies()
        self._tell(lambda listener: listener.policies_run(result))
        return result

    async def expire_idempotency_keys_once(self) -> int | None:
        """Delete idempotency keys past the TTL now; the count, or None when another replica
        holds the job."""
        async with self.store.job_lock(IDEMPOTENCY_JOB) as acquired:
            if not acquired:
                return None
            return await self.store.delete_expired_idempotency_keys(self.idempotency_ttl_hours)

    def _tell(self, event: Callable[[MaintenanceListener], None]) -> None:
        if self.listener is None:
            return
        try:
            event(self.listener)
        except Exception:  # metrics must never break maintenance
            logger.exception("maintenance: listener failed")

    # ── the loop ───────────────────────────────────────────────────────────

    async def run(self) -> None:
        """Loop the jobs on their intervals until cancelled."""
        clock = asyncio.get_running_loop().time
        next_ghosts = clock()
        next_prune = clock() + self.prune_interval_seconds
        next_retention = clock() + self.retention_interval_seconds
        logger.info(
            "maintenance: ghost purge every %.0fs (older than %s min), prune every %.0fs "
            "(idle over %s days), retention policies every %.0fs",
            self.ghost_interval_seconds,
            self.ghost_age_minutes,
            self.prune_interval_seconds,
            self.prune_days,
            self.retention_interval_seconds,
        )
        while True:
            if clock() >= next_ghosts:
                await self._guarded(self.ghosts, self.purge_ghosts_once, _describe_ghosts)
                await self._guarded(
                    self.idempotency, self.expire_idempotency_keys_once, _describe_keys
                )
                next_ghosts = clock() + self.ghost_interval_seconds
            if clock() >= next_prune:
                await self._guarded(self.prune, self.prune_once, _describe_prune)
                next_prune = clock() + self.prune_interval_seconds
            if clock() >= next_retention:
                await self._guarded(self.retention, self.run_policies_once, _describe_policies)
                next_retention = clock() + self.retention_interval_seconds
            wake = min(next_ghosts, next_prune, next_retention)
            await asyncio.sleep(max(0.0, wake - clock()))

    async def _guarded(
        self,
        status: JobStatus,
        job: Callable[[], Awaitable[T | None]],
        describe: Callable[[T], str],
    ) -> None:
        status.last_started = datetime.now(UTC)
        try:
            result = await job()
        except Exception as exc:  # a failing job must not end the loop
            status.failures += 1
            status.last_error = f"{type(exc).__name__}: {exc}"
            logger.exception("maintenance: %s failed; retrying next interval", status.name)
            self._tell(lambda listener: listener.job_failed(status.name))
            return
        finally:
            status.last_finished = datetime.now(UTC)
        if result is None:
            status.skipped += 1
            logger.debug("maintenance: %s is running on another replica", status.name)
            return
        status.runs += 1
        status.last_error = None
        message = describe(result)
        if message:
            logger.info("maintenance: %s", message)


def _describe_ghosts(deleted: int) -> str:
    if not deleted:
        return ""
    return f"ghost purge deleted {deleted} empty session{'s' if deleted != 1 else ''}"


def _describe_keys(deleted: int) -> str:
    if not deleted:
        return ""
    return f"deleted {deleted} expired idempotency key{'s' if deleted != 1 else ''}"


def _describe_prune(result: PruneResult) -> str:
    if not result.pruned_count:
        return ""
    return (
        f"prune deleted {result.pruned_count} session(s) idle over {result.days:g} days "
        f"({result.message_count} messages)"
    )


def _describe_policies(result: PolicyRun) -> str:
    if not result.ended_count and not result.deleted_count:
        return ""
    parts = [f"{r.agent_id} {r.rule}: {r.action} {r.count}" for r in result.rules if r.count]
    return (
        f"retention policies ended {result.ended_count} and deleted {result.deleted_count} "
        f"session(s) ({'; '.join(parts)})"
    )


async def apply_configured_policies(store: Store, settings: Settings) -> list[Policy]:
    """Write the retention policies of the settings (``SESSIONKEEPER_RETENTION``), each
    replacing its agent's; policies of other agents stay. Every replica may do it at start:
    the same settings write the same policies."""
    if not settings.retention:
        return []
    from sessionkeeper.store.retention import configured

    written = []
    for agent, rules in configured(settings.retention).items():
        written.append(await store.set_policy(agent, **rules))
    logger.info("retention policies from the settings: %s", ", ".join(p.agent_id for p in written))
    return written

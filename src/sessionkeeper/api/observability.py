"""Health, readiness and Prometheus metrics: ``/healthz``, ``/readyz``, ``/metrics``.

Every app gets its own ``CollectorRegistry`` (``app.state.metrics``), never the process-wide
default one: tests build many apps in one process, and one process may serve two databases.

What is counted where:

- requests and their latency: ``RequestMetrics``, a pure ASGI middleware (not
  ``BaseHTTPMiddleware``, which would get between a streaming response and its client). It
  labels by route *template* (``/api/engine/sessions/{session_id}``), never by the raw path,
  so a label cannot take one value per session; a request no route matched is
  ``<unmatched>``. For a streamed response (chat SSE) the latency is the stream's duration.
- sessions created and messages stored: by the routes that create and store them, through
  ``Metrics.sessions_created.inc()`` / ``Metrics.messages_stored.inc(n)`` (``MetricsDep``).
  Counted at the API layer, so work done by the CLI or the library is not in them.
- ghosts purged, prune runs, sessions pruned: by the maintenance endpoints
  (``trigger="api"``) and the scheduled runner (``trigger="schedule"``, the runner's listener).
- retention policy runs (by trigger) and the sessions each rule ended or deleted
  (``sessionkeeper_retention_sessions_total{agent, rule, action}``; ``agent`` is the policy's,
  ``*`` for the default, so the labels are as many as the policies): by ``POST
  /policies/run`` and the scheduled runner. Dry runs are not counted.
- reads served by the standby and by the primary
  (``sessionkeeper_database_reads_total{served_by}``, only with a standby): read from the
  store at each scrape (``DatabaseReads``), so the library's and the API's reads are in it.

``/healthz`` and ``/readyz`` are public (probes carry no key) and answer HEAD too (the GET's
status and headers, no body: what ``curl -I`` and some load balancers' probes send);
``/metrics`` needs an admin key once keys exist (it spans every agent).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.exposition import generate_latest
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sessionkeeper.api.deps import AdminDep
from sessionkeeper.api.openapi import error_responses
from sessionkeeper.api.schemas import ErrorBody
from sessionkeeper.errors import SessionkeeperError
from sessionkeeper.models import PolicyRun, PruneResult
from sessionkeeper.store.core import Store
from sessionkeeper.store.revision import SCHEMA_REVISION

logger = logging.getLogger(__name__)

UNMATCHED = "<unmatched>"
_CONVERTOR = re.compile(r"\{(\w+):\w+\}")  # {session_id:session_id} → {session_id}
TRIGGERS = ("api", "schedule")
READY_TIMEOUT_SECONDS = 3.0


class Metrics:
    """The app's metrics, in its own registry. Also the maintenance runner's listener."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "sessionkeeper_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "sessionkeeper_http_request_duration_seconds",
            "Time to answer an HTTP request (a stream: until it ends), by route template.",
            ["method", "route"],
            registry=r,
        )
        self.sessions_created = Counter(
            "sessionkeeper_sessions_created", "Sessions created through the API.", registry=r
        )
        self.messages_stored = Counter(
            "sessionkeeper_messages_stored", "Messages stored through the API.", registry=r
        )
        self.ghosts_purged = Counter(
            "sessionkeeper_ghosts_purged",
            "Empty (ghost) sessions deleted, by trigger (api or schedule).",
            ["trigger"],
            registry=r,
        )
        self.prune_runs = Counter(
            "sessionkeeper_prune_runs",
            "Prune runs that deleted (not dry runs), by trigger (api or schedule).",
            ["trigger"],
            registry=r,
        )
        self.sessions_pruned = Counter(
            "sessionkeeper_sessions_pruned",
            "Idle sessions deleted by prune, by trigger (api or schedule).",
            ["trigger"],
            registry=r,
        )
        self.retention_runs = Counter(
            "sessionkeeper_retention_runs",
            "Retention policy runs that changed data (not dry runs), by trigger.",
            ["trigger"],
            registry=r,
        )
        self.retention_sessions = Counter(
            "sessionkeeper_retention_sessions",
            "Sessions ended or deleted by retention policies, by policy agent ('*': the "
            "default), rule and action (end or delete).",
            ["agent", "rule", "action"],
            registry=r,
        )
        self.maintenance_failures = Counter(
            "sessionkeeper_maintenance_failures",
            "Scheduled maintenance jobs that failed, by job.",
            ["job"],
            registry=r,
        )
        # Export the labelled series at 0 from the start, so rates and alerts have a baseline.
        for trigger in TRIGGERS:
            self.ghosts_purged.labels(trigger=trigger)
            self.prune_runs.labels(trigger=trigger)
            self.sessions_pruned.labels(trigger=trigger)
            self.retention_runs.labels(trigger=trigger)
        for job in ("ghost_purge", "prune", "retention", "idempotency_keys"):
            self.maintenance_failures.labels(job=job)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    # ── what the API and the maintenance runner report ─────────────────────

    def count_ghosts(self, deleted: int, *, trigger: str) -> None:
        self.ghosts_purged.labels(trigger=trigger).inc(deleted)

    def count_prune(self, result: PruneResult, *, trigger: str) -> None:
        if result.dry_run:
            return
        self.prune_runs.labels(trigger=trigger).inc()
        self.sessions_pruned.labels(trigger=trigger).inc(result.pruned_count)

    def count_policies(self, result: PolicyRun, *, trigger: str) -> None:
        if result.dry_run:
            return
        self.retention_runs.labels(trigger=trigger).inc()
        for rule in result.rules:
            self.retention_sessions.labels(
                agent=rule.agent_id, rule=rule.rule, action=rule.action
            ).inc(rule.count)


class ScheduleListener:
    """The maintenance runner's listener (``sessionkeeper.maintenance.MaintenanceListener``):
    its jobs are counted with ``trigger="schedule"``."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def ghosts_purged(self, deleted: int) -> None:
        self.metrics.count_ghosts(deleted, trigger="schedule")

    def pruned(self, result: PruneResult) -> None:
        self.metrics.count_prune(result, trigger="schedule")

    def policies_run(self, result: PolicyRun) -> None:
        self.metrics.count_policies(result, trigger="schedule")

    def job_failed(self, job: str) -> None:
        self.metrics.maintenance_failures.labels(job=job).inc()


def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


MetricsDep = Annotated[Metrics, Depends(get_metrics)]


# ── request metrics ───────────────────────────────────────────────────────────


def route_template(scope: Scope, entry_root_path: str) -> str:
    """The template of the route that answered, e.g. ``/api/engine/sessions/{session_id}``.

    Recent FastAPI versions keep included routers nested and record the full template in
    their own scope entry; older ones (and plain Starlette routes) leave the matched route
    in ``scope["route"]``. A mount (the static files) shows as ``<mount>/{path}``. A test
    pins the labels, so a FastAPI upgrade that moves these fails loudly.
    """
    fastapi_scope = scope.get("fastapi")
    context = (
        fastapi_scope.get("effective_route_context") if isinstance(fastapi_scope, dict) else None
    )
    path = getattr(context, "path", None)
    if isinstance(path, str) and path:
        return _CONVERTOR.sub(r"{\1}", path)
    path = getattr(scope.get("route"), "path_format", None)
    if isinstance(path, str) and path:
        return path
    root_path = scope.get("root_path", "")
    if root_path != entry_root_path:
        return f"{root_path[len(entry_root_path) :]}/{{path}}"
    if "endpoint" in scope and not scope.get("path_params"):
        # A matched route without parameters (/docs, /openapi.json): its path is its template.
        return str(scope.get("path", UNMATCHED))
    return UNMATCHED


class RequestMetrics:
    """Counts every HTTP request and times it, labelled by route template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        entry_root = scope.get("root_path", "")
        started = time.perf_counter()
        status = 500  # unless a response starts: an exception escaping is a server error

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = route_template(scope, entry_root)
            method = str(scope.get("method", ""))
            self.metrics.requests.labels(method=method, route=route, status=str(status)).inc()
            self.metrics.latency.labels(method=method, route=route).observe(
                time.perf_counter() - started
            )


# ── endpoints ─────────────────────────────────────────────────────────────────

router = APIRouter(tags=["health"])


def head_of(response: Response) -> Response:
    """The answer to a HEAD: the GET's status and headers (its Content-Length too), no body."""
    return Response(status_code=response.status_code, headers=dict(response.headers))


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers (the database is not consulted; see /readyz)."""
    return {"status": "ok"}


@router.head(
    "/healthz", response_class=Response, responses={200: {"description": "Alive (no body)."}}
)
async def healthz_head() -> Response:
    """/healthz without the body."""
    return head_of(JSONResponse(await healthz()))


class Replication(BaseModel):
    """The node this replica writes to, as ``Store.database_role`` reports it."""

    role: Literal["primary", "standby"]
    lag_seconds: float | None = Field(
        description="Standby: how far its replay is behind (0: all it received is "
        "replayed). Primary: the slowest standby's replay lag. null: unknown or none."
    )
    lag_bytes: int | None = Field(description="WAL bytes not yet replayed (same reading).")
    standbys: int | None = Field(description="Primary: standbys streaming from it.")


class Ready(BaseModel):
    status: Literal["ready"]
    database: Literal["ok"]
    schema_: str = Field(alias="schema")
    replication: Replication


class NotReady(ErrorBody):
    """/readyz when not ready: the error body, plus what was checked."""

    status: str
    database: str
    schema_: str | None = Field(alias="schema")
    expected_schema: str
    replication: Replication | None = None


@router.get(
    "/readyz",
    responses={
        200: {"model": Ready, "description": "Ready."},
        503: {
            "model": NotReady,
            "description": "The database is not answering, its schema is not "
            "the revision this version needs, or the URL reaches a standby (read-only).",
        },
    },
)
async def readyz(request: Request) -> JSONResponse:
    """Readiness: the database answers, its schema is the revision this version needs, and
    it takes writes. ``replication`` says which node the writes go to (``primary``; a URL
    that reaches a ``standby`` is not ready) and how far replication is behind."""
    store: Store | None = getattr(request.app.state, "store", None)
    body: dict[str, Any] = {"database": "ok", "schema": None, "expected_schema": SCHEMA_REVISION}
    if store is None:
        return _not_ready(body, "unavailable", "the session store is not open yet", "not open")
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            role = await store.database_role()
            body["schema"] = await store.schema_revision()
    except (SessionkeeperError, TimeoutError) as exc:
        # The driver's message can name hosts and users: it goes to the log, not the body.
        logger.warning("readyz: database not answering: %s", exc)
        return _not_ready(
            body, "unavailable", f"the database is not answering ({type(exc).__name__})", "error"
        )
    if body["schema"] != SCHEMA_REVISION:
        detail = (
            f"the database schema is at revision {body['schema'] or 'none'}, "
            f"this version needs {SCHEMA_REVISION}: run `sessionkeeper db upgrade`"
        )
        return _not_ready(body, "schema_mismatch", detail, "ok")
    replication = role.to_dict()
    if role.role != "primary":
        body["replication"] = replication
        detail = (
            "the database URL reaches a standby (read-only): name the primary, or list every "
            "node with target_session_attrs=read-write"
        )
        return _not_ready(body, "read_only", detail, "ok")
    return JSONResponse(
        {"status": "ready", "database": "ok", "schema": body["schema"], "replication": replication}
    )


@router.head(
    "/readyz",
    response_class=Response,
    responses={
        200: {"description": "Ready (no body)."},
        503: {"description": "Not ready (no body: GET /readyz says why)."},
    },
)
async def readyz_head(request: Request) -> Response:
    """/readyz without the body."""
    return head_of(await readyz(request))


def _not_ready(body: dict[str, Any], code: str, detail: str, database: str) -> JSONResponse:
    return JSONResponse(
        {"status": "not_ready", "error": code, "detail": detail, **body, "database": database},
        status_code=503,
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
            "description": "Prometheus text.",
        },
        **error_responses(401, 403, s403="Needs an admin key once keys exist."),
    },
)
async def metrics_endpoint(metrics: MetricsDep, _admin: AdminDep) -> Response:
    """Prometheus metrics of this process (admin key once keys exist)."""
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)


class DatabaseReads:
    """``sessionkeeper_database_reads_total{served_by}``: the store's reads served by its
    standby and by the primary, read from the store at each scrape (only with a standby)."""

    NAME = "sessionkeeper_database_reads"
    HELP = (
        "Reads (listings, searches, gets, windows) served by the standby and by the primary "
        "(the standby had not replayed this process's writes within read_wait, or could not "
        "be reached), since the store opened. Only with a standby (SESSIONKEEPER_READ_URL)."
    )

    def __init__(self, store: Callable[[], Store | None]) -> None:
        self._store = store

    def describe(self) -> list[CounterMetricFamily]:
        return [CounterMetricFamily(self.NAME, self.HELP, labels=["served_by"])]

    def collect(self) -> Iterator[CounterMetricFamily]:
        store = self._store()
        served = None if store is None else store.reads_served()
        if served is None:
            return
        family = CounterMetricFamily(self.NAME, self.HELP, labels=["served_by"])
        for node in ("standby", "primary"):
            family.add_metric([node], served[node])
        yield family


def install_observability(app: FastAPI) -> Metrics:
    """Give ``app`` its metrics registry, the request middleware and the three endpoints."""
    metrics = Metrics()
    metrics.registry.register(DatabaseReads(lambda: getattr(app.state, "store", None)))
    app.state.metrics = metrics
    app.add_middleware(RequestMetrics, metrics=metrics)
    app.include_router(router)
    return metrics

"""CLI commands on the whole store: stats, ghosts, prune, serve, and ``db upgrade``."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from sessionkeeper.cli import common
from sessionkeeper.cli import output as out
from sessionkeeper.cli.common import JsonOpt
from sessionkeeper.errors import InvalidInput

if TYPE_CHECKING:
    from sessionkeeper import Store
    from sessionkeeper.models import PruneResult, Session

app = typer.Typer()
db_app = typer.Typer(help="Database schema and upkeep: upgrade, vacuum.", no_args_is_help=True)

MINUTES_PER_DAY = 24 * 60


@app.command()
def stats(
    agent: Annotated[
        list[str] | None, typer.Option("--agent", "-a", help="Only these agents (repeatable).")
    ] = None,
    user: Annotated[
        list[str] | None,
        typer.Option("--user", "-u", metavar="USER", help="Only these users (repeatable)."),
    ] = None,
    ghost_minutes: Annotated[
        float, typer.Option(help="A session with no messages this old is a ghost.")
    ] = 15,
    stale_days: Annotated[float, typer.Option(help="Idle this long is stale.")] = 30,
    as_json: JsonOpt = False,
) -> None:
    """Counts of sessions, messages and tokens."""
    result = common.run(
        lambda store: store.get_stats(
            agent_ids=agent,
            user_ids=user,
            ghost_minutes=ghost_minutes,
            stale_days=stale_days,
        )
    )
    if as_json:
        out.emit_json(result.to_dict())
        return
    out.print_fields(
        "Statistics",
        [
            ("sessions", result.total_sessions),
            ("  active", result.active_sessions),
            ("  ended", result.ended_sessions),
            (f"  ghosts (>{ghost_minutes:g} min, empty)", result.ghost_sessions),
            (f"  stale (>{stale_days:g} days idle)", result.stale_sessions),
            ("messages", result.total_messages),
            ("tokens", result.total_tokens),
            ("agents", result.active_agents),
            ("oldest session", out.when(result.oldest_session)),
            ("newest activity", out.when(result.newest_activity)),
        ],
    )
    if result.by_agent:
        out.print_table("By agent", ["agent", "sessions"], sorted(result.by_agent.items()))
    if result.by_type:
        out.print_table("By type", ["type", "sessions"], sorted(result.by_type.items()))


# Pruning what was listed and confirmed: the Store prunes by age, so the confirmed run asks
# for the listing's own cutoff (the threshold plus the time spent asking), less a margin so
# that nothing younger than what was shown can be included. (Ghosts are deleted by id.)
CONFIRM_MARGIN_S = 0.05


def _listing(
    title: str,
    sessions: list[Session],
    when: Callable[[Session], datetime],
    now: datetime,
    what: str,
) -> None:
    out.print_table(
        title,
        ["id", "agent", "title", "msgs", what],
        [
            [s.session_id, s.agent_id, s.title, s.message_count, out.age(now - when(s))]
            for s in sessions
        ],
        keep=("id",),
        squeeze=("title", "agent"),
        drop=("msgs",),
    )


def _session_facts(
    sessions: list[Session], when: Callable[[Session], datetime], now: datetime, key: str
) -> list[dict[str, object]]:
    return [
        {
            "session_id": s.session_id,
            "agent_id": s.agent_id,
            "title": s.title,
            "message_count": s.message_count,
            "created_at": s.created_at,
            "updated_at": s.updated_at,
            key: round((now - when(s)).total_seconds() / 60, 3),
        }
        for s in sessions
    ]


def _number(value: float) -> float | int:
    """15.0 → 15 in JSON (the REST API's shape), 0.5 stays."""
    return int(value) if value.is_integer() else value


def _confirm(count: int, what: str) -> None:
    """Ask before deleting ``count`` > 0 sessions; without a terminal, refuse (--yes)."""
    them = "it" if count == 1 else "them"
    common.confirm(
        f"Delete {out.plural(count, what)}?",
        f"{out.plural(count, what)} would be deleted: add --yes to delete {them} without "
        "asking (--dry-run lists them)",
    )


@app.command()
def ghosts(
    older_than_minutes: Annotated[
        float, typer.Option(help="Empty sessions created longer ago than this.")
    ] = 15,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only list what would be deleted.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Delete without asking.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete ghost sessions (empty and old).

    A ghost has no messages and was created more than --older-than-minutes ago.
    --dry-run lists them (id, title, age); otherwise they are listed and deleted once you
    confirm, or at once with --yes.
    """
    from sessionkeeper.store import validate

    minutes = validate.duration(older_than_minutes, "--older-than-minutes", "minutes")

    async def find(store: Store) -> tuple[datetime, list[Session]]:
        return datetime.now(UTC), await store.ghost_sessions(minutes)

    listed_at: datetime | None = None
    found: list[Session] = []
    if dry_run or not yes:
        listed_at, found = common.run(find)
        created: Callable[[Session], datetime] = lambda s: s.created_at  # noqa: E731
        if dry_run:
            if as_json:
                out.emit_json(
                    {
                        "deleted": 0,
                        "would_delete": len(found),
                        "status": "ok",
                        "older_than_minutes": _number(older_than_minutes),
                        "dry_run": True,
                        "sessions": _session_facts(found, created, listed_at, "age_minutes"),
                    }
                )
                return
            if found:
                _listing("Ghost sessions", found, created, listed_at, "age")
            out.say(
                f"Would delete {out.plural(len(found), 'ghost session')} "
                f"(empty, created over {older_than_minutes:g} min ago)"
            )
            return
        if found:
            if not as_json:
                _listing("Ghost sessions", found, created, listed_at, "age")
            _confirm(len(found), "ghost session")

    async def purge(store: Store) -> int:
        if listed_at is None:  # --yes: every ghost there is now
            return await store.delete_ghost_sessions(minutes)
        # Exactly what was listed (less any that got a message since): nothing unseen.
        ids = [s.session_id for s in found]
        return await store.delete_ghost_sessions(minutes, session_ids=ids) if ids else 0

    deleted = common.run(purge)
    if as_json:
        out.emit_json(
            {
                "deleted": deleted,
                "status": "ok",
                "older_than_minutes": _number(older_than_minutes),
                "dry_run": False,
            }
        )
    else:
        out.say(f"Deleted {out.plural(deleted, 'ghost session')}")


@app.command()
def prune(
    days: Annotated[
        float | None, typer.Option(help="Idle for more than N days (default 30).")
    ] = None,
    max_age_minutes: Annotated[
        float | None, typer.Option(help="Idle for more than N minutes (instead of --days).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only list what would be deleted.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Delete without asking.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete sessions idle for too long.

    Sessions with no update for --days (default 30) or --max-age-minutes are deleted
    with their messages, in bounded batches. --dry-run lists them (id, title, idle time);
    otherwise they are listed and deleted once you confirm, or at once with --yes.
    """
    from sessionkeeper.store import validate

    if days is not None and max_age_minutes is not None:
        raise InvalidInput("give --days or --max-age-minutes, not both")
    if max_age_minutes is not None:
        threshold = (
            validate.duration(max_age_minutes, "--max-age-minutes", "minutes", allow_zero=False)
            / MINUTES_PER_DAY
        )
    else:
        threshold = validate.duration(
            30 if days is None else days, "--days", "days", allow_zero=False
        )

    async def find(store: Store) -> tuple[datetime, PruneResult, list[Session]]:
        now = datetime.now(UTC)
        result = await store.prune_old_sessions(threshold, dry_run=True)
        wanted = set(result.session_ids)
        found = [
            s
            async for s in store.iter_sessions(
                updated_before=result.cutoff, sort="updated_at", order="asc"
            )
            if s.session_id in wanted
        ]
        return now, result, found

    listed_at: datetime | None = None
    if dry_run or not yes:
        listed_at, preview, found = common.run(find)
        idle: Callable[[Session], datetime] = lambda s: s.updated_at  # noqa: E731
        if dry_run:
            if as_json:
                out.emit_json(
                    {
                        **preview.to_dict(),
                        "sessions": _session_facts(found, idle, listed_at, "idle_minutes"),
                    }
                )
                return
            if found:
                _listing("Idle sessions", found, idle, listed_at, "idle")
            _say_pruned(preview)
            return
        if not preview.pruned_count:
            _emit_pruned(preview, as_json)
            return
        if not as_json:
            _listing("Idle sessions", found, idle, listed_at, "idle")
        _confirm(preview.pruned_count, "idle session")

    async def purge(store: Store) -> PruneResult:
        days_now = threshold
        if listed_at is not None:
            waited = (datetime.now(UTC) - listed_at).total_seconds() - CONFIRM_MARGIN_S
            days_now = min(threshold + max(waited, 0) / 86_400, validate.MAX_DAYS)
        return await store.prune_old_sessions(days_now, dry_run=False)

    _emit_pruned(common.run(purge), as_json)


def _say_pruned(result: PruneResult) -> None:
    verb = "Would prune" if result.dry_run else "Pruned"
    out.say(
        f"{verb} {out.plural(result.pruned_count, 'session')} "
        f"({out.plural(result.message_count, 'message')}) idle since before "
        f"{out.when(result.cutoff)} UTC"
    )


def _emit_pruned(result: PruneResult, as_json: bool) -> None:
    if as_json:
        out.emit_json(result.to_dict())
    else:
        _say_pruned(result)


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (default 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    mcp_writes: Annotated[
        bool,
        typer.Option(
            "--mcp-writes",
            help="Serve the MCP server's writing tool (remember) at /mcp "
            "(default $SESSIONKEEPER_MCP_WRITES, else off).",
        ),
    ] = False,
) -> None:
    """Run the REST API, chat page, dashboard and the MCP server at /mcp.

    The maintenance loop (ghost purge, prune) runs inside the server. The URL is printed
    once the server is listening. A missing SQLite database is created, with its directory.
    """
    overrides: dict[str, object] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        if not 1 <= port <= 65_535:
            raise InvalidInput(f"--port must be from 1 to 65535, got {port}", field="port")
        overrides["port"] = port
    if mcp_writes:
        overrides["mcp_writes"] = True
    cfg = common.settings(**overrides)
    if not 1 <= cfg.port <= 65_535:
        raise InvalidInput(f"SESSIONKEEPER_PORT must be from 1 to 65535, got {cfg.port}")
    common.check_database(cfg.database_url, create=True)
    # Imported here: FastAPI and uvicorn must not slow down every other command.
    serving = importlib.import_module("sessionkeeper.cli.serving")
    serving.run_server(cfg)


@db_app.command()
def upgrade(as_json: JsonOpt = False) -> None:
    """Migrate the database schema to this version (safe to run twice, and concurrently)."""
    import asyncio

    from sessionkeeper.store.core import Store
    from sessionkeeper.store.url import masked

    url = common.check_database(create=True)
    before, after = asyncio.run(Store.upgrade(url))
    if as_json:
        out.emit_json(
            {"database": masked(url), "before": before, "after": after, "changed": before != after}
        )
    elif before == after:
        out.say(f"{masked(url)}: schema already at revision {after}")
    else:
        out.say(f"{masked(url)}: schema upgraded from {before or 'empty'} to {after}")


@db_app.command()
def vacuum(
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help="PostgreSQL: VACUUM FULL, rewriting the tables without the deleted rows' "
            "bytes (after forget-user); each table is locked while it is rewritten.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Reclaim space and refresh statistics (SQLite: VACUUM, then rebuild the search index).

    On PostgreSQL a plain VACUUM frees deleted rows' space for reuse, leaving their bytes in
    the files until new rows overwrite them; --full rewrites the tables and indexes.
    """
    from sessionkeeper.store.url import masked

    url = common.database_url()
    common.run(lambda store: store.vacuum(full=full))
    if as_json:
        out.emit_json({"database": masked(url), "vacuumed": True, "full": full})
    else:
        out.say(f"{masked(url)}: vacuumed" + (" (full)" if full else ""))

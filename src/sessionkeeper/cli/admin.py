"""CLI commands on the whole store: stats, ghosts, prune, serve, and ``db upgrade``."""

from __future__ import annotations

import importlib
from typing import Annotated

import typer

from sessionkeeper.cli import common
from sessionkeeper.cli import output as out
from sessionkeeper.cli.common import JsonOpt
from sessionkeeper.errors import InvalidInput

app = typer.Typer()
db_app = typer.Typer(help="Database schema and upkeep: upgrade, vacuum.", no_args_is_help=True)

MINUTES_PER_DAY = 24 * 60


@app.command()
def stats(
    agent: Annotated[
        list[str] | None, typer.Option("--agent", "-a", help="Only these agents (repeatable).")
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
            agent_ids=agent, ghost_minutes=ghost_minutes, stale_days=stale_days
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


@app.command()
def ghosts(
    older_than_minutes: Annotated[
        float, typer.Option(help="Delete empty sessions created longer ago than this.")
    ] = 15,
    as_json: JsonOpt = False,
) -> None:
    """Delete ghost sessions (empty and old).

    A ghost has no messages and was created more than --older-than-minutes ago.
    """
    deleted = common.run(lambda store: store.delete_ghost_sessions(older_than_minutes))
    if as_json:
        out.emit_json({"deleted": deleted, "status": "ok"})
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
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only report.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete sessions idle for too long.

    Sessions with no update for --days (default 30) or --max-age-minutes are deleted
    with their messages, in bounded batches.
    """
    if days is not None and max_age_minutes is not None:
        raise InvalidInput("give --days or --max-age-minutes, not both")
    threshold = max_age_minutes / MINUTES_PER_DAY if max_age_minutes is not None else days
    result = common.run(
        lambda store: store.prune_old_sessions(
            30 if threshold is None else threshold, dry_run=dry_run
        )
    )
    if as_json:
        out.emit_json(result.to_dict())
        return
    verb = "Would prune" if result.dry_run else "Pruned"
    out.say(
        f"{verb} {out.plural(result.pruned_count, 'session')} "
        f"({out.plural(result.message_count, 'message')}) idle since before "
        f"{out.when(result.cutoff)} UTC"
    )


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (default 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    db: Annotated[str | None, typer.Option("--db", help="Database URL.")] = None,
) -> None:
    """Run the REST API, chat page and dashboard.

    The maintenance loop (ghost purge, prune) runs inside the server.
    """
    overrides: dict[str, object] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    if db is not None:
        overrides["database_url"] = db
    cfg = common.settings(**overrides)
    # Imported here: FastAPI and uvicorn must not slow down every other command.
    server = importlib.import_module("sessionkeeper.api.server")
    server.serve(cfg)


@db_app.command()
def upgrade(as_json: JsonOpt = False) -> None:
    """Migrate the database schema to this version (safe to run twice, and concurrently)."""
    import asyncio

    from sessionkeeper.store.migrate import upgrade as upgrade_schema
    from sessionkeeper.store.url import masked

    url = common.database_url()
    before, after = asyncio.run(upgrade_schema(url))
    if as_json:
        out.emit_json(
            {"database": masked(url), "before": before, "after": after, "changed": before != after}
        )
    elif before == after:
        out.say(f"{masked(url)}: schema already at revision {after}")
    else:
        out.say(f"{masked(url)}: schema upgraded from {before or 'empty'} to {after}")


@db_app.command()
def vacuum(as_json: JsonOpt = False) -> None:
    """Reclaim space and refresh statistics (SQLite: VACUUM, then rebuild the search index)."""
    from sessionkeeper.store.url import masked

    url = common.database_url()
    common.run(lambda store: store.vacuum())
    if as_json:
        out.emit_json({"database": masked(url), "vacuumed": True})
    else:
        out.say(f"{masked(url)}: vacuumed")

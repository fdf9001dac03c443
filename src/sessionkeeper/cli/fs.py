"""``sessionkeeper fs …`` over an OpenClaw-style agents root, and the ``skill`` runner.

``--json`` prints exactly the dicts of :class:`~sessionkeeper.openclaw.directory.OpenClawStore`
(the seed skill's shapes). Deleting commands also mark the session ended in the database
(the two-layer delete) when one is configured with ``--db`` or SESSIONKEEPER_DATABASE_URL.
``--root`` goes before or after the subcommand, like ``--db`` and ``--json``; a root that
does not exist is an error, never "0 sessions".
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer import _click as click
from typer.core import TyperOption

from sessionkeeper.cli import common
from sessionkeeper.cli import output as out
from sessionkeeper.cli.common import JsonOpt
from sessionkeeper.errors import InvalidInput, NotFound, SessionkeeperError

if TYPE_CHECKING:
    from sessionkeeper.openclaw.directory import OpenClawStore

app = typer.Typer(
    help="OpenClaw-style session directories.",
    no_args_is_help=True,
)
skill_app = typer.Typer()


class _FsOptions:
    root: Path | None = None


fs_options = _FsOptions()


ROOT_HELP = (
    "Agents root (default $OPENCLAW_WORKSPACE, $ARIA_WORKSPACE, else ~/.openclaw/agents); "
    "before or after the subcommand."
)


def _set_root(root: str | Path | None) -> Path | None:
    """Callback of every ``--root``: the last one given wins."""
    if root is not None:
        fs_options.root = Path(root)
    return fs_options.root


@app.callback()
def fs_main(
    root: Annotated[Path | None, typer.Option("--root", help=ROOT_HELP)] = None,
    db: Annotated[
        str | None, typer.Option("--db", help="Also mark deleted sessions ended in this database.")
    ] = None,
) -> None:
    """OpenClaw-style session directories: list, delete, prune, stats, orphans."""
    _set_root(root)
    common.set_db(db)


def add_root_option(group: click.Command) -> None:
    """Give every ``fs`` subcommand ``--root`` too (``fs list --root DIR``)."""
    own = next(param for param in group.params if param.name == "root")
    for command in getattr(group, "commands", {}).values():
        command.params.append(
            TyperOption(
                param_decls=["--root"],
                type=own.type,
                metavar="PATH",
                help=ROOT_HELP,
                callback=lambda _ctx, _param, value: _set_root(value),
                expose_value=False,
            )
        )


def _checked_root() -> Path:
    """The agents root, which must be an existing directory (a typo in --root, or no
    OpenClaw here, must not read as an empty tree)."""
    from sessionkeeper.openclaw.directory import ROOT_VARIABLES, default_root

    root = (fs_options.root or default_root()).expanduser()
    if root.is_dir():
        return root
    if fs_options.root is not None:
        origin = "--root"
    else:
        variable = next((v for v in ROOT_VARIABLES if os.environ.get(v)), None)
        origin = f"${variable}" if variable else "the default agents root"
    if root.exists():
        raise InvalidInput(f"{origin} {root} is not a directory")
    hint = "" if fs_options.root is not None else " (give --root DIR)"
    raise NotFound(f"{origin} {root} does not exist: no OpenClaw agents directory there{hint}")


def _waiting(lock_path: Path, holder: dict[str, Any] | None, timeout: float) -> None:
    """Said once on stderr when an index lock is not free at once (OpenClaw's gateway, or
    another fs command, is writing that agent's sessions.json)."""
    from sessionkeeper.openclaw.locking import describe_holder

    out.err_console().print(
        f"waiting for {lock_path} (held by {describe_holder(holder)}; up to {timeout:g} s)…",
        markup=False,
        highlight=False,
    )


@contextlib.contextmanager
def _fs_store(with_database: bool = False) -> Iterator[OpenClawStore]:
    from sessionkeeper.compat.skill import DatabaseMarker, open_fs_store

    root = _checked_root()
    if not (with_database and common.database_configured()):
        yield open_fs_store(root, on_lock_wait=_waiting)
        return
    url = common.check_database()  # refused before any file is touched
    with DatabaseMarker(url, encoding=common.encoding()) as marker:
        yield open_fs_store(root, marker, on_lock_wait=_waiting)


def _agent_errors(result: dict[str, Any]) -> None:
    """Agents skipped because their index could not be read: one line each on stderr, and
    exit code 1 once the rest is printed (the other agents were handled)."""
    problems = result.get("agent_errors") or []
    if not problems:
        return
    from rich.markup import escape

    for problem in problems:
        out.err_console().print(
            f"[bold red]error:[/] [red]agent {escape(problem['agent'])}: "
            f"{escape(problem['error'])}[/]"
        )
    raise typer.Exit(out.GENERIC)


def _ago(iso: str | None) -> str:
    return out.when(iso)


@app.command("list")
def fs_list(
    agent: Annotated[str | None, typer.Option("--agent", "-a", help="Only this agent.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List sessions (one row per index key)."""
    with _fs_store() as fs:
        result = fs.list_sessions(agent)
    if as_json:
        out.emit_json(result)
        _agent_errors(result)
        return
    out.print_table(
        f"Sessions under {fs.root}",
        ["sessionId", "agent", "type", "key", "label", "updated", "model", "ctx tokens"],
        (
            [
                s["sessionId"],
                s["agentId"],
                s["session_type"],
                s["key"],
                s["label"],
                _ago(s["updatedAt"]),
                s["model"],
                s["contextTokens"],
            ]
            for s in result["sessions"]
        ),
        caption=out.plural(result["session_count"], "key"),
        keep=("sessionId",),
        squeeze=("key", "label", "agent", "model"),
        drop=("ctx tokens", "model", "type", "label"),
    )
    _agent_errors(result)


def _emit_delete(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        out.emit_json(result)
    else:
        out.plain(result["message"])  # worded by OpenClawStore, plurals included
        for key in result["removed_keys"]:
            out.plain(f"  removed key {key}")
    _agent_errors(result)


@app.command("delete")
def fs_delete(
    session_id: Annotated[str, typer.Argument(help="The sessionId (a plain file name).")],
    as_json: JsonOpt = False,
) -> None:
    """Delete a session (two layers).

    Drops its keys from sessions.json, archives its transcript, and marks it ended in
    the database when one is configured.
    """
    with _fs_store(with_database=True) as fs:
        result = fs.delete_session(session_id)
    _emit_delete(result, as_json)


@app.command("cleanup-after-delegation")
def fs_cleanup(
    session_id: Annotated[str, typer.Argument(help="The sub-agent's sessionId.")],
    as_json: JsonOpt = False,
) -> None:
    """Delete a finished sub-agent session.

    Same as delete; call it once a delegation is done.
    """
    with _fs_store(with_database=True) as fs:
        result = fs.cleanup_after_delegation(session_id)
    _emit_delete(result, as_json)


@app.command("prune")
def fs_prune(
    max_age_minutes: Annotated[
        float, typer.Option(help="Delete sessions idle for longer than this.")
    ] = 60,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only report.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete sessions idle too long.

    Every session idle longer than --max-age-minutes gets the two-layer delete.
    """
    with _fs_store(with_database=not dry_run) as fs:
        result = fs.prune_sessions(max_age_minutes, dry_run)
    if as_json:
        out.emit_json(result)
        _agent_errors(result)
        return
    verb = "Would prune" if dry_run else "Pruned"
    out.plain(
        f"{verb} {result['pruned_count']} of {out.plural(result['total_sessions'], 'session')} "
        f"idle over {result['threshold_minutes']:g} min; kept {result['kept_count']}"
    )
    for sid in result["deleted_ids"]:
        out.plain(f"  {sid}")
    for error in result["errors"]:
        out.plain(f"  error: {error['id']}: {error['error']}")
    _agent_errors(result)


@app.command("stats")
def fs_stats(
    stale_minutes: Annotated[float, typer.Option(help="Idle this long counts as stale.")] = 60,
    as_json: JsonOpt = False,
) -> None:
    """Counts of index entries: total, stale, active."""
    with _fs_store() as fs:
        result = fs.get_session_stats(stale_minutes)
    if as_json:
        out.emit_json(result)
        _agent_errors(result)
        return
    out.print_fields(
        f"Sessions under {fs.root}",
        [
            ("total", result["total_sessions"]),
            (f"stale (>{result['stale_threshold_minutes']:g} min)", result["stale_sessions"]),
            ("active", result["active_sessions"]),
        ],
    )
    out.print_table("By agent", ["agent", "sessions"], sorted(result["by_agent"].items()))
    _agent_errors(result)


@app.command("orphans")
def fs_orphans(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only report.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Repair a sessions tree.

    Drops keys whose transcript is gone, archives unreferenced transcripts, and removes
    archives older than 7 days. An agent whose sessions.json is empty or invalid is left
    untouched (reported, exit code 1); the other agents are repaired.
    """
    with _fs_store() as fs:
        result = fs.orphans(dry_run)
    if as_json:
        out.emit_json(result)
        _agent_errors(result)
        return
    prefix = "Would fix" if dry_run else "Fixed"
    for noun, label, name in (
        ("key", "without a transcript (removed)", "missing_transcripts"),
        ("unreferenced transcript", "(archived)", "orphan_transcripts"),
        ("expired archive", "(deleted)", "expired_archives"),
    ):
        out.plain(f"{prefix} {out.plural(len(result[name]), noun)} {label}")
        for item in result[name]:
            out.plain(f"  {item}")
    _agent_errors(result)


@skill_app.command()
def skill(
    name: Annotated[str, typer.Argument(help="Skill name: session_manager.")],
    function: Annotated[
        str,
        typer.Argument(
            help="list_sessions, delete_session, prune_sessions, get_session_stats, "
            "cleanup_after_delegation."
        ),
    ],
    args: Annotated[str, typer.Argument(help="JSON object of arguments.")] = "{}",
    root: Annotated[Path | None, typer.Option("--root", help="Agents root.")] = None,
) -> None:
    """Run a skill function (Aria's run_skill.py).

    Prints the function's JSON, or {"error": "..."} and a non-zero exit code.
    """
    from sessionkeeper.compat.skill import run_skill

    try:
        url = common.check_database() if common.database_configured() else None
        result = run_skill(
            name, function, args, root=root, database_url=url, encoding=common.encoding()
        )
    except (SessionkeeperError, OSError) as exc:
        out.emit_json({"error": out.fail_message(exc)})
        raise typer.Exit(out.exit_code_for(exc)) from None
    out.emit_json(result)

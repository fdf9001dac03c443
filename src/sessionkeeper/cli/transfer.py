"""``sessionkeeper export`` and ``sessionkeeper import`` (the work is in the transfer/ package)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated

import typer

from sessionkeeper.cli import common
from sessionkeeper.cli import output as out
from sessionkeeper.cli.common import JsonOpt

if TYPE_CHECKING:
    from sessionkeeper import Store
    from sessionkeeper.transfer.export import ExportSummary
    from sessionkeeper.transfer.imports import ImportSummary

app = typer.Typer()

# Below this many sessions a progress bar only flickers.
PROGRESS_MIN_ITEMS = 20


@app.command("export")
def export(
    session_ids: Annotated[
        list[str] | None, typer.Argument(help="Sessions to export (default: the current one).")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every session.")] = False,
    agent: Annotated[
        list[str] | None, typer.Option("--agent", "-a", help="Every session of these agents.")
    ] = None,
    user: Annotated[
        list[str] | None,
        typer.Option(
            "--user",
            "-u",
            metavar="USER",
            help="Every session of these users (repeatable; with --agent: of those agents).",
        ),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="jsonl or markdown.")] = "jsonl",
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="File to write (default or '-': stdout). A file is replaced only once "
            "complete, keeping its mode; a FIFO or device is written in place.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Export sessions as JSONL or Markdown.

    JSONL is lossless (`import` reads it back, byte for byte); Markdown is a readable
    transcript. Default: the current session, to stdout.
    """
    from sessionkeeper.errors import InvalidInput
    from sessionkeeper.transfer.export import EXPORT_FORMATS, export_sessions

    if fmt not in EXPORT_FORMATS:
        raise InvalidInput(f"unknown export format {fmt!r}: use {' or '.join(EXPORT_FORMATS)}")
    if session_ids and (all_ or agent or user):
        raise InvalidInput("give session ids, or --all / --agent / --user, not both")
    ids: list[str] | None = list(session_ids) if session_ids else None
    chosen: common.Target | None = None
    if ids is None and not all_ and not agent and not user:
        chosen = common.target(None)
        ids = [chosen.session_id]
    url = common.check_database()  # before the output file is created or truncated

    def work(handle: IO[str]) -> Callable[[Store], Awaitable[ExportSummary]]:
        async def go(store: Store) -> ExportSummary:
            return await export_sessions(
                store,
                handle,
                fmt=fmt,
                session_ids=ids,
                agent_ids=agent or None,
                user_ids=user or None,
            )

        return go

    from sessionkeeper.atomic import open_output, standard_stream

    to_stdout = output is None or standard_stream(str(output)) == 1
    with contextlib.ExitStack() as stack:
        if chosen is not None:
            stack.enter_context(common.current_must_exist(chosen))
        handle = stack.enter_context(open_output("-" if output is None else output))
        summary = common.run(work(handle), url=url)
    if to_stdout:
        return
    summary.destination = str(output)
    if as_json:
        out.emit_json(summary.to_dict())
    else:
        compacted = (
            f", {out.plural(summary.compactions, 'compaction')}" if summary.compactions else ""
        )
        out.plain(
            f"Exported {out.plural(summary.sessions, 'session')} "
            f"({out.plural(summary.messages, 'message')}{compacted}) to {output}"
        )


@app.command("import")
def import_(
    source: Annotated[
        str,
        typer.Argument(
            help="A JSONL file ('-' for stdin) or a directory; with --from, the other "
            "store's database file or URL."
        ),
    ],
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            help="jsonl, openclaw (an agents root) or aria-session (a cache dir); "
            "default: guessed from the source.",
        ),
    ] = None,
    from_: Annotated[
        str | None,
        typer.Option(
            "--from",
            metavar="KIND",
            help="Import from another store's database: openai-sqlite FILE, "
            "openai-sqlalchemy URL, langchain-postgres URL (with --table), "
            "langgraph-sqlite FILE, langgraph-postgres URL, adk URL.",
        ),
    ] = None,
    table: Annotated[
        str | None,
        typer.Option("--table", help="--from langchain-postgres: the history table."),
    ] = None,
    agent: Annotated[
        str | None,
        typer.Option(
            "--agent",
            "-a",
            help="jsonl/openclaw: import only this agent; aria-session and --from: the agent "
            "to use (default main).",
        ),
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Overwrite sessions that already exist.")
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="--from: count what the source holds, import nothing."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Import sessions (JSONL, OpenClaw, aria-session, or another store's database).

    Sources: a sessionkeeper JSONL export, an OpenClaw agents root, an aria-session cache;
    with --from KIND, the database of another session store (OpenAI Agents SDK, LangChain
    Postgres, LangGraph checkpointers, Google ADK), read directly. Existing sessions are
    skipped (idempotent: a re-run adds nothing) unless --replace.

    Exit code 1 when some sessions failed (the others are imported).
    """
    if from_ is not None:
        if fmt is not None:
            from sessionkeeper.errors import InvalidInput

            raise InvalidInput("give --format (a file import) or --from (another store), not both")
        _import_foreign(from_, source, table, agent, replace, dry_run, as_json)
        return
    from sessionkeeper.errors import InvalidInput
    from sessionkeeper.transfer.imports import plan_import, run_import

    if table is not None or dry_run:
        raise InvalidInput("--table and --dry-run go with --from")
    plan = plan_import(Path(source), fmt, agent=agent)
    show_progress = (
        not as_json
        and sys.stderr.isatty()
        and (plan.total is None or plan.total >= PROGRESS_MIN_ITEMS)
    )

    async def go(store: Store) -> ImportSummary:
        if not show_progress:
            return await run_import(store, plan, replace=replace)
        with _progress_bar(f"Importing {plan.format}", plan.total) as advance:
            return await run_import(store, plan, replace=replace, progress=advance)

    summary = common.run(go, create=True)
    _finish(summary, as_json)


@contextlib.contextmanager
def _progress_bar(title: str, total: int | None) -> Iterator[Callable[[str], None]]:
    from rich.progress import MofNCompleteColumn, Progress

    columns = [*Progress.get_default_columns(), MofNCompleteColumn()]
    with Progress(*columns, console=out.err_console(), transient=True) as bar:
        task = bar.add_task(title, total=total)
        yield lambda _name: bar.advance(task)


def _import_foreign(
    kind: str,
    source: str,
    table: str | None,
    agent: str | None,
    replace: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """``import --from KIND SOURCE``: the source is opened and checked (and counted) before
    the store is, so a bad source changes nothing, not even an absent database file."""
    import asyncio

    from sessionkeeper.transfer.foreign import open_reader
    from sessionkeeper.transfer.foreign_reader import Counts
    from sessionkeeper.transfer.imports import run_foreign_import

    async def survey() -> tuple[str, Counts]:
        reader = await open_reader(kind, source, table=table, agent=agent)
        try:
            return reader.label, await reader.count()
        finally:
            await reader.close()

    label, counts = asyncio.run(survey())
    if dry_run:
        if as_json:
            out.emit_json({"format": kind, "source": label, "dry_run": True, **counts.to_dict()})
        else:
            extra = "".join(f", {n} {k.replace('_', ' ')}" for k, n in counts.other.items())
            out.plain(
                f"Would import {out.plural(counts.sessions, 'session')} "
                f"({out.plural(counts.messages, 'message')}{extra}) from {label} [{kind}]; "
                "sessions already in the database are skipped"
            )
        return
    show_progress = not as_json and sys.stderr.isatty() and counts.sessions >= PROGRESS_MIN_ITEMS

    async def go(store: Store) -> ImportSummary:
        reader = await open_reader(kind, source, table=table, agent=agent)
        try:
            if not show_progress:
                return await run_foreign_import(store, reader, replace=replace)
            with _progress_bar(f"Importing {kind}", counts.sessions) as advance:
                return await run_foreign_import(store, reader, replace=replace, progress=advance)
        finally:
            await reader.close()

    _finish(common.run(go, create=True), as_json)


def _finish(summary: ImportSummary, as_json: bool) -> None:
    if summary.current and common.current_id(required=False) is None:
        common.remember(summary.current)
    if as_json:
        out.emit_json(summary.to_dict())
    else:
        _print_summary(summary)
    if summary.failed:
        raise typer.Exit(out.GENERIC)


def _print_summary(summary: ImportSummary) -> None:
    out.plain(
        f"Imported {out.plural(len(summary.imported), 'session')} "
        f"({out.plural(summary.messages, 'message')}) from {summary.source} [{summary.format}]; "
        f"skipped {len(summary.skipped)}, failed {len(summary.failed)}"
    )
    if summary.skipped:
        out.print_table(
            "Skipped",
            ["session", "source", "reason"],
            ([s["session_id"], s["source"], s["reason"]] for s in summary.skipped),
            wrap=("reason",),  # folded, never cut: the reason is the point
        )
    if summary.failed:
        out.print_table(
            "Failed",
            ["session", "source", "error"],
            ([f["session_id"], f["source"], f["error"]] for f in summary.failed),
            wrap=("error",),
        )
    for warning in summary.warnings:
        out.plain(f"warning: {warning}")
    if summary.current:
        out.plain(f"aria-session current session: {summary.current}")

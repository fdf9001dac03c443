"""The root Typer app: the global options, the command groups, the aliases, ``main()``.

The store is chosen by ``--db URL``, else SESSIONKEEPER_DATABASE_URL, else a SQLite file in
the user data dir; the current session is remembered per database (``cli/state.py``).
The global options ``--db`` and ``--json`` are accepted before the command
(``sessionkeeper --db URL list``) and after it (``sessionkeeper list --db URL``): the root
group adds them to every command that does not declare them itself (and ``fs``'s ``--root``
to every ``fs`` command). Every text argument must be UTF-8 (``Utf8Text``): Python hands
undecodable bytes of the command line over as lone surrogates, which the error would name
instead of the byte.
Exit codes and error printing: ``output`` (one table, one place), through the root group class.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from typer import _click as click
from typer._click.types import StringParamType
from typer.core import TyperOption

from sessionkeeper.cli import (
    admin,
    asking,
    common,
    compacting,
    forget,
    fs,
    keys,
    lineage,
    mcp,
    policy,
    sessions,
    transfer,
    usage,
)
from sessionkeeper.cli import output as out
from sessionkeeper.cli.common import JsonOpt
from sessionkeeper.errors import InvalidInput

# aria-session's spellings (seed 003): `aria-session.sh cur`, `ls`, `view`; `undo` for pop.
ALIASES = {"cur": "current", "ls": "list", "view": "show", "undo": "pop"}

DB_HELP = (
    "Database URL (sqlite:///file.db or postgresql://…); "
    "default $SESSIONKEEPER_DATABASE_URL, else SQLite in the user data dir."
)
JSON_HELP = "Print JSON (stable shapes) instead of tables."


def _note_db(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    out.mode.command = ctx
    return common.set_db(value)


def _note_json(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    out.mode.command = ctx
    return out.set_json(value)


class Utf8Text(StringParamType):
    """Text options and arguments: refused, naming the byte, unless they are UTF-8."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from sessionkeeper.inputs import check_argument

        text = super().convert(value, param, ctx)
        try:
            return check_argument(text, "the value")
        except InvalidInput as exc:
            self.fail(exc.message, param, ctx)


UTF8_TEXT = Utf8Text()


def _add_global_options(command: click.Command) -> None:
    """Give every command ``--db`` and ``--json`` (unless it has its own), recursively;
    make every plain text parameter ``Utf8Text``."""
    for param in command.params:
        if type(param.type) is StringParamType:
            param.type = UTF8_TEXT
    subcommands = getattr(command, "commands", None)
    if isinstance(subcommands, dict):
        for sub in subcommands.values():
            _add_global_options(sub)
        return
    names = {opt for param in command.params for opt in getattr(param, "opts", [])}
    if "--db" not in names:
        command.params.append(
            TyperOption(
                param_decls=["--db"],
                type=UTF8_TEXT,
                metavar="URL",
                help=DB_HELP,
                callback=_note_db,
                expose_value=False,
            )
        )
    if "--json" not in names:
        command.params.append(
            TyperOption(
                param_decls=["--json"],
                is_flag=True,
                help=JSON_HELP,
                callback=_note_json,
                expose_value=False,
            )
        )


class RootGroup(out.SessionkeeperGroup):
    """The ``sessionkeeper`` group: global options everywhere, aria-session aliases."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        for command in self.commands.values():
            _add_global_options(command)
        fs.add_root_option(self.commands["fs"])
        for param in self.params:
            if type(param.type) is StringParamType:
                param.type = UTF8_TEXT

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        # A new invocation (CliRunner runs many in one process): forget the last one's state.
        out.mode.json = False
        out.mode.command = None
        common.options.db = None
        fs.fs_options.root = None
        try:
            return super().make_context(info_name, args, parent, **extra)
        except KeyboardInterrupt as exc:  # Ctrl-C while the arguments were being parsed
            raise typer.Exit(out.interrupted(exc)) from None

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, ALIASES.get(cmd_name, cmd_name))


app = typer.Typer(
    name="sessionkeeper",
    cls=RootGroup,
    no_args_is_help=True,
    add_completion=False,
    # Plain click help: Typer's Rich help formatter alone costs ~0.1 s of startup.
    rich_markup_mode=None,
    help="Conversation-session memory for LLM agents (SQLite or PostgreSQL).",
    epilog="Global options --db and --json go before or after the command. "
    "Aliases: cur = current, ls = list, view = show (aria-session's), undo = pop. "
    "Exit codes: 0 ok, 1 error, 2 invalid input, 3 not found, 4 conflict, "
    "5 too large, 6 unavailable or schema mismatch, 7 forbidden.",
)


def _print_version(value: bool) -> None:
    if value:
        from sessionkeeper import __version__

        typer.echo(f"sessionkeeper {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    db: Annotated[
        str | None,
        typer.Option("--db", metavar="URL", help=DB_HELP),
    ] = None,
    as_json: JsonOpt = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Conversation-session memory for LLM agents (SQLite or PostgreSQL)."""
    common.set_db(db)


app.add_typer(sessions.app)
app.add_typer(lineage.app)
app.add_typer(asking.app)
app.add_typer(compacting.app)
app.add_typer(admin.app)
app.add_typer(usage.app)
app.add_typer(forget.app)
app.add_typer(mcp.app)
app.add_typer(transfer.app)
app.add_typer(admin.db_app, name="db")
app.add_typer(fs.app, name="fs")
app.add_typer(fs.skill_app)
app.add_typer(keys.keys_app, name="keys")
app.add_typer(policy.policy_app, name="policy")


def run() -> None:
    """Run the command line (``sessionkeeper.cli.main`` calls this once it is loaded).

    Every way out is an exit code (``output``), including the two that happen outside any
    command: a stdout whose reader went away when Python flushes it at exit (``… | head
    -1``: exit 0, quietly, as Unix tools do) and a Ctrl-C between commands' work (130).
    """
    try:
        try:
            app(prog_name="sessionkeeper")
        except SystemExit as exc:
            code = exc.code
        else:
            code = 0
        try:
            sys.stdout.flush()  # now, not in Python's own flush at exit, which cannot fail quietly
        except BrokenPipeError:
            quiet = out.closed_pipe()
            code = code or quiet
    except KeyboardInterrupt as exc:
        code = out.interrupted(exc)
    except BrokenPipeError:
        code = out.closed_pipe()
    sys.exit(code)

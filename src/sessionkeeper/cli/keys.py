"""``sessionkeeper keys create|list|revoke``: the REST API's keys, managed on the database.

A key's token is printed once, by ``create``, and never again: only its SHA-256 digest is
stored. In human mode the token is the only line on stdout (the rest goes to stderr), so
``TOKEN=$(sessionkeeper keys create --admin)`` captures exactly the token. ``list`` never
prints a secret; it has none to print.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from sessionkeeper.cli import common
from sessionkeeper.cli import output as out
from sessionkeeper.cli.common import JsonOpt

if TYPE_CHECKING:
    from sessionkeeper import Store
    from sessionkeeper.models import ApiKey

# What a server does with no active key, said by `keys list` and `keys revoke` (see
# api/auth.py: leaving open mode is one-way for a running server).
NO_ACTIVE_KEY = (
    "No active key: `serve` started now runs open, on loopback only; a server already "
    "running that had a key keeps refusing requests without one until it is restarted "
    "(revoking never opens a server)."
)

keys_app = typer.Typer(
    help="API keys for the REST API: create (admin, or scoped to agents and perhaps users), "
    "list, revoke.",
    no_args_is_help=True,
)


def _scope(key: ApiKey) -> str:
    if key.admin:
        return "admin (all agents)"
    agents = ", ".join(key.agent_ids)
    return agents if key.user_ids is None else f"{agents}; users {', '.join(key.user_ids)}"


@keys_app.command()
def create(
    agent: Annotated[
        list[str] | None,
        typer.Option(
            "--agent", "-a", metavar="ID", help="Scope the key to this agent (repeatable)."
        ),
    ] = None,
    user: Annotated[
        list[str] | None,
        typer.Option(
            "--user",
            "-u",
            metavar="USER",
            help="With --agent: only this user's sessions of those agents (repeatable).",
        ),
    ] = None,
    admin: Annotated[
        bool, typer.Option("--admin", help="Every agent, and the maintenance endpoints.")
    ] = False,
    name: Annotated[
        str | None, typer.Option("--name", "-n", help="A label to recognise the key by.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an API key and print its token once.

    The token cannot be shown again: store it now. A key is --admin (every agent and the
    maintenance endpoints) or scoped to agents with --agent ID (repeatable), and then perhaps
    to some users of those agents with --user USER (repeatable): it sees only their sessions,
    and the sessions it creates are theirs.
    """
    from sessionkeeper.store.keys import check_new_key

    check_new_key(agent_ids=agent or (), admin=admin, name=name)  # before a file is made
    key, token = common.run(
        lambda store: store.keys.create(
            agent_ids=agent or (), admin=admin, name=name, user_ids=user or None
        ),
        create=True,
    )
    if as_json:
        out.emit_json(
            {
                "key_id": key.key_id,
                "token": token,
                "admin": key.admin,
                "agent_ids": key.agent_ids,
                "user_ids": key.user_ids,
                "name": key.name,
            }
        )
        return
    notes = out.err_console()
    label = f" {name!r}" if name else ""
    notes.print(f"Created key {key.key_id}{label}: {_scope(key)}", markup=False)
    sys.stdout.write(token + "\n")
    sys.stdout.flush()
    notes.print(
        "[yellow]Store this token now: it cannot be shown again.[/] "
        "Clients send it as 'Authorization: Bearer <token>'."
    )


@keys_app.command("list")
def list_keys(
    include_revoked: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List API keys: ids, names, scopes, dates (never a secret)."""
    keys = common.run(lambda store: store.keys.list(include_revoked=include_revoked))
    if as_json:
        out.emit_json([k.to_dict() for k in keys])
        return
    columns = ["key id", "name", "scope", "created", "last used"]
    if include_revoked:
        columns.append("revoked")
    rows = []
    for k in keys:
        used = out.when(k.last_used_at) if k.last_used_at else "never"
        row = [k.key_id, k.name, _scope(k), out.when(k.created_at), used]
        if include_revoked:
            row.append(out.when(k.revoked_at) if k.revoked_at else "")
        rows.append(row)
    if rows:
        out.print_table("API keys", columns, rows)
    if not any(k.revoked_at is None for k in keys):
        out.plain(NO_ACTIVE_KEY)


@keys_app.command()
def revoke(
    key_id: Annotated[str, typer.Argument(metavar="KEY_ID", help="The key's id (see list).")],
    as_json: JsonOpt = False,
) -> None:
    """Revoke an API key: requests carrying it are refused from now on.

    Revoking the last active key does not open a running server: it keeps refusing requests
    without a key until it is restarted.
    """

    async def work(store: Store) -> tuple[ApiKey, bool]:
        key = await store.keys.revoke(key_id)
        return key, await store.keys.any_active()

    key, others = common.run(work)
    if as_json:
        out.emit_json(key.to_dict())
    else:
        out.plain(f"Revoked key {key.key_id}")
    if not others:  # a note, on stderr: stdout keeps its shape
        note = f"note: that was the last active key. {NO_ACTIVE_KEY}"
        out.err_console().print(note, markup=False)

"""``sessionkeeper forget-user USER``: delete everything of a user, after showing what.

The counts come first (a dry run of ``Store.forget_user``), then the question, unless
``--yes``; without a terminal to ask on, nothing is deleted and the refusal says to add
``--yes``. Under ``--json`` the question (with the counts) goes to stderr and stdout carries
the receipt alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from sessionkeeper.cli import common
from sessionkeeper.cli import output as out
from sessionkeeper.cli.common import JsonOpt

if TYPE_CHECKING:
    from sessionkeeper.models import ForgetReceipt

app = typer.Typer()

# (field of the receipt, what it counts)
KINDS = (
    ("sessions", "session"),
    ("messages", "message"),
    ("checkpoints", "checkpoint row"),
    ("adk_state", "ADK state row"),
    ("keys", "API key"),
)


def _what(receipt: ForgetReceipt) -> str:
    parts = [
        out.plural(getattr(receipt, field), word)
        for field, word in KINDS
        if field in ("sessions", "messages") or getattr(receipt, field)
    ]
    if receipt.keys_narrowed:
        parts.append(f"the user taken off {out.plural(receipt.keys_narrowed, 'shared key')}")
    return ", ".join(parts)


def _fields(receipt: ForgetReceipt) -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = [(word + "s", getattr(receipt, f)) for f, word in KINDS]
    rows.append(("keys narrowed", receipt.keys_narrowed))
    return rows


@app.command("forget-user")
def forget_user(
    user: Annotated[str, typer.Argument(help="The user id, as sessions carry it.")],
    agent: Annotated[
        str | None,
        typer.Option("--agent", "-a", help="Only the user's sessions of this agent."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only show what would be deleted.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Delete without asking.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete everything of a user: sessions, messages, checkpoints, ADK state, keys.

    Shows how many rows of each kind would go, then asks (or goes ahead with --yes). Keys
    scoped to this user alone are deleted; keys shared with other users lose this one. A
    record of the forget keeps the SHA-256 of the user id, the counts and the time, never
    content. On SQLite no byte of the user's text is left in the file, its WAL or the search
    index; on PostgreSQL no row is left, and `sessionkeeper db vacuum --full` removes the
    deleted rows' bytes from the table files.
    """
    who = user if agent is None else f"{user} (agent {agent})"
    if dry_run or not yes:
        preview = common.run(lambda store: store.forget_user(user, agent_id=agent, dry_run=True))
        if dry_run:
            if as_json:
                out.emit_json(preview.to_dict())
            else:
                out.print_fields(f"Would forget {who}", _fields(preview))
            return
        if not as_json:
            out.print_fields(f"Forgetting {who}", _fields(preview))
        common.confirm(
            f"Forget {who}: delete {_what(preview)}?",
            f"forgetting {who} would delete {_what(preview)}: add --yes to delete without "
            "asking (--dry-run shows this and deletes nothing)",
        )
    receipt = common.run(lambda store: store.forget_user(user, agent_id=agent))
    if as_json:
        out.emit_json(receipt.to_dict())
        return
    out.say(f"Forgot {who}: deleted {_what(receipt)}")
    out.say(f"record {receipt.forget_id} (user sha256 {receipt.user_hash})")
    if receipt.wal_truncated is False:
        out.say(
            "the WAL still holds old pages: another process was reading the database; "
            "run `sessionkeeper db vacuum` once it is done"
        )

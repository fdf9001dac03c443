"""CLI commands on a session's lineage: fork, rewind, branches.

``fork`` makes the new session the current one (as ``new`` does): forking is how one tries
another path from a point of a conversation. ``rewind`` keeps the current session current;
the branch holding what it dropped is printed, and ``switch BRANCH`` undoes the rewind.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from sessionkeeper.cli import common
from sessionkeeper.cli import output as out
from sessionkeeper.cli.common import JsonOpt

if TYPE_CHECKING:
    from sessionkeeper import Store
    from sessionkeeper.models import Rewind, Session

app = typer.Typer()

SessionOpt = Annotated[
    str | None,
    typer.Option("--session", "-s", help="Session id (default: the current session)."),
]


@app.command()
def fork(
    session_id: Annotated[
        str | None, typer.Argument(help="Session to fork (default: the current session).")
    ] = None,
    at_seq: Annotated[
        int | None,
        typer.Option("--at", metavar="SEQ", help="Keep messages 1..SEQ (default: all)."),
    ] = None,
    new_session_id: Annotated[
        str | None, typer.Option("--id", help="The new session's id (default: generated).")
    ] = None,
    title: Annotated[
        str | None, typer.Option("--title", "-t", help="Title (default: the source's).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Copy a session's conversation (up to --at SEQ) into a new session, and make the new
    one current. The source is not changed; the fork records where it came from."""
    chosen = common.target(session_id)
    with common.current_must_exist(chosen):
        session: Session = common.run(
            lambda store: store.fork_session(
                chosen.session_id, at_seq=at_seq, new_session_id=new_session_id, title=title
            )
        )
    common.remember(session.session_id)
    if as_json:
        out.emit_json(session.to_dict())
        return
    out.say(
        f"Forked [bold]{chosen.session_id}[/] at #{session.fork_seq} into "
        f"[bold]{session.session_id}[/] ({out.plural(session.message_count, 'message')}, "
        "now current)"
    )


@app.command()
def rewind(
    seq: Annotated[int, typer.Argument(help="Keep messages 1..SEQ; continue after it.")],
    session: SessionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Rewind a session to message SEQ. Nothing is deleted: the messages after it go to a
    new branch (listed by `branches`); `switch BRANCH` undoes the rewind."""
    chosen = common.target(session)

    async def work(store: Store) -> Rewind:
        await common.writable(store, chosen.session_id)
        return await store.rewind_session(chosen.session_id, seq)

    with common.current_must_exist(chosen):
        done = common.run(work)
    if as_json:
        out.emit_json(done.to_dict())
        return
    sid = done.session.session_id
    if done.branch is None:
        out.say(f"Nothing after #{seq} in [bold]{sid}[/]: nothing to rewind")
        return
    out.say(
        f"Rewound [bold]{sid}[/] to #{seq}: {out.plural(done.dropped_messages, 'message')} "
        f"kept in branch [bold]{done.branch.session_id}[/] "
        f"(undo: sessionkeeper switch {done.branch.session_id})"
    )


@app.command()
def branches(
    session_id: Annotated[str | None, typer.Argument(help="Default: the current session.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List the sessions forked from a session (forks and rewind branches), oldest first."""
    chosen = common.target(session_id)
    with common.current_must_exist(chosen):
        found: list[Session] = common.run(lambda store: store.list_branches(chosen.session_id))
    if as_json:
        out.emit_json({"session_id": chosen.session_id, "branches": [s.to_dict() for s in found]})
        return
    current = common.current_id(required=False)
    out.print_table(
        f"Branches of {chosen.session_id}",
        ["", "id", "from #", "title", "msgs", "created"],
        [
            [
                "*" if s.session_id == current else "",
                s.session_id,
                s.fork_seq,
                s.title,
                s.message_count,
                out.when(s.created_at),
            ]
            for s in found
        ],
        caption=f"{len(found)} branch{'' if len(found) == 1 else 'es'} (* = current)",
        keep=("id",),
        squeeze=("title",),
        drop=("created", "msgs"),
    )

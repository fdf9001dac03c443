"""CLI commands on sessions and messages.

new, current, switch, list, show, add, pop (alias undo), rename, end, reopen, delete, search.
The commands that talk to the model (ask, chat) are in ``asking.py``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any

import typer

from sessionkeeper.cli import common
from sessionkeeper.cli import output as out
from sessionkeeper.cli.common import JsonOpt, MetaOpt, NewUserOpt, UserOpt
from sessionkeeper.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from sessionkeeper import Store
    from sessionkeeper.models import Compaction, Message, Page, Session, UsageTotals

app = typer.Typer()

SessionOpt = Annotated[
    str | None,
    typer.Option("--session", "-s", help="Session id (default: the current session)."),
]
_ROLE_STYLE = {"user": "bold cyan", "assistant": "bold green", "system": "bold magenta"}


def _session_rows(sessions: list[Session], current: str | None) -> list[list[Any]]:
    return [
        [
            "*" if s.session_id == current else "",
            s.session_id,
            s.agent_id,
            s.user_id or "",
            s.session_type,
            s.status,
            s.title,
            s.message_count,
            s.token_count,
            out.when(s.updated_at),
        ]
        for s in sessions
    ]


def _print_session(
    session: Session,
    title: str | None = None,
    usage: UsageTotals | None = None,
    compaction: Compaction | None = None,
) -> None:
    from sessionkeeper.cli.usage import usage_fields

    out.print_fields(
        title,
        [
            ("session", session.session_id),
            ("title", session.title),
            ("agent", session.agent_id),
            ("user", session.user_id or "—"),
            ("type", session.session_type),
            ("status", session.status),
            ("messages", session.message_count),
            ("tokens", session.token_count),
            ("created", out.when(session.created_at)),
            ("updated", out.when(session.updated_at)),
        ]
        + ([("ended", out.when(session.ended_at))] if session.ended_at else [])
        + (
            [("forked from", f"{session.parent_session_id} at #{session.fork_seq}")]
            if session.parent_session_id
            else []
        )
        + (
            [("compacted", _compacted(compaction))]  # where the context window's cut is
            if compaction is not None
            else []
        )
        + (usage_fields(usage) if usage is not None else []),
    )


def _compacted(c: Compaction) -> str:
    return (
        f"#{c.from_seq}–#{c.through_seq} ({out.plural(c.message_count, 'message')}, "
        f"{c.compacted_tokens:,} tokens) in a summary of {c.token_count:,} tokens, "
        f"{out.when(c.created_at)}"
    )


def _print_message(message: Message) -> None:
    from rich.markup import escape

    style = _ROLE_STYLE.get(message.role, "bold yellow")
    extra = f" · {message.model}" if message.model else ""
    if message.usage is not None:
        u = message.usage
        extra += f" · {u.input_tokens:,} in / {u.output_tokens:,} out"
    out.say(
        f"\n[{style}]{message.role.capitalize()}[/] "
        f"[dim]#{message.seq} · {out.when(message.created_at)}{escape(extra)}[/]"
    )
    body = message.content or ""
    calls = message.metadata.get("tool_calls")
    if isinstance(calls, list) and calls:
        names = [str((c.get("function") or {}).get("name")) for c in calls if isinstance(c, dict)]
        body += ("\n" if body else "") + f"[tool calls: {', '.join(names)}]"
    out.console().print(escape(body), soft_wrap=True)


@app.command()
def new(
    agent: Annotated[str, typer.Option("--agent", "-a", help="Agent id.")] = "main",
    title: Annotated[str | None, typer.Option("--title", "-t", help="Title.")] = None,
    session_type: Annotated[
        str, typer.Option("--type", help="Session type: chat, cron, subagent…")
    ] = "chat",
    user: Annotated[
        str | None,
        typer.Option("--user", "-u", metavar="USER", help="Who the session is for (a label)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a session and make it the current one."""
    from sessionkeeper.store import validate

    validate.label(agent, "agent_id")  # bad input is refused before a database is made
    validate.title(title)
    validate.label(session_type, "session_type")
    session = common.run(
        lambda store: store.create_session(
            agent_id=agent, title=title, session_type=session_type, user_id=user
        ),
        create=True,
    )
    common.remember(session.session_id)
    if as_json:
        out.emit_json(session.to_dict())
    else:
        out.say(f"Created new session: [bold]{session.session_id}[/] (now current)")


@app.command()
def current(as_json: JsonOpt = False) -> None:
    """Show the current session (alias: cur)."""
    chosen = common.target(None)
    with common.current_must_exist(chosen):
        session = common.run(lambda store: store.get_session(chosen.session_id))
    if as_json:
        out.emit_json(session.to_dict())
    else:
        out.say(session.session_id)


@app.command()
def switch(
    session_id: Annotated[str, typer.Argument(help="Session to make current.")],
    as_json: JsonOpt = False,
) -> None:
    """Make another session the current one."""
    session = common.run(lambda store: store.get_session(session_id))
    common.remember(session.session_id)
    if as_json:
        out.emit_json(session.to_dict())
    else:
        out.say(f"Switched to session: [bold]{session.session_id}[/]")


@app.command("list")
def list_(
    agent: Annotated[str | None, typer.Option("--agent", "-a", help="Only this agent.")] = None,
    user: UserOpt = None,
    meta: MetaOpt = None,
    session_type: Annotated[str | None, typer.Option("--type", help="Only this type.")] = None,
    status: Annotated[str | None, typer.Option(help="active or ended.")] = None,
    search: Annotated[
        str | None, typer.Option("--search", "-q", help="Title or message text contains.")
    ] = None,
    sort: Annotated[str, typer.Option(help="created_at, updated_at, last_message_at, title.")] = (
        "updated_at"
    ),
    order: Annotated[str, typer.Option(help="asc or desc.")] = "desc",
    limit: Annotated[int, typer.Option("--limit", "-n", help="Page size (max 100).")] = 20,
    offset: Annotated[int, typer.Option(help="Skip this many.")] = 0,
    cursor: Annotated[
        str | None, typer.Option(help="Continue after a page (its next_cursor).")
    ] = None,
    long: Annotated[
        bool, typer.Option("--long", "-l", help="Add each session's usage and cost.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """List sessions, newest activity first (alias: ls).

    * marks the current session. Ids are never cut or wrapped: on a narrow terminal the
    other columns are shortened or left out (--json has everything). --long adds the
    tokens and cost recorded on each session's messages ("unknown" for unpriced models).
    """
    metadata = common.parse_meta(meta)

    async def work(store: Store) -> tuple[Page[Session], list[UsageTotals]]:
        page = await store.list_sessions(
            agent_id=agent,
            user_id=user,
            metadata=metadata,
            session_type=session_type,
            status=status,
            search=search,
            sort=sort,
            order=order,
            limit=limit,
            offset=offset,
            cursor=cursor,
        )
        usage = [await store.get_usage(s.session_id) for s in page.items] if long else []
        return page, usage

    page, usage = common.run(work)
    current_sid = common.current_id(required=False)
    if as_json:
        listed = [s.to_dict() for s in page.items]
        for item, totals in zip(listed, usage, strict=False):
            item["usage"] = totals.to_dict()
        out.emit_json(
            {
                "sessions": listed,
                "total": page.total,
                "limit": page.limit,
                "offset": page.offset,
                "has_more": page.has_more,
                "next_cursor": page.next_cursor,
                "current": current_sid,
            }
        )
        return
    shown = f"{page.offset + 1}-{page.offset + len(page.items)}" if page.items else "0"
    caption = f"{shown} of {page.total} (* = current)"
    columns = ["", "id", "agent", "user", "type", "status", "title", "msgs", "tokens", "updated"]
    rows = _session_rows(page.items, current_sid)
    if long:
        from sessionkeeper.cli.usage import cost_text, tokens_text

        columns += ["usage", "cost"]
        for row, totals in zip(rows, usage, strict=True):
            row += [tokens_text(totals), cost_text(totals) if totals.messages else ""]
    out.print_table(
        "Sessions",
        columns,
        rows,
        caption=caption,
        keep=("id",),
        squeeze=("title", "agent", "user"),
        drop=("tokens", "type", "user", "status", "msgs", "usage"),
    )
    if page.next_cursor:  # one line at any width, to be copied whole
        out.unwrapped(f"next page: --cursor {page.next_cursor}")


@app.command()
def show(
    session_id: Annotated[str | None, typer.Argument(help="Default: the current session.")] = None,
    last: Annotated[
        int | None, typer.Option("--last", "-n", help="Only the newest N messages (max 500).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a session and its conversation (alias: view)."""
    chosen = common.target(session_id)
    sid = chosen.session_id

    async def work(
        store: Store,
    ) -> tuple[Session, UsageTotals, Compaction | None, list[Message]]:
        from sessionkeeper.transfer.export import all_messages

        session = await store.get_session(sid)
        usage = await store.get_usage(sid)
        compaction = await store.get_compaction(sid)
        if last is not None:
            return session, usage, compaction, await store.get_messages(sid, last=last)
        return session, usage, compaction, await all_messages(store, sid)

    with common.current_must_exist(chosen):
        session, usage, compaction, messages = common.run(work)
    if as_json:
        out.emit_json(
            {
                "session": session.to_dict(),
                "messages": [m.to_dict() for m in messages],
                "usage": usage.to_dict(),
                "compaction": None if compaction is None else compaction.to_dict(),
            }
        )
        return
    _print_session(session, f"Session {session.session_id}", usage, compaction)
    for message in messages:
        _print_message(message)
    if last is not None and len(messages) < session.message_count:
        earlier = out.plural(session.message_count - len(messages), "earlier message")
        out.say(f"\n[dim]({earlier} not shown)[/]")


@app.command()
def add(
    role: Annotated[str, typer.Argument(help="system, user, assistant or tool.")],
    text: Annotated[str, typer.Argument(help="The message ('-' reads stdin).")],
    session: SessionOpt = None,
    model: Annotated[str | None, typer.Option(help="Model that wrote it.")] = None,
    user: NewUserOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Append a message to the current session.

    With no current session, one is created (and becomes current; --user is its user); so
    it is when the current session no longer exists (deleted or cleaned up). A session that
    has ended is refused, as `ask` refuses it (exit 4; `reopen` makes it active again).
    """
    from sessionkeeper.store import validate

    content = common.text_arg(text)
    validate.role(role)  # bad input is refused before a database or session is made
    validate.content(content)
    validate.model(model)
    validate.optional_label(user, "user_id")

    async def work(store: Store) -> tuple[Message, bool, str | None]:
        if session is not None:
            await common.writable(store, session)
            await common.same_user(store, session, user)
            return await store.add_message(session, role, content, model=model), False, None
        current_sid = common.current_id(required=False)
        gone: str | None = None
        if current_sid is not None:
            try:
                await common.writable(store, current_sid)
                await common.same_user(store, current_sid, user)
                message = await store.add_message(current_sid, role, content, model=model)
            except NotFound:  # deleted or purged meanwhile: start anew, as after `delete`
                gone = current_sid
            else:
                return message, False, None
        sid = (await store.create_session(user_id=user)).session_id
        return await store.add_message(sid, role, content, model=model), True, gone

    message, created, gone = common.run(work, create=True)
    if created:
        common.remember(message.session_id)
    if gone is not None:
        common.note_gone(gone, message.session_id, as_json)
    if as_json:
        out.emit_json(message.to_dict())
    else:
        note = " (new session, now current)" if created else ""
        out.say(
            f"Added {message.role} message #{message.seq} to {message.session_id}{note} "
            f"[dim]({out.plural(message.token_count, 'token')})[/]"
        )


@app.command()
def pop(
    session_id: Annotated[str | None, typer.Argument(help="Default: the current session.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove the newest message of a session and print it (alias: undo).

    One message each time (run it twice to take back a question and its answer); atomic:
    two at once remove two different messages. A session that has ended is refused (exit
    4); one with no messages is exit 3.
    """
    chosen = common.target(session_id)
    sid = chosen.session_id

    async def work(store: Store) -> Message | None:
        await common.writable(store, sid)
        return await store.pop_message(sid)

    with common.current_must_exist(chosen):
        message = common.run(work)
    if message is None:
        raise NotFound(f"session {sid} has no messages to remove", session_id=sid)
    if as_json:
        out.emit_json(message.to_dict())
        return
    out.say(f"Removed {message.role} message #{message.seq} from [bold]{sid}[/]:")
    _print_message(message)


@app.command()
def rename(
    words: Annotated[
        list[str],
        typer.Argument(
            metavar="[ID] TITLE",
            help="The new title, after the session's id (default: the current session).",
        ),
    ],
    as_json: JsonOpt = False,
) -> None:
    """Give a session a new title: `rename TITLE` (the current session) or `rename ID TITLE`."""
    from sessionkeeper.store import validate

    if len(words) > 2:
        raise InvalidInput(
            f"rename takes [ID] TITLE, got {len(words)} words: quote a title with spaces"
        )
    title = words[-1]
    if not title.strip():
        raise InvalidInput("the title must not be empty", field="title")
    validate.title(title)
    chosen = common.target(words[0] if len(words) == 2 else None)
    sid = chosen.session_id

    async def work(store: Store) -> tuple[Session, Session]:
        before = await store.get_session(sid)
        return before, await store.update_session(sid, title=title)

    with common.current_must_exist(chosen):
        before, after = common.run(work)
    if as_json:
        out.emit_json(after.to_dict())
    else:
        old = repr(before.title) if before.title is not None else "(no title)"
        out.plain(f"Renamed {sid}: {old} -> {after.title!r}")


@app.command()
def end(
    session_id: Annotated[str | None, typer.Argument(help="Default: the current session.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Mark a session ended (kept, with its history; nothing more is added: `reopen` undoes it)."""
    chosen = common.target(session_id)
    sid = chosen.session_id
    with common.current_must_exist(chosen):
        session = common.run(lambda store: store.end_session(sid))
    if as_json:
        out.emit_json(session.to_dict())
    else:
        out.say(f"Ended session [bold]{sid}[/]")


@app.command()
def reopen(
    session_id: Annotated[str | None, typer.Argument(help="Default: the current session.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Make an ended session active again, so `add`, `ask` and `chat` write to it."""
    chosen = common.target(session_id)
    sid = chosen.session_id
    with common.current_must_exist(chosen):
        session = common.run(lambda store: store.update_session(sid, status="active"))
    if as_json:
        out.emit_json(session.to_dict())
    else:
        out.say(f"Session [bold]{sid}[/] is active")


@app.command()
def delete(
    session_id: Annotated[str, typer.Argument(help="Session to delete with its messages.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete a session and its messages for good.

    `end` marks a session ended and keeps its history.
    """
    if not yes:
        common.confirm(
            f"Delete session {session_id} and all its messages?",
            "refusing to delete without confirmation: add --yes",
        )
    common.run(lambda store: store.delete_session(session_id))
    common.forget(session_id)
    if as_json:
        out.emit_json({"deleted": session_id})
    else:
        out.say(f"Deleted session [bold]{session_id}[/]")


_MARK = re.compile(r"<mark>(.*?)</mark>", re.S)


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="Words to find in message text.")],
    agent: Annotated[str | None, typer.Option("--agent", "-a", help="Only this agent.")] = None,
    user: UserOpt = None,
    meta: MetaOpt = None,
    session: Annotated[
        str | None, typer.Option("--session", "-s", help="Only this session.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="Max hits (100).")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """Full-text search over messages, best matches first."""
    metadata = common.parse_meta(meta)
    hits = common.run(
        lambda store: store.search_messages(
            query,
            limit=limit,
            session_id=session,
            agent_id=agent,
            user_id=user,
            metadata=metadata,
        )
    )
    if as_json:
        out.emit_json({"query": query, "hits": [h.to_dict() for h in hits]})
        return
    from rich.markup import escape

    def snippet(text: str) -> str:
        parts = _MARK.split(text)  # even: plain text, odd: the match
        return "".join(
            escape(p) if i % 2 == 0 else f"[bold yellow]{escape(p)}[/]" for i, p in enumerate(parts)
        )

    from rich.text import Text

    out.print_table(
        f"Search: {query}",
        ["session", "seq", "role", "when", "snippet"],
        [
            [
                h.session_id,
                h.seq,
                h.role,
                out.when(h.created_at),
                Text.from_markup(snippet(h.snippet)),
            ]
            for h in hits
        ],
        keep=("session",),
        wrap=("snippet",),
        drop=("when", "role"),
    )
    if not hits:
        out.say("[dim]no matches[/]")

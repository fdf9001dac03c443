"""Export sessions as JSONL (the format in ``transfer.records``) or as Markdown transcripts.

Streaming: memory holds one page of messages (500), never a whole session.
No Typer here: the CLI drives ``export_sessions`` and draws the progress bar.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any

from sessionkeeper.errors import Conflict, InvalidInput
from sessionkeeper.models import MAX_MESSAGES_PAGE, Compaction, Message, Session
from sessionkeeper.transfer.records import (
    compaction_record,
    dump_line,
    message_record,
    session_record,
)

if TYPE_CHECKING:
    from sessionkeeper.store.core import Store

EXPORT_FORMATS = ("jsonl", "markdown")


@dataclass
class ExportSummary:
    format: str
    sessions: int = 0
    messages: int = 0
    destination: str | None = None
    compactions: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "sessions": self.sessions,
            "messages": self.messages,
            "compactions": self.compactions,
            "destination": self.destination,
        }


async def all_messages(store: Store, session_id: str) -> list[Message]:
    """Every message of a session in seq order, read page by page (all in memory: for
    ``show``; exports stream with ``message_pages``)."""
    found: list[Message] = []
    async for page in message_pages(store, session_id):
        found += page
    return found


async def message_pages(
    store: Store, session_id: str, count: int | None = None
) -> AsyncIterator[list[Message]]:
    """A session's messages in seq order, one page (≤ 500) at a time; with ``count``, only
    the first ``count`` (the messages a session row counted: later appends come after)."""
    after = 0
    remaining = count
    while remaining is None or remaining > 0:
        limit = MAX_MESSAGES_PAGE if remaining is None else min(MAX_MESSAGES_PAGE, remaining)
        page = await store.get_messages(session_id, limit=limit, after_seq=after)
        if page:
            yield page
        if len(page) < limit:
            return
        after = page[-1].seq
        if remaining is not None:
            remaining -= len(page)


async def select_sessions(
    store: Store,
    session_ids: Iterable[str] | None = None,
    agent_ids: list[str] | None = None,
    user_ids: list[str] | None = None,
) -> AsyncIterator[Session]:
    """The given sessions in the given order, else all (of ``agent_ids`` and ``user_ids``)
    by creation."""
    if session_ids is not None:
        if user_ids is not None:
            raise InvalidInput("give session ids, or user ids, not both", field="user_ids")
        for sid in session_ids:
            yield await store.get_session(sid)
        return
    async for session in store.iter_sessions(
        agent_ids=agent_ids, user_ids=user_ids, sort="created_at", order="asc"
    ):
        yield session


async def export_sessions(
    store: Store,
    out: IO[str],
    *,
    fmt: str = "jsonl",
    session_ids: Iterable[str] | None = None,
    agent_ids: list[str] | None = None,
    progress: Callable[[Session], None] | None = None,
    user_ids: list[str] | None = None,
) -> ExportSummary:
    """Write the selected sessions to ``out`` as JSONL or Markdown, streaming: the given
    ``session_ids``, else every session (of ``agent_ids`` and of ``user_ids``, when given).

    Memory holds one page of messages (500), never a whole session: the header is written
    from the session row's counters, then the messages it counted are paged through (an
    append made meanwhile has a later seq and is left for the next export). If a message was
    deleted meanwhile, the lines would not match their header: Conflict, export again.
    """
    check_format(fmt)
    summary = ExportSummary(format=fmt)
    async for session in select_sessions(store, session_ids, agent_ids, user_ids):
        chunks = session_chunks(store, session, fmt, first=summary.sessions == 0, summary=summary)
        async for chunk in chunks:
            out.write(chunk)
        summary.sessions += 1
        summary.messages += session.message_count
        if progress is not None:
            progress(session)
    return summary


def check_format(fmt: str) -> None:
    if fmt not in EXPORT_FORMATS:
        raise InvalidInput(f"unknown export format {fmt!r}: use {' or '.join(EXPORT_FORMATS)}")


async def session_chunks(
    store: Store,
    session: Session,
    fmt: str = "jsonl",
    *,
    first: bool = True,
    summary: ExportSummary | None = None,
) -> AsyncIterator[str]:
    """One session's export, a line (JSONL) or section (Markdown) at a time: the header from
    the session row's counters, the messages it counted, then the session's compactions
    (those that stand for exported messages: one made meanwhile may reach past them).
    Conflict if a message was deleted meanwhile (the lines would not match their header).
    ``summary``: its compactions are counted there."""
    check_format(fmt)
    if fmt == "jsonl":
        yield dump_line(session_record(session))
    else:
        yield markdown_header(session, first=first)
    count = tokens = last_seq = 0
    async for page in message_pages(store, session.session_id, session.message_count):
        for message in page:
            yield (
                dump_line(message_record(message)) if fmt == "jsonl" else markdown_message(message)
            )
            count += 1
            tokens += message.token_count
            last_seq = message.seq
    if (count, tokens) != (session.message_count, session.token_count):
        raise Conflict(
            f"session {session.session_id} changed while it was exported (messages "
            f"deleted meanwhile: {count} of {session.message_count} found): export again"
        )
    for compaction in await store.get_compactions(session.session_id):
        if compaction.through_seq <= last_seq:
            if summary is not None:
                summary.compactions += 1
            yield (
                dump_line(compaction_record(compaction))
                if fmt == "jsonl"
                else markdown_compaction(compaction)
            )


def markdown_compaction(c: Compaction) -> str:
    """A compaction's section of a transcript: the summary that stands for its messages."""
    facts = [f"#{c.from_seq}–#{c.through_seq}", _md_time(c.created_at)]
    if c.model:
        facts.append(c.model)
    return "\n".join(["", f"## Summary of {' · '.join(facts)}", "", c.summary]) + "\n"


def _md_time(value: datetime | None) -> str:
    return "—" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def markdown_header(session: Session, *, first: bool = True) -> str:
    """A transcript's header: the session's facts (its counters: the messages that follow)."""
    lines = [] if first else ["", "---", ""]
    lines += [
        f"# {session.title or 'Untitled session'}",
        "",
        f"- **Session:** `{session.session_id}`",
        f"- **Agent:** {session.agent_id} · "
        + (f"**User:** {session.user_id} · " if session.user_id is not None else "")
        + f"**Type:** {session.session_type} · **Status:** {session.status}",
        f"- **Created:** {_md_time(session.created_at)} · "
        f"**Updated:** {_md_time(session.updated_at)}"
        + (f" · **Ended:** {_md_time(session.ended_at)}" if session.ended_at else ""),
        f"- **Messages:** {session.message_count} · **Tokens:** {session.token_count}",
    ]
    return "\n".join(lines) + "\n"


def markdown_message(m: Message) -> str:
    """One message's section of a transcript."""
    facts = [f"#{m.seq}", _md_time(m.created_at)]
    if m.model:
        facts.append(m.model)
    lines = ["", f"## {m.role.capitalize()} · {' · '.join(facts)}", ""]
    calls = m.metadata.get("tool_calls")
    if m.content:
        lines.append(m.content)
    if isinstance(calls, list):
        for call in calls:
            fn = call.get("function", {}) if isinstance(call, dict) else {}
            lines.append(f"> tool call `{fn.get('name', '?')}`: `{fn.get('arguments', '')}`")
    if m.role == "tool" and m.metadata.get("tool_call_id"):
        lines.append(f"> result of tool call `{m.metadata['tool_call_id']}`")
    return "\n".join(lines) + "\n"

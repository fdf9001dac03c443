"""Export sessions to JSONL or Markdown, and import JSONL, OpenClaw roots and aria-session caches.

JSONL format (one JSON object per line, UTF-8, ``\\n`` line ends)::

    {"type":"session","session_id":…,"agent_id":…,…,"token_count":…}     ← Session.to_dict()
    {"type":"message","seq":1,"role":"user","content":…,"timestamp":…,"model":…,
     "token_count":…,"metadata":{…},"agent_id":…}
    … the session's messages in seq order, then the next session's header …

Byte-for-byte stability is the point of the format: export → import into an empty database →
export gives the same bytes, on either dialect. So the field order is fixed (not sorted),
nested metadata keys are sorted (PostgreSQL jsonb reorders keys, SQLite keeps them: sorting
makes the two agree), separators carry no spaces, non-ASCII is written as is, timestamps are
ISO 8601 in UTC with microseconds, and sessions come in (created_at, session_id) order.
The header's counts are those of the message lines that follow it.

The import writes rows verbatim through ``Store.import_session`` (seq, timestamps, token
counts as given): idempotent by session id, an existing session is skipped unless
``replace``. OpenClaw roots and aria-session caches are parsed by
:mod:`sessionkeeper.files.importers` into the same (Session, messages) pairs.

No Typer here: the CLI drives these functions and draws the progress bar.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from sessionkeeper.errors import InvalidInput, NotFound, SessionkeeperError
from sessionkeeper.models import MAX_MESSAGES_PAGE, Message, Session

if TYPE_CHECKING:
    from sessionkeeper.store.core import Store

EXPORT_FORMATS = ("jsonl", "markdown")
IMPORT_FORMATS = ("jsonl", "openclaw", "aria-session")

SESSION_FIELDS = (
    "session_id",
    "agent_id",
    "title",
    "session_type",
    "status",
    "metadata",
    "created_at",
    "updated_at",
    "ended_at",
    "last_message_at",
    "message_count",
    "token_count",
)
MESSAGE_FIELDS = (
    "seq",
    "role",
    "content",
    "timestamp",
    "model",
    "token_count",
    "metadata",
    "agent_id",
)


# ── records ───────────────────────────────────────────────────────────────────


def canonical(value: Any) -> Any:
    """``value`` with every nested dict's keys sorted (lists keep their order)."""
    if isinstance(value, dict):
        return {k: canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [canonical(v) for v in value]
    return value


def dump_line(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n"


def session_record(session: Session, messages: list[Message] | None = None) -> dict[str, Any]:
    data = session.to_dict()
    if messages is not None:  # counts of the lines that follow, read in the same pass
        data["message_count"] = len(messages)
        data["token_count"] = sum(m.token_count for m in messages)
    data["metadata"] = canonical(data["metadata"])
    return {"type": "session", **{name: data[name] for name in SESSION_FIELDS}}


def message_record(message: Message) -> dict[str, Any]:
    data = message.to_dict()
    data["timestamp"] = data.pop("created_at")
    data["metadata"] = canonical(data["metadata"])
    return {"type": "message", **{name: data[name] for name in MESSAGE_FIELDS}}


def parse_time(value: Any, what: str) -> datetime:
    """An aware UTC datetime from ISO text (naive = UTC) or epoch seconds / milliseconds."""
    if isinstance(value, bool):
        raise InvalidInput(f"{what}: expected a timestamp, got {value!r}")
    if isinstance(value, int | float):
        seconds = value / 1000 if abs(value) > 1e11 else value  # ms after 1973, else seconds
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise InvalidInput(f"{what}: bad epoch timestamp {value!r}") from exc
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise InvalidInput(f"{what}: bad ISO timestamp {value!r}") from exc
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    raise InvalidInput(f"{what}: expected a timestamp, got {value!r}")


def _optional_time(record: dict[str, Any], name: str, what: str) -> datetime | None:
    value = record.get(name)
    return None if value is None else parse_time(value, f"{what} {name}")


def _int(record: dict[str, Any], name: str, what: str, default: int | None = None) -> int:
    value = record.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"{what}: {name} must be a non-negative integer, got {value!r}")
    return value


def _dict(record: dict[str, Any], name: str, what: str) -> dict[str, Any]:
    value = record.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{what}: {name} must be a JSON object")
    return value


def session_from_record(record: dict[str, Any]) -> Session:
    sid = record.get("session_id")
    what = f"session {sid!r}"
    if not isinstance(sid, str):
        raise InvalidInput("session header without a string session_id")
    created = parse_time(record.get("created_at"), f"{what} created_at")
    return Session(
        session_id=sid,
        agent_id=record.get("agent_id") or "main",
        title=record.get("title"),
        session_type=record.get("session_type") or "chat",
        status=record.get("status") or "active",
        metadata=_dict(record, "metadata", what),
        created_at=created,
        updated_at=_optional_time(record, "updated_at", what) or created,
        ended_at=_optional_time(record, "ended_at", what),
        last_message_at=_optional_time(record, "last_message_at", what),
        message_count=_int(record, "message_count", what, 0),
        token_count=_int(record, "token_count", what, 0),
    )


def message_from_record(
    record: dict[str, Any], session: Session, position: int, count: Callable[[str], int]
) -> Message:
    what = f"session {session.session_id!r} message {position}"
    content = record.get("content")
    if not isinstance(content, str):
        raise InvalidInput(f"{what}: content must be a string")
    stamp = record.get("timestamp", record.get("created_at"))
    return Message(
        session_id=session.session_id,
        seq=_int(record, "seq", what, position),
        role=str(record.get("role")),
        content=content,
        agent_id=record.get("agent_id"),
        model=record.get("model"),
        token_count=(
            count(content)
            if record.get("token_count") is None
            else _int(record, "token_count", what)
        ),
        metadata=_dict(record, "metadata", what),
        created_at=session.created_at if stamp is None else parse_time(stamp, f"{what} timestamp"),
    )


# ── export ────────────────────────────────────────────────────────────────────


@dataclass
class ExportSummary:
    format: str
    sessions: int = 0
    messages: int = 0
    destination: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "sessions": self.sessions,
            "messages": self.messages,
            "destination": self.destination,
        }


async def all_messages(store: Store, session_id: str) -> list[Message]:
    """Every message of a session in seq order, read page by page."""
    found: list[Message] = []
    after = 0
    while True:
        page = await store.get_messages(session_id, limit=MAX_MESSAGES_PAGE, after_seq=after)
        found += page
        if len(page) < MAX_MESSAGES_PAGE:
            return found
        after = page[-1].seq


async def select_sessions(
    store: Store,
    session_ids: Iterable[str] | None = None,
    agent_ids: list[str] | None = None,
) -> AsyncIterator[Session]:
    """The given sessions in the given order, else all (of ``agent_ids``) by creation."""
    if session_ids is not None:
        for sid in session_ids:
            yield await store.get_session(sid)
        return
    async for session in store.iter_sessions(agent_ids=agent_ids, sort="created_at", order="asc"):
        yield session


async def export_sessions(
    store: Store,
    out: IO[str],
    *,
    fmt: str = "jsonl",
    session_ids: Iterable[str] | None = None,
    agent_ids: list[str] | None = None,
    progress: Callable[[Session], None] | None = None,
) -> ExportSummary:
    """Write the selected sessions to ``out`` as JSONL or Markdown."""
    if fmt not in EXPORT_FORMATS:
        raise InvalidInput(f"unknown export format {fmt!r}: use {' or '.join(EXPORT_FORMATS)}")
    summary = ExportSummary(format=fmt)
    async for session in select_sessions(store, session_ids, agent_ids):
        messages = await all_messages(store, session.session_id)
        if fmt == "jsonl":
            out.write(dump_line(session_record(session, messages)))
            for message in messages:
                out.write(dump_line(message_record(message)))
        else:
            out.write(markdown_session(session, messages, first=summary.sessions == 0))
        summary.sessions += 1
        summary.messages += len(messages)
        if progress is not None:
            progress(session)
    return summary


def _md_time(value: datetime | None) -> str:
    return "—" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def markdown_session(session: Session, messages: list[Message], *, first: bool = True) -> str:
    """A readable transcript: a header with the session's facts, then one section per message."""
    lines = [] if first else ["", "---", ""]
    lines += [
        f"# {session.title or 'Untitled session'}",
        "",
        f"- **Session:** `{session.session_id}`",
        f"- **Agent:** {session.agent_id} · **Type:** {session.session_type} · "
        f"**Status:** {session.status}",
        f"- **Created:** {_md_time(session.created_at)} · "
        f"**Updated:** {_md_time(session.updated_at)}"
        + (f" · **Ended:** {_md_time(session.ended_at)}" if session.ended_at else ""),
        f"- **Messages:** {len(messages)} · **Tokens:** {sum(m.token_count for m in messages)}",
    ]
    for m in messages:
        facts = [f"#{m.seq}", _md_time(m.created_at)]
        if m.model:
            facts.append(m.model)
        lines += ["", f"## {m.role.capitalize()} · {' · '.join(facts)}", ""]
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


# ── import ────────────────────────────────────────────────────────────────────


@dataclass
class Parsed:
    """One session read from a source, ready for ``Store.import_session``."""

    session: Session
    messages: list[Message]
    source: str
    warnings: list[str] = field(default_factory=list)


@dataclass
class Failed:
    """A session (or a part of a file) that could not be read."""

    source: str
    error: str
    session_id: str | None = None


@dataclass
class Skipped:
    source: str
    reason: str
    session_id: str | None = None


Item = Parsed | Failed | Skipped


@dataclass
class ImportSummary:
    format: str
    source: str
    imported: list[str] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    messages: int = 0
    current: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "source": self.source,
            "imported_count": len(self.imported),
            "skipped_count": len(self.skipped),
            "failed_count": len(self.failed),
            "message_count": self.messages,
            "imported": self.imported,
            "skipped": self.skipped,
            "failed": self.failed,
            "warnings": self.warnings,
            "current": self.current,
        }


def _open_text(path: Path) -> IO[str]:
    if str(path) == "-":
        return sys.stdin
    # newline="\n": only "\n" ends a record. JSON escapes \r and \n inside strings, but not
    # U+2028 or U+0085, which str.splitlines() would wrongly treat as line breaks.
    return path.open("r", encoding="utf-8", newline="\n")


def read_jsonl(path: Path, count: Callable[[str], int], agent: str | None = None) -> Iterator[Item]:
    """Sessions of a sessionkeeper JSONL export, one item per session header."""
    header: dict[str, Any] | None = None
    header_line = 0
    lines: list[tuple[int, dict[str, Any]]] = []
    broken: str | None = None

    def flush() -> Item | None:
        if header is None:
            return None
        source = f"{path}:{header_line}"
        sid = header.get("session_id")
        sid = sid if isinstance(sid, str) else None
        if broken:
            return Failed(source, broken, sid)
        if agent is not None and header.get("agent_id", "main") != agent:
            return Skipped(source, f"agent is not {agent}", sid)
        try:
            session = session_from_record(header)
            messages = [
                message_from_record(rec, session, position, count)
                for position, (_n, rec) in enumerate(lines, start=1)
            ]
        except SessionkeeperError as exc:
            return Failed(source, exc.message, sid)
        return Parsed(session, messages, source)

    handle = _open_text(path)
    try:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                record = None
                error = f"line {number} is not valid JSON: {exc}"
            else:
                error = f"line {number} is not a JSON object"
            if not isinstance(record, dict):
                if header is None:
                    yield Failed(f"{path}:{number}", error)
                else:
                    broken = broken or error
                continue
            kind = record.get("type")
            if kind == "session":
                item = flush()
                if item is not None:
                    yield item
                header, header_line, lines, broken = record, number, [], None
            elif kind == "message" and header is not None:
                lines.append((number, record))
            elif kind == "message":
                yield Failed(f"{path}:{number}", "message line before any session header")
            elif header is not None:
                broken = broken or f"line {number}: unknown record type {kind!r}"
            else:
                yield Failed(f"{path}:{number}", f"unknown record type {kind!r}")
        item = flush()
        if item is not None:
            yield item
    finally:
        if handle is not sys.stdin:
            handle.close()


@dataclass
class ImportPlan:
    """What an import will read: its format, source, and (when known) how many sessions."""

    format: str
    path: Path
    total: int | None
    items: Callable[[Callable[[str], int]], Iterator[Item]]


def _count_headers(path: Path) -> int:
    """Session headers in a JSONL file, for the progress bar (a cheap scan, no parsing)."""
    prefix = b'{"type":"session"'
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.startswith(prefix))


def detect_format(path: Path) -> str:
    if str(path) == "-" or path.is_file():
        return "jsonl"
    if not path.is_dir():
        raise NotFound(f"no such file or directory: {path}")
    if any((child / "sessions").is_dir() for child in path.iterdir()):
        return "openclaw"
    if any(path.glob("*.meta")):
        return "aria-session"
    if any(path.glob("*.jsonl")):
        return "jsonl"
    raise InvalidInput(f"cannot tell what {path} holds; give --format")


def plan_import(path: Path, fmt: str | None = None, *, agent: str | None = None) -> ImportPlan:
    """Look at ``path`` (a file, ``-`` for stdin, or a directory) and plan its import."""
    from sessionkeeper.files import importers

    fmt = fmt or detect_format(path)
    if fmt not in IMPORT_FORMATS:
        raise InvalidInput(f"unknown import format {fmt!r}: use {', '.join(IMPORT_FORMATS)}")
    if str(path) != "-" and not path.exists():
        raise NotFound(f"no such file or directory: {path}")
    if fmt == "jsonl":
        files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]

        def jsonl_items(count: Callable[[str], int]) -> Iterator[Item]:
            for file in files:
                yield from read_jsonl(file, count, agent)

        total = None if str(path) == "-" else sum(_count_headers(f) for f in files)
        return ImportPlan(fmt, path, total, jsonl_items)
    if not path.is_dir():
        raise InvalidInput(f"{fmt} import needs a directory, got the file {path}")
    if fmt == "openclaw":
        reader = importers.OpenClawImport(path, agent=agent)
        return ImportPlan(fmt, path, reader.total(), reader.items)
    aria = importers.AriaSessionImport(path, agent=agent or "main")
    return ImportPlan(fmt, path, aria.total(), aria.items)


async def run_import(
    store: Store,
    plan: ImportPlan,
    *,
    replace: bool = False,
    progress: Callable[[str], None] | None = None,
) -> ImportSummary:
    """Write every session of ``plan``; one bad session never stops the others."""
    summary = ImportSummary(format=plan.format, source=str(plan.path))
    for item in plan.items(store.tokenizer.count):
        if isinstance(item, Failed):
            summary.failed.append(
                {"session_id": item.session_id, "source": item.source, "error": item.error}
            )
        elif isinstance(item, Skipped):
            summary.skipped.append(
                {"session_id": item.session_id, "source": item.source, "reason": item.reason}
            )
        else:
            sid = item.session.session_id
            summary.warnings += [f"{sid}: {w}" for w in item.warnings]
            try:
                done = await store.import_session(item.session, item.messages, replace=replace)
            except SessionkeeperError as exc:
                summary.failed.append(
                    {"session_id": sid, "source": item.source, "error": exc.message}
                )
            else:
                if done:
                    summary.imported.append(sid)
                    summary.messages += len(item.messages)
                else:
                    summary.skipped.append(
                        {
                            "session_id": sid,
                            "source": item.source,
                            "reason": "already in the database (use --replace to overwrite)",
                        }
                    )
        if progress is not None:
            progress(item.session.session_id if isinstance(item, Parsed) else item.source)
    if plan.format == "aria-session":
        from sessionkeeper.files.importers import aria_current

        summary.current = aria_current(plan.path)
    return summary

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

import contextlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from sessionkeeper.errors import Conflict, InvalidInput, NotFound, SessionkeeperError
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
    """The header line: the session's counters, or those of ``messages`` when given."""
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
    """Write the selected sessions to ``out`` as JSONL or Markdown, streaming.

    Memory holds one page of messages (500), never a whole session: the header is written
    from the session row's counters, then the messages it counted are paged through (an
    append made meanwhile has a later seq and is left for the next export). If a message was
    deleted meanwhile, the lines would not match their header: Conflict, export again.
    """
    if fmt not in EXPORT_FORMATS:
        raise InvalidInput(f"unknown export format {fmt!r}: use {' or '.join(EXPORT_FORMATS)}")
    summary = ExportSummary(format=fmt)
    async for session in select_sessions(store, session_ids, agent_ids):
        if fmt == "jsonl":
            out.write(dump_line(session_record(session)))
        else:
            out.write(markdown_header(session, first=summary.sessions == 0))
        count = tokens = 0
        async for page in message_pages(store, session.session_id, session.message_count):
            for message in page:
                out.write(
                    dump_line(message_record(message))
                    if fmt == "jsonl"
                    else markdown_message(message)
                )
                count += 1
                tokens += message.token_count
        if (count, tokens) != (session.message_count, session.token_count):
            raise Conflict(
                f"session {session.session_id} changed while it was exported (messages "
                f"deleted meanwhile: {count} of {session.message_count} found): export again"
            )
        summary.sessions += 1
        summary.messages += count
        if progress is not None:
            progress(session)
    return summary


def _md_time(value: datetime | None) -> str:
    return "—" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def markdown_header(session: Session, *, first: bool = True) -> str:
    """A transcript's header: the session's facts (its counters: the messages that follow)."""
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


def markdown_session(session: Session, messages: list[Message], *, first: bool = True) -> str:
    """A readable transcript: a header with the session's facts, then one section per message."""
    facts = replace(
        session,
        message_count=len(messages),
        token_count=sum(m.token_count for m in messages),
    )
    return markdown_header(facts, first=first) + "".join(markdown_message(m) for m in messages)


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


@dataclass
class Streamed:
    """A session whose lines were all checked, to be written in a second pass over them.

    ``messages()`` reads the session's lines again (one at a time: memory holds a page, not
    the session); it may be called once, before the reader moves on.
    """

    session: Session
    message_count: int
    messages: Callable[[], Iterator[Message]]
    source: str
    warnings: list[str] = field(default_factory=list)


Item = Parsed | Streamed | Failed | Skipped


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


CHECK_CHUNK = MAX_MESSAGES_PAGE  # messages checked against the Store's rules at a time


class SeqSet:
    """The seqs seen in one session, to refuse duplicates in bounded memory: a bitmap (seqs
    are usually 1..N: N/8 bytes), a set only for seqs too large for a small bitmap."""

    BITMAP_LIMIT = 1 << 26  # 8 MB of bitmap at most

    def __init__(self) -> None:
        self._bits = bytearray()
        self._large: set[int] = set()

    def add(self, seq: int) -> bool:
        """Record ``seq``; False if it was already there."""
        if seq >= self.BITMAP_LIMIT:
            if seq in self._large:
                return False
            self._large.add(seq)
            return True
        byte, bit = divmod(seq, 8)
        if byte >= len(self._bits):
            self._bits.extend(bytes(max(byte + 1 - len(self._bits), len(self._bits))))
        if self._bits[byte] >> bit & 1:
            return False
        self._bits[byte] |= 1 << bit
        return True


@dataclass
class _Block:
    """One session of a JSONL file as found by the checking pass."""

    header: dict[str, Any]
    line: int  # the header's line number
    start: int  # byte offset just after the header line
    end: int  # byte offset of the next header (or of the end of the file)
    messages: int = 0
    tokens: int = 0
    error: str | None = None


def _no_count(_text: str) -> int:
    return 0


def _parse_line(raw: bytes, number: int) -> tuple[dict[str, Any] | None, str | None]:
    """(record, None), or (None, why the line is not one)."""
    try:
        record = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return None, f"line {number} is not valid UTF-8: {exc}"
    except ValueError as exc:
        return None, f"line {number} is not valid JSON: {exc}"
    if not isinstance(record, dict):
        return None, f"line {number} is not a JSON object"
    return record, None


def _lines(handle: IO[bytes], offset: int, number: int) -> Iterator[tuple[int, int, bytes]]:
    """``(line number, byte offset, line)`` from ``offset``; only ``\n`` ends a line (JSON
    escapes \r and \n inside strings, but not U+2028 or U+0085)."""
    handle.seek(offset)
    while True:
        raw = handle.readline()
        if not raw:
            return
        yield number, offset, raw
        offset += len(raw)
        number += 1


def _check_block(handle: IO[bytes], block: _Block) -> tuple[dict[str, Any] | None, int, int]:
    """The checking pass over one session: every line parsed and held to the Store's rules,
    nothing kept but counters. Returns the next header (record, offset, line) if any."""
    from sessionkeeper.store import importing

    session: Session | None = None
    try:
        session = session_from_record(block.header)
        importing.check(session, [])
    except SessionkeeperError as exc:
        block.error = exc.message
    seqs = SeqSet()
    chunk: list[Message] = []

    def check_chunk() -> None:
        assert session is not None
        try:
            importing.check(session, chunk)
        except SessionkeeperError as exc:
            block.error = block.error or exc.message
        chunk.clear()

    for number, offset, raw in _lines(handle, block.start, block.line + 1):
        if not raw.strip():
            continue
        record, error = _parse_line(raw, number)
        if record is not None and record.get("type") == "session":
            block.end = offset
            if chunk and block.error is None:
                check_chunk()
            return record, offset, number
        if block.error is not None:
            continue  # already refused: only looking for the next header
        if record is None:
            block.error = error
        elif record.get("type") != "message":
            block.error = f"line {number}: unknown record type {record.get('type')!r}"
        else:
            assert session is not None
            try:
                # A missing token count is computed when the message is written, not here:
                # the check needs none, and a refused file never loads the tokenizer.
                message = message_from_record(record, session, block.messages + 1, _no_count)
            except SessionkeeperError as exc:
                block.error = exc.message
                continue
            if not seqs.add(message.seq):
                block.error = (
                    f"session {session.session_id!r}: duplicate seq {message.seq} (line {number})"
                )
                continue
            block.messages += 1
            block.tokens += message.token_count
            chunk.append(message)
            if len(chunk) >= CHECK_CHUNK:
                check_chunk()
    handle.seek(0, os.SEEK_END)
    block.end = handle.tell()
    if chunk and block.error is None:
        check_chunk()
    return None, block.end, -1


def _block_messages(
    handle: IO[bytes], block: _Block, session: Session, count: Callable[[str], int]
) -> Iterator[Message]:
    """The writing pass over a checked session: its messages again, one at a time."""
    position = 0
    for number, offset, raw in _lines(handle, block.start, block.line + 1):
        if offset >= block.end:
            return
        if not raw.strip():
            continue
        record, error = _parse_line(raw, number)
        if record is None:  # the file changed between the two passes
            raise InvalidInput(f"{error} (the file changed during the import)")
        position += 1
        yield message_from_record(record, session, position, count)


@contextlib.contextmanager
def _open_binary(path: Path) -> Iterator[IO[bytes]]:
    """The file, or stdin spooled to a temporary file (read twice, so it must be seekable;
    spooled to disk, so memory stays bounded)."""
    if str(path) != "-":
        with path.open("rb") as handle:
            yield handle
        return
    with tempfile.TemporaryFile() as spool:
        shutil.copyfileobj(sys.stdin.buffer, spool, 1 << 20)
        spool.seek(0)
        yield spool


def read_jsonl(path: Path, count: Callable[[str], int], agent: str | None = None) -> Iterator[Item]:
    """Sessions of a sessionkeeper JSONL export, one item per session header.

    Each session is read twice: a checking pass (every line parsed and held to the Store's
    rules, so a bad line anywhere fails the session before anything of it is written), then,
    when the consumer writes it, ``Streamed.messages()`` reads its lines again. Memory holds
    a page of messages, never a session; stdin is spooled to a temporary file.
    """
    with _open_binary(path) as handle:
        pending: tuple[dict[str, Any] | None, int, int] | None = None
        stream = _lines(handle, 0, 1)
        while True:
            if pending is None:
                found = next(
                    ((n, o, r) for n, o, r in stream if r.strip()),
                    None,
                )
                if found is None:
                    return
                number, offset, raw = found
                record, error = _parse_line(raw, number)
                if record is None or record.get("type") != "session":
                    kind = None if record is None else record.get("type")
                    why = error or (
                        "message line before any session header"
                        if kind == "message"
                        else f"unknown record type {kind!r}"
                    )
                    yield Failed(f"{path}:{number}", why or "")
                    continue
                pending = (record, offset + len(raw), number)
            header, start, line = pending
            assert header is not None
            block = _Block(header, line, start, start)
            next_header, next_offset, next_line = _check_block(handle, block)
            yield _block_item(path, handle, block, agent, count)
            if next_header is None:
                return
            # the header line of the next session, found by the checking pass
            handle.seek(next_offset)
            raw = handle.readline()
            pending = (next_header, next_offset + len(raw), next_line)
            stream = _lines(handle, next_offset + len(raw), next_line + 1)


def _block_item(
    path: Path, handle: IO[bytes], block: _Block, agent: str | None, count: Callable[[str], int]
) -> Item:
    source = f"{path}:{block.line}"
    sid = block.header.get("session_id")
    sid = sid if isinstance(sid, str) else None
    if block.error is not None:
        return Failed(source, block.error, sid)
    if agent is not None and block.header.get("agent_id", "main") != agent:
        return Skipped(source, f"agent is not {agent}", sid)
    session = session_from_record(block.header)
    session.message_count, session.token_count = block.messages, block.tokens
    return Streamed(
        session,
        block.messages,
        lambda: _block_messages(handle, block, session, count),
        source,
    )


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
                done = await _write(store, item, replace)
            except SessionkeeperError as exc:
                summary.failed.append(
                    {"session_id": sid, "source": item.source, "error": exc.message}
                )
            else:
                if done:
                    summary.imported.append(sid)
                    summary.messages += (
                        item.message_count if isinstance(item, Streamed) else len(item.messages)
                    )
                else:
                    summary.skipped.append(
                        {
                            "session_id": sid,
                            "source": item.source,
                            "reason": "already in the database (use --replace to overwrite)",
                        }
                    )
        if progress is not None:
            session = getattr(item, "session", None)
            progress(session.session_id if isinstance(session, Session) else item.source)
    if plan.format == "aria-session":
        from sessionkeeper.files.importers import aria_current

        summary.current = aria_current(plan.path)
    return summary


async def _exists(store: Store, session_id: str) -> bool:
    try:
        await store.get_session(session_id)
    except NotFound:
        return False
    return True


async def _write(store: Store, item: Parsed | Streamed, replace: bool) -> bool:
    """``Store.import_session`` for a parsed session; for a streamed one, the Store's
    streaming import (memory: a chunk of messages, not the session)."""
    if isinstance(item, Parsed):
        return await store.import_session(item.session, item.messages, replace=replace)
    if not replace and await _exists(store, item.session.session_id):
        return False  # skipped without reading the lines again
    return await store.import_session_stream(item.session, item.messages(), replace=replace)

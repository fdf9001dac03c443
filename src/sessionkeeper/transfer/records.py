"""The records every transfer format shares: JSONL lines ↔ values, and what a reader yields.

JSONL format (one JSON object per line, UTF-8, ``\\n`` line ends)::

    {"type":"session","session_id":…,"agent_id":…,…,"token_count":…}     ← Session.to_dict()
    {"type":"message","seq":1,"role":"user","content":…,"timestamp":…,"model":…,
     "token_count":…,"metadata":{…},"agent_id":…[,"usage":{…}]}
    … the session's messages in seq order …
    {"type":"compaction","from_seq":…,"through_seq":…,"message_count":…,"compacted_tokens":…,
     "summary":…,"token_count":…,"model":…,"metadata":{…},"created_at":…}
    … its compactions (``Store.compact_session``) by through_seq, then the next header …

Byte-for-byte stability is the point of the format: export → import into an empty database →
export gives the same bytes, on either dialect. So the field order is fixed (not sorted; a
session header follows ``Session``'s fields, ``models.SESSION_FIELDS``), nested metadata keys
are sorted (PostgreSQL jsonb reorders keys, SQLite keeps them: sorting makes the two agree),
separators carry no spaces, non-ASCII is written as is, timestamps are ISO 8601 in UTC with
microseconds, and sessions come in (created_at, session_id) order. The header's counts are
those of the message lines that follow it. A message's ``usage`` (``Usage``'s fields) is the
last field, present only when the message has one, so files of messages without usage read
and write exactly as before. A session's compactions (its summaries, each standing for a run
of its messages in the context window) follow its messages, oldest first; a file without
them reads as before, and an import writes them as they were, so a compacted session's
window is the same after the round trip.

Every reader (``read_jsonl``, ``read_openclaw``, ``read_aria``, and the ``--from`` readers)
yields ``Item``s: a session ``Parsed`` whole, ``Streamed`` in two passes or ``Replayed``
through an integration, or one ``Failed`` / ``Skipped``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sessionkeeper.errors import InvalidInput
from sessionkeeper.models import (
    SESSION_FIELDS,
    SESSION_ID_RE,
    Compaction,
    Message,
    Session,
    Usage,
)
from sessionkeeper.store import validate

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
    record = {"type": "message", **{name: data[name] for name in MESSAGE_FIELDS}}
    if message.usage is not None:
        record["usage"] = message.usage.to_dict()
    return record


# A compaction line's fields after "type", in this order (Compaction's, but its session).
COMPACTION_FIELDS = (
    "from_seq",
    "through_seq",
    "message_count",
    "compacted_tokens",
    "summary",
    "token_count",
    "model",
    "metadata",
    "created_at",
)


def compaction_record(compaction: Compaction) -> dict[str, Any]:
    data = compaction.to_dict()
    data["metadata"] = canonical(data["metadata"])
    return {"type": "compaction", **{name: data[name] for name in COMPACTION_FIELDS}}


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


def optional_time(record: dict[str, Any] | None, name: str, what: str) -> datetime | None:
    """``record[name]`` as a time (see ``parse_time``), None when absent or null."""
    value = None if record is None else record.get(name)
    return None if value is None else parse_time(value, f"{what} {name}")


def latest(*stamps: datetime | None) -> datetime | None:
    present = [s for s in stamps if s is not None]
    return max(present) if present else None


def now() -> datetime:
    return datetime.now(UTC)


def database_id(foreign_id: str, namespace: str) -> str:
    """The foreign id when it is a valid session id, else a stable hash of it."""
    if SESSION_ID_RE.fullmatch(foreign_id):
        return foreign_id
    digest = hashlib.sha256(f"{namespace}/{foreign_id}".encode()).hexdigest()[:20]
    return f"{namespace}-{digest}"


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
        updated_at=optional_time(record, "updated_at", what) or created,
        ended_at=optional_time(record, "ended_at", what),
        last_message_at=optional_time(record, "last_message_at", what),
        message_count=_int(record, "message_count", what, 0),
        token_count=_int(record, "token_count", what, 0),
        user_id=record.get("user_id"),  # checked with the session (verbatim.check_session)
        parent_session_id=record.get("parent_session_id"),  # lineage: checked there too
        fork_seq=record.get("fork_seq"),
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
        usage=_usage(record, what),
    )


def compaction_from_record(record: dict[str, Any], session: Session, line: int) -> Compaction:
    """A compaction line as written by ``compaction_record`` (checked whole with the session's
    messages: ``verbatim.check_compactions``)."""
    what = f"session {session.session_id!r} compaction (line {line})"
    summary = record.get("summary")
    if not isinstance(summary, str):
        raise InvalidInput(f"{what}: summary must be a string")
    model = record.get("model")
    if model is not None and not isinstance(model, str):
        raise InvalidInput(f"{what}: model must be a string or null")
    return Compaction(
        session_id=session.session_id,
        from_seq=_int(record, "from_seq", what),
        through_seq=_int(record, "through_seq", what),
        message_count=_int(record, "message_count", what),
        compacted_tokens=_int(record, "compacted_tokens", what),
        summary=summary,
        token_count=_int(record, "token_count", what),
        model=model,
        metadata=_dict(record, "metadata", what),
        created_at=parse_time(record.get("created_at"), f"{what} created_at"),
    )


def _usage(record: dict[str, Any], what: str) -> Usage | None:
    try:
        return validate.usage(record.get("usage"))  # its model as written (None stays None)
    except InvalidInput as exc:
        raise InvalidInput(f"{what}: {exc.message}", **exc.details) from None


# ── what a reader yields ──────────────────────────────────────────────────────


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
    the session); it may be called once, before the reader moves on. ``compactions()``, read
    after the messages, gives the session's compaction lines again the same way.
    """

    session: Session
    message_count: int
    messages: Callable[[], Iterator[Message]]
    source: str
    warnings: list[str] = field(default_factory=list)
    compactions: Callable[[], Iterator[Compaction]] = lambda: iter(())


@dataclass
class Replayed:
    """A session written by replaying it through an integration (a LangGraph thread's
    checkpoints through the saver, an ADK session's events through the service), because the
    integration's own tables hold more than messages. ``write(store)`` writes it all and
    returns its message count; the importer deletes what it wrote if it fails midway."""

    session_id: str
    write: Callable[[Any], Awaitable[int]]
    source: str
    warnings: list[str] = field(default_factory=list)
    # Whether it is there already, and how to remove it (default: the store session
    # ``session_id``); an integration that keys its sessions otherwise (ADK) says its own.
    exists: Callable[[Any], Awaitable[bool]] | None = None
    remove: Callable[[Any], Awaitable[object]] | None = None


Item = Parsed | Streamed | Failed | Skipped | Replayed

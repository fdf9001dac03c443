"""Readers for the stores sessionkeeper replaces: OpenClaw agents roots, aria-session caches.

Both turn a foreign session into a ``(Session, [Message])`` pair for ``Store.import_session``,
losing nothing: whatever has no column of its own goes into metadata.

OpenClaw (``<root>/<agent>/sessions/sessions.json`` + ``<sessionId>.jsonl``):

- One database session per (agent, sessionId); several index keys may name one sessionId, the
  newest is ``openclaw_key``/``openclaw_entry``, the others ``openclaw_keys``. The database id
  is the sessionId itself when it is a valid id (so the two-layer delete finds it), else a
  stable hash of it; ``metadata.aria_session_id`` always holds the sessionId.
- agent from the directory, title from ``label``, session_type from the key (cron, subagent,
  run, direct), status active (the session is live in the index).
- Transcript v3 lines: ``message`` lines become messages (``toolResult`` → role ``tool`` with
  ``tool_call_id``; ``toolCall`` parts → OpenAI-style ``tool_calls``; text parts joined as the
  content); ``compaction`` / ``branch_summary`` lines become system messages holding the summary;
  every other line (``model_change``, ``thinking_level_change``, ``custom`` …) rides along in the
  next message's ``openclaw_events`` (or the session's ``openclaw_trailing_events``). Each
  message keeps its raw line in ``metadata.openclaw``. Lines are imported in file order; when
  the transcript is a tree (``parentId``), lines off the final branch are marked
  ``openclaw_off_path: true``.

aria-session (``~/.claude/cache/sessions``: ``<id>.jsonl`` lines ``{role, content, timestamp
(epoch s), model}`` + ``<id>.meta`` ``{id, created, modified, turn_count, token_count}``, and a
``current`` symlink): one session per id, the meta kept in ``metadata.aria_session_meta``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sessionkeeper.errors import InvalidInput, SessionkeeperError
from sessionkeeper.files.openclaw import OpenClawStore, session_type_for_key
from sessionkeeper.files.transfer import Failed, Item, Parsed, Skipped, parse_time
from sessionkeeper.models import MAX_TITLE_LENGTH, SESSION_ID_RE, Message, Session

Count = Callable[[str], int]

_ROLES = {"user": "user", "assistant": "assistant", "system": "system"}
_TOOL_ROLES = ("toolResult", "tool")
_SUMMARY_TYPES = ("compaction", "branch_summary")


def database_id(foreign_id: str, namespace: str) -> str:
    """The foreign id when it is a valid session id, else a stable hash of it."""
    if SESSION_ID_RE.fullmatch(foreign_id):
        return foreign_id
    digest = hashlib.sha256(f"{namespace}/{foreign_id}".encode()).hexdigest()[:20]
    return f"{namespace}-{digest}"


def _latest(*stamps: datetime | None) -> datetime | None:
    present = [s for s in stamps if s is not None]
    return max(present) if present else None


# ── OpenClaw ──────────────────────────────────────────────────────────────────


def _text_parts(content: Any) -> tuple[str, list[dict[str, Any]]]:
    """(text of the content, OpenAI-style tool_calls found in it)."""
    if isinstance(content, str):
        return content, []
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in content if isinstance(content, list) else []:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif part.get("type") == "toolCall":
            arguments = part.get("arguments", {})
            calls.append(
                {
                    "id": part.get("id"),
                    "type": "function",
                    "function": {
                        "name": part.get("name"),
                        "arguments": arguments
                        if isinstance(arguments, str)
                        else json.dumps(arguments, ensure_ascii=False),
                    },
                }
            )
    return "\n".join(texts), calls


def _off_path(records: list[dict[str, Any]]) -> set[str]:
    """Ids of tree lines that are not ancestors of the last line (abandoned branches)."""
    ids = {r["id"]: r for r in records if isinstance(r.get("id"), str)}
    if not any("parentId" in r for r in records) or not ids:
        return set()
    leaf = next((r["id"] for r in reversed(records) if isinstance(r.get("id"), str)), None)
    on_path: set[str] = set()
    while isinstance(leaf, str) and leaf in ids and leaf not in on_path:
        on_path.add(leaf)
        leaf = ids[leaf].get("parentId")
    return set(ids) - on_path


class OpenClawImport:
    """Every (agent, sessionId) of an OpenClaw agents root, as importable sessions."""

    def __init__(self, root: Path, *, agent: str | None = None) -> None:
        self.fs = OpenClawStore(root, protected_ids=set())
        self.agent = agent

    def _groups(
        self, problems: list[dict[str, str]] | None = None
    ) -> dict[tuple[str, str], list[tuple[str, dict[str, Any]]]]:
        groups: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] = {}
        for agent, key, entry in self.fs.iter_entries(
            self.agent, problems=[] if problems is None else problems
        ):
            groups.setdefault((agent, entry["sessionId"]), []).append((key, entry))
        return groups

    def total(self) -> int:
        return len(self._groups())

    def items(self, count: Count) -> Iterator[Item]:
        problems: list[dict[str, str]] = []
        groups = self._groups(problems)
        for problem in problems:  # an agent whose index cannot be read: the others go on
            yield Failed(f"{problem['agent']}/sessions/sessions.json", problem["error"])
        for (agent, sid), keyed in groups.items():
            source = f"{agent}/sessions/{sid}.jsonl"
            try:
                yield self._session(agent, sid, keyed, count, source)
            except SessionkeeperError as exc:
                yield Failed(source, exc.message, sid)
        orphans = self.fs.orphans(dry_run=True)["orphan_transcripts"]
        for rel in orphans:
            if self.agent is None or rel.startswith(f"{self.agent}/"):
                yield Skipped(rel, "transcript not in any sessions.json (orphan)")

    def _session(
        self,
        agent: str,
        sid: str,
        keyed: list[tuple[str, dict[str, Any]]],
        count: Count,
        source: str,
    ) -> Parsed:
        keyed.sort(key=lambda ke: _entry_time(ke[1]) or datetime.min.replace(tzinfo=UTC))
        key, entry = keyed[-1]
        warnings: list[str] = []
        try:
            records = self.fs.read_transcript(agent, sid)
        except SessionkeeperError as exc:
            if "No transcript" not in exc.message:
                raise
            records = []
            warnings.append("no transcript file: imported without messages")
        db_id = database_id(sid, "openclaw")
        metadata: dict[str, Any] = {
            "aria_session_id": sid,
            "openclaw_agent": agent,
            "openclaw_key": key,
            "openclaw_entry": entry,
        }
        if len(keyed) > 1:
            metadata["openclaw_keys"] = {k: e for k, e in keyed[:-1]}
        if not records:
            metadata["openclaw_transcript"] = "missing" if warnings else "empty"
        updated = _entry_time(entry)
        messages, header, trailing = _transcript_messages(db_id, records, count, updated)
        if header is not None:
            metadata["openclaw_header"] = header
        if trailing:
            metadata["openclaw_trailing_events"] = trailing
        started = _optional(header, "timestamp", "transcript header")
        created = started or (messages[0].created_at if messages else None) or updated or _now()
        last = messages[-1].created_at if messages else None
        label = entry.get("label")
        session = Session(
            session_id=db_id,
            agent_id=agent,
            title=label[:MAX_TITLE_LENGTH] if isinstance(label, str) and label else None,
            session_type=session_type_for_key(key),
            status="active",
            metadata=metadata,
            created_at=created,
            updated_at=_latest(updated, last, created) or created,
            ended_at=None,
            last_message_at=last,
            message_count=len(messages),
            token_count=sum(m.token_count for m in messages),
        )
        return Parsed(session, messages, source, warnings)


def _now() -> datetime:
    return datetime.now(UTC)


def _entry_time(entry: dict[str, Any]) -> datetime | None:
    try:
        return _optional(entry, "updatedAt", "index entry")
    except InvalidInput:
        return None


def _optional(record: dict[str, Any] | None, name: str, what: str) -> datetime | None:
    if record is None or record.get(name) is None:
        return None
    return parse_time(record[name], f"{what} {name}")


def _transcript_messages(
    session_id: str, records: list[dict[str, Any]], count: Count, fallback: datetime | None
) -> tuple[list[Message], dict[str, Any] | None, list[dict[str, Any]]]:
    """(messages, the session header line, events after the last message).

    A line without a timestamp gets the previous line's (order is by seq anyway), the first
    ones the header's, else ``fallback`` (the index entry's updatedAt), else now.
    """
    header: dict[str, Any] | None = None
    off_path = _off_path(records)
    messages: list[Message] = []
    events: list[dict[str, Any]] = []
    previous: datetime | None = None
    for number, record in enumerate(records, start=1):
        kind = record.get("type")
        if kind == "session" and header is None and not messages:
            header = record
            previous = _optional(record, "timestamp", "transcript header")
            continue
        message = record.get("message") if kind == "message" else None
        metadata: dict[str, Any] = {}
        if isinstance(message, dict) and (
            message.get("role") in _ROLES or message.get("role") in _TOOL_ROLES
        ):
            raw_role = message["role"]
            role = "tool" if raw_role in _TOOL_ROLES else _ROLES[raw_role]
            content, calls = _text_parts(message.get("content"))
            if calls:
                metadata["tool_calls"] = calls
            if role == "tool":
                for src, dst in (
                    ("toolCallId", "tool_call_id"),
                    ("toolName", "tool_name"),
                    ("isError", "is_error"),
                ):
                    if message.get(src) is not None:
                        metadata[dst] = message[src]
            model = message.get("model")
            stamp = record.get("timestamp", message.get("timestamp"))
        elif kind in _SUMMARY_TYPES and isinstance(record.get("summary"), str):
            role, content, model = "system", record["summary"], None
            metadata["openclaw_kind"] = kind
            stamp = record.get("timestamp")
        else:
            events.append(record)
            continue
        when = parse_time(stamp, f"line {number} timestamp") if stamp is not None else None
        when = when or previous or fallback or _now()
        previous = when
        metadata["openclaw"] = record
        if events:
            metadata["openclaw_events"] = events
            events = []
        if record.get("id") in off_path:
            metadata["openclaw_off_path"] = True
        messages.append(
            Message(
                session_id=session_id,
                seq=len(messages) + 1,
                role=role,
                content=content,
                agent_id=None,
                model=model if isinstance(model, str) and 0 < len(model) <= 128 else None,
                token_count=count(content),
                metadata=metadata,
                created_at=when,
            )
        )
    return messages, header, events


# ── aria-session ──────────────────────────────────────────────────────────────


def aria_current(directory: Path) -> str | None:
    """The database id of the session the ``current`` symlink points at, if any."""
    link = directory / "current"
    if not link.is_symlink() and not link.is_file():
        return None
    try:
        target = Path(os.readlink(link)) if link.is_symlink() else Path(link.read_text().strip())
    except OSError:
        return None
    name = target.name
    stem = name[: -len(".jsonl")] if name.endswith(".jsonl") else name
    return database_id(stem, "aria") if stem else None


class AriaSessionImport:
    """The sessions of an aria-session cache directory."""

    def __init__(self, directory: Path, *, agent: str = "main") -> None:
        self.directory = directory
        self.agent = agent

    def ids(self) -> list[str]:
        stems = {
            p.name.rsplit(".", 1)[0]
            for pattern in ("*.jsonl", "*.meta")
            for p in self.directory.glob(pattern)
            if p.is_file() and not p.is_symlink()
        }
        return sorted(stems)

    def total(self) -> int:
        return len(self.ids())

    def items(self, count: Count) -> Iterator[Item]:
        for aria_id in self.ids():
            source = str(self.directory / f"{aria_id}.jsonl")
            try:
                yield self._session(aria_id, count, source)
            except SessionkeeperError as exc:
                yield Failed(source, exc.message, aria_id)

    def _session(self, aria_id: str, count: Count, source: str) -> Parsed:
        db_id = database_id(aria_id, "aria")
        meta_path = self.directory / f"{aria_id}.meta"
        meta: dict[str, Any] | None = None
        warnings: list[str] = []
        if meta_path.is_file():
            try:
                loaded = json.loads(meta_path.read_text(encoding="utf-8"))
            except ValueError as exc:
                raise InvalidInput(f"{meta_path} is not valid JSON: {exc}") from exc
            if not isinstance(loaded, dict):
                raise InvalidInput(f"{meta_path} is not a JSON object")
            meta = loaded
        messages = self._messages(aria_id, db_id, count)
        if not (self.directory / f"{aria_id}.jsonl").is_file():
            warnings.append("no .jsonl file: imported without messages")
        created = _optional(meta, "created", "meta") or (
            messages[0].created_at if messages else None
        )
        if created is None:  # neither meta nor timestamps: the file's own time
            existing = meta_path if meta_path.is_file() else Path(source)
            created = datetime.fromtimestamp(existing.stat().st_mtime, UTC)
        last = messages[-1].created_at if messages else None
        metadata: dict[str, Any] = {"source": "aria-session", "aria_session_meta": meta}
        if db_id != aria_id:
            metadata["aria_cli_session_id"] = aria_id
        if meta is None:
            del metadata["aria_session_meta"]
        session = Session(
            session_id=db_id,
            agent_id=self.agent,
            title=None,
            session_type="chat",
            status="active",
            metadata=metadata,
            created_at=created,
            updated_at=_latest(_optional(meta, "modified", "meta"), last, created) or created,
            ended_at=None,
            last_message_at=last,
            message_count=len(messages),
            token_count=sum(m.token_count for m in messages),
        )
        return Parsed(session, messages, source, warnings)

    def _messages(self, aria_id: str, db_id: str, count: Count) -> list[Message]:
        path = self.directory / f"{aria_id}.jsonl"
        if not path.is_file():
            return []
        messages: list[Message] = []
        previous: datetime | None = None
        with path.open("r", encoding="utf-8", newline="\n") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError as exc:
                    raise InvalidInput(f"{path}: line {number} is not valid JSON: {exc}") from exc
                if not isinstance(record, dict):
                    raise InvalidInput(f"{path}: line {number} is not a JSON object")
                role, content = record.get("role"), record.get("content")
                if role not in ("user", "assistant", "system", "tool"):
                    raise InvalidInput(f"{path}: line {number} has an unknown role {role!r}")
                if not isinstance(content, str):
                    raise InvalidInput(f"{path}: line {number} has no string content")
                stamp = record.get("timestamp")
                when = parse_time(stamp, f"{path}: line {number} timestamp") if stamp else None
                when = when or previous or _now()
                previous = when
                model = record.get("model")
                extra = {
                    k: v
                    for k, v in record.items()
                    if k not in ("role", "content", "timestamp", "model")
                }
                messages.append(
                    Message(
                        session_id=db_id,
                        seq=len(messages) + 1,
                        role=role,
                        content=content,
                        agent_id=None,
                        model=model if isinstance(model, str) and model else None,
                        token_count=count(content),
                        metadata={"aria": extra} if extra else {},
                        created_at=when,
                    )
                )
        return messages

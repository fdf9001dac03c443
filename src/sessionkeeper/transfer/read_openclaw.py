"""Read an OpenClaw agents root (``<root>/<agent>/sessions/sessions.json`` + transcripts).

Every (agent, sessionId) becomes a ``Parsed`` session for ``Store.import_session``, losing
nothing: whatever has no column of its own goes into metadata.

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

The directory is read through :class:`~sessionkeeper.openclaw.directory.OpenClawStore`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sessionkeeper.errors import InvalidInput, SessionkeeperError
from sessionkeeper.models import MAX_TITLE_LENGTH, Message, Session
from sessionkeeper.openclaw.config import DEFAULT_MAIN_KEY
from sessionkeeper.openclaw.directory import OpenClawStore, session_type_for_key
from sessionkeeper.transfer.records import (
    Failed,
    Item,
    Parsed,
    Skipped,
    database_id,
    latest,
    now,
    optional_time,
    parse_time,
)

Count = Callable[[str], int]

_ROLES = {"user": "user", "assistant": "assistant", "system": "system"}
_TOOL_ROLES = ("toolResult", "tool")
_SUMMARY_TYPES = ("compaction", "branch_summary")


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
        # Reading only: no session is protected, and OpenClaw's config is not needed.
        self.fs = OpenClawStore(root, protected_ids=set(), main_key=DEFAULT_MAIN_KEY)
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
        started = optional_time(header, "timestamp", "transcript header")
        created = started or (messages[0].created_at if messages else None) or updated or now()
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
            updated_at=latest(updated, last, created) or created,
            ended_at=None,
            last_message_at=last,
            message_count=len(messages),
            token_count=sum(m.token_count for m in messages),
        )
        return Parsed(session, messages, source, warnings)


def _entry_time(entry: dict[str, Any]) -> datetime | None:
    try:
        return optional_time(entry, "updatedAt", "index entry")
    except InvalidInput:
        return None


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
            previous = optional_time(record, "timestamp", "transcript header")
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
        when = when or previous or fallback or now()
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

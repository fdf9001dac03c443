"""Read an aria-session cache directory (``~/.claude/cache/sessions``).

``<id>.jsonl`` lines ``{role, content, timestamp (epoch s), model}`` + ``<id>.meta`` ``{id,
created, modified, turn_count, token_count}``, and a ``current`` symlink: one ``Parsed``
session per id, the meta kept in ``metadata.aria_session_meta``, nothing lost.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sessionkeeper import inputs
from sessionkeeper.errors import InvalidInput, SessionkeeperError
from sessionkeeper.models import Message, Session
from sessionkeeper.transfer.records import (
    Failed,
    Item,
    Parsed,
    database_id,
    latest,
    now,
    optional_time,
    parse_time,
)

Count = Callable[[str], int]


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


def _read(path: Path) -> bytes:
    """A cache file's bytes (a FIFO or a device is refused, never opened)."""
    try:
        return inputs.read_regular(path)
    except OSError as exc:
        raise InvalidInput(f"{path} cannot be read ({exc.strerror or exc})") from exc


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
            loaded = inputs.loads(_read(meta_path), str(meta_path))
            if not isinstance(loaded, dict):
                raise InvalidInput(f"{meta_path} is not a JSON object")
            meta = loaded
        messages = self._messages(aria_id, db_id, count)
        if not (self.directory / f"{aria_id}.jsonl").is_file():
            warnings.append("no .jsonl file: imported without messages")
        created = optional_time(meta, "created", "meta") or (
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
            updated_at=latest(optional_time(meta, "modified", "meta"), last, created) or created,
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
        for number, line in enumerate(_read(path).split(b"\n"), start=1):
            if not line.strip():
                continue
            # not UTF-8 (byte and offset named), not JSON, nested too deeply
            record = inputs.loads(line, f"{path}: line {number}")
            if not isinstance(record, dict):
                raise InvalidInput(f"{path}: line {number} is not a JSON object")
            role, content = record.get("role"), record.get("content")
            if role not in ("user", "assistant", "system", "tool"):
                raise InvalidInput(f"{path}: line {number} has an unknown role {role!r}")
            if not isinstance(content, str):
                raise InvalidInput(f"{path}: line {number} has no string content")
            stamp = record.get("timestamp")
            when = parse_time(stamp, f"{path}: line {number} timestamp") if stamp else None
            when = when or previous or now()
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

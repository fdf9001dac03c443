"""Idempotency keys: a retried write returns the first write's result and stores nothing.

A caller names a write with a key (library ``idempotency_key=``, REST ``Idempotency-Key``);
the backend records the key in the SAME transaction (PostgreSQL: the same statement) as the
write, with a fingerprint of the request. So "committed, but the reply was lost" is safe:
the retry finds the key, and the Store answers what the first write stored.

- Scope: an append's key belongs to its session; a create's to its agent (there is no session
  yet). The same key in another scope is another key.
- Same key, same request: the first result (same session, same seqs), nothing written.
  Same key, another request: ``IdempotencyKeyReused`` (REST 422), nothing written.
- The fingerprint is a SHA-256 of the canonical request: what the caller sent, after
  validation, with JSON objects' keys sorted; values the store fills in (a timestamp left to
  the store, a generated session id) are not part of it, as a retry cannot repeat them.
- Keys are kept at least ``DEFAULT_TTL`` (24 h; the maintenance loop deletes older ones,
  ``SESSIONKEEPER_IDEMPOTENCY_TTL_HOURS``). A key is honoured until it is deleted.
- A key lives as long as what it made: deleting a message, clearing a session or deleting
  a session deletes the keys of what went (a later write with such a key is a new write).
  A create's key goes with its session; a key left by a session that went another way (a
  ghost purge) answers NotFound until the TTL deletes it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sessionkeeper.errors import IdempotencyKeyReused, InvalidInput

MAX_KEY_LENGTH = 255  # as Stripe's keys
DEFAULT_TTL = timedelta(hours=24)
# Visible ASCII and the space: what an HTTP header carries unambiguously (the IETF draft's
# key is a Structured Field string, printable ASCII).
_KEY_RE = re.compile(rf"[\x20-\x7e]{{1,{MAX_KEY_LENGTH}}}")

APPEND = "append"
CREATE = "create"


@dataclass(frozen=True, slots=True)
class Claim:
    """What a keyed write asks its backend to record with the write."""

    key: str
    fingerprint: str


@dataclass(frozen=True, slots=True)
class Recorded:
    """A write already made under a key: the backend's answer instead of writing again."""

    session_id: str
    fingerprint: str
    first_seq: int | None  # appends: the first seq the write got; creates: None
    count: int  # appends: how many messages it stored


def key(value: Any, field: str = "idempotency_key") -> str:
    """A key: 1–255 characters of printable ASCII (no control characters)."""
    if not isinstance(value, str) or _KEY_RE.fullmatch(value) is None:
        raise InvalidInput(
            f"{field} must be 1-{MAX_KEY_LENGTH} printable ASCII characters",
            field=field,
        )
    return value


def _stamp(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _digest(kind: str, body: Any) -> str:
    text = json.dumps([kind, body], sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def append_fingerprint(rows: Sequence[dict[str, Any]]) -> str:
    """The fingerprint of an append: its validated rows as the caller gave them (before the
    store fills in ``created_at``)."""
    body = [
        [
            r["role"],
            r["content"],
            r["agent_id"],
            r["model"],
            r["token_count"],
            None if r["metadata"] is None else dict(r["metadata"]),
            _stamp(r["created_at"]),
            None if r.get("usage") is None else r["usage"].to_dict(),
        ]
        for r in rows
    ]
    return _digest(APPEND, body)


def create_fingerprint(
    *,
    agent_id: str,
    title: str | None,
    session_type: str,
    metadata: dict[str, Any],
    session_id: str | None,
    user_id: str | None,
) -> str:
    """The fingerprint of a create: its validated fields (``session_id`` only when the caller
    chose it)."""
    return _digest(CREATE, [agent_id, title, session_type, metadata, session_id, user_id])


def check(recorded: Recorded, claim: Claim, what: str) -> Recorded:
    """``recorded`` if it was made by the same request as ``claim``; else the refusal."""
    if recorded.fingerprint != claim.fingerprint:
        raise IdempotencyKeyReused(
            f"idempotency key {claim.key!r} was already used for a different {what}; "
            "send a new key for a new request",
            field="idempotency_key",
        )
    return recorded

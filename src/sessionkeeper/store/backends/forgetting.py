"""Forgetting a user: what ``Store.forget_user`` asks of a backend, and the rules both keep.

A forget deletes every session of the user (of one agent, if given) with all its rows, the
user's ADK user state, and the API keys scoped to that user alone; keys scoped to several
users lose this one from their list. Then it records the forget in ``forgotten_users``: the
SHA-256 of the user id, the counts and the time, never content or the id itself.

How, on both databases:
- The user's sessions are found once (``user_id`` leads no index unless an agent is given,
  so one scan, not one per batch), then deleted by id in short transactions of at most
  BATCH_SESSIONS sessions and about BATCH_MESSAGES messages (``batches``), each re-checking
  the user in the DELETE, through the backend's ordinary delete path (SQLite: the foreign
  keys' cascade; PostgreSQL: ``delete_rows``). Each batch counts the rows it deletes, per
  kind, before deleting them, under the session rows' locks.
- The last transaction finds the user's sessions again and deletes any made meanwhile,
  then the user state, the keys and the record: when it commits, nothing of the user is
  left. Other sessions are not touched, and writers to them go on between batches.
- A writer appending to one of the user's sessions while it is forgotten either commits
  first (its message is deleted with the session) or finds the session gone (``NotFound``):
  every writer takes the session row's lock first and the DELETE takes it too, so nothing
  is added to a deleted session and no session comes back. A session created for the user
  after the forget's last transaction is a new session: the forget removes what exists when
  it ends.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from sessionkeeper.models import ForgetCounts

BATCH_SESSIONS = 500
BATCH_MESSAGES = 20_000


@dataclass(frozen=True, slots=True)
class ForgetRecord:
    """The ``forgotten_users`` row to write (its counts are the forget's own)."""

    forget_id: str
    user_hash: str
    forgotten_at: datetime


@dataclass(frozen=True, slots=True)
class ForgetPlan:
    user_id: str
    agent_id: str | None  # None: every agent
    # Whether the user's ADK user state in an app goes (an app of the agent; every app
    # without one): ADK apps map to agents by a rule of the ADK part (``store/adk.py``).
    adk_app: Callable[[str], bool]
    record: ForgetRecord | None  # None: a dry run, which counts and writes nothing


@dataclass(frozen=True, slots=True)
class Forgotten:
    """A backend's answer: the counts, and on a SQLite file whether the WAL was emptied."""

    counts: ForgetCounts
    wal_truncated: bool | None = None


def batches(found: Sequence[tuple[str, int]]) -> Iterator[list[str]]:
    """The ids of ``found`` ((session id, message count) rows) in batches of at most
    BATCH_SESSIONS sessions and BATCH_MESSAGES messages; a larger session is a batch alone."""
    batch: list[str] = []
    messages = 0
    for session_id, count in found:
        if batch and (len(batch) >= BATCH_SESSIONS or messages + count > BATCH_MESSAGES):
            yield batch
            batch, messages = [], 0
        batch.append(session_id)
        messages += count
    if batch:
        yield batch


def user_hash(user_id: str) -> str:
    """What ``forgotten_users`` keeps of the user id: its SHA-256, hex. Unsalted, so that
    an operator can answer "was this user forgotten?" by hashing the id they are asked
    about (and so can anyone who guesses the id: it is a pseudonym, not an anonymisation)."""
    return hashlib.sha256(user_id.encode()).hexdigest()

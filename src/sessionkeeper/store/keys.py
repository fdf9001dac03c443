"""API keys: created once (the secret is shown then and never again), stored hashed.

A key reads ``sk_<key_id>_<secret>``. ``key_id`` is public (it names the key in listings and
logs); ``secret`` is 32 random bytes. Verification looks the row up by key_id and compares
SHA-256 digests in constant time. A key is either admin (every agent, maintenance endpoints)
or scoped to a list of agent ids, and then perhaps to some users of those agents
(``user_ids``: it sees only their sessions). A verified key's use is recorded in
``last_used_at`` (at most once a minute per key and process; see ``TOUCH_INTERVAL``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta

from sessionkeeper.errors import InvalidInput, NotFound, Unauthorized
from sessionkeeper.models import ApiKey
from sessionkeeper.store import validate
from sessionkeeper.store.backends.base import Backend, KeyRow

__all__ = ["PREFIX", "ApiKey", "ApiKeys"]

logger = logging.getLogger(__name__)

PREFIX = "sk_"
# ``last_used_at`` is written at most this often per key and process (a busy API would
# otherwise write on every request), and not when the stored value is that recent already.
TOUCH_INTERVAL = 60.0


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _users(user_ids: Sequence[str] | None, admin: bool) -> list[str] | None:
    """A key's user scope: None (every user), or the users it names (at least one)."""
    if user_ids is None:
        return None
    if admin:
        raise InvalidInput(
            "an admin key sees every user: scope a key to users with --agent and --user",
            field="user_ids",
        )
    if isinstance(user_ids, str):
        raise InvalidInput("user_ids must be a list of user ids, not one id", field="user_ids")
    users = sorted({validate.label(u, "user_ids") for u in user_ids})
    if not users:
        raise InvalidInput(
            "user_ids must name at least one user (leave it out for every user)",
            field="user_ids",
        )
    return users


def _public(row: KeyRow) -> ApiKey:
    """The key without its digest."""
    return ApiKey(**{f.name: getattr(row, f.name) for f in fields(ApiKey)})


def check_new_key(*, agent_ids: Sequence[str], admin: bool, name: str | None) -> list[str]:
    """The agents of a new key, once its arguments are checked (nothing needs the database)."""
    if admin == bool(agent_ids):
        raise InvalidInput("a key is either --admin or scoped to one or more --agent ids")
    agents = sorted({validate.label(a, "agent_id") for a in agent_ids})
    if name is not None:
        validate.text(name, "name")
        if len(name) > 200:
            raise InvalidInput("key name is longer than 200 characters", field="name")
    return agents


class ApiKeys:
    """API-key table access over the store's backend (``store.keys``)."""

    def __init__(self, backend: Backend) -> None:
        self._db = backend
        self._touched: dict[str, float] = {}  # key_id → time.monotonic() of the last write

    async def create(
        self,
        *,
        agent_ids: Sequence[str] = (),
        admin: bool = False,
        name: str | None = None,
        user_ids: Sequence[str] | None = None,
    ) -> tuple[ApiKey, str]:
        """Make a key; returns it and the full secret token (shown once, never stored).

        ``user_ids`` narrows a key scoped to agents to those users' sessions of its agents
        (None: every user)."""
        agents = check_new_key(agent_ids=agent_ids, admin=admin, name=name)
        users = _users(user_ids, admin)
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        row = KeyRow(
            key_id=key_id,
            name=name,
            admin=admin,
            agent_ids=agents,
            created_at=now,
            revoked_at=None,
            last_used_at=None,
            secret_hash=_digest(secret),
            user_ids=users,
        )
        await self._db.insert_key(row)
        return _public(row), f"{PREFIX}{key_id}_{secret}"

    async def list(self, *, include_revoked: bool = False) -> list[ApiKey]:
        return [_public(r) for r in await self._db.list_keys(include_revoked)]

    async def any_active(self) -> bool:
        return await self._db.any_active_key()

    async def revoke(self, key_id: str) -> ApiKey:
        row = await self._db.revoke_key(key_id, datetime.now(UTC))
        if row is None:
            raise NotFound(f"no active API key {key_id!r}")
        return _public(row)

    async def verify(self, token: str) -> ApiKey:
        """The key a bearer token belongs to; Unauthorized if unknown, malformed or revoked."""
        if not token.startswith(PREFIX) or token.count("_") < 2:
            raise Unauthorized("malformed API key")
        key_id, _, secret = token[len(PREFIX) :].partition("_")
        if not key_id.isalnum() or len(key_id) > 32:
            raise Unauthorized("unknown API key")
        row = await self._db.get_key(key_id)
        if row is None or not hmac.compare_digest(row.secret_hash, _digest(secret)):
            raise Unauthorized("unknown API key")
        if row.revoked_at is not None:
            raise Unauthorized("API key has been revoked")
        key = _public(row)
        now = datetime.now(UTC)
        if await self._touch(key, now):
            key = replace(key, last_used_at=now)
        return key

    async def _touch(self, key: ApiKey, now: datetime) -> bool:
        """Record the use of ``key`` (throttled, see ``TOUCH_INTERVAL``); whether it was
        written. A failed write is logged, never raised: the key was valid all the same."""
        if key.last_used_at is not None and now - key.last_used_at < timedelta(
            seconds=TOUCH_INTERVAL
        ):
            return False
        tick = time.monotonic()
        if tick - self._touched.get(key.key_id, float("-inf")) < TOUCH_INTERVAL:
            return False
        self._touched[key.key_id] = tick
        try:
            await self._db.touch_key(key.key_id, now)
        except Exception as exc:  # the request goes on without it
            logger.warning("could not record the use of API key %s: %s", key.key_id, exc)
            return False
        return True

"""API keys: created once (the secret is shown then and never again), stored hashed.

A key reads ``sk_<key_id>_<secret>``. ``key_id`` is public (it names the key in listings and
logs); ``secret`` is 32 random bytes. Verification looks the row up by key_id and compares
SHA-256 digests in constant time. A key is either admin (every agent, maintenance endpoints)
or scoped to a list of agent ids.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sessionkeeper.errors import InvalidInput, NotFound, Unauthorized
from sessionkeeper.store import validate
from sessionkeeper.store.backends.base import Backend, KeyRow

PREFIX = "sk_"


@dataclass(frozen=True, slots=True)
class ApiKey:
    key_id: str
    name: str | None
    admin: bool
    agent_ids: list[str]
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    def allows(self, agent_id: str) -> bool:
        return self.admin or agent_id in self.agent_ids

    @property
    def scope(self) -> list[str] | None:
        """Agent ids this key may see, or None for all (admin)."""
        return None if self.admin else list(self.agent_ids)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "name": self.name,
            "admin": self.admin,
            "agent_ids": list(self.agent_ids),
            "created_at": self.created_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
        }


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _public(row: KeyRow) -> ApiKey:
    return ApiKey(
        key_id=row.key_id,
        name=row.name,
        admin=row.admin,
        agent_ids=list(row.agent_ids),
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


class ApiKeys:
    """API-key table access over the store's backend (``store.keys``)."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    async def create(
        self, *, agent_ids: Sequence[str] = (), admin: bool = False, name: str | None = None
    ) -> tuple[ApiKey, str]:
        """Make a key; returns it and the full secret token (shown once, never stored)."""
        if admin == bool(agent_ids):
            raise InvalidInput("a key is either --admin or scoped to one or more --agent ids")
        agents = sorted({validate.label(a, "agent_id") for a in agent_ids})
        if name is not None:
            validate.text(name, "name")
            if len(name) > 200:
                raise InvalidInput("key name is longer than 200 characters", field="name")
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        row = KeyRow(key_id, name, _digest(secret), admin, agents, now, None, None)
        await self._backend.insert_key(row)
        return _public(row), f"{PREFIX}{key_id}_{secret}"

    async def list(self, *, include_revoked: bool = False) -> list[ApiKey]:
        return [_public(r) for r in await self._backend.list_keys(include_revoked)]

    async def any_active(self) -> bool:
        return await self._backend.any_active_key()

    async def revoke(self, key_id: str) -> ApiKey:
        row = await self._backend.revoke_key(key_id, datetime.now(UTC))
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
        row = await self._backend.get_key(key_id)
        if row is None or not hmac.compare_digest(row.secret_hash, _digest(secret)):
            raise Unauthorized("unknown API key")
        if row.revoked_at is not None:
            raise Unauthorized("API key has been revoked")
        return _public(row)

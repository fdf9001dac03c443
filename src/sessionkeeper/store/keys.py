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

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from sessionkeeper.errors import InvalidInput, NotFound, Unauthorized
from sessionkeeper.store import validate
from sessionkeeper.store.schema import api_keys

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


def _row_to_key(row: Any) -> ApiKey:
    m = row._mapping
    return ApiKey(
        key_id=m["key_id"],
        name=m["name"],
        admin=bool(m["admin"]),
        agent_ids=list(m["agent_ids"] or []),
        created_at=m["created_at"],
        revoked_at=m["revoked_at"],
        last_used_at=m["last_used_at"],
    )


class ApiKeys:
    """API-key table access, over the Store's engine (``ApiKeys(store.engine)``)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create(
        self, *, agent_ids: Sequence[str] = (), admin: bool = False, name: str | None = None
    ) -> tuple[ApiKey, str]:
        """Make a key; returns it and the full secret token (shown once, never stored)."""
        if admin == bool(agent_ids):
            raise InvalidInput("a key is either --admin or scoped to one or more --agent ids")
        agents = sorted({validate.label(a, "agent_id") for a in agent_ids})
        if name is not None and len(name) > 200:
            raise InvalidInput("key name is longer than 200 characters")
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(api_keys).values(
                    key_id=key_id,
                    name=name,
                    secret_hash=_digest(secret),
                    admin=admin,
                    agent_ids=agents or None,
                    created_at=now,
                )
            )
        key = ApiKey(key_id, name, admin, agents, now, None, None)
        return key, f"{PREFIX}{key_id}_{secret}"

    async def list(self, *, include_revoked: bool = False) -> list[ApiKey]:
        stmt = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.key_id)
        if not include_revoked:
            stmt = stmt.where(api_keys.c.revoked_at.is_(None))
        async with self.engine.connect() as conn:
            return [_row_to_key(r) for r in await conn.execute(stmt)]

    async def any_active(self) -> bool:
        stmt = select(api_keys.c.key_id).where(api_keys.c.revoked_at.is_(None)).limit(1)
        async with self.engine.connect() as conn:
            return (await conn.execute(stmt)).first() is not None

    async def revoke(self, key_id: str) -> ApiKey:
        stmt = (
            update(api_keys)
            .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC))
            .returning(*api_keys.c)
        )
        async with self.engine.begin() as conn:
            row = (await conn.execute(stmt)).first()
        if row is None:
            raise NotFound(f"no active API key {key_id!r}")
        return _row_to_key(row)

    async def verify(self, token: str) -> ApiKey:
        """The key a bearer token belongs to; Unauthorized if unknown, malformed or revoked."""
        if not token.startswith(PREFIX) or token.count("_") < 2:
            raise Unauthorized("malformed API key")
        key_id, _, secret = token[len(PREFIX) :].partition("_")
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(api_keys).where(api_keys.c.key_id == key_id))).first()
        if row is None or not hmac.compare_digest(row.secret_hash, _digest(secret)):
            raise Unauthorized("unknown API key")
        if row.revoked_at is not None:
            raise Unauthorized("API key has been revoked")
        return _row_to_key(row)

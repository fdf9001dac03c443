"""API keys on SQLite and PostgreSQL: hashed at rest, scoped, revocable."""

from __future__ import annotations

import pytest

import rawdb
from sessionkeeper.errors import InvalidInput, NotFound, Unauthorized
from sessionkeeper.store.core import Store


async def test_create_verify_revoke(store: Store) -> None:
    keys = store.keys
    assert not await keys.any_active()
    scoped, token = await keys.create(agent_ids=["b", "a", "a"], name="bot")
    admin, admin_token = await keys.create(admin=True)
    assert scoped.agent_ids == ["a", "b"] and scoped.scope == ["a", "b"]
    assert admin.scope is None and admin.allows("anything")
    assert token.startswith(f"sk_{scoped.key_id}_")
    assert (await keys.verify(token)).key_id == scoped.key_id
    assert (await keys.verify(admin_token)).admin

    stored = await rawdb.fetch(store, "SELECT * FROM api_keys")
    assert len(stored) == 2
    secret = token.split("_", 2)[2]
    assert not any(secret in str(v) for row in stored for v in row)  # never in plain text

    for bad in ("", "nope", token + "x", f"sk_{scoped.key_id}_wrong", "sk_unknown_x"):
        with pytest.raises(Unauthorized):
            await keys.verify(bad)
    await keys.revoke(scoped.key_id)
    with pytest.raises(Unauthorized, match="revoked"):
        await keys.verify(token)
    with pytest.raises(NotFound):
        await keys.revoke(scoped.key_id)
    assert [k.key_id for k in await keys.list()] == [admin.key_id]
    assert len(await keys.list(include_revoked=True)) == 2


async def test_key_must_be_admin_or_scoped(store: Store) -> None:
    keys = store.keys
    with pytest.raises(InvalidInput):
        await keys.create()
    with pytest.raises(InvalidInput):
        await keys.create(admin=True, agent_ids=["a"])
    with pytest.raises(InvalidInput):
        await keys.create(agent_ids=["bad agent"])
    assert await keys.list(include_revoked=True) == []

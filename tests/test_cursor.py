"""Crafted cursors: every part checked as input is, refused with 422-style InvalidInput
(field ``cursor``) on every database, never a database error."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from sessionkeeper.errors import InvalidInput
from sessionkeeper.store.core import Store


def crafted(*parts: Any) -> str:
    raw = json.dumps(list(parts)).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


T, U = ("title", "asc"), ("updated_at", "desc")
BAD = [
    (U, "not base64 at all!"),
    (T, crafted("title", "asc", ["a", "list"], "s1")),
    (T, crafted("title", "asc", {"a": 1}, "s1")),
    (T, crafted("title", "asc", "a\u0000b", "s1")),
    (T, crafted("title", "asc", "ok", 5)),
    (T, crafted("title", "asc", "ok", "../..")),
    (U, crafted("updated_at", "desc", "0001-01-01T00:00:00+05:00", "s1")),
    (U, crafted("updated_at", "desc", "2026-01-01T00:00:00", "s1")),  # naive
    (U, crafted("updated_at", "desc", 12345, "s1")),
    (U, crafted("updated_at", "desc", "yesterday", "s1")),
    (U, crafted("updated_at", "desc", "2026-01-01T00:00:00+00:00")),
    (U, crafted("created_at", "asc", "2026-01-01T00:00:00+00:00", "s1")),  # another sort
    # nested past what the JSON parser follows (a RecursionError, reported as a bug before)
    (U, base64.urlsafe_b64encode(b"[" * 5000 + b"]" * 5000).decode()),
]


@pytest.mark.parametrize(("sort", "cursor"), BAD)
async def test_crafted_cursor_is_refused(store: Store, sort: tuple[str, str], cursor: str) -> None:
    await store.create_session(session_id="s1", title="t")
    with pytest.raises(InvalidInput) as caught:
        await store.list_sessions(sort=sort[0], order=sort[1], cursor=cursor)
    assert caught.value.details["field"] == "cursor"
    assert "cursor" in caught.value.message


async def test_real_cursors_page_through(store: Store) -> None:
    for i in range(5):
        await store.create_session(session_id=f"s{i}", title=f"t{i % 2}")
    for sort, order in (("title", "asc"), ("updated_at", "desc")):
        seen: list[str] = []
        cursor = None
        while True:
            page = await store.list_sessions(sort=sort, order=order, limit=2, cursor=cursor)
            seen += [s.session_id for s in page.items]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert sorted(seen) == [f"s{i}" for i in range(5)]


async def test_an_empty_cursor_is_the_first_page(store: Store) -> None:
    """``cursor=""`` is no cursor (what the REST API's ``cursor=`` sends), with offset too."""
    for i in range(3):
        await store.create_session(session_id=f"s{i}", title=f"t{i}")
    first = await store.list_sessions(sort="title", order="asc", limit=2)
    empty = await store.list_sessions(sort="title", order="asc", limit=2, cursor="")
    assert [s.session_id for s in empty.items] == [s.session_id for s in first.items]
    assert empty.next_cursor == first.next_cursor is not None
    later = await store.list_sessions(sort="title", order="asc", limit=2, offset=2, cursor="")
    assert [s.session_id for s in later.items] == ["s2"]

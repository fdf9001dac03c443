"""Search gives the same hits and snippets for the same data on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from sessionkeeper.store import search
from sessionkeeper.store.core import Store

TEXTS = [
    "Now multiply by 3",
    "[see the docs](http://example.org/page) and multiplying (twice)",
    " ".join(f"w{i}" for i in range(40))
    + " the quick brown fox jumps "
    + " ".join(f"z{i}" for i in range(40)),
    "nothing to see here",
]
QUERIES = ["multiply", '"quick brown"', "fox", "docs", "jumps"]


class _Words:
    """``X * n``: n words "x" separated by spaces."""

    def __mul__(self, n: int) -> str:
        return " ".join(["x"] * n)


X = _Words()


async def _snippets(url: str) -> dict[str, list[tuple[int, str]]]:
    store = await Store.open(url)
    try:
        session = await store.create_session(session_id="parity")
        for text in TEXTS:
            await store.add_message(session.session_id, "user", text)
        return {
            q: sorted((h.seq, h.snippet) for h in await store.search_messages(q)) for q in QUERIES
        }
    finally:
        await store.close()


async def _empty_schema(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url, timeout=5)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    finally:
        await conn.close()


def test_same_hits_and_snippets_on_both_databases(pg_database_url: str) -> None:
    asyncio.run(_empty_schema(pg_database_url))
    on_sqlite = asyncio.run(_snippets("sqlite://"))
    on_pg = asyncio.run(_snippets(pg_database_url))
    assert on_sqlite == on_pg
    assert on_sqlite["multiply"] == [
        (1, "Now <mark>multiply</mark> by 3"),
        (2, "[see the docs](http://example.org/page) and <mark>multiplying</mark> (twice)"),
    ]
    assert on_sqlite['"quick brown"'][0][1].startswith("… w33")
    assert "the <mark>quick brown</mark> fox" in on_sqlite['"quick brown"'][0][1]


@pytest.mark.parametrize(
    ("marked", "expected"),
    [
        ("a <mark>b</mark> c", "a <mark>b</mark> c"),
        ("<mark>a</mark> <mark>b</mark>", "<mark>a b</mark>"),
        (" ".join(["x"] * 30) + " <mark>y</mark>", "… " + " ".join(["x"] * 23) + " <mark>y</mark>"),
        (
            "<mark>" + " ".join(["x"] * 30) + "</mark>",
            "<mark>" + " ".join(["x"] * 24) + "</mark> …",
        ),
    ],
)
def test_snippet_window(marked: str, expected: str) -> None:
    assert search.snippet(marked) == expected

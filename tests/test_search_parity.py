"""Search gives the same hits and snippets for the same data on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from sessionkeeper.errors import InvalidInput
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
    ("content", "wanted", "expected"),
    [
        ("a b c", {"b"}, "a <mark>b</mark> c"),
        ("a b", {"a", "b"}, "<mark>a b</mark>"),
        (X * 30 + " y", {"y"}, "… " + X * 23 + " <mark>y</mark>"),
        (X * 30, {"x"}, "<mark>" + X * 24 + "</mark> …"),
        # Marks join across the punctuation inside a number, an address, a URL.
        ("version 3.5 is out", {"3", "5"}, "version <mark>3.5</mark> is out"),
        ("it fell -42 degrees", {"42"}, "it fell -<mark>42</mark> degrees"),
        (
            "mail bob@example.org now",
            {"bob", "exampl", "org"},
            "mail <mark>bob@example.org</mark> now",
        ),
        (
            "see https://example.org/a",
            {"http", "exampl", "org", "a"},
            "see <mark>https://example.org/a</mark>",
        ),
        # Marked as found: accents, case and stems folded; the text itself is kept.
        ("Un CAFÉ crème", {"cafe"}, "Un <mark>CAFÉ</mark> crème"),
        ("日本語です", {"本", "語"}, "日<mark>本語</mark>です"),
    ],
)
def test_snippet_marks_and_window(content: str, wanted: set[str], expected: str) -> None:
    assert search.snippet(content, frozenset(wanted)) == expected


# Words a database's own query language or stop-word list would treat specially are words
# here, on both databases: the same hits for every query.
WORD_TEXTS = [
    "The cat and the hat",
    "To be or not to be",
    "What's up? Version 3.5 is out",
    "snake_case and kebab-case names",
    "mail bob@example.org or visit example.org/docs",
    "-x flag and * wildcard",
    "generously multiplying",
]
WORD_QUERIES = [
    "the",
    "and",
    "AND",
    "or",
    "not",
    "to be",
    '"or not"',
    "what's",
    "3.5",
    "snake_case",
    "kebab",
    "example",
    "docs",
    "bob",
    "-x",
    "*",
    "generous",
    "multiplied",
    "cat -hat",
]


async def _hits(url: str) -> dict[str, list[int]]:
    store = await Store.open(url)
    try:
        session = await store.create_session(session_id="words")
        for text in WORD_TEXTS:
            await store.add_message(session.session_id, "user", text)
        found: dict[str, list[int]] = {}
        for q in WORD_QUERIES:
            try:
                found[q] = sorted(h.seq for h in await store.search_messages(q))
            except InvalidInput:
                found[q] = [-1]
            listed = await store.list_sessions(search=q) if found[q] != [-1] else None
            if listed is not None:
                assert [s.session_id for s in listed.items] == (["words"] if found[q] else [])
        return found
    finally:
        await store.close()


def test_same_hits_for_every_word_on_both_databases(pg_database_url: str) -> None:
    asyncio.run(_empty_schema(pg_database_url))
    on_sqlite = asyncio.run(_hits("sqlite://"))
    on_pg = asyncio.run(_hits(pg_database_url))
    assert on_sqlite == on_pg
    assert on_sqlite["the"] == [1]
    assert on_sqlite["AND"] == on_sqlite["and"] == [1, 4, 6]
    assert on_sqlite["or"] == [2, 5]
    assert on_sqlite['"or not"'] == [2]
    assert on_sqlite["what's"] == [3]
    assert on_sqlite["3.5"] == [3]
    assert on_sqlite["snake_case"] == [4]
    assert on_sqlite["example"] == [5]
    assert on_sqlite["-x"] == [6]
    assert on_sqlite["*"] == [-1]  # no words: refused on both
    assert on_sqlite["generous"] == on_sqlite["multiplied"] == [7]
    assert on_sqlite["cat -hat"] == [1]  # "-" is not an exclusion


async def _accents(url: str) -> list[int]:
    store = await Store.open(url)
    try:
        await store.create_session(session_id="accents")
        await store.add_message("accents", "user", "Un café au lait, s'il vous plaît")
        await store.add_message("accents", "user", "a plain cafe")
        return sorted(h.seq for h in await store.search_messages("cafe"))
    finally:
        await store.close()


def test_accents_fold_on_both_databases(pg_database_url: str) -> None:
    asyncio.run(_empty_schema(pg_database_url))
    assert asyncio.run(_accents("sqlite://")) == asyncio.run(_accents(pg_database_url)) == [1, 2]


async def _unaccent_elsewhere(url: str) -> None:
    """``unaccent`` installed in a schema that is not on the store's search_path."""
    import asyncpg

    conn = await asyncpg.connect(url, timeout=5)
    try:
        await conn.execute(
            "DROP SCHEMA public CASCADE; CREATE SCHEMA public; "
            "DROP EXTENSION IF EXISTS unaccent CASCADE; "
            "CREATE SCHEMA IF NOT EXISTS sk_ext; CREATE EXTENSION unaccent SCHEMA sk_ext;"
        )
    finally:
        await conn.close()


def test_accents_fold_with_unaccent_in_another_schema(pg_database_url: str) -> None:
    asyncio.run(_unaccent_elsewhere(pg_database_url))
    assert asyncio.run(_accents(pg_database_url)) == [1, 2]


async def test_index_built_on_upgrade_and_when_the_analyser_changes(file_db_url: str) -> None:
    """Messages written before revision 0008 are found after the upgrade; an index built by
    another analyser (recorded in ``search_index``) is built again when a store opens."""
    from datetime import UTC, datetime

    import rawdb
    from sessionkeeper.store.backends import open_backend
    from sessionkeeper.store.terms import ANALYSER
    from sessionkeeper.store.url import parse

    assert await Store.upgrade(file_db_url, "0007") == (None, "0007")
    backend = await open_backend(parse(file_db_url))
    try:
        now = datetime.now(UTC)
        at = rawdb.when(backend, now)
        await rawdb.execute(
            backend,
            "INSERT INTO sessions (session_id, created_at, updated_at, message_count, last_seq) "
            "VALUES ('old', ?, ?, 1, 1)",
            at,
            at,
        )
        await rawdb.execute(
            backend,
            "INSERT INTO messages (session_id, seq, role, content, created_at) "
            "VALUES ('old', 1, 'user', 'Crème brûlée in ŁÓDŹ', ?)",
            at,
        )
    finally:
        await backend.close()
    await Store.upgrade(file_db_url)

    async def found() -> list[tuple[str, int]]:
        async with await Store.open(file_db_url) as store:
            assert await rawdb.fetch(store, "SELECT analyser FROM search_index") == [(ANALYSER,)]
            return [(h.session_id, h.seq) for h in await store.search_messages("lodz creme")]

    assert await found() == [("old", 1)]
    async with await Store.open(file_db_url) as store:
        await rawdb.execute(store, "UPDATE search_index SET analyser = 'another'")
        if store.dialect == "sqlite":
            await rawdb.execute(
                store, "INSERT INTO messages_fts(messages_fts) VALUES ('delete-all')"
            )
        else:
            await rawdb.execute(store, "UPDATE messages SET tsv = NULL")
        assert await store.search_messages("lodz") == []
    assert await found() == [("old", 1)]

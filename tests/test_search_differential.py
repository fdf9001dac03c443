"""The same corpus on SQLite (file and memory) and PostgreSQL: the same hits and snippets for
every query, across scripts and symbols (README, "Search"; store/terms.py is the rule)."""

from __future__ import annotations

import asyncio
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from sessionkeeper.errors import InvalidInput
from sessionkeeper.store.core import Store


def nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


# seq = position in this list + 1
CORPUS = [
    "Un café au lait, s'il vous plaît",  # 1
    nfd("Crème brûlée for dessert"),  # 2: decomposed (NFD) text
    "Die Straße ist lang",  # 3
    "STRASSE in capitals",  # 4
    "Łódź is a city in Poland",  # 5
    "the ﬁle and the ﬂow",  # 6: ligatures
    "ＦＵＬＬＷＩＤＴＨ text and digits １２３",  # 7
    "Chapter Ⅻ of the book",  # 8: a Roman numeral character
    "Add ½ cup of sugar",  # 9
    "ΟΔΥΣΣΕΥΣ and the sea",  # 10: capital sigma at the end
    "Οδυσσεύς came home",  # 11: final sigma, tonos
    "İstanbul by night",  # 12
    "नमस्ते दुनिया",  # 13: Devanagari
    "বাংলা ভাষা",  # 14: Bengali
    "ਪੰਜਾਬੀ ਬੋਲੀ",  # 15: Gurmukhi
    "สวัสดี ครับ",  # 16: Thai
    "தமிழ் மொழி",  # 17: Tamil
    "مَرْحَبًا بالعالم",  # 18: Arabic with harakat
    "שָׁלוֹם עוֹלָם",  # 19: Hebrew with niqqud
    "Привет, мир! Ёлка",  # 20
    "日本語のテキストです",  # 21
    "中文搜索测试",  # 22
    "한국어 검색 테스트",  # 23
    "Version 3.5 released; it was -42 degrees",  # 24
    "mail bob@example.org or visit https://example.org/docs/page?id=7",  # 25
    "snake_case and kebab-case names",  # 26
    "The cat and the hat",  # 27
    "To be or not to be",  # 28
    "running runners generously",  # 29
    "naïve coöperation façade",  # 30
    "Ærøskøbing æble œuvre",  # 31
    "Þingvellir in Iceland",  # 32
    "ŞİŞLİ and Çağ",  # 33
    "Việt Nam, tiếng Việt",  # 34
    "party 🎉 time",  # 35
    "x² + y² = z²",  # 36
    "C++ and C# and F#",  # 37
    "price $100.50 or €99",  # 38
    'a "quoted phrase" inside',  # 39
    "tab\tseparated\nnew line",  # 40
    "the oﬃce ﬀ",  # 41: ffi and ff ligatures
    "Ⅳ and Ⅸ",  # 42
    "ⓐⓑⓒ circled",  # 43
    "dotless ı here",  # 44
    "Ångström unit",  # 45
    "résumé and resume",  # 46
    "co-operate or cooperate",  # 47
    "ﾃｽﾄ halfwidth katakana",  # 48
    "αβγ letters",  # 49
    "ΑΒΓ capitals",  # 50
]

QUERIES = [
    # Latin with accents, NFC and NFD, both ways
    "cafe", "café", "CAFÉ", nfd("café"), "creme", "brulee", "brûlée", nfd("brûlée"),
    "naive", "naïve", "cooperation", "coöperation", "facade", "resume", "résumé",
    "angstrom", "ångström", "viet", "tieng", "tiếng", "sisli", "şişli", "cag",
    # letters folded without a mark, ß, dotless and dotted i
    "strasse", "straße", "STRASSE", "lodz", "łódź", "aeroskobing", "aeble", "oeuvre",
    "thingvellir", "istanbul", "İstanbul", "ISTANBUL", "dotless", "ı", "i",
    # ligatures, fullwidth, halfwidth, circled, Roman numerals, fractions, superscripts
    "file", "ﬁle", "flow", "office", "oﬃce", "ff", "fullwidth", "ＦＵＬＬＷＩＤＴＨ", "123",
    "１２３", "xii", "Ⅻ", "chapter xii", "iv", "ix", "Ⅸ", "abc", "ⓐⓑⓒ", "テスト", "ﾃｽﾄ", "½",
    "1", "2", "cup", "x2", "z²",
    # Greek: final sigma, accents
    "οδυσσευς", "ΟΔΥΣΣΕΥΣ", "Οδυσσεύς", "οδυσσεύσ", "αβγ", "ΑΒΓ",
    # Cyrillic
    "привет", "Привет", "мир", "ёлка", "елка",
    # scripts whose marks belong to their words
    "नमस्ते", "दुनिया", "नमस्ते दुनिया", '"नमस्ते दुनिया"', "বাংলা", "ভাষা", "ਪੰਜਾਬੀ",
    "สวัสดี", "ครับ", "தமிழ்", "மொழி", "مَرْحَبًا", "مرحبا", "بالعالم", "שָׁלוֹם", "שלום",
    "עולם",
    # CJK
    "日本", "日本語", "テキスト", "中文", "搜索", "测试", "文搜", "한국어", "검색",
    # numbers, e-mail, URLs, symbols
    "3.5", "3", "5", "-42", "42", "bob@example.org", "example.org", "example",
    "https://example.org/docs/page?id=7", "docs", "id=7", "100.50", "$100.50", "€99", "99",
    "c++", "c#", "f", "🎉", "party 🎉", "\u0640", "\ufe70",
    # words, phrases, stems, operators as words
    "snake_case", "snake", "kebab-case", "kebab", "the", "and", "cat hat", '"the hat"',
    '"hat the"', "or", "not", '"or not"', "run", "running", "runner", "generous",
    '"quoted phrase"', "phrase quoted", "separated new", "co-operate", "cooperate",
]  # fmt: skip

# What the rule says some of them find (the same on every database, checked below).
EXPECTED = {
    "cafe": [1],
    nfd("café"): [1],
    "brulee": [2],
    "brûlée": [2],
    "strasse": [3, 4],
    "straße": [3, 4],
    "lodz": [5],
    "file": [6],
    "fullwidth": [7],
    "123": [7],
    "xii": [8],
    "½": [9],
    "οδυσσευς": [10, 11],
    "istanbul": [12],
    "नमस्ते": [13],
    "दुनिया": [13],
    "বাংলা": [14],
    "ਪੰਜਾਬੀ": [15],
    "สวัสดี": [16],
    "தமிழ்": [17],
    "مَرْحَبًا": [18],
    "مرحبا": [18],
    "שָׁלוֹם": [19],
    "שלום": [19],
    "елка": [20],
    "日本": [21],
    "文搜": [22],
    "3.5": [24],
    "-42": [24],
    "bob@example.org": [25],
    "https://example.org/docs/page?id=7": [25],
    "aeroskobing": [31],
    "office": [41],
    "ix": [42],
    "abc": [43],
    "テスト": [48],  # halfwidth katakana folded (23 is Korean)
    "ı": [5, 44],  # ı → i, and Porter stems "is" to "i"
    "🎉": [-1],  # no words: refused on both
    "\u0640": [],  # a letter that folds away (Arabic tatweel): accepted, finds nothing
    "run": [29],
    '"hat the"': [],
}


async def _search(url: str, *, indexed: bool = True) -> dict[str, list[tuple[int, str]]]:
    store = await Store.open(url)
    if not indexed:
        # SQLite without its batches: every message stays noted, as when the store cannot
        # index (read-only, another process's write lock), so the terms are matched in SQL.
        backend: Any = store._backend
        backend._writer._idle_work = None
        backend._index_soon = lambda: None

        async def cannot() -> bool:  # as when another process holds the write lock
            return False

        backend._index_now = cannot
    try:
        session = await store.create_session(session_id="diff")
        for text in CORPUS:
            await store.add_message(session.session_id, "user", text)
        found: dict[str, list[tuple[int, str]]] = {}
        for q in QUERIES:
            try:
                hits = await store.search_messages(q, limit=100)
            except InvalidInput:
                found[q] = [(-1, "")]
                continue
            found[q] = sorted((h.seq, h.snippet) for h in hits)
        return found
    finally:
        await store.close()


async def _empty(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url, timeout=5)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    finally:
        await conn.close()


def test_query_set_is_large_and_distinct() -> None:
    assert len(set(QUERIES)) == len(QUERIES) >= 100


def test_same_hits_and_snippets_on_every_database(pg_database_url: str, tmp_path: Path) -> None:
    asyncio.run(_empty(pg_database_url))
    on = {
        "sqlite file": asyncio.run(_search(f"sqlite:///{tmp_path / 'diff.db'}")),
        "sqlite memory": asyncio.run(_search("sqlite://")),
        "sqlite, not indexed yet": asyncio.run(_search("sqlite://", indexed=False)),
        "postgresql": asyncio.run(_search(pg_database_url)),
    }
    reference = on["sqlite file"]
    for name, found in on.items():
        differ = {q: (reference[q], found[q]) for q in QUERIES if found[q] != reference[q]}
        assert not differ, f"{name} differs from SQLite (file): {differ}"
    hits = {q: [seq for seq, _ in reference[q]] for q in QUERIES}
    wrong = {q: hits[q] for q, want in EXPECTED.items() if hits[q] != want}
    assert not wrong, wrong
    # Every message is found by some query, and every match is marked in its snippet.
    assert {seq for q in QUERIES for seq in hits[q]} >= set(range(1, len(CORPUS) + 1)) - {35}
    for q in QUERIES:
        for seq, snippet in reference[q]:
            assert seq == -1 or "<mark>" in snippet, (q, seq, snippet)


@pytest.mark.parametrize("query", ["3.5", "-42", "bob@example.org", "https://example.org/docs"])
def test_snippets_mark_numbers_addresses_and_urls(query: str) -> None:
    from sessionkeeper.store import search

    text = CORPUS[23] if query in ("3.5", "-42") else CORPUS[24]
    marked = search.snippet(text, search.wanted(query))
    assert f"<mark>{query.lstrip('-')}" in marked

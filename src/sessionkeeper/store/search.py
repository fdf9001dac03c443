"""Full-text search over message content: the query rules both backends follow.

PostgreSQL: a generated ``tsv`` column (english configuration) with a GIN index, queried with
``websearch_to_tsquery`` so users can type "quoted phrases", ``or`` and ``-exclusions``.

SQLite: an FTS5 external-content table over ``messages`` (porter stemming, so both dialects
stem English), ranked by bm25. FTS5's own query syntax would turn user input such as
``what's up?`` into a syntax error, so user text is reduced to quoted terms (AND-ed) and
quoted phrases.

Snippets: each database marks every match in the whole message (PostgreSQL ``ts_headline``
with HighlightAll, SQLite FTS5 ``highlight``), and ``snippet`` cuts the same window from that
text on both: up to SNIPPET_WORDS words starting a few words before the first match, ``…``
where text was cut, punctuation kept. Matches are marked ``<mark>…</mark>``; the content
around them is not HTML-escaped, so a page must escape the snippet and then restore the two
markers.
"""

from __future__ import annotations

import re
from typing import Any

from sessionkeeper.errors import InvalidInput
from sessionkeeper.store import validate

MARK_START, MARK_END = "<mark>", "</mark>"
SNIPPET_WORDS = 24
SNIPPET_LEAD = 8  # words kept before the first match
_PHRASE_OR_WORD = re.compile(r'"([^"]*)"|(\w+)', re.UNICODE)
_WORD = re.compile(r"\w+", re.UNICODE)


def fts5_query(query: str) -> str:
    """User text → an FTS5 MATCH expression of quoted terms and phrases, all required."""
    parts: list[str] = []
    for phrase, word in _PHRASE_OR_WORD.findall(query):
        words = _WORD.findall(phrase) if phrase else [word]
        if words:
            parts.append('"' + " ".join(words) + '"')
    if not parts:
        raise InvalidInput(f"search query {query!r} has no words to search for", field="q")
    return " ".join(parts)


def check_query(query: Any) -> str:
    if not isinstance(query, str) or not query.strip():
        raise InvalidInput("search query must be a non-empty string", field="q")
    if len(query) > 1000:
        raise InvalidInput("search query is longer than 1000 characters", field="q")
    validate.text(query, "q")
    fts5_query(query)  # same words rule on both dialects
    return query.strip()


def snippet(marked: str, words: int = SNIPPET_WORDS, lead: int = SNIPPET_LEAD) -> str:
    """A window of ``marked`` (text with every match marked) around its first match."""
    parts = marked.split()
    first = next((i for i, w in enumerate(parts) if MARK_START in w), 0)
    start = max(0, min(first - lead, len(parts) - words))
    window = parts[start : start + words]
    # Adjacent marked words become one mark: PostgreSQL marks a phrase word by word, SQLite
    # as one span.
    text = " ".join(window).replace(f"{MARK_END} {MARK_START}", " ")
    # A mark may span words (a phrase): keep every mark in the window balanced.
    if text.find(MARK_END) != -1 and (
        text.find(MARK_START) == -1 or text.find(MARK_END) < text.find(MARK_START)
    ):
        text = MARK_START + text
    if text.count(MARK_START) > text.count(MARK_END):
        text += MARK_END
    if start > 0:
        text = "… " + text
    if start + words < len(parts):
        text += " …"
    return text

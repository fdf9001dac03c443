"""Full-text search over message content: the query rules both backends follow.

PostgreSQL: a generated ``tsv`` column (english configuration) with a GIN index, queried with
``websearch_to_tsquery`` so users can type "quoted phrases", ``or`` and ``-exclusions``.

SQLite: an FTS5 external-content table over ``messages`` (porter stemming, so both dialects
stem English), ranked by bm25. FTS5's own query syntax would turn user input such as
``what's up?`` into a syntax error, so user text is reduced to quoted terms (AND-ed) and
quoted phrases.

Snippets mark matches with ``<mark>…</mark>``; the content around them is not HTML-escaped,
so a page must escape the snippet and then restore the two markers.
"""

from __future__ import annotations

import re
from typing import Any

from sessionkeeper.errors import InvalidInput

MARK_START, MARK_END = "<mark>", "</mark>"
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
    fts5_query(query)  # same words rule on both dialects
    return query.strip()

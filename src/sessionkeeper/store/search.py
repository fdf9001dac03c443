"""Full-text search over message content: one query language, the same on both databases.

The query syntax (README, "Search"): every word must appear, in any order; "quoted phrases"
must appear as written; words match by their English (Porter) stem, case-insensitively;
punctuation separates words and is otherwise ignored. There are no operators: ``and``,
``or``, ``not``, ``-`` and ``*`` are searched as what they are, and no word is a stop word.

Both databases index the same words: letters and digits, split at everything else.
- SQLite: an FTS5 external-content table over ``messages`` (``porter unicode61``), ranked by
  bm25. User text becomes quoted FTS5 terms and phrases, all required (FTS5's own syntax
  would turn ``what's up?`` into a syntax error).
- PostgreSQL: a generated ``tsv`` column with a GIN index, built with the ``sessionkeeper``
  text search configuration (migration 0006: the Porter stemmer, no stop words) over the
  content with every run of other characters made a space; queried with ``to_tsquery`` of
  the same terms and phrases (``a & (b <-> c)``), ranked by ts_rank.
Ranks are each database's own (bm25, ts_rank): the hits are the same, their order can differ
where the two scores disagree.

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
PG_CONFIG = "sessionkeeper"  # the text search configuration of migration 0006
_PHRASE_OR_WORD = re.compile(r'"([^"]*)"|([^\s"]+)', re.UNICODE)
# What both indexes take as a word: letters and digits (FTS5 unicode61's token characters);
# everything else, "_" included, separates words.
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def terms(query: str) -> list[list[str]]:
    """User text → its required parts, each a list of words that must appear in a row."""
    parts: list[list[str]] = []
    for phrase, chunk in _PHRASE_OR_WORD.findall(query):
        # A chunk with punctuation inside ("what's", "3.5", "foo_bar") is a phrase of its
        # words, as the index holds it.
        words = _WORD.findall(phrase or chunk)
        if words:
            parts.append(words)
    if not parts:
        raise InvalidInput(f"search query {query!r} has no words to search for", field="q")
    return parts


def fts5_query(query: str) -> str:
    """User text → an FTS5 MATCH expression of quoted terms and phrases, all required."""
    return " ".join('"' + " ".join(words) + '"' for words in terms(query))


def pg_query(query: str) -> str:
    """User text → ``to_tsquery`` text: terms and phrases (``<->``), all required. Words are
    letters and digits only, so nothing in them is tsquery syntax."""
    return " & ".join(
        words[0] if len(words) == 1 else "(" + " <-> ".join(words) + ")" for words in terms(query)
    )


def check_query(query: Any) -> str:
    if not isinstance(query, str) or not query.strip():
        raise InvalidInput("search query must be a non-empty string", field="q")
    if len(query) > 1000:
        raise InvalidInput("search query is longer than 1000 characters", field="q")
    validate.text(query, "q")
    terms(query)  # same words rule on both dialects
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

"""Full-text search over message content: one query language, the same on both databases.

The query syntax (README, "Search"): every word must appear, in any order; "quoted phrases"
must appear as written; punctuation separates words and is otherwise ignored. There are no
operators: ``and``, ``or``, ``not``, ``-`` and ``*`` are searched as what they are, and no
word is a stop word. Words are compared as terms (``terms.py``: NFKC, case and accent
folding, Porter stems), the same analysis the index holds on both databases.

- SQLite: the FTS5 index ``messages_fts`` over the messages' terms, ranked by bm25. A query
  becomes quoted FTS5 phrases of terms, all required.
- PostgreSQL: the ``tsv`` column (the terms with their positions) and its GIN index, queried
  with a ``tsquery`` of the same terms and phrases (``'a' & ('b' <-> 'c')``), ranked by
  ts_rank.
Ranks are each database's own (bm25, ts_rank): the hits are the same, their order can differ
where the two scores disagree.

Snippets are made here, from the hit's content, the same way for both databases: every word
whose terms include a query term is marked ``<mark>…</mark>`` (marks joined across the
punctuation inside ``3.5``, an e-mail address or a URL), and a window of up to SNIPPET_WORDS
words is cut starting a few words before the first mark, ``…`` where text was cut. The
content around the marks is not HTML-escaped, so a page must escape the snippet and then
restore the two markers.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from sessionkeeper.errors import InvalidInput
from sessionkeeper.store import terms, validate

MARK_START, MARK_END = "<mark>", "</mark>"
SNIPPET_WORDS = 24
SNIPPET_LEAD = 8  # words kept before the first match
_PHRASE_OR_WORD = re.compile(r'"([^"]*)"|([^\s"]+)', re.UNICODE)
# Between two marked words, joined into one mark: a little punctuation (3.5, a@b.c, a/b/c)
# or a space (a phrase), never a line break.
_LETTER_OR_DIGIT = re.compile(r"[^\W_]")  # \p{L} or \p{N}
_JOINABLE = re.compile(r"(?:[^\w\n]|_){0,3}")


@functools.lru_cache(maxsize=1024)
def query_terms(query: str) -> tuple[tuple[str, ...], ...]:
    """User text → its required parts, each the terms that must appear in a row."""
    parts: list[tuple[str, ...]] = []
    for phrase, chunk in _PHRASE_OR_WORD.findall(query):
        # A chunk with punctuation inside ("what's", "3.5", "foo_bar") is a phrase of its
        # words, as the index holds it.
        found = terms.terms(phrase or chunk)
        if found:
            parts.append(tuple(found))
    # Empty only for a query whose letters all fold away (an Arabic tatweel or a harakah on
    # its own): a query check_query accepts, which finds nothing.
    return tuple(parts)


def fts5_query(query: str) -> str:
    """User text → an FTS5 MATCH expression of quoted phrases of terms, all required."""
    return " ".join('"' + " ".join(part) + '"' for part in query_terms(query))


def pg_query(query: str) -> str:
    """User text → a ``tsquery`` literal: terms and phrases (``<->``), all required. Terms are
    letters, digits and marks only, so quoting them is all they need."""
    return " & ".join(
        f"'{part[0]}'" if len(part) == 1 else "(" + " <-> ".join(f"'{t}'" for t in part) + ")"
        for part in query_terms(query)
    )


@functools.lru_cache(maxsize=1024)
def wanted(query: str) -> frozenset[str]:
    """The terms a snippet of ``query``'s hits marks."""
    return frozenset(t for part in query_terms(query) for t in part)


def check_query(query: Any) -> str:
    if not isinstance(query, str) or not query.strip():
        raise InvalidInput("search query must be a non-empty string", field="q")
    if len(query) > 1000:
        raise InvalidInput("search query is longer than 1000 characters", field="q")
    validate.text(query, "q")
    if not _LETTER_OR_DIGIT.search(query):  # the OpenAPI pattern says the same
        raise InvalidInput(f"search query {query!r} has no words to search for", field="q")
    return query.strip()


def snippet(
    content: str, wanted: frozenset[str], words: int = SNIPPET_WORDS, lead: int = SNIPPET_LEAD
) -> str:
    """A window of ``content`` around its first match, every match in it marked."""
    return _window(_marked(content, wanted), words, lead)


def _marked(content: str, wanted: frozenset[str]) -> str:
    found = _ascii_matches(content, wanted) if content.isascii() else None
    matches = found or [
        (start, end) for start, end, t in terms.words(content) if not wanted.isdisjoint(t)
    ]
    spans: list[list[int]] = []
    for start, end in matches:
        if spans and _JOINABLE.fullmatch(content, spans[-1][1], start):
            spans[-1][1] = end
        else:
            spans.append([start, end])
    out, at = [], 0
    for start, end in spans:
        out += [content[at:start], MARK_START, content[start:end], MARK_END]
        at = end
    out.append(content[at:])
    return "".join(out)


def _ascii_matches(content: str, wanted: frozenset[str]) -> list[tuple[int, int]]:
    """The matched words of ASCII ``content``, looking only at words that start like a wanted
    term (a Porter stem keeps its word's start but for its last letters: happy → happi,
    possibility → possibl). Empty when none is found that way: the caller then looks at
    every word."""
    lowered = content.lower()
    return [
        m.span()
        for m in _candidates(wanted).finditer(lowered)
        # A word's start, not the inside of one (checked here: a lookbehind in the pattern
        # would cost the regex engine its literal-prefix scan).
        if (m.start() == 0 or not lowered[m.start() - 1].isalnum())
        and terms.ascii_term(m.group()) in wanted
    ]


@functools.lru_cache(maxsize=256)
def _candidates(wanted: frozenset[str]) -> re.Pattern[str]:
    starts = sorted({t[: max(1, len(t) - 2)] for t in wanted if t.isascii()}, key=len)
    if not starts:
        return re.compile(r"(?!)")
    return re.compile(r"(?:" + "|".join(map(re.escape, starts)) + r")[a-z0-9]*")


def _window(marked: str, words: int, lead: int) -> str:
    """Up to ``words`` words of ``marked`` (text with every match marked), from ``lead``
    words before the first match, the words joined by single spaces."""
    at = marked.find(MARK_START)
    if _single_spaced(marked):  # most text: cut by offsets, no list of its words
        count = marked.count(" ") + 1
        if count <= words:
            return marked
        first = marked.count(" ", 0, max(0, at))  # the word holding the first mark
        start = max(0, min(first - lead, count - words))
        if start == count - words:  # the last words
            begin = len(marked.rsplit(" ", words)[0]) + 1
        else:
            begin = at
            for _ in range(first - start + 1 if start else 0):
                begin = marked.rfind(" ", 0, begin)  # back to the space before a word
            begin = begin + 1 if start else 0
        text = marked[begin : _words_from(words).match(marked, begin).end()]  # type: ignore[union-attr]
    else:
        parts = marked.split()
        count = len(parts)
        if count <= words:
            return " ".join(parts)
        # The part holding the first mark: the parts before the mark, less one if the mark
        # is inside a part ("(<mark>x</mark>").
        before = marked[: max(0, at)]
        first = len(before.split()) - (1 if before and not before[-1].isspace() else 0)
        start = max(0, min(first - lead, count - words))
        text = " ".join(parts[start : start + words])
    # A mark may span words (a phrase): keep every mark in the window balanced.
    opened, closed = text.find(MARK_START), text.find(MARK_END)
    if closed != -1 and (opened == -1 or closed < opened):
        text = MARK_START + text
    if text.count(MARK_START) > text.count(MARK_END):
        text += MARK_END
    if start > 0:
        text = "… " + text
    if start + words < count:
        text += " …"
    return text


@functools.lru_cache(maxsize=8)
def _words_from(words: int) -> re.Pattern[str]:
    """Single-spaced text: ``words`` words from where the match starts."""
    return re.compile(f"(?:[^ ]* ){{0,{words - 1}}}[^ ]*")


def _single_spaced(text: str) -> bool:
    """No whitespace but single spaces between words, so ``split(" ")`` is ``split()``.
    ASCII text is searched for the other whitespace ``split()`` knows (each ``in`` a memchr
    scan); other text is asked ``isprintable`` (a space is the one printable whitespace
    character), which looks each character up and costs four times more."""
    if "  " in text or text[:1] == " " or text[-1:] == " ":
        return False
    if text.isascii():  # what str.split() splits at, but " "
        return not (
            "\n" in text
            or "\t" in text
            or "\r" in text
            or "\x0b" in text
            or "\x0c" in text
            or "\x1c" in text
            or "\x1d" in text
            or "\x1e" in text
            or "\x1f" in text
        )
    return text.isprintable()

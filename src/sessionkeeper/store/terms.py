"""Text → search terms: the one analyser both databases index and query with.

Neither database analyses text any more: the store turns a message's content into its terms
here, in Python, and each database indexes those terms as they are (SQLite: an FTS5 index
with the ``ascii`` tokenizer over ``sessionkeeper_terms(content)``; PostgreSQL: a ``tsvector``
written with the row). Queries go through the same function, so the two databases hold and
look up exactly the same terms, whatever their locale, Unicode tables or dictionaries.

The rule (README, "Search"):
1. Unicode NFKC: ligatures (ﬁ), fullwidth (Ａ), Roman numerals (Ⅻ), superscripts, ½ → 1⁄2.
2. Case folding (``str.casefold``): ß → ss, final sigma ς → σ, İ → i.
3. Accent folding: combining marks after Latin, Greek, Cyrillic, Arabic or Hebrew letters are
   removed (é → e, ώ → ω, й → и, Arabic harakat, Hebrew niqqud), and a few letters that are
   not composed with a mark are folded too (ł → l, ø → o, đ → d, æ → ae, œ → oe, þ → th,
   ı → i). Marks in every other script (Devanagari, Bengali, Gurmukhi, Tamil, Thai, …) are
   part of their word and kept.
4. Words: runs of letters, digits and combining marks; everything else, ``_`` included,
   separates words. Han, Hiragana and Katakana characters are one word each, so a query for
   part of a Chinese or Japanese run finds it (as a phrase of its characters).
5. Each word is stemmed with the Porter stemmer (English; other words pass through
   unchanged). Words longer than MAX_TERM characters are not indexed.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterator

import regex
import Stemmer

# Bump when the terms of some text change: a store whose index was built with another
# analyser (or another Unicode version) re-indexes when it opens (see ``ANALYSER``).
_REVISION = "1"
ANALYSER = f"{_REVISION}; unicode {unicodedata.unidata_version}; porter"
MAX_TERM = 200  # characters: PostgreSQL refuses lexemes over 2,047 bytes
TERMS_FUNCTION = "sessionkeeper_terms"  # ``index_text`` as SQLite's index calls it

# Han, Hiragana and Katakana (with its prolonged sound mark) and 々: one word per character.
_CJK = (
    "\u3005\u3041-\u3096\u309d-\u309f\u30a1-\u30fa\u30fc-\u30ff"
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003ffff"
)
_HAS_CJK = re.compile(f"[{_CJK}]")
_CJK_OR_RUN = re.compile(f"[{_CJK}]|[^{_CJK}]+")
_WORD = regex.compile(r"[\p{L}\p{N}\p{M}]+")
_ASCII_WORD = re.compile(r"[a-z0-9]+")


def _marks(*blocks: tuple[int, int]) -> str:
    return "".join(
        chr(c)
        for start, end in blocks
        for c in range(start, end + 1)
        if unicodedata.category(chr(c)) == "Mn"
    )


# The accents folded away (after NFD): the Combining Diacritical Marks blocks (Latin, Greek,
# Cyrillic), Hebrew points and cantillation, Arabic harakat. Marks of other blocks (the
# vowel signs and viramas of Indic scripts, Thai, …) belong to their words.
_FOLDED_MARKS = re.compile(
    "["
    + re.escape(
        _marks(
            (0x0300, 0x036F),
            (0x1AB0, 0x1AFF),
            (0x1DC0, 0x1DFF),
            (0x20D0, 0x20FF),
            (0xFE20, 0xFE2F),
            (0x0591, 0x05C7),
            (0x0610, 0x061A),
            (0x064B, 0x065F),
            (0x0670, 0x0670),
            (0x06D6, 0x06ED),
        )
    )
    + "]+"
)
# Letters that carry their "accent" without a combining mark, folded as Lucene's ASCII
# folding does; and the Arabic tatweel, a stretch of the line rather than a letter.
_LETTERS = {
    "ł": "l",
    "đ": "d",
    "ð": "d",
    "ø": "o",
    "ħ": "h",
    "ı": "i",
    "ŀ": "l",
    "ŧ": "t",
    "ƀ": "b",
    "æ": "ae",
    "œ": "oe",
    "þ": "th",
    "ĸ": "k",
    "\u0640": "",
}
_LETTER = re.compile("[" + "".join(_LETTERS) + "]")
_stemmer = Stemmer.Stemmer("porter")


def fold(text: str) -> str:
    """Steps 1–3 of the rule: the text as the index sees it, before it is cut into words."""
    if text.isascii():
        return text.lower()
    text = unicodedata.normalize("NFKC", text).casefold()
    if _LETTER.search(text):
        text = _LETTER.sub(lambda m: _LETTERS[m.group()], text)
    text = _FOLDED_MARKS.sub("", unicodedata.normalize("NFD", text))
    return unicodedata.normalize("NFC", text)


def terms(text: str) -> list[str]:
    """The terms of ``text``, in order (a term's position is its index)."""
    folded = fold(text)
    return [_stem(w) for w in _split(folded) if len(w) <= MAX_TERM]


def _split(text: str) -> list[str]:
    if text.isascii():
        return _ASCII_WORD.findall(text)
    words = _WORD.findall(text)
    if not _HAS_CJK.search(text):
        return words
    return [part for w in words for part in _CJK_OR_RUN.findall(w)]


def ascii_term(word: str) -> str | None:
    """The term of one ASCII word (letters and digits, lower case), None if too long."""
    return _stem(word) if len(word) <= MAX_TERM else None


@functools.lru_cache(maxsize=65_536)
def _stem(word: str) -> str:
    stem: str = _stemmer.stemWord(word)
    return stem or word  # Porter takes "s" to nothing


def index_text(text: str) -> str:
    """What SQLite's FTS5 index reads for ``text``: its terms, separated by spaces."""
    return " ".join(terms(text))


def tsvector(text: str) -> str:
    """A PostgreSQL ``tsvector`` literal of ``text``'s terms with their positions (1-based).

    Terms are letters, digits and marks only, so none needs quoting beyond the quotes.
    PostgreSQL keeps 256 positions per term and takes any past 16,383 as 16,383 (README,
    "Search").
    """
    entries: dict[str, str] = {}
    for i, term in enumerate(terms(text), 1):
        entry = entries.get(term)
        entries[term] = f"'{term}':{i}" if entry is None else f"{entry},{i}"
    return " ".join(entries.values())


def words(text: str) -> Iterator[tuple[int, int, tuple[str, ...]]]:
    """Each word of the original ``text`` as (start, end, its terms): what snippets mark.

    Outside ASCII, each character is folded alone and the words found in the folded text
    are mapped back to the characters they came from (ⓐ and ½ fold to letters and digits).
    """
    if text.isascii():
        for m in _ASCII_WORD.finditer(text.lower()):
            yield m.start(), m.end(), _word_terms(m.group())
        return
    pieces = [_fold_char(c) for c in text]
    origin = [i for i, piece in enumerate(pieces) for _ in piece]
    folded = "".join(pieces)
    for w in _WORD.finditer(folded):
        at, word = w.start(), w.group()
        parts = _CJK_OR_RUN.finditer(word) if _HAS_CJK.search(word) else None
        spans = (
            [(w.start(), w.end())]
            if parts is None
            else [(at + p.start(), at + p.end()) for p in parts]
        )
        for start, end in spans:
            yield origin[start], origin[end - 1] + 1, _word_terms(folded[start:end])


_fold_char = functools.lru_cache(maxsize=8_192)(fold)


@functools.lru_cache(maxsize=65_536)
def _word_terms(word: str) -> tuple[str, ...]:
    return tuple(terms(word))

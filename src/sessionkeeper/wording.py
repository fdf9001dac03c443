"""How sessionkeeper words counts for people: ``1 key``, ``2 keys``; the one helper for it."""

from __future__ import annotations

__all__ = ["plural"]


def plural(count: int, word: str) -> str:
    """``1 session``, ``2 sessions``, ``1 msg``, ``0 tokens``."""
    return f"{count} {word}{'' if count == 1 else 's'}"

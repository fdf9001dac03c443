"""The metadata filter of listings and searches: one JSON ``metadata`` query parameter.

Why JSON and not ``metadata.team=red`` parameters: a filter compares values *as JSON*
(``1`` is not ``"1"``, ``true`` is not ``"true"``), and one JSON object says each value's type
without a rule for guessing it; it is also one parameter the OpenAPI document can describe
whole (``content: application/json`` with the object's schema), where parameters named by
their keys could not be described at all. So ``?metadata={"team":"red","priority":1}`` (URL
encoded) keeps the sessions whose metadata holds every pair. The rules are the Store's
(``validate.metadata_filter``); text that is not one JSON object, or an object with a key
twice, is refused here with the same 422 naming ``metadata``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Depends, Query

from sessionkeeper.api.schemas import NO_NUL
from sessionkeeper.errors import InvalidInput
from sessionkeeper.store import validate
from sessionkeeper.store.validate import MAX_METADATA_FILTER

# validate._FILTER_KEY, as an ECMA-262 pattern: no quotes, backslashes or control characters.
FILTER_KEY_PATTERN = '^[^"\\\\\\x00-\\x1f\\x7f]+$'
METADATA_FILTER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "minProperties": 1,
    "maxProperties": MAX_METADATA_FILTER,
    "propertyNames": {"minLength": 1, "maxLength": 200, "pattern": FILTER_KEY_PATTERN},
    "additionalProperties": {
        "anyOf": [
            {"type": "null"},
            {"type": "boolean"},
            {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1},
            {"type": "number", "not": {"type": "integer"}},
            {"type": "string", "pattern": NO_NUL},
        ]
    },
}
METADATA_DESCRIPTION = (
    "Sessions whose metadata holds every pair of this JSON object, e.g. "
    '`{"team":"red","priority":1}` (URL-encoded). Values are strings, numbers, true, false '
    'or null, compared as JSON: `1` equals `1.0` but not `"1"`; null matches a null value, '
    f"not a missing key. 1 to {MAX_METADATA_FILTER} pairs; keys of 1-200 characters without "
    "quotes, backslashes or control characters. Anything else is 422 naming `metadata`."
)
# The parameter as the OpenAPI document shows it (added to each route by ``openapi_extra``:
# FastAPI describes a query parameter by a schema only, not by ``content``).
METADATA_PARAMETER: dict[str, Any] = {
    "name": "metadata",
    "in": "query",
    "required": False,
    "description": METADATA_DESCRIPTION,
    "content": {"application/json": {"schema": METADATA_FILTER_SCHEMA}},
}
DOCUMENTED = {"parameters": [METADATA_PARAMETER]}


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise InvalidInput(f"metadata filter has the key {key!r} twice", field="metadata")
        found[key] = value
    return found


def parse_metadata_filter(text: str | None) -> dict[str, Any] | None:
    """The filter a ``metadata`` parameter holds (None when absent); InvalidInput otherwise."""
    if text is None:
        return None
    try:
        value = json.loads(text, object_pairs_hook=_pairs)
    except ValueError as exc:  # not JSON (InvalidInput from _pairs is no ValueError)
        raise InvalidInput(
            'metadata must be a JSON object of key: value pairs, e.g. {"team":"red"} '
            f"(URL-encoded): {exc}",
            field="metadata",
        ) from None
    return validate.metadata_filter(value)


async def metadata_filter(
    metadata: Annotated[str | None, Query(include_in_schema=False)] = None,
) -> dict[str, Any] | None:
    return parse_metadata_filter(metadata)


MetadataFilter = Annotated[dict[str, Any] | None, Depends(metadata_filter)]

"""The integrations' shared helpers (``integrations/_common.py``) and their fast paths."""

from __future__ import annotations

import json

import pytest

from sessionkeeper.integrations._common import _JSONB_INEXACT, _inexact, keep_whole

_SAMPLES = [
    {"a": 1e16},
    {"a": -0.0},
    {"a": 5e-07},
    {"a": [1.5, -2.0, 0.0]},
    {"a": "e+ e- -0.0 in text only"},
    {"a": "1e+5 written as text"},
    {"a": "x-0.01"},
    {"a": -0.05},
    {"a": 10**20},
    {"a": "plain", "b": [1, 2, {"c": None}]},
]


@pytest.mark.parametrize("obj", _SAMPLES)
def test_inexact_prefilter_agrees_with_the_regex(obj: object) -> None:
    text = json.dumps(obj, ensure_ascii=False)
    assert _inexact(text) == (_JSONB_INEXACT.search(text) is not None)


def test_keep_whole_keeps_exact_numbers_as_text() -> None:
    assert keep_whole("item", {"a": 1.5}) == {"item": {"a": 1.5}}
    assert keep_whole("item", {"a": 1e16}) == {"item_json": '{"a": 1e+16}'}

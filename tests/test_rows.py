"""One description per row: the value types' dataclasses. Column lists, the backends' rows and
the API's response models are made from them; this checks that what is made matches."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime

import pytest

from sessionkeeper.api import schemas
from sessionkeeper.models import (
    ApiKey,
    Message,
    ModelUsage,
    PruneResult,
    SearchHit,
    Session,
    Stats,
    StatsCounts,
    Usage,
    UsageTotals,
    Window,
)
from sessionkeeper.store import schema
from sessionkeeper.store.backends import statements
from sessionkeeper.store.backends.base import KeyRow, StatsRow


def names(cls: type) -> list[str]:
    return [f.name for f in fields(cls)]


@pytest.mark.parametrize(
    ("columns", "row", "table"),
    [
        (statements.SESSION_COLUMNS, Session, "sessions"),
        (statements.KEY_COLUMNS, KeyRow, "api_keys"),
    ],
)
def test_column_lists_are_the_fields_and_the_table_has_them(
    columns: str, row: type, table: str
) -> None:
    assert columns.split(", ") == names(row)
    assert set(names(row)) <= set(schema.metadata.tables[table].columns.keys())


def test_a_message_read_whole_is_its_columns_and_its_usage() -> None:
    """A message's usage is six columns (Usage's fields; its model is ``usage_model``) after
    the columns every message is written with; MESSAGE_READ rows build a whole Message."""
    assert names(Message)[-1] == "usage"
    assert statements.MESSAGE_COLUMNS.split(", ") == names(Message)[:-1]
    read = statements.MESSAGE_READ.split(", ")
    assert read[statements.USAGE_AT :] == list(statements.USAGE_COLUMN_NAMES)
    assert [c.replace("usage_model", "model") for c in statements.USAGE_COLUMN_NAMES] == names(
        Usage
    )
    assert set(read) <= set(schema.metadata.tables["messages"].columns.keys())


def test_key_row_is_the_key_and_its_digest() -> None:
    assert names(KeyRow) == [*names(ApiKey), "secret_hash"]
    assert set(schema.metadata.tables["api_keys"].columns.keys()) == set(names(KeyRow))
    row = KeyRow("k", None, True, [], datetime.now(UTC), None, None, "digest")
    assert "digest" not in repr(row) and "digest" not in str(row.to_dict())


def test_stats_are_the_counts_and_their_thresholds() -> None:
    assert StatsRow is StatsCounts
    assert names(Stats) == [*names(StatsCounts), "ghost_threshold_minutes", "stale_threshold_days"]


@pytest.mark.parametrize(
    ("model", "row"),
    [
        (schemas.SessionPublic, Session),
        (schemas.MessagePublic, Message),
        (schemas.SearchHitPublic, SearchHit),
        (schemas.WindowPublic, Window),
        (schemas.UsagePublic, Usage),
    ],
)
def test_public_models_have_the_fields(model: type[schemas.BaseModel], row: type) -> None:
    assert list(model.model_fields) == names(row)


def test_stats_and_usage_public_add_their_fields() -> None:
    assert list(schemas.StatsPublic.model_fields) == [*names(Stats), "usage"]
    assert list(schemas.UsageTotalsPublic.model_fields) == [*names(UsageTotals), "total_tokens"]
    assert list(schemas.ModelUsagePublic.model_fields) == [*names(ModelUsage), "total_tokens"]


def test_prune_public_adds_its_status() -> None:
    assert list(schemas.PrunePublic.model_fields) == [*names(PruneResult), "status"]

"""What the usage recorded on messages cost: prices from ``genai-prices``, offline.

``genai-prices`` (pydantic's price table of LLM providers and models) ships its data in the
package, so pricing needs no network; the version installed is the price table's version
and is recorded with every total (``price_source``), with the time the prices were taken
for (``priced_at``: prices that changed over time are those in force then).

A model the table does not know has an unknown cost: None, shown as ``"unknown"``, never 0.
A total over known and unknown models is ``partial``: the sum of the priced models, with the
unknown ones named. Model names may carry their provider (``openai:gpt-4o``,
``anthropic/claude-sonnet-4-5``): the part before the separator is tried as the provider.
"""

from __future__ import annotations

import functools
import importlib.metadata
import warnings
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sessionkeeper.models import CostStatus, ModelUsage, UsageTotals

__all__ = ["price", "price_source", "totals"]


@functools.cache
def price_source() -> str:
    """The price table and its version, e.g. ``genai-prices 0.2.5``."""
    try:
        return f"genai-prices {importlib.metadata.version('genai-prices')}"
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - a core dependency
        return "genai-prices (not installed)"


def _calc(model: str, provider: str | None, usage: Any, when: datetime) -> Any:
    from genai_prices import calc_price  # imported when a price is asked for (CLI startup)

    return calc_price(usage, model_ref=model, provider_id=provider, genai_request_timestamp=when)


def price(
    model: str | None, input_tokens: int, output_tokens: int, cached_tokens: int, when: datetime
) -> tuple[Decimal | None, str | None]:
    """(cost in USD, provider) of these tokens of ``model`` at ``when``; (None, None) when
    the price table does not know the model."""
    if model is None:
        return None, None
    try:
        from genai_prices import Usage as PriceUsage
    except ImportError:  # pragma: no cover - a core dependency
        return None, None
    usage = PriceUsage(
        input_tokens=input_tokens, output_tokens=output_tokens, cache_read_tokens=cached_tokens
    )
    attempts: list[tuple[str, str | None]] = [(model, None)]
    for sep in (":", "/"):
        prefix, found, rest = model.partition(sep)
        if found and prefix and rest:
            attempts.append((rest, prefix))
    for name, provider in attempts:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = _calc(name, provider, usage, when)
        except LookupError:
            continue
        return Decimal(result.total_price), str(result.provider.id)
    return None, None


def totals(
    rows: Sequence[tuple[Any, ...]],
    when: datetime,
    *,
    session_id: str | None = None,
    agent_ids: list[str] | None = None,
    user_ids: list[str] | None = None,
) -> UsageTotals:
    """The totals of ``Backend.usage_totals`` rows (one per model), priced at ``when``."""
    by_model: list[ModelUsage] = []
    for model, messages, requests, inp, out, cached, reasoning in rows:
        cost, provider = price(model, int(inp), int(out), int(cached), when)
        by_model.append(
            ModelUsage(
                model=model,
                messages=int(messages),
                requests=int(requests),
                input_tokens=int(inp),
                output_tokens=int(out),
                cached_tokens=int(cached),
                reasoning_tokens=int(reasoning),
                cost_usd=cost,
                provider=provider,
            )
        )
    known = [m.cost_usd for m in by_model if m.cost_usd is not None]
    unknown = [m.model for m in by_model if m.cost_usd is None]
    status: CostStatus = "unknown" if unknown and not known else "partial" if unknown else "known"
    cost = None if status == "unknown" else sum(known, Decimal(0))
    return UsageTotals(
        session_id=session_id,
        agent_ids=agent_ids,
        user_ids=user_ids,
        messages=sum(m.messages for m in by_model),
        requests=sum(m.requests for m in by_model),
        input_tokens=sum(m.input_tokens for m in by_model),
        output_tokens=sum(m.output_tokens for m in by_model),
        cached_tokens=sum(m.cached_tokens for m in by_model),
        reasoning_tokens=sum(m.reasoning_tokens for m in by_model),
        cost_usd=cost,
        cost_status=status,
        unknown_models=unknown,
        by_model=by_model,
        price_source=price_source(),
        priced_at=when,
    )

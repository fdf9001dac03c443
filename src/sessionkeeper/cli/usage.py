"""CLI: ``usage``: tokens and cost of a session, or of the sessions of agents and users.

Also the usage lines that ``show`` and ``list --long`` add (``usage_fields``, ``cost_text``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from sessionkeeper.cli import common
from sessionkeeper.cli import output as out
from sessionkeeper.cli.common import JsonOpt
from sessionkeeper.errors import InvalidInput

if TYPE_CHECKING:
    from sessionkeeper import Store
    from sessionkeeper.models import UsageTotals

app = typer.Typer()


def cost_text(totals: UsageTotals) -> str:
    """The cost as a reader wants it: "$0.0123", "unknown", or "$0.0123 + unknown"."""
    if totals.cost_usd is None:
        return "unknown"
    amount = f"${totals.cost_usd:.4f}" if totals.cost_usd else "$0"
    return f"{amount} + unknown" if totals.cost_status == "partial" else amount


def tokens_text(totals: UsageTotals) -> str:
    return f"{totals.input_tokens:,} in / {totals.output_tokens:,} out" if totals.messages else ""


def usage_fields(totals: UsageTotals) -> list[tuple[str, Any]]:
    """The lines ``show`` and ``usage`` print for usage totals."""
    if not totals.messages:
        return [("usage", "none recorded")]
    fields: list[tuple[str, Any]] = [
        ("requests", totals.requests),
        ("input tokens", f"{totals.input_tokens:,} ({totals.cached_tokens:,} cached)"),
        ("output tokens", f"{totals.output_tokens:,} ({totals.reasoning_tokens:,} reasoning)"),
        ("cost", cost_text(totals)),
    ]
    if totals.unknown_models:
        names = ", ".join(m or "(no model)" for m in totals.unknown_models)
        fields.append(("  not priced", names))
    fields.append(("  prices", f"{totals.price_source}, as of {out.when(totals.priced_at)}"))
    return fields


@app.command("usage")
def usage_(
    session_id: Annotated[
        str | None, typer.Argument(help="Default: the current session (unless a scope is given).")
    ] = None,
    agent: Annotated[
        list[str] | None,
        typer.Option("--agent", "-a", help="Totals over these agents' sessions (repeatable)."),
    ] = None,
    user: Annotated[
        list[str] | None,
        typer.Option("--user", "-u", metavar="USER", help="Only these users (repeatable)."),
    ] = None,
    every: Annotated[bool, typer.Option("--all", help="Totals over every session.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Tokens and cost of a session, or totals over agents / users / everything, by model.

    Cost comes from the genai-prices table shipped with sessionkeeper; a model it does not
    know costs "unknown" (never 0), and a total with such models says so.
    """
    scoped = every or agent is not None or user is not None
    if scoped and session_id is not None:
        raise InvalidInput("give a session id or a scope (--agent, --user, --all), not both")
    if scoped:
        totals = common.run(lambda store: store.usage_totals(agent_ids=agent, user_ids=user))
        title = "Usage of " + (
            ", ".join(
                part
                for part in (
                    f"agents {', '.join(agent)}" if agent else "",
                    f"users {', '.join(user)}" if user else "",
                )
                if part
            )
            or "every session"
        )
    else:
        chosen = common.target(session_id)

        async def work(store: Store) -> UsageTotals:
            return await store.get_usage(chosen.session_id)

        with common.current_must_exist(chosen):
            totals = common.run(work)
        title = f"Usage of session {chosen.session_id}"
    if as_json:
        out.emit_json(totals.to_dict())
        return
    out.print_fields(title, [("messages with usage", totals.messages), *usage_fields(totals)])
    if totals.by_model:
        out.print_table(
            "By model",
            ["model", "msgs", "requests", "input", "cached", "output", "reasoning", "cost"],
            [
                [
                    m.model or "(no model)",
                    m.messages,
                    m.requests,
                    m.input_tokens,
                    m.cached_tokens,
                    m.output_tokens,
                    m.reasoning_tokens,
                    "unknown" if m.cost_usd is None else f"${m.cost_usd:.6f}",
                ]
                for m in totals.by_model
            ],
            keep=("model",),
        )

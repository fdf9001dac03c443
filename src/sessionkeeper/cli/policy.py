"""``sessionkeeper policy set|list|delete|run``: retention policies, per agent and a default.

What the rules mean is in ``store/retention.py`` (and the README, "Retention policies").
``policy run`` applies them at once, without asking: a policy is already a decision, and the
server's maintenance loop applies the same policies on its own schedule; ``--dry-run`` shows
first what each rule would take, with the session ids.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from sessionkeeper.cli import common
from sessionkeeper.cli import output as out
from sessionkeeper.cli.common import JsonOpt
from sessionkeeper.errors import InvalidInput
from sessionkeeper.models import DEFAULT_POLICY

if TYPE_CHECKING:
    from sessionkeeper.models import Policy, PolicyRun

policy_app = typer.Typer(
    help="Retention policies per agent (and a default): end idle sessions, delete old ones.",
    no_args_is_help=True,
)

AgentOpt = Annotated[
    str | None,
    typer.Option(
        "--agent",
        "-a",
        metavar="ID",
        help="The agent whose policy this is ('*': the default, as --default).",
    ),
]
DefaultOpt = Annotated[
    bool,
    typer.Option("--default", help="The default policy: every agent without one of its own."),
]
DURATION = "a whole number and m, h or d (90m, 2h, 30d)"


def _agent(agent: str | None, default: bool) -> str:
    if default and agent not in (None, DEFAULT_POLICY):
        raise InvalidInput("give --agent ID or --default, not both", field="--agent")
    if default:
        return DEFAULT_POLICY
    if agent is None:
        raise InvalidInput(
            "say whose policy: --agent ID, or --default for every agent without one",
            field="--agent",
        )
    return agent


def _who(agent_id: str) -> str:
    return "the default policy" if agent_id == DEFAULT_POLICY else f"the policy of agent {agent_id}"


def _rules(p: Policy) -> list[str]:
    """The policy's three rules as table cells ("off" when a rule is not set)."""
    from sessionkeeper.store.retention import format_minutes

    def days(n: int | None) -> str:
        return "off" if n is None else format_minutes(n * 24 * 60)

    idle = "off" if p.end_idle_minutes is None else format_minutes(p.end_idle_minutes)
    return [idle, days(p.delete_ended_days), days(p.delete_after_days)]


RULE_COLUMNS = ["end idle after", "delete ended after", "delete after"]


@policy_app.command("set")
def set_policy(
    agent: AgentOpt = None,
    default: DefaultOpt = False,
    end_idle_after: Annotated[
        str | None,
        typer.Option(
            metavar="DURATION",
            help=f"End (keep) active sessions idle this long: {DURATION}; whole minutes.",
        ),
    ] = None,
    delete_ended_after: Annotated[
        str | None,
        typer.Option(
            metavar="DURATION",
            help=f"Delete ended sessions ended and idle this long: {DURATION}; whole days.",
        ),
    ] = None,
    delete_after: Annotated[
        str | None,
        typer.Option(
            metavar="DURATION",
            help=f"Delete any session idle (no activity) this long: {DURATION}; whole days.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Set an agent's retention policy (or the default), replacing the one it had.

    Rules not given are off. A policy with no rules keeps every session of its agent (the
    default does not apply to it). Sessions whose metadata has "pinned": true are never
    ended or deleted. The server's maintenance loop applies policies on its schedule;
    `policy run` applies them now.
    """
    whose = _agent(agent, default)
    p = common.run(
        lambda store: store.set_policy(
            whose,
            end_idle_after=end_idle_after,
            delete_ended_after=delete_ended_after,
            delete_after=delete_after,
        )
    )
    if as_json:
        out.emit_json(p.to_dict())
        return
    out.plain(f"Set {_who(p.agent_id)}:")
    out.print_fields(None, zip(RULE_COLUMNS, _rules(p), strict=True))
    if _rules(p) == ["off"] * 3:
        out.plain(f"No rules: every session of agent {p.agent_id} is kept.")


@policy_app.command("list")
def list_policies(as_json: JsonOpt = False) -> None:
    """List the retention policies: each agent's, and the default ('*')."""
    policies = common.run(lambda store: store.get_policies())
    if as_json:
        out.emit_json([p.to_dict() for p in policies])
        return
    rows = [
        [
            "* (default)" if p.agent_id == DEFAULT_POLICY else p.agent_id,
            *_rules(p),
            out.when(p.updated_at),
        ]
        for p in policies
    ]
    caption = None if policies else "no policies: nothing is ended or deleted by policy"
    out.print_table(
        "Retention policies",
        ["agent", *RULE_COLUMNS, "updated"],
        rows,
        caption=caption,
        keep=("agent",),
    )


@policy_app.command("delete")
def delete_policy(
    agent: AgentOpt = None, default: DefaultOpt = False, as_json: JsonOpt = False
) -> None:
    """Delete an agent's retention policy (the default applies to it again), or the default."""
    whose = _agent(agent, default)
    p = common.run(lambda store: store.delete_policy(whose))
    if as_json:
        out.emit_json(p.to_dict())
    elif p.agent_id == DEFAULT_POLICY:
        out.plain("Deleted the default policy: agents without one of their own keep everything.")
    else:
        out.plain(f"Deleted the policy of agent {p.agent_id}: the default policy applies to it.")


@policy_app.command("run")
def run_policies(
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Only list what each rule would do, with the session ids."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Apply every retention policy now (or list what each rule would do, with --dry-run).

    Runs without asking: the policies are the decision (the server applies them on its own
    schedule). Deletes go in short batches; a session written during the run is kept.
    """
    result = common.run(lambda store: store.run_policies(dry_run=dry_run))
    if as_json:
        out.emit_json(result.to_dict())
        return
    _print_run(result)


def _print_run(result: PolicyRun) -> None:
    if not result.rules:
        out.plain("No retention policies: nothing to do (`sessionkeeper policy set` makes one).")
        return
    rows = [
        [
            "* (default)" if r.agent_id == DEFAULT_POLICY else r.agent_id,
            r.rule,
            _verb(r.action, result.dry_run),
            r.count,
            r.message_count,
            out.when(r.cutoff),
        ]
        for r in result.rules
    ]
    title = "Retention policies (dry run)" if result.dry_run else "Retention policies"
    columns = ["agent", "rule", "action", "sessions", "messages", "before (UTC)"]
    out.print_table(title, columns, rows, keep=("agent",))
    for r in result.rules:
        if r.session_ids:
            agent = "default" if r.agent_id == DEFAULT_POLICY else r.agent_id
            what = f"{_verb(r.action, result.dry_run)} {out.plural(r.count, 'session')}"
            out.plain(f"{agent} {r.rule} {what}: {' '.join(r.session_ids)}")
    ended = f"{_verb('end', result.dry_run)} {out.plural(result.ended_count, 'session')}"
    deleted = f"{_verb('delete', result.dry_run)} {out.plural(result.deleted_count, 'session')}"
    note = " (dry run: nothing changed)" if result.dry_run else ""
    out.plain(f"{ended[0].upper()}{ended[1:]}, {deleted}{note}")


def _verb(action: str, dry_run: bool) -> str:
    if dry_run:
        return f"would {action}"
    return "ended" if action == "end" else "deleted"

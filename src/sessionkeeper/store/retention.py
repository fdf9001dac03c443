"""Retention policies: per agent and a default, which sessions end or go, and when.

A policy belongs to an agent, or is the default (agent ``"*"``) for every agent without one
of its own: an agent's own policy replaces the default whole (a policy with no rules keeps
everything of its agent). It has up to three rules, each off (None) or a duration:

- ``delete_after``: delete any session with no activity for this long. "Activity" is
  ``updated_at``, which every write moves (a message appended, deleted or popped, a
  framework write, an update or an end): the age that matters for "don't let the database
  grow forever" is inactivity, not creation, so a long conversation still in use is kept.
- ``delete_ended_after``: delete an ended session once its end (``ended_at``) and its last
  activity are both this old.
- ``end_idle_after``: mark ended (kept) an active session idle this long. Only ``status``
  and ``ended_at`` change: ending by policy is not activity, so ``updated_at`` keeps the
  time of the last real write and ``delete_after`` still counts from it.

Never a pinned session (metadata ``"pinned": true``), by any rule. The ghost purge is not a
policy and does not change. A run applies each policy's rules in ``POLICY_RULES`` order
(deletes first), agents with their own policy first, then the default for every other agent.

Stored as the ``retention_policies`` table has them (migration 0009): the idle time in whole
minutes, the delete ages in whole days. Durations are given as ``timedelta`` or text
(``90m``, ``2h``, ``30d``: a whole number and a unit); a duration that is not a whole number
of its rule's unit is refused (``36h`` for a delete rule), as are zero, negative and over a
century. Bad input changes nothing.

Safety while writers write: each rule is applied in bounded batches, each batch one short
transaction whose statement re-checks the rule on every row it ends or deletes, under that
row's lock (``backends/retention_sql.py``). A write moves ``updated_at`` past every cutoff, so
a session written during a run is never deleted, and an append that comes after its
session's delete finds no session (``NotFound``: nothing acknowledged is lost). That holds as
long as a run's cutoffs are in the past: a run that changes data refuses a ``now`` later than
the clock.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sessionkeeper.errors import InvalidInput
from sessionkeeper.models import (
    DEFAULT_POLICY,
    POLICY_RULES,
    Policy,
    PolicyRun,
    RuleRun,
)
from sessionkeeper.store import validate
from sessionkeeper.store.backends.base import Backend, RuleScope

POLICY_BATCH = 500  # sessions per transaction of a run (as a prune's)
DurationArg = timedelta | str | None

_DURATION = re.compile(r"\s*([0-9]{1,12})\s*([mhd])\s*")
_UNIT_MINUTES = {"m": 1, "h": 60, "d": 24 * 60}
# Each rule's unit, as the table stores it.
_IN_MINUTES = {"end_idle_after": True, "delete_ended_after": False, "delete_after": False}
_COLUMNS = {
    "end_idle_after": "end_idle_minutes",
    "delete_ended_after": "delete_ended_days",
    "delete_after": "delete_after_days",
}


def policy_agent(agent_id: Any) -> str:
    """``"*"`` (the default policy) or an agent id."""
    if agent_id == DEFAULT_POLICY:
        return DEFAULT_POLICY
    return validate.label(agent_id, "agent_id")


def duration(value: Any, field: str) -> timedelta:
    """A ``timedelta``, or text: a whole number and a unit, ``m`` (minutes), ``h`` (hours) or
    ``d`` (days): ``90m``, ``2h``, ``30d``."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str):
        found = _DURATION.fullmatch(value)
        if found is not None:
            minutes = int(found.group(1)) * _UNIT_MINUTES[found.group(2)]
            if minutes > validate.MAX_MINUTES:
                raise InvalidInput(
                    f"{field} must be at most a century ({validate.MAX_DAYS:,} days), "
                    f"got {value!r}",
                    field=field,
                )
            return timedelta(minutes=minutes)
    raise InvalidInput(
        f"{field} must be a duration: a whole number and a unit, m (minutes), h (hours) or "
        f"d (days), e.g. 90m, 2h, 30d (or a timedelta); got {value!r}",
        field=field,
    )


def _whole(value: timedelta, field: str, minutes: bool) -> int:
    """``value`` in the rule's unit: whole, positive, at most a century."""
    unit, size = ("minutes", timedelta(minutes=1)) if minutes else ("days", timedelta(days=1))
    amount = value / size
    # The range first, with the words of every other duration (validate.duration).
    validate.duration(amount, field, unit, allow_zero=False)
    if value % size:
        raise InvalidInput(
            f"{field} must be a whole number of {unit} (the policy keeps {unit}); "
            f"got {format_timedelta(value)}",
            field=field,
        )
    return int(amount)


def policy(
    agent_id: Any,
    now: datetime,
    *,
    end_idle_after: DurationArg,
    delete_ended_after: DurationArg,
    delete_after: DurationArg,
) -> Policy:
    """A checked policy: every argument valid, or InvalidInput naming the first that is not."""
    agent = policy_agent(agent_id)
    given = {
        "end_idle_after": end_idle_after,
        "delete_ended_after": delete_ended_after,
        "delete_after": delete_after,
    }
    amounts: dict[str, int | None] = {}
    for rule, value in given.items():
        amounts[_COLUMNS[rule]] = (
            None if value is None else _whole(duration(value, rule), rule, _IN_MINUTES[rule])
        )
    return Policy(agent_id=agent, updated_at=now, **amounts)


def rule_lengths(p: Policy) -> dict[str, timedelta]:
    """The rules a policy has on, by name, as durations."""
    found: dict[str, timedelta] = {}
    if p.delete_after_days is not None:
        found["delete_after"] = timedelta(days=p.delete_after_days)
    if p.delete_ended_days is not None:
        found["delete_ended_after"] = timedelta(days=p.delete_ended_days)
    if p.end_idle_minutes is not None:
        found["end_idle_after"] = timedelta(minutes=p.end_idle_minutes)
    return found


def format_minutes(minutes: int | None) -> str:
    """A stored duration as text in its largest whole unit (``120`` → ``2h``); "" for off."""
    if minutes is None:
        return ""
    for unit in ("d", "h"):
        size = _UNIT_MINUTES[unit]
        if minutes % size == 0:
            return f"{minutes // size}{unit}"
    return f"{minutes}m"


def format_timedelta(value: timedelta) -> str:
    if value % timedelta(minutes=1):
        return str(value)
    return format_minutes(int(value / timedelta(minutes=1)))


def scopes(policies: Sequence[Policy], now: datetime) -> list[RuleScope]:
    """Every rule of every policy, in the order a run applies them: agents' own policies
    (by agent id), then the default for the agents without one."""
    own = tuple(sorted(p.agent_id for p in policies if p.agent_id != DEFAULT_POLICY))
    ordered = sorted(policies, key=lambda p: (p.agent_id == DEFAULT_POLICY, p.agent_id))
    found: list[RuleScope] = []
    for p in ordered:
        default = p.agent_id == DEFAULT_POLICY
        lengths = rule_lengths(p)
        for rule in POLICY_RULES:
            if rule in lengths:
                found.append(
                    RuleScope(
                        rule=rule,
                        agent_id=None if default else p.agent_id,
                        others=own if default else (),
                        cutoff=now - lengths[rule],
                    )
                )
    return found


def run_now(now: datetime | None, dry_run: bool) -> datetime:
    """The time a run measures from: the clock, or ``now`` (aware; not in the future unless
    it is a dry run, or a write during the run could fall before a cutoff)."""
    clock = datetime.now(UTC)
    if now is None:
        return clock
    now = validate.aware(now, "now")
    if now > clock and not dry_run:
        raise InvalidInput(
            "now is in the future: only a dry run may look ahead (a run that deletes "
            "measures from the present, so a session written meanwhile is never past a cutoff)",
            field="now",
        )
    return now


async def run(
    backend: Backend, policies: Sequence[Policy], now: datetime, *, dry_run: bool
) -> PolicyRun:
    """Apply (or with ``dry_run``, list) every rule of ``policies`` measured from ``now``."""
    results: list[RuleRun] = []
    claimed: set[str] = set()  # a dry run: what an earlier rule would already take
    for scope in scopes(policies, now):
        if dry_run:
            found = [(i, n) for i, n in await backend.rule_sessions(scope) if i not in claimed]
            claimed.update(i for i, _ in found)
        else:
            found = await backend.apply_rule(scope, datetime.now(UTC), POLICY_BATCH)
        results.append(
            RuleRun(
                agent_id=scope.agent_id or DEFAULT_POLICY,
                rule=scope.rule,
                action="end" if scope.rule == "end_idle_after" else "delete",
                cutoff=scope.cutoff,
                count=len(found),
                message_count=sum(n for _, n in found),
                session_ids=[i for i, _ in found],
            )
        )
    return PolicyRun(
        dry_run=dry_run,
        now=now,
        ended_count=sum(r.count for r in results if r.action == "end"),
        deleted_count=sum(r.count for r in results if r.action == "delete"),
        rules=results,
    )


def configured(value: Any) -> dict[str, dict[str, timedelta | None]]:
    """Policies written in configuration (``SESSIONKEEPER_RETENTION``): a JSON object of
    agent id (or ``"*"``) → its rules (``{"delete_after": "30d", "end_idle_after": "2h"}``),
    checked now so that a bad setting stops the server at start. Rules not named are off."""
    if not isinstance(value, Mapping):
        raise InvalidInput(
            'retention must be a JSON object of agent id (or "*") to rules, e.g. '
            '{"*": {"delete_after": "30d"}}',
            field="retention",
        )
    checked: dict[str, dict[str, timedelta | None]] = {}
    for agent, rules in value.items():
        where = f"retention[{agent!r}]"
        if not isinstance(rules, Mapping):
            raise InvalidInput(f"{where} must be an object of rules", field="retention")
        unknown = sorted(set(rules) - set(POLICY_RULES))
        if unknown:
            raise InvalidInput(
                f"{where}: unknown rule {unknown[0]!r} (the rules: {', '.join(POLICY_RULES)})",
                field="retention",
            )
        try:
            found = policy(agent, datetime.now(UTC), **{r: rules.get(r) for r in POLICY_RULES})
        except InvalidInput as exc:
            raise InvalidInput(f"{where}: {exc.message}", field="retention") from None
        lengths = rule_lengths(found)
        checked[found.agent_id] = {rule: lengths.get(rule) for rule in POLICY_RULES}
    return checked

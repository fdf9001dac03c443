"""Read the OpenAI Agents SDK's session databases (``--from openai-sqlite|openai-sqlalchemy``).

``SQLiteSession``, ``AdvancedSQLiteSession`` and ``SQLAlchemySession`` share two tables:
``agent_sessions(session_id, created_at, updated_at)`` and ``agent_messages(id, session_id,
message_data TEXT, created_at)``, one input item per row as JSON, in ``id`` order. Each
session becomes a store session of type ``openai-agents`` with the same id (see
``foreign.py`` for ids that are not valid session ids), each item one message made exactly as
``SessionkeeperSession.add_items`` makes it (``integrations/openai_items.py``), so
``SessionkeeperSession(id).get_items()`` equals the source's ``get_items()``.

``AdvancedSQLiteSession`` adds ``message_structure`` (which items each branch holds, in what
order) and ``turn_usage``. A fresh ``AdvancedSQLiteSession`` reads its ``main`` branch, so
that is the session; every other branch becomes a session of its own, id
``<id>:branch:<branch>`` (metadata ``openai_branch``), and each message keeps its structure row
(turn numbers, tool name) in ``metadata["openai_structure"]``, each session its branch's
``turn_usage`` rows in ``metadata["openai_turn_usage"]``. Rows the SDK itself skips (not
JSON, not an object) are not messages: they are kept in ``metadata["openai_unreadable"]`` with
a warning, never dropped.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from typing import Any

from sessionkeeper.errors import SessionkeeperError
from sessionkeeper.integrations._common import auto_title
from sessionkeeper.integrations.openai_items import item_row
from sessionkeeper.models import Message, Session
from sessionkeeper.transfer.foreign_reader import Count, Counts
from sessionkeeper.transfer.records import Failed, Item, Parsed, database_id
from sessionkeeper.transfer.sources import Row, Source, require_table, to_time

SESSION_TYPE = (
    "openai-agents"  # integrations.openai_agents.SESSION_TYPE (that module needs the SDK)
)
SESSIONS = "agent_sessions"
MESSAGES = "agent_messages"
WHAT = "an OpenAI Agents SDK session database (SQLiteSession, SQLAlchemySession)"

_STRUCTURE_FIELDS = ("message_type", "user_turn_number", "branch_turn_number", "tool_name")
_USAGE_FIELDS = (
    "user_turn_number",
    "requests",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "input_tokens_details",
    "output_tokens_details",
    "created_at",
)


class OpenAIImport:
    """The sessions of one OpenAI Agents SDK database."""

    def __init__(self, kind: str, source: Source, *, agent: str, advanced: bool) -> None:
        self.kind = kind
        self.source = source
        self.label = source.label
        self.agent = agent
        self.advanced = advanced  # AdvancedSQLiteSession's structure tables are there

    @classmethod
    async def open(cls, kind: str, source: Source, *, agent: str) -> OpenAIImport:
        try:
            await require_table(source, SESSIONS, {"session_id", "created_at", "updated_at"}, WHAT)
            await require_table(
                source, MESSAGES, {"id", "session_id", "message_data", "created_at"}, WHAT
            )
            advanced = "message_structure" in await source.tables()
        except BaseException:
            await source.close()
            raise
        return cls(kind, source, agent=agent, advanced=advanced)

    async def close(self) -> None:
        await self.source.close()

    async def _ids(self) -> list[str]:
        rows = await self.source.fetch(
            f"SELECT session_id FROM {SESSIONS} UNION SELECT session_id FROM {MESSAGES} ORDER BY 1"
        )
        return [r[0] for r in rows]

    async def count(self) -> Counts:
        (messages,) = (await self.source.fetch(f"SELECT count(*) FROM {MESSAGES}"))[0]
        counts = Counts(sessions=len(await self._ids()), messages=int(messages))
        if self.advanced:
            branches = await self.source.fetch(
                "SELECT count(*) FROM (SELECT DISTINCT session_id, branch_id FROM message_structure"
                " WHERE branch_id <> 'main') AS b"
            )
            counts.other["branch_sessions"] = int(branches[0][0])
            counts.sessions += counts.other["branch_sessions"]
        return counts

    async def items(self, count: Count) -> AsyncIterator[Item]:
        for source_id in await self._ids():
            try:
                for parsed in await self._session(source_id, count):
                    yield parsed
            except SessionkeeperError as exc:
                yield Failed(f"{self.label} session {source_id}", exc.message, source_id)

    async def _session(self, source_id: str, count: Count) -> list[Parsed]:
        head = await self.source.fetch(
            f"SELECT created_at, updated_at FROM {SESSIONS} WHERE session_id = :sid",
            {"sid": source_id},
        )
        rows = await self.source.fetch(
            f"SELECT id, message_data, created_at FROM {MESSAGES} "
            "WHERE session_id = :sid ORDER BY id",
            {"sid": source_id},
        )
        structure: list[Row] = []
        usage: list[Row] = []
        if self.advanced:
            structure = await self.source.fetch(
                "SELECT branch_id, message_id, "
                + ", ".join(_STRUCTURE_FIELDS)
                + " FROM message_structure WHERE session_id = :sid ORDER BY sequence_number, id",
                {"sid": source_id},
            )
            if "turn_usage" in await self.source.tables():
                usage = await self.source.fetch(
                    "SELECT branch_id, "
                    + ", ".join(_USAGE_FIELDS)
                    + " FROM turn_usage WHERE session_id = :sid"
                    " ORDER BY branch_id, user_turn_number",
                    {"sid": source_id},
                )
        by_id = {r[0]: r for r in rows}
        if (
            not structure
        ):  # SQLiteSession / SQLAlchemySession (or an Advanced session never structured)
            return [self._parsed(source_id, None, head, rows, {}, [], count)]
        branches: dict[str, list[Row]] = {"main": []}
        places: dict[str, dict[int, dict[str, Any]]] = {"main": {}}
        for branch, message_id, *fields in structure:
            if message_id in by_id:
                branches.setdefault(branch, []).append(by_id[message_id])
                places.setdefault(branch, {})[message_id] = dict(
                    zip(_STRUCTURE_FIELDS, fields, strict=True)
                )
        linked = {message_id for _b, message_id, *_f in structure}
        unlinked = [r for r in rows if r[0] not in linked]
        result = []
        for branch, branch_rows in branches.items():
            branch_usage = [
                dict(zip(_USAGE_FIELDS, u[1:], strict=True)) for u in usage if u[0] == branch
            ]
            parsed = self._parsed(
                source_id, branch, head, branch_rows, places.get(branch, {}), branch_usage, count
            )
            if branch == "main" and unlinked:
                # Items outside every branch: the SDK never reads them; kept, not dropped.
                parsed.session.metadata["openai_unlinked"] = [self._raw(r) for r in unlinked]
                parsed.warnings.append(
                    f"{len(unlinked)} item(s) on no branch kept in metadata openai_unlinked"
                )
            result.append(parsed)
        return result

    @staticmethod
    def _raw(row: Row) -> dict[str, Any]:
        return {"id": row[0], "message_data": row[1], "created_at": str(row[2])}

    def _parsed(
        self,
        source_id: str,
        branch: str | None,
        head: list[Row],
        rows: Iterable[Row],
        places: dict[int, dict[str, Any]],
        usage: list[dict[str, Any]],
        count: Count,
    ) -> Parsed:
        wanted = source_id if branch in (None, "main") else f"{source_id}:branch:{branch}"
        sid = database_id(wanted, "openai")
        where = f"{self.label} session {source_id}" + (
            f" branch {branch}" if branch not in (None, "main") else ""
        )
        messages: list[Message] = []
        unreadable: list[dict[str, Any]] = []
        first_user: str | None = None
        for row in rows:
            row_id, data, stamp = row
            try:
                item = json.loads(data)
            except (TypeError, ValueError):
                item = None
            if not isinstance(item, dict):  # the SDK skips it on read (or fails): keep it aside
                unreadable.append(self._raw(row))
                continue
            extra = {"openai_structure": places[row_id]} if row_id in places else None
            shaped = item_row(item, count, extra)
            content = shaped["content"]
            if first_user is None and item.get("role") == "user" and content.strip():
                first_user = content
            messages.append(
                Message(
                    session_id=sid,
                    seq=len(messages) + 1,
                    role=shaped["role"],
                    content=content,
                    agent_id=None,
                    model=None,
                    token_count=shaped.get("token_count", count(content)),
                    metadata=shaped["metadata"],
                    created_at=to_time(stamp, f"{where} item {row_id} created_at"),
                )
            )
        created = to_time(head[0][0], f"{where} created_at") if head else None
        updated = to_time(head[0][1], f"{where} updated_at") if head else None
        first = messages[0].created_at if messages else None
        last = messages[-1].created_at if messages else None
        created = created or first or updated
        if created is None:  # no session row and only unreadable items
            created = to_time(unreadable[0]["created_at"], f"{where} created_at")
        provenance: dict[str, Any] = {"kind": self.kind, "source_id": source_id}
        metadata: dict[str, Any] = {"imported_from": provenance}
        if branch not in (None, "main"):
            metadata["openai_branch"] = {"session_id": source_id, "branch_id": branch}
        if usage:
            metadata["openai_turn_usage"] = [
                {
                    k: (str(v) if k == "created_at" and v is not None else _json(v))
                    for k, v in u.items()
                }
                for u in usage
            ]
        warnings = []
        if unreadable:
            metadata["openai_unreadable"] = unreadable
            warnings.append(
                f"{len(unreadable)} row(s) that are not a JSON item (the SDK skips them) kept in "
                "metadata openai_unreadable"
            )
        session = Session(
            session_id=sid,
            agent_id=self.agent,
            title=auto_title(first_user),
            session_type=SESSION_TYPE,
            status="active",
            metadata=metadata,
            created_at=created,
            updated_at=max(d for d in (updated, last, created) if d is not None),
            ended_at=None,
            last_message_at=last,
            message_count=len(messages),
            token_count=sum(m.token_count for m in messages),
        )
        return Parsed(session, messages, where, warnings)


def _json(value: Any) -> Any:
    """A turn_usage column: its JSON details decoded, numbers as they are."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value

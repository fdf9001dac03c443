"""Read a langchain-postgres ``PostgresChatMessageHistory`` table (``--from langchain-postgres``).

The table (its name is the user's: ``--table``) holds ``id SERIAL, session_id UUID, message
JSONB, created_at TIMESTAMPTZ``: one ``message_to_dict`` per row, a history in ``id`` order.
Each history becomes a store session of type ``langchain`` whose id is the UUID's text, each
message one store message made exactly as ``SessionkeeperChatMessageHistory`` makes it
(``integrations.langchain.message_row``), so that class reads back the messages the source
class returned. Reading the table needs no langchain-postgres (nor psycopg); shaping the
messages needs langchain-core, the ``langchain`` extra that reads them back.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from sessionkeeper.errors import InvalidInput, SessionkeeperError
from sessionkeeper.integrations._common import auto_title, missing_framework
from sessionkeeper.models import Message, Session
from sessionkeeper.transfer.foreign_reader import Count, Counts
from sessionkeeper.transfer.records import Failed, Item, Parsed, database_id
from sessionkeeper.transfer.sources import Source, quoted, require_table, to_time

KIND = "langchain-postgres"
SESSION_TYPE = "langchain"  # integrations.langchain.SESSION_TYPE
WHAT = "a langchain-postgres PostgresChatMessageHistory table"


class LangchainImport:
    """The histories of one PostgresChatMessageHistory table."""

    kind = KIND

    def __init__(self, source: Source, table: str, *, agent: str) -> None:
        self.source = source
        self.table = table
        self.label = f"{source.label} table {table}"
        self.agent = agent

    @classmethod
    async def open(cls, source: Source, table: str, *, agent: str) -> LangchainImport:
        try:
            await require_table(source, table, {"id", "session_id", "message", "created_at"}, WHAT)
        except BaseException:
            await source.close()
            raise
        return cls(source, table, agent=agent)

    async def close(self) -> None:
        await self.source.close()

    async def count(self) -> Counts:
        rows = await self.source.fetch(
            f"SELECT count(DISTINCT session_id), count(*) FROM {quoted(self.table)}"
        )
        return Counts(sessions=int(rows[0][0]), messages=int(rows[0][1]))

    async def items(self, count: Count) -> AsyncIterator[Item]:
        try:
            from langchain_core.messages import messages_from_dict

            from sessionkeeper.integrations.langchain import first_user_text, message_row
        except ImportError as exc:
            raise missing_framework("LangChain (langchain-core)", "langchain", exc) from exc
        ids = await self.source.fetch(
            f"SELECT DISTINCT session_id::text FROM {quoted(self.table)} ORDER BY 1"
        )
        for (source_id,) in ids:
            where = f"{self.label} session {source_id}"
            try:
                rows = await self.source.fetch(
                    f"SELECT id, message::text, created_at FROM {quoted(self.table)} "
                    "WHERE session_id::text = :sid ORDER BY id",
                    {"sid": source_id},
                )
                sid = database_id(source_id, "langchain")
                dicts = [_message(r[1], f"{where} row {r[0]}") for r in rows]
                try:
                    messages = messages_from_dict(dicts)
                except (KeyError, ValueError, TypeError) as exc:
                    raise InvalidInput(f"{where}: not a LangChain message ({exc})") from exc
                stored: list[Message] = []
                for row, message in zip(rows, messages, strict=True):
                    shaped = message_row(message, count)
                    stored.append(
                        Message(
                            session_id=sid,
                            seq=len(stored) + 1,
                            role=shaped["role"],
                            content=shaped["content"],
                            agent_id=None,
                            model=None,
                            token_count=shaped.get("token_count") or count(shaped["content"]),
                            metadata=shaped["metadata"],
                            created_at=to_time(row[2], f"{where} row {row[0]} created_at"),
                        )
                    )
                yield Parsed(
                    self._session(sid, source_id, stored, first_user_text(messages)), stored, where
                )
            except SessionkeeperError as exc:
                yield Failed(where, exc.message, source_id)

    def _session(
        self, sid: str, source_id: str, messages: list[Message], first_user: str | None
    ) -> Session:
        created = messages[0].created_at
        last = messages[-1].created_at
        metadata: dict[str, Any] = {
            "imported_from": {"kind": KIND, "source_id": source_id, "table": self.table}
        }
        return Session(
            session_id=sid,
            agent_id=self.agent,
            title=auto_title(first_user),
            session_type=SESSION_TYPE,
            status="active",
            metadata=metadata,
            created_at=created,
            updated_at=max(created, last),
            ended_at=None,
            last_message_at=last,
            message_count=len(messages),
            token_count=sum(m.token_count for m in messages),
        )


def _message(text: str, where: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"{where}: not JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise InvalidInput(f"{where}: not a LangChain message dict")
    return value

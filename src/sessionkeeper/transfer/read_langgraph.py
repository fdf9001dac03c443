"""Read LangGraph checkpointer tables (``--from langgraph-sqlite`` / ``langgraph-postgres``).

- ``SqliteSaver`` / ``AsyncSqliteSaver``: ``checkpoints(thread_id, checkpoint_ns,
  checkpoint_id, parent_checkpoint_id, type, checkpoint BLOB, metadata BLOB)``, the whole
  checkpoint serialised by the saver's serde, metadata as JSON; ``writes(…, task_id,
  task_path, idx, channel, type, value)``.
- ``PostgresSaver`` / ``AsyncPostgresSaver``: ``checkpoints`` with the checkpoint as JSONB
  (primitive channel values inline), ``checkpoint_blobs(thread_id, checkpoint_ns, channel,
  version, type, blob)`` for the other values, ``checkpoint_writes`` for pending writes.

Each thread becomes a store session (its id is the thread id) written by replaying every
checkpoint, in every namespace, oldest first, through ``AsyncSessionkeeperSaver.aput`` (with
the versions that changed since its parent, as LangGraph passes them) and its pending writes
through ``aput_writes``: the saver's own storage, so ``get_tuple`` / ``list`` /
``graph.get_state`` read the thread as the source saver did (checkpoint ids, parents,
metadata, channel values and versions, pending writes), and the ``messages`` channel is
mirrored into the session's messages as the saver does live. Values are decoded with
LangGraph's ``JsonPlusSerializer`` (langgraph-checkpoint, the ``langgraph`` extra); no
langgraph-checkpoint-sqlite / -postgres is needed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from sessionkeeper.errors import InvalidInput, SessionkeeperError
from sessionkeeper.integrations._common import missing_framework
from sessionkeeper.models import SESSION_ID_RE
from sessionkeeper.transfer.foreign_reader import Count, Counts
from sessionkeeper.transfer.records import Failed, Item, Replayed
from sessionkeeper.transfer.sources import Row, Source, require_table

WHAT = {
    "langgraph-sqlite": "a LangGraph SqliteSaver database",
    "langgraph-postgres": "a LangGraph PostgresSaver database",
}
_CHECKPOINT = {"thread_id", "checkpoint_ns", "checkpoint_id", "parent_checkpoint_id", "type"}


class LangGraphImport:
    """The threads of one LangGraph checkpointer database."""

    def __init__(self, kind: str, source: Source, *, agent: str) -> None:
        self.kind = kind
        self.source = source
        self.label = source.label
        self.agent = agent
        self.postgres = kind == "langgraph-postgres"
        self.writes_table = "checkpoint_writes" if self.postgres else "writes"

    @classmethod
    async def open(cls, kind: str, source: Source, *, agent: str) -> LangGraphImport:
        what = WHAT[kind]
        try:
            await require_table(
                source, "checkpoints", _CHECKPOINT | {"checkpoint", "metadata"}, what
            )
            writes = {
                "thread_id",
                "checkpoint_ns",
                "checkpoint_id",
                "task_id",
                "idx",
                "channel",
                "type",
            }
            if kind == "langgraph-postgres":
                await require_table(
                    source, "checkpoint_blobs", {"channel", "version", "type", "blob"}, what
                )
                await require_table(source, "checkpoint_writes", writes | {"blob"}, what)
            else:
                await require_table(source, "writes", writes | {"value"}, what)
        except BaseException:
            await source.close()
            raise
        return cls(kind, source, agent=agent)

    async def close(self) -> None:
        await self.source.close()

    async def count(self) -> Counts:
        rows = await self.source.fetch(
            "SELECT count(DISTINCT thread_id), count(*) FROM checkpoints"
        )
        (writes,) = (await self.source.fetch(f"SELECT count(*) FROM {self.writes_table}"))[0]
        return Counts(
            sessions=int(rows[0][0]),
            messages=0,
            other={"checkpoints": int(rows[0][1]), "pending_writes": int(writes)},
        )

    async def items(self, count: Count) -> AsyncIterator[Item]:
        try:
            from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

            from sessionkeeper.integrations import langgraph as _langgraph  # noqa: F401
        except ImportError as exc:
            raise missing_framework("LangGraph (langgraph-checkpoint)", "langgraph", exc) from exc
        serde = JsonPlusSerializer()
        threads = await self.source.fetch("SELECT DISTINCT thread_id FROM checkpoints ORDER BY 1")
        for (thread_id,) in threads:
            where = f"{self.label} thread {thread_id}"
            if not SESSION_ID_RE.fullmatch(str(thread_id)):
                yield Failed(where, f"thread id {thread_id!r} cannot be a session id", thread_id)
                continue
            try:
                checkpoints = await self._checkpoints(str(thread_id), serde, where)
            except SessionkeeperError as exc:
                yield Failed(where, exc.message, thread_id)
                continue
            yield Replayed(str(thread_id), self._writer(str(thread_id), checkpoints), where)

    def _writer(self, thread_id: str, checkpoints: list[dict[str, Any]]) -> Any:
        async def write(store: Any) -> int:
            from sessionkeeper.integrations.langgraph import AsyncSessionkeeperSaver

            saver = AsyncSessionkeeperSaver(
                store,
                agent_id=self.agent,
                session_metadata={"imported_from": {"kind": self.kind, "source_id": thread_id}},
            )
            for c in checkpoints:
                target: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": c["ns"]}
                if c["parent"]:
                    target["checkpoint_id"] = c["parent"]
                config: Any = {"configurable": target}
                written = await saver.aput(
                    config, c["checkpoint"], c["metadata"], c["new_versions"]
                )
                for task_id, task_path, writes in c["writes"]:
                    await saver.aput_writes(written, writes, task_id, task_path)
            return (await store.get_session(thread_id)).message_count  # type: ignore[no-any-return]

        return write

    async def _checkpoints(self, thread_id: str, serde: Any, where: str) -> list[dict[str, Any]]:
        """Every checkpoint of the thread, decoded, oldest first per namespace (parents first)."""
        rows = await self.source.fetch(
            "SELECT checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata"
            " FROM checkpoints WHERE thread_id = :t ORDER BY checkpoint_ns, checkpoint_id",
            {"t": thread_id},
        )
        writes = await self._writes(thread_id)
        blobs: dict[tuple[str, str, str], tuple[str, bytes | None]] = {}
        if self.postgres:
            for ns, channel, version, kind, blob in await self.source.fetch(
                "SELECT checkpoint_ns, channel, version, type, blob FROM checkpoint_blobs"
                " WHERE thread_id = :t",
                {"t": thread_id},
            ):
                blobs[(ns, channel, version)] = (kind, blob)
        result: list[dict[str, Any]] = []
        versions_of: dict[tuple[str, str], dict[str, Any]] = {}
        for ns, cid, parent, kind, data, meta in rows:
            what = f"{where} checkpoint {cid}"
            try:
                checkpoint = self._checkpoint(ns, kind, data, blobs, serde)
                metadata = _json(meta) if meta is not None else {}
                pending = [
                    (task_id, task_path, [(ch, serde.loads_typed((t, v))) for ch, t, v in ws])
                    for task_id, task_path, ws in writes.get((ns, cid), [])
                ]
            except SessionkeeperError:
                raise
            except Exception as exc:  # what the serde or JSON refuses
                raise InvalidInput(f"{what} cannot be decoded ({exc})") from exc
            if not isinstance(checkpoint, dict) or not isinstance(metadata, dict):
                raise InvalidInput(f"{what} is not a LangGraph checkpoint")
            versions = checkpoint.get("channel_versions") or {}
            before = versions_of.get((ns, parent), {}) if parent else {}
            new_versions = {k: v for k, v in versions.items() if before.get(k) != v}
            versions_of[(ns, cid)] = versions
            result.append(
                {
                    "ns": ns,
                    "parent": parent,
                    "checkpoint": checkpoint,
                    "metadata": metadata,
                    "new_versions": new_versions,
                    "writes": pending,
                }
            )
        return result

    def _checkpoint(
        self,
        ns: str,
        kind: str | None,
        data: Any,
        blobs: dict[tuple[str, str, str], tuple[str, bytes | None]],
        serde: Any,
    ) -> Any:
        if not self.postgres:
            return serde.loads_typed((kind, data))
        checkpoint = _json(data)
        values = dict(checkpoint.get("channel_values") or {})
        for channel, version in (checkpoint.get("channel_versions") or {}).items():
            found = blobs.get((ns, channel, str(version)))
            if found is not None and found[0] != "empty":
                values[channel] = serde.loads_typed(found)
        return {**checkpoint, "channel_values": values}

    async def _writes(
        self, thread_id: str
    ) -> dict[tuple[str, str], list[tuple[str, str, list[tuple[str, str, bytes]]]]]:
        value = "blob" if self.postgres else "value"
        rows: list[Row] = await self.source.fetch(
            f"SELECT checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, {value}"
            f" FROM {self.writes_table} WHERE thread_id = :t"
            " ORDER BY checkpoint_ns, checkpoint_id, task_path, task_id, idx",
            {"t": thread_id},
        )
        out: dict[tuple[str, str], list[tuple[str, str, list[tuple[str, str, bytes]], bool]]] = {}
        for ns, cid, task_id, task_path, idx, channel, kind, blob in rows:
            # One put_writes call per task for its ordinary writes (idx 0, 1, … are their
            # positions in the call); a special channel's write (ERROR, INTERRUPT …: a fixed
            # negative idx) in a call of its own, as LangGraph makes them.
            calls = out.setdefault((ns, cid), [])
            if int(idx) < 0 or not calls or calls[-1][0] != task_id or calls[-1][3]:
                calls.append((task_id, task_path or "", [], int(idx) < 0))
            calls[-1][2].append((channel, kind, blob))
        return {key: [(t, p, w) for t, p, w, _special in calls] for key, calls in out.items()}


def _json(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        value = bytes(value).decode()
    return json.loads(value) if isinstance(value, str) else value

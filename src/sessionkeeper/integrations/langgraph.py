"""LangGraph checkpoint savers on the sessionkeeper store.

    from sessionkeeper.integrations.langgraph import AsyncSessionkeeperSaver

    async with AsyncSessionkeeperSaver.from_url("sqlite:///agent.db") as saver:
        graph = builder.compile(checkpointer=saver)
        await graph.ainvoke({"messages": [("user", "hi")]}, {"configurable": {"thread_id": "t1"}})

``AsyncSessionkeeperSaver`` and ``SessionkeeperSaver`` are ``BaseCheckpointSaver``s with every
operation: ``put``, ``put_writes``, ``get_tuple``, ``list`` (``filter`` / ``before`` /
``limit``), ``delete_thread``, ``delete_for_runs``, ``copy_thread`` and ``prune``, async
(``aput`` …) and blocking (``put`` …) alike. The two differ in how ``from_url`` opens the
store: ``async with`` for graphs run with ``ainvoke``/``astream``, ``with`` for ``invoke``.
Blocking calls run on the shared loop of ``sessionkeeper/bridge.py``.

A thread is an ordinary store session (its id is the thread id; created by the first
checkpoint with ``session_type="langgraph"``): listed, searched, windowed, shown in the
dashboard, and pruned like any other; deleting it deletes its checkpoints. The thread's
``messages`` channel (``mirror_channel``) is mirrored into the session's messages as the
messages appear, in the same transaction as the checkpoint that brings them; a message
changed or removed later in the graph stays as it was first seen (appended, not rewritten).
Each is stored as the LangChain integration stores one (``message_to_dict`` whole in
metadata, its text as content), so ``SessionkeeperChatMessageHistory`` reads them too.

Storage (``store/checkpoints.py``): the checkpoint without its large values; each channel
value once per version; list values element by element, each element once per thread, so a
conversation growing by a message per step stores one message per step. Values are
serialised by the saver's ``serde`` (LangGraph's ``JsonPlusSerializer`` by default).
"""

from __future__ import annotations

import builtins
import logging
import random
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar, Unpack, cast

from sessionkeeper.bridge import run_blocking
from sessionkeeper.errors import Conflict, InvalidInput, NotFound
from sessionkeeper.integrations._binding import (
    Bound,
    StoreSource,
    create_session,
    opened_store,
    opened_store_blocking,
    title_later,
)
from sessionkeeper.integrations._common import auto_title, finish, missing_framework
from sessionkeeper.store import validate

try:
    from langchain_core.messages import BaseMessage
    from langchain_core.runnables import RunnableConfig
    from langgraph.checkpoint.base import (
        WRITES_IDX_MAP,
        BaseCheckpointSaver,
        ChannelVersions,
        Checkpoint,
        CheckpointMetadata,
        CheckpointTuple,
        get_serializable_checkpoint_metadata,
    )
    from langgraph.checkpoint.serde.base import SerializerProtocol
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
except ImportError as exc:  # pragma: no cover - exercised by a subprocess test
    raise missing_framework("LangGraph (langgraph-checkpoint)", "langgraph", exc) from exc

from sessionkeeper.integrations.langchain import first_user_text, to_row
from sessionkeeper.store.checkpoints import CheckpointRow, Element, ValueRow, WriteRow

if TYPE_CHECKING:
    from sessionkeeper import Store
    from sessionkeeper.store.checkpoints import Checkpoints, StoredCheckpoint

__all__ = ["SESSION_TYPE", "AsyncSessionkeeperSaver", "SessionkeeperSaver"]

logger = logging.getLogger(__name__)

SESSION_TYPE = "langgraph"
# Strings up to this length stay in the checkpoint row; longer ones are stored once per
# version like any other value (an unchanged long string is not repeated in each checkpoint).
INLINE_TEXT = 256
# Lists this long or longer are stored element by element.
MIN_ITEMS = 2
_ATTEMPTS = 3
_UNTITLED_MAX = 4096

S = TypeVar("S", bound="_Saver")


class SaverOptions(TypedDict, total=False):
    """The savers' own options, as their constructors take them (``from_url`` takes the same)."""

    agent_id: str
    user_id: str | None
    session_type: str
    title: str | None
    session_metadata: dict[str, Any] | None
    mirror_channel: str | None
    serde: SerializerProtocol | None


class _Saver(Bound, BaseCheckpointSaver[str]):
    """Everything both savers do (the async methods do the work; blocking ones wait for them)."""

    def __init__(
        self,
        store: Store,
        *,
        agent_id: str = "main",
        user_id: str | None = None,
        session_type: str = SESSION_TYPE,
        title: str | None = None,
        session_metadata: dict[str, Any] | None = None,
        mirror_channel: str | None = "messages",
        serde: SerializerProtocol | None = None,
    ) -> None:
        super().__init__(serde=serde)
        self.store = store
        self._source = StoreSource(store=store)
        # Checked up front, as the per-session integrations do (the store would refuse them
        # at the first checkpoint).
        self.agent_id = validate.label(agent_id, "agent_id")
        self.user_id = validate.optional_label(user_id, "user_id")
        self.session_type = validate.label(session_type, "session_type")
        self.title = validate.title(title)
        self.session_metadata = session_metadata
        self.mirror_channel = mirror_channel
        # Threads this saver created without a title: the first user message gives one.
        self._untitled: dict[str, None] = {}
        # LangGraph's serializer reads a msgpack document with one unpackb: a list's stored
        # elements then decode in one call as the array they make (see _load_list).
        kind = type(self.serde)
        self._one_call = (
            isinstance(self.serde, JsonPlusSerializer)
            and kind.loads_typed is JsonPlusSerializer.loads_typed
        )

    @property
    def checkpoints(self) -> Checkpoints:
        return self.store.checkpoints

    # ── async: the work ────────────────────────────────────────────────────

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        thread_id, ns, checkpoint_id = _target(config)
        stored = await self.checkpoints.get(thread_id, ns, checkpoint_id)
        return None if stored is None else self._tuple(stored)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        thread_id = ns = checkpoint_id = None
        if config is not None:
            conf = config.get("configurable", {})
            if conf.get("thread_id") is not None:
                thread_id = _thread(conf["thread_id"])
            ns = conf.get("checkpoint_ns")
            checkpoint_id = conf.get("checkpoint_id")
        before_id = None if before is None else before["configurable"].get("checkpoint_id")
        async for stored in self.checkpoints.list(
            thread_id=thread_id,
            checkpoint_ns=ns,
            checkpoint_id=checkpoint_id,
            before=before_id,
            filter=filter,
            limit=limit,
        ):
            yield self._tuple(stored)

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        conf = config["configurable"]
        thread_id = _thread(conf["thread_id"])
        ns = conf.get("checkpoint_ns", "")
        meta = dict(get_serializable_checkpoint_metadata(config, metadata))
        inline: dict[str, Any] = {}
        channels: dict[str, str] = {}
        whole: list[ValueRow] = []
        lists: dict[str, tuple[str, list[Any]]] = {}
        versions = checkpoint["channel_versions"]
        for channel, value in checkpoint["channel_values"].items():
            if channel not in versions or _inline(value):
                inline[channel] = value
                continue
            version = channels[channel] = str(versions[channel])
            if channel not in new_versions:
                continue  # stored with its version already
            if type(value) is list and len(value) >= MIN_ITEMS:
                lists[channel] = (version, value)
            else:
                whole.append(ValueRow(channel, version, *self.serde.dumps_typed(value)))
        run_id = meta.get("run_id")
        row = CheckpointRow(
            thread_id,
            ns,
            checkpoint["id"],
            conf.get("checkpoint_id"),
            *self.serde.dumps_typed({**checkpoint, "channel_values": inline}),
            meta,
            channels,
            run_id if isinstance(run_id, str) else None,
        )
        serialised = {channel: self._elements(items) for channel, (_, items) in lists.items()}
        await finish(self._put(row, whole, lists, serialised, conf))
        return {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": ns,
                "checkpoint_id": checkpoint["id"],
            }
        }

    async def _put(
        self,
        row: CheckpointRow,
        whole: list[ValueRow],
        lists: dict[str, tuple[str, list[Any]]],
        serialised: dict[str, list[Element]],
        conf: Mapping[str, Any],
    ) -> None:
        cps = self.checkpoints
        for attempt in range(_ATTEMPTS):
            values = list(whole)
            items = []
            mirrored: list[BaseMessage] = []
            for channel, (version, elements) in lists.items():
                plan = await cps.plan_list(
                    row.thread_id, row.checkpoint_ns, channel, version, serialised[channel]
                )
                values.append(plan.value)
                items.extend(plan.items)
                if channel == self.mirror_channel and row.checkpoint_ns == "":
                    new = (elements[i] for i in plan.first_seen)
                    mirrored = [m for m in new if isinstance(m, BaseMessage)]
            try:
                await cps.put(row, values, items, self._rows(mirrored), skip_invalid=True)
            except NotFound:
                if attempt == _ATTEMPTS - 1:
                    raise
                await self._create(row.thread_id, mirrored, self._user(conf))
                continue
            except Conflict:  # another writer numbered items of this thread meanwhile
                if attempt == _ATTEMPTS - 1:
                    raise
                cps.forget(row.thread_id)
                continue
            if mirrored and row.thread_id in self._untitled:
                await self._title_later(row.thread_id, mirrored)
            return

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        conf = config["configurable"]
        thread_id = _thread(conf["thread_id"])
        ns = conf.get("checkpoint_ns", "")
        rows = [
            WriteRow(
                task_id,
                WRITES_IDX_MAP.get(channel, idx),
                channel,
                *self.serde.dumps_typed(value),
                task_path,
            )
            for idx, (channel, value) in enumerate(writes)
        ]
        # Special channels (errors, interrupts) replace; a task's ordinary writes are kept.
        replace = all(channel in WRITES_IDX_MAP for channel, _ in writes)
        put = self.checkpoints.put_writes
        try:
            await finish(put(thread_id, ns, conf["checkpoint_id"], rows, replace=replace))
        except NotFound:
            await self._create(thread_id, [], self._user(conf))
            await finish(put(thread_id, ns, conf["checkpoint_id"], rows, replace=replace))

    async def adelete_thread(self, thread_id: str) -> None:
        """Delete the thread's checkpoints and writes; the session and its messages too when
        this saver's kind of session (``session_type``) holds them."""
        await finish(
            self.checkpoints.delete_thread(_thread(thread_id), session_type=self.session_type)
        )

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await finish(self.checkpoints.delete_for_runs(run_ids))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint and write; a new target session also gets the source's
        messages (a fork of the conversation)."""
        await finish(
            self.checkpoints.copy_thread(_thread(source_thread_id), _thread(target_thread_id))
        )

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """``keep_latest`` keeps each namespace's newest checkpoint (with its writes and the
        values it uses); ``delete`` deletes every checkpoint. Sessions and messages stay.
        Threads that use a DeltaChannel are refused by ``keep_latest`` (NotImplementedError),
        as LangGraph's own PostgresSaver does."""
        if isinstance(thread_ids, str):
            raise TypeError("thread_ids must be a sequence of thread IDs, not a str")
        if strategy not in ("keep_latest", "delete"):
            raise ValueError(f"Unknown prune strategy: {strategy!r}")
        try:
            await finish(
                self.checkpoints.prune([_thread(t) for t in thread_ids], strategy=strategy)
            )
        except InvalidInput as exc:
            if "DeltaChannel" in exc.message:
                raise NotImplementedError(exc.message) from exc
            raise

    def get_next_version(self, current: str | None, channel: None) -> str:
        """Increasing versions with a random suffix (as LangGraph's PostgresSaver): two
        branches forked from one checkpoint never share a version of different values."""
        if current is None:
            number = 0
        elif isinstance(current, int):
            number = current
        else:
            number = int(str(current).split(".")[0])
        return f"{number + 1:012d}.{random.getrandbits(48):012x}"

    # ── blocking: the same, waited for ─────────────────────────────────────

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return run_blocking(self.aget_tuple(config))

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        found = cast(
            AsyncGenerator[CheckpointTuple, None],
            self.alist(config, filter=filter, before=before, limit=limit),
        )

        async def step() -> CheckpointTuple | None:
            try:
                return await anext(found)
            except StopAsyncIteration:
                return None

        try:
            while (item := run_blocking(step())) is not None:
                yield item
        finally:
            run_blocking(found.aclose())

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return run_blocking(self.aput(config, checkpoint, metadata, new_versions))

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        run_blocking(self.aput_writes(config, writes, task_id, task_path))

    def delete_thread(self, thread_id: str) -> None:
        run_blocking(self.adelete_thread(thread_id))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        run_blocking(self.adelete_for_runs(run_ids))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        run_blocking(self.acopy_thread(source_thread_id, target_thread_id))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        run_blocking(self.aprune(thread_ids, strategy=strategy))

    # ── helpers ─────────────────────────────────────────────────────────────

    def _elements(self, items: Sequence[Any]) -> builtins.list[Element]:
        """Each element serialised on its own; a message is identified by its id. (Every
        step serialises the whole list, as LangGraph's savers do: an element may have been
        changed in place, so its bytes are not taken from an earlier step.)"""
        dumps = self.serde.dumps_typed
        return [
            Element(*dumps(item), item.id if isinstance(item, BaseMessage) else None)
            for item in items
        ]

    def _tuple(self, stored: StoredCheckpoint) -> CheckpointTuple:
        row = stored.row
        loads = self.serde.loads_typed
        checkpoint = loads((row.type, row.checkpoint))
        values = checkpoint["channel_values"]
        for channel, (type_, value) in stored.values.items():
            if type_ != "empty" and value is not None:
                values[channel] = loads((type_, value))
        for channel, elements in stored.lists.items():
            values[channel] = self._load_list(elements)
        writes = [(w.task_id, w.channel, loads((w.type, w.value))) for w in stored.writes]
        here = {"thread_id": row.thread_id, "checkpoint_ns": row.checkpoint_ns}
        parent = None
        if row.parent_checkpoint_id:
            parent = {"configurable": {**here, "checkpoint_id": row.parent_checkpoint_id}}
        return CheckpointTuple(
            {"configurable": {**here, "checkpoint_id": row.checkpoint_id}},
            checkpoint,
            row.metadata,  # type: ignore[arg-type]
            parent,  # type: ignore[arg-type]
            writes,
        )

    def _load_list(self, elements: Sequence[tuple[str, bytes]]) -> builtins.list[Any]:
        """A list value from its stored elements. Elements that are msgpack documents are
        decoded as the msgpack array they make (its header, then each element's bytes): the
        same values as one by one, in one call of the serializer instead of one per element."""
        if self._one_call and all(type_ == "msgpack" for type_, _ in elements):
            body = b"".join(value for _, value in elements)
            loaded = self.serde.loads_typed(("msgpack", _array_header(len(elements)) + body))
            return cast(builtins.list[Any], loaded)
        return [self.serde.loads_typed(e) for e in elements]

    def _rows(self, messages: Sequence[BaseMessage]) -> builtins.list[dict[str, Any]]:
        rows = []
        for message in messages:
            row = to_row(self.store, message)
            model = (getattr(message, "response_metadata", None) or {}).get("model_name")
            if isinstance(model, str) and 0 < len(model) <= 128:
                row["model"] = model
            rows.append(row)
        return rows

    def _user(self, conf: Mapping[str, Any]) -> str | None:
        """The user of a thread's new session: the run's ``configurable.user_id`` (where
        LangGraph programs keep it), else the saver's ``user_id``. Read only when a session
        is created: a thread that has one keeps its user."""
        value = conf.get("user_id")
        if value is None:
            return self.user_id
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # as thread ids: an integer is taken as its text
        return validate.label(value, "user_id")

    async def _create(
        self, thread_id: str, messages: Sequence[BaseMessage], user_id: str | None
    ) -> None:
        untitled = await create_session(
            self.store,
            thread_id,
            agent_id=self.agent_id,
            title=self.title or auto_title(first_user_text(messages)),
            session_type=self.session_type,
            metadata=self.session_metadata,
            user_id=user_id,
        )
        if untitled:
            self._untitled[thread_id] = None
            while len(self._untitled) > _UNTITLED_MAX:
                del self._untitled[next(iter(self._untitled))]

    async def _title_later(self, thread_id: str, messages: Sequence[BaseMessage]) -> None:
        text = first_user_text(messages)
        if not text:
            return
        self._untitled.pop(thread_id, None)
        await title_later(self.store, thread_id, text)


class AsyncSessionkeeperSaver(_Saver):
    """A LangGraph checkpointer on a sessionkeeper Store, for graphs run asynchronously.

    ``AsyncSessionkeeperSaver(store)`` uses a Store you opened (and close);
    ``async with AsyncSessionkeeperSaver.from_url(url) as saver:`` opens one and closes it.
    Threads become sessions of ``agent_id`` and ``session_type`` (default ``"langgraph"``),
    for the run's ``configurable.user_id`` or else ``user_id`` (default: no user), titled
    ``title`` or by their first user message; ``mirror_channel`` (default
    ``"messages"``, None for none) is the channel whose messages the session shows.
    """

    @classmethod
    @asynccontextmanager
    async def from_url(
        cls,
        url: str | None = None,
        *,
        store_options: Mapping[str, Any] | None = None,
        **options: Unpack[SaverOptions],
    ) -> AsyncIterator[AsyncSessionkeeperSaver]:
        """A saver on the store at ``url`` (default: the user's SQLite database), closed on
        exit; ``options`` are the constructor's, ``store_options`` go to
        ``sessionkeeper.open_store``."""
        async with opened_store(url, store_options) as store:
            yield cls(store, **options)


class SessionkeeperSaver(_Saver):
    """A LangGraph checkpointer on a sessionkeeper Store, for graphs run with ``invoke``.

    ``SessionkeeperSaver(store)`` uses a Store you opened; ``with
    SessionkeeperSaver.from_url(url) as saver:`` opens one (on the shared background loop)
    and closes it. Options as for :class:`AsyncSessionkeeperSaver`; its async methods work
    too.
    """

    @classmethod
    @contextmanager
    def from_url(
        cls,
        url: str | None = None,
        *,
        store_options: Mapping[str, Any] | None = None,
        **options: Unpack[SaverOptions],
    ) -> Iterator[SessionkeeperSaver]:
        """As :meth:`AsyncSessionkeeperSaver.from_url`, with ``with``."""
        with opened_store_blocking(url, store_options) as store:
            yield cls(store, **options)


def _thread(value: Any) -> str:
    """Thread ids are session ids; UUIDs and integers are taken as their text."""
    return validate.session_id(value if isinstance(value, str) else str(value))


def _target(config: RunnableConfig) -> tuple[str, str, str | None]:
    conf = config["configurable"]
    return _thread(conf["thread_id"]), conf.get("checkpoint_ns", ""), conf.get("checkpoint_id")


def _array_header(n: int) -> bytes:
    """The msgpack header of an array of ``n`` elements."""
    if n < 16:
        return bytes([0x90 | n])
    if n < 1 << 16:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


def _inline(value: Any) -> bool:
    kind = type(value)
    if kind is str:
        return len(value) <= INLINE_TEXT
    return value is None or kind in (int, float, bool)

"""One chat turn: a user message in, a streamed assistant reply out. No HTTP here.

A turn has two phases, so that every refusal happens before the first byte of a stream:

1. :func:`prepare_turn` checks the request, finds the session or creates it (here, when the
   first message arrives, never before: visiting a chat page makes no row), refuses a
   duplicate resend (:class:`Conflict`; the page's guard against double clicks, which the
   CLI turns off: a person may well answer "yes" twice), stores the user message (after the
   request's system prompt, if it has one the model would not already see), sets the
   auto-title and computes the context window the model will see. If a check fails after a
   write, the write is undone, so a refused request changes nothing.
2. :meth:`ChatTurn.events` calls the model with that window and yields events: ``session``
   first, then ``delta`` pieces, then ``done`` or ``error``. The reply is stored however the
   stream ends: whole when the model finishes; partial and marked
   (``{"partial": true, "error": …}``) when the model fails or the consumer goes away.
   Text the user has already seen is never lost. When no text arrived at all, the turn's
   messages stay as they are (the page shows them and can retry), unless the turn was
   prepared with ``withdraw_unanswered`` (the CLI): then they are taken back
   (:meth:`ChatTurn.withdraw`), so the next turn never sends two user messages in a row.

The model gets the session's token-budgeted window, not the whole history:
``context_window(sid, max_tokens, reserve=reply_reserve(max_tokens))``.

A *retry* (``ChatRequest(retry=True)``) runs the model again for a turn that got no complete
reply: the session's last message must be that same user message, or a partial reply after
it. Nothing is stored for the user again; a partial reply is replaced (deleted) once the
retry has stored a reply of its own, so if the retry brings nothing, the old text stays.

Auto-title rule (applied when the session has no title): take the session's first user
message, collapse every run of whitespace to one space and strip the ends; if the result is
longer than 80 characters, keep its first 77 characters and append ``"..."`` (80 in all).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncGenerator, Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio

from sessionkeeper.chat.compacting import compact_if_due, threshold_for
from sessionkeeper.chat.llm import LLMClient
from sessionkeeper.errors import Conflict, Forbidden, InvalidInput, NotFound, SessionkeeperError
from sessionkeeper.models import Message, Session, Usage, Window
from sessionkeeper.store import validate
from sessionkeeper.store.core import Store
from sessionkeeper.store.window import MESSAGE_OVERHEAD_TOKENS

logger = logging.getLogger(__name__)

DUPLICATE_SECONDS = 5.0
TITLE_MAX = 80
TITLE_CUT = 77
ECHO_LABEL = "offline echo model — no LLM configured"
DISCONNECTED = "client disconnected before the reply was complete"
# Metadata keys of a stored message that belong in the OpenAI message itself.
_PASSTHROUGH = ("tool_calls", "tool_call_id", "name")
# Bounded time to store a partial reply once the consumer has gone away.
_SAVE_TIMEOUT = 10.0


def auto_title(text: str) -> str | None:
    """The title a first user message gives a session (see the module docstring)."""
    collapsed = " ".join(text.split())
    if not collapsed:
        return None
    return collapsed if len(collapsed) <= TITLE_MAX else collapsed[:TITLE_CUT] + "..."


def reply_reserve(max_tokens: int) -> int:
    """Tokens of the budget kept free for the model's reply."""
    return min(1024, max_tokens // 4)


def to_openai(message: Message) -> dict[str, Any]:
    """A stored message as an OpenAI chat message (tool metadata passed through)."""
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    for key in _PASSTHROUGH:
        if key in message.metadata:
            out[key] = message.metadata[key]
    return out


def model_info(llm: LLMClient) -> dict[str, Any]:
    """What the model endpoint and every ``done`` event say about the model."""
    return {
        "model": llm.model,
        "echo": llm.is_echo,
        "label": ECHO_LABEL if llm.is_echo else llm.model,
    }


@dataclass(frozen=True, slots=True)
class ChatRequest:
    content: str
    session_id: str | None = None
    agent_id: str = "main"  # used only when the session is created by this request
    user_id: str | None = None  # likewise
    max_context_tokens: int | None = None
    retry: bool = False  # answer the session's last user message (``content``) again
    # A system prompt for this turn, stored in the session before the user message unless
    # the newest system message the model would see already says exactly this.
    system: str | None = None


@dataclass(frozen=True, slots=True)
class ChatEvent:
    """One event of a turn: ``session``, ``delta``, ``done`` or ``error``."""

    name: str
    data: dict[str, Any]


@dataclass(slots=True)
class ChatTurn:
    """A prepared turn: the user message is stored; iterate :meth:`events` to run the model."""

    store: Store
    llm: LLMClient
    session: Session
    created: bool
    user_message: Message
    window: Window
    reserve: int
    reply: Message | None = None
    # A retry's old partial reply, deleted once the new reply is stored.
    replaces: Message | None = None
    # Called once the assistant reply (or a kept partial) is stored, e.g. to count it.
    on_reply_stored: Callable[[Message], None] | None = None
    # What the model server reported the call cost (stored on the reply).
    reported: list[Usage] = field(default_factory=list)
    # The system prompt this turn stored before the user message (None: none stored).
    system_message: Message | None = None
    # Take the turn's messages back when the model gives no text at all (see withdraw()).
    withdraw_unanswered: bool = False
    # Why a reply cut off by the consumer going away is partial (kept in its metadata).
    interrupted: str = DISCONNECTED
    # Whether withdraw() took the turn's messages back.
    withdrawn: bool = False
    # Compact the session after the reply when its tokens not yet compacted pass this
    # (chat/compacting.py; None: never).
    compact_after: int | None = None

    @property
    def prompt(self) -> list[dict[str, Any]]:
        """What the model is sent: the window (which ends with the new user message)."""
        return [to_openai(m) for m in self.window.messages]

    def window_info(self) -> dict[str, Any]:
        w = self.window
        return {
            "max_tokens": w.max_tokens,
            "reserve": self.reserve,
            "total_tokens": w.total_tokens,
            "messages": len(w.messages),
            "first_seq": w.messages[0].seq if w.messages else None,
            "dropped_messages": w.dropped_messages,
            "dropped_tokens": w.dropped_tokens,
            "pinned": w.pinned,
            "estimated": w.estimated,
            "encoding": w.encoding,
        }

    async def events(self) -> AsyncGenerator[ChatEvent, None]:
        """Run the model; yield session, delta…, then done or error. Always stores the reply."""
        sid = self.session.session_id
        yield ChatEvent(
            "session",
            {
                "session_id": sid,
                "created": self.created,
                "title": self.session.title,
                "agent_id": self.session.agent_id,
                "user_message": self.user_message.to_dict(),
                **model_info(self.llm),
            },
        )
        pieces: list[str] = []
        error: str | None = None
        stream = self.llm.stream(self.prompt, on_usage=self.reported.append)
        try:
            async for piece in stream:
                pieces.append(piece)
                yield ChatEvent("delta", {"text": piece})
        except Exception as exc:  # the model failed: keep what arrived, report the rest
            error = exc.message if isinstance(exc, SessionkeeperError) else repr(exc)
            if not isinstance(exc, SessionkeeperError):
                logger.exception("chat model failed unexpectedly")
        except BaseException:
            # The consumer went away: GeneratorExit at a yield, or cancellation while we
            # waited for the model. Store what the user saw, shielded from that cancellation,
            # and stop the model request.
            with anyio.move_on_after(_SAVE_TIMEOUT, shield=True):
                await self._save_quietly("".join(pieces), self.interrupted)
                if self.withdraw_unanswered:
                    await self.withdraw()
                aclose = getattr(stream, "aclose", None)
                if aclose is not None:
                    await aclose()
            raise

        text = "".join(pieces)
        if error is not None:
            await self._save_quietly(text, error)
            if self.withdraw_unanswered:
                await self.withdraw()
            yield ChatEvent(
                "error",
                {
                    "session_id": sid,
                    "detail": error,
                    "message": self.reply.to_dict() if self.reply else None,
                },
            )
            return
        try:
            self.reply = await self._save(text, None)
        except SessionkeeperError as exc:  # e.g. the session was deleted meanwhile
            yield ChatEvent("error", {"session_id": sid, "detail": exc.message, "message": None})
            return
        yield ChatEvent(
            "done",
            {
                "session_id": sid,
                "message": self.reply.to_dict(),
                "window": self.window_info(),
                **model_info(self.llm),
            },
        )
        if self.compact_after is not None:
            await compact_if_due(self.store, self.llm, sid, self.compact_after)

    async def withdraw(self) -> bool:
        """Take this turn's messages back when no reply was stored; True if they were.

        The user message (then the system prompt stored with it) is removed only while it
        is still the session's newest message (``Store.pop_message(if_last=…)``, atomic), so
        a message someone appended meanwhile is never removed; a session this turn created
        is deleted once it is empty again. A failure is logged, never raised: the caller is
        already reporting the model's failure.
        """
        if self.reply is not None or self.withdrawn:
            return False
        sid = self.session.session_id
        mine = [self.user_message, *([self.system_message] if self.system_message else [])]
        try:
            for message in mine:
                if await self.store.pop_message(sid, if_last=message.seq) is None:
                    return False
            self.withdrawn = True
            if self.created:
                await self.store.delete_session(sid)
        except Exception:
            logger.exception("could not take back the unanswered message in %s", sid)
        return self.withdrawn

    async def _save(self, text: str, error: str | None) -> Message:
        metadata: dict[str, Any] = {}
        if self.llm.is_echo:
            metadata["echo"] = True
        if error is not None:
            metadata.update(partial=True, error=error)
        reply = await self.store.add_message(
            self.session.session_id,
            "assistant",
            text,
            agent_id=self.session.agent_id,
            model=self.llm.model,
            metadata=metadata,
            usage=self.reported[-1] if self.reported else None,
        )
        if self.on_reply_stored is not None:
            self.on_reply_stored(reply)
        if self.replaces is not None:
            old, self.replaces = self.replaces, None
            try:
                await self.store.delete_message(self.session.session_id, old.seq)
            except NotFound:
                pass  # deleted meanwhile
            except Exception:
                logger.exception("could not delete the replaced reply %s", old.seq)
        return reply

    async def _save_quietly(self, text: str, error: str) -> None:
        """Store a partial reply if any text arrived; a failure here is logged, not raised."""
        if not text or self.reply is not None:
            return
        try:
            self.reply = await self._save(text, error)
        except Exception:
            logger.exception("could not store the partial reply in %s", self.session.session_id)


async def _find_session(
    store: Store,
    session_id: str,
    scope: Collection[str] | None,
    users: Collection[str] | None = None,
) -> Session:
    session = await store.get_session(session_id)
    if (scope is not None and session.agent_id not in scope) or (
        users is not None and session.user_id not in users
    ):
        raise NotFound(f"session {session_id!r} not found")  # 404, never 403: no probing
    if session.status == "ended":
        raise Conflict(f"session {session_id!r} has ended; start a new chat", session_id=session_id)
    return session


async def _check_duplicate(store: Store, session: Session, content: str) -> None:
    """Refuse the same content sent to the same session within DUPLICATE_SECONDS."""
    if session.message_count == 0:
        return
    recent = await store.get_messages(session.session_id, last=4)
    last_user = next((m for m in reversed(recent) if m.role == "user"), None)
    if last_user is None or last_user.content != content:
        return
    age = (datetime.now(UTC) - last_user.created_at).total_seconds()
    if age < DUPLICATE_SECONDS:
        raise Conflict(
            f"the same message was sent to this session {age:.1f}s ago; not sent again",
            session_id=session.session_id,
            seq=last_user.seq,
        )


async def _retry_target(
    store: Store, session: Session, content: str
) -> tuple[Message, Message | None]:
    """What a retry answers again: the session's last user message, which must be
    ``content``, and the partial reply after it that the retry replaces (if any)."""
    recent = await store.get_messages(session.session_id, last=2)
    replaces = None
    if recent and recent[-1].role == "assistant" and recent[-1].metadata.get("partial"):
        replaces = recent.pop()
    sid = session.session_id
    if not recent or recent[-1].role != "user":
        raise Conflict(
            f"nothing to retry: the last message in session {sid!r} is not a message waiting "
            "for a reply",
            session_id=sid,
        )
    if recent[-1].content != content:
        raise Conflict(
            f"nothing to retry: the last message in session {sid!r} is not this one",
            session_id=sid,
            seq=recent[-1].seq,
        )
    return recent[-1], replaces


def _without(window: Window, message: Message | None) -> Window:
    """The window without ``message`` (a retry's old partial reply: the model answers anew)."""
    kept = [m for m in window.messages if message is None or m.seq != message.seq]
    if len(kept) == len(window.messages):
        return window
    assert message is not None
    used = message.token_count + MESSAGE_OVERHEAD_TOKENS
    return dataclasses.replace(window, messages=kept, total_tokens=window.total_tokens - used)


async def _first_user_text(store: Store, session: Session, content: str) -> str:
    if session.message_count == 0:
        return content
    first = await store.get_messages(session.session_id, limit=50)
    return next((m.content for m in first if m.role == "user"), content)


def check_request(request: ChatRequest) -> None:
    """Refuse a request's bad content or system prompt before anything is opened or stored
    (also the first thing :func:`prepare_turn` does)."""
    content = request.content
    if not isinstance(content, str) or not content.strip():
        raise InvalidInput("content must not be empty", field="content")
    validate.content(content)  # TooLarge before a session is created for it
    system = request.system
    if system is not None:
        if not isinstance(system, str) or not system.strip():
            raise InvalidInput("the system prompt must not be empty", field="system")
        try:
            validate.content(system)
        except InvalidInput as exc:  # TooLarge included: the same class, named for what it is
            raise type(exc)(
                f"the system prompt: {exc.message}", **{**exc.details, "field": "system"}
            ) from None


async def prepare_turn(
    store: Store,
    llm: LLMClient,
    request: ChatRequest,
    *,
    default_max_tokens: int,
    scope: Collection[str] | None = None,
    refuse_duplicates: bool = True,
    withdraw_unanswered: bool = False,
    interrupted: str = DISCONNECTED,
    users: Collection[str] | None = None,
    compact_after: Mapping[str, int] | None = None,
) -> ChatTurn:
    """Validate, create the session if needed, store the user message, compute the window.

    ``scope``: the agent ids the caller may act for (None: all); ``users``: the users it may
    act for (None: all). A session outside them is NotFound; creating one for an agent or a
    user outside them is Forbidden. ``refuse_duplicates``: the same content resent within
    DUPLICATE_SECONDS is a Conflict (the page's double-click guard). ``withdraw_unanswered``
    and ``interrupted``: see :class:`ChatTurn`. ``compact_after``: the per-agent thresholds
    of automatic compaction (``chat/compacting.py``).
    """
    check_request(request)
    content = request.content
    if not isinstance(content, str) or not content.strip():
        raise InvalidInput("content must not be empty", field="content")
    validate.content(content)  # TooLarge before a session is created for it
    system = request.system
    max_tokens = request.max_context_tokens
    if max_tokens is None:  # not `or`: 0 is a mistake to report, not "use the default"
        max_tokens = default_max_tokens
    if max_tokens < 1:
        raise InvalidInput(
            f"max_context_tokens must be a positive number of tokens, got {max_tokens}",
            field="max_context_tokens",
        )
    reserve = reply_reserve(max_tokens)
    needed = store.tokenizer.count(content) + MESSAGE_OVERHEAD_TOKENS
    if system is not None:
        needed += store.tokenizer.count(system) + MESSAGE_OVERHEAD_TOKENS
    if needed > max_tokens - reserve:
        what = "the message and the system prompt need" if system else "the message needs"
        raise InvalidInput(
            f"{what} {needed} tokens; the context budget is {max_tokens - reserve} "
            f"({max_tokens} minus {reserve} kept for the reply)",
            field="content",
        )

    created = False
    retried: Message | None = None
    replaces: Message | None = None
    if request.retry:
        if request.session_id is None:
            raise InvalidInput(
                "a retry needs session_id: the session whose last message is answered again",
                field="session_id",
            )
        session = await _find_session(store, request.session_id, scope, users)
        retried, replaces = await _retry_target(store, session, content)
    elif request.session_id is not None:
        session = await _find_session(store, request.session_id, scope, users)
        if refuse_duplicates:
            await _check_duplicate(store, session, content)
        if system is not None and session.message_count:
            seen = await store.context_window(session.session_id, max_tokens, reserve=reserve)
            if _system_in_effect(seen) == system:
                system = None  # the model already sees this system prompt
    else:
        if scope is not None and request.agent_id not in scope:
            raise Forbidden(f"this key may not act for agent {request.agent_id!r}")
        if users is not None and request.user_id not in users:
            raise Forbidden(f"this key may not act for user {request.user_id!r}")
        session = await store.create_session(
            agent_id=request.agent_id, title=auto_title(content), user_id=request.user_id
        )
        created = True

    stored: list[Message] = []
    try:
        if retried is None:
            batch = [{"role": "system", "content": system}] if system is not None else []
            batch.append({"role": "user", "content": content})
            stored = await store.add_messages(session.session_id, batch)  # one transaction
        user_message = stored[-1] if stored else retried
        assert user_message is not None
        window = await store.context_window(session.session_id, max_tokens, reserve=reserve)
        window = _without(window, replaces)
        seen_seqs = {m.seq for m in window.messages}
        if not window.messages or window.messages[-1].seq != user_message.seq:
            raise InvalidInput(
                "the message does not fit the context budget beside the system prompt",
                field="content",
            )
        if not all(m.seq in seen_seqs for m in stored):
            raise InvalidInput(
                "the system prompt and the message do not fit the context budget together",
                field="system",
            )
    except BaseException:
        with anyio.move_on_after(_SAVE_TIMEOUT, shield=True):
            await _undo(store, session.session_id, created, stored)
        raise

    if session.title is None:
        title = auto_title(await _first_user_text(store, session, content))
        if title is not None:
            session = await store.update_session(session.session_id, title=title)
    return ChatTurn(
        store=store,
        llm=llm,
        session=session,
        created=created,
        user_message=user_message,
        window=window,
        reserve=reserve,
        replaces=replaces,
        system_message=stored[0] if len(stored) == 2 else None,
        withdraw_unanswered=withdraw_unanswered,
        interrupted=interrupted,
        compact_after=threshold_for(compact_after, session.agent_id),
    )


def _system_in_effect(window: Window) -> str | None:
    """The newest system message the model would see in ``window`` (None: none)."""
    return next(
        (
            m.content
            for m in reversed(window.messages)
            if m.role == "system" and "compaction" not in m.metadata  # not a summary
        ),
        None,
    )


async def _undo(store: Store, session_id: str, created: bool, messages: list[Message]) -> None:
    try:
        if created:
            await store.delete_session(session_id)
        else:
            for message in reversed(messages):
                await store.delete_message(session_id, message.seq)
    except Exception:
        logger.exception("could not undo the refused chat message in session %s", session_id)

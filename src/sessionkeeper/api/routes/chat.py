"""Chat over Server-Sent Events: ``POST /api/engine/chat/stream``, ``GET /api/engine/chat/model``.

The turn logic lives in ``sessionkeeper.chat.turn``; this module only speaks HTTP.
Everything that can refuse a request (unknown or invisible session, duplicate resend,
oversized content) runs before the response starts, so it arrives as an ordinary JSON error
with its status
(404, 409, 413, 422) rather than inside a stream. After that the body is
``text/event-stream`` with events written as ``event: <name>\\ndata: <json>\\n\\n``.

The model client is built once per app by :func:`install_chat` (``app.state.llm``) from the
settings, and closed when the app shuts down.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import Send

from sessionkeeper.api.deps import PrincipalDep, SettingsDep, StoreDep, get_principal
from sessionkeeper.api.observability import MetricsDep
from sessionkeeper.api.openapi import error_responses
from sessionkeeper.api.routing import StrictJsonRoute
from sessionkeeper.api.schemas import (
    CHAT_CONTENT_PATTERN,
    Label,
    NewSessionAgent,
    PositiveJsonInt,
    SessionIdText,
    agent_field,
    documented,
)
from sessionkeeper.chat.llm import LLMClient, make_client
from sessionkeeper.chat.turn import ChatEvent, ChatRequest, model_info, prepare_turn
from sessionkeeper.config import Settings
from sessionkeeper.models import MAX_MESSAGE_LENGTH

CHAT_PREFIX = "/api/engine/chat"

# Like every /api/engine route, even GET /model needs a caller (an API key, or open mode).
router = APIRouter(
    tags=["chat"], dependencies=[Depends(get_principal)], route_class=StrictJsonRoute
)

ChatContent = Annotated[
    str,
    documented(
        {"type": "string", "maxLength": MAX_MESSAGE_LENGTH, "pattern": CHAT_CONTENT_PATTERN},
        f"The user's message: not empty or only whitespace, at most {MAX_MESSAGE_LENGTH:,} "
        "characters (413 beyond), no NUL; it must fit the context budget with room for the "
        "reply (422 otherwise).",
    ),
]


class ChatBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    content: ChatContent
    session_id: SessionIdText | None = Field(
        None, description="Continue this session; omit to start one with this message."
    )
    agent_id: NewSessionAgent = agent_field(
        'The agent of a new session (ignored when session_id is given). Left out: "main" if '
        "the key may act for it, else the key's only agent; a key of several agents, none of "
        'them "main", must name one (422).'
    )
    user_id: Label | None = Field(
        None,
        description="The user of a new session (ignored when session_id is given). Left out: "
        "none, or under a key scoped to users its only user (a key of several users must "
        "name one: 422; a user outside its scope: 403).",
    )
    max_context_tokens: PositiveJsonInt | None = Field(
        None,
        description="Token budget of the window sent to the model; default: the server's.",
    )
    retry: bool = Field(
        False,
        description="Answer again the session's last message, which must be this content "
        "with no complete reply after it (the model failed): nothing is stored twice, and a "
        "partial reply is replaced once the new one is stored. Needs session_id.",
    )


class ModelInfo(BaseModel):
    model: str
    echo: bool
    label: str


def get_llm(request: Request) -> LLMClient:
    llm: LLMClient = request.app.state.llm  # built by install_chat
    return llm


LLMDep = Annotated[LLMClient, Depends(get_llm)]


def build_llm(settings: Settings) -> LLMClient:
    return make_client(
        settings.llm_base_url,
        settings.llm_model,
        settings.llm_api_key,
        timeout=settings.llm_timeout_seconds,
    )


def sse(event: ChatEvent) -> str:
    data = json.dumps(event.data, ensure_ascii=False, separators=(",", ":"))
    return f"event: {event.name}\ndata: {data}\n\n"


async def _encode(events: AsyncGenerator[ChatEvent, None]) -> AsyncIterator[str]:
    # aclosing: closing this generator closes the turn's, which then stores a partial reply.
    async with contextlib.aclosing(events):
        async for event in events:
            yield sse(event)


class EventStreamResponse(StreamingResponse):
    """A StreamingResponse that always closes its body iterator when streaming stops.

    Starlette cancels ``stream_response`` when the client disconnects; if that happens while
    the generator waits at a ``yield``, the generator would only be finalised whenever the
    garbage collector gets to it. Closing it here, shielded, runs its cleanup at once.
    """

    media_type = "text/event-stream"

    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        finally:
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                with anyio.move_on_after(15, shield=True):
                    await aclose()


def _event(name: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "properties": {
            "event": {"const": name},
            "data": {"contentMediaType": "application/json", "contentSchema": data},
        }
    }


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": list(properties), "properties": properties}


_MESSAGE = {"$ref": "#/components/schemas/MessagePublic"}
_MODEL = {"model": {"type": "string"}, "echo": {"type": "boolean"}, "label": {"type": "string"}}
_WINDOW = _object(
    {
        "max_tokens": {"type": "integer"},
        "reserve": {"type": "integer"},
        "total_tokens": {"type": "integer"},
        "messages": {"type": "integer"},
        "first_seq": {"type": ["integer", "null"]},
        "dropped_messages": {"type": "integer"},
        "dropped_tokens": {"type": "integer"},
        "pinned": {"type": "integer"},
        "estimated": {"type": "boolean"},
        "encoding": {"type": "string"},
    }
)
# One Server-Sent Event as {"event": name, "data": JSON text} (OpenAPI 3.2's itemSchema).
CHAT_EVENT: dict[str, Any] = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"enum": ["session", "delta", "done", "error"]},
        "data": {"type": "string", "contentMediaType": "application/json"},
    },
    "oneOf": [
        _event(
            "session",
            _object(
                {
                    "session_id": {"type": "string"},
                    "created": {"type": "boolean"},
                    "title": {"type": ["string", "null"]},
                    "agent_id": {"type": "string"},
                    "user_message": _MESSAGE,
                    **_MODEL,
                }
            ),
        ),
        _event("delta", _object({"text": {"type": "string"}})),
        _event(
            "done",
            _object(
                {"session_id": {"type": "string"}, "message": _MESSAGE, "window": _WINDOW, **_MODEL}
            ),
        ),
        _event(
            "error",
            _object(
                {
                    "session_id": {"type": "string"},
                    "detail": {"type": "string"},
                    "message": {"anyOf": [_MESSAGE, {"type": "null"}]},
                }
            ),
        ),
    ],
}


@router.post(
    "/stream",
    response_class=EventStreamResponse,
    responses={
        200: {
            "content": {"text/event-stream": {"itemSchema": CHAT_EVENT}},
            "description": "Events: session, delta…, then done or error.",
        },
        **error_responses(
            401,
            403,
            404,
            409,
            413,
            422,
            s403="The key may not act for this agent or user (a new session).",
            s404="No such session, or one outside the key's scope (agents, users).",
            s409="The same content resent within 5 s, the session has ended, or a retry "
            "whose session does not end with this message waiting for a reply.",
            s413="Content over 100,000 characters; nothing was stored.",
            s422="A field is invalid, the message does not fit the context budget, "
            'agent_id is left out under a key of several agents (none of them "main"), or '
            "user_id under a key of several users.",
        ),
    },
)
async def chat_stream(
    body: ChatBody,
    store: StoreDep,
    principal: PrincipalDep,
    settings: SettingsDep,
    llm: LLMDep,
    metrics: MetricsDep,
) -> EventStreamResponse:
    """Send a message and stream the reply (Server-Sent Events).

    Without ``session_id`` the session is created by this message and its id is the first
    event. With ``retry`` the model answers the session's last message again. Events:
    ``session`` {session_id, created, title, …}; ``delta`` {text};
    ``done`` {session_id, message, window, model, echo, label}; ``error`` {detail, message}.
    """
    request = ChatRequest(
        content=body.content,
        session_id=body.session_id,
        max_context_tokens=body.max_context_tokens,
        retry=body.retry,
    )
    if body.session_id is None:  # a new session: whose? (a session that exists keeps its own)
        request = dataclasses.replace(
            request,
            agent_id=principal.agent_for(body.agent_id),
            user_id=principal.user_for(body.user_id),
        )
    turn = await prepare_turn(
        store,
        llm,
        request,
        default_max_tokens=settings.max_context_tokens,
        scope=principal.agent_ids,
        users=principal.user_ids,
        compact_after=settings.compact_after_tokens,
    )
    if turn.created:
        metrics.sessions_created.inc()
    if not body.retry:  # a retry stores no user message
        metrics.messages_stored.inc()
    turn.on_reply_stored = lambda _reply: metrics.messages_stored.inc()
    return EventStreamResponse(
        _encode(turn.events()),
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/model", responses=error_responses(401))
async def chat_model(llm: LLMDep) -> ModelInfo:
    """The model the chat endpoint uses; ``echo: true`` is the offline echo model."""
    return ModelInfo(**model_info(llm))


def install_chat(app: FastAPI, settings: Settings) -> None:
    """Mount the chat routes and give the app its model client (closed at shutdown)."""
    app.state.llm = build_llm(settings)
    app.include_router(router, prefix=CHAT_PREFIX, dependencies=[Depends(get_principal)])
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app_: Any) -> AsyncIterator[Any]:
        async with inner(app_) as state:
            try:
                yield state
            finally:
                llm: LLMClient | None = getattr(app_.state, "llm", None)
                if llm is not None:
                    await llm.aclose()

    app.router.lifespan_context = lifespan

"""The MCP server (official ``mcp`` SDK): tool names, descriptions, JSON schemas, errors.

``build_server(resolve, allow_writes=…)`` makes an ``MCPServer`` whose tools run the work of
``tools.py`` / ``recall.py`` for the caller ``resolve(ctx)`` gives (stdio: the local user,
an admin; HTTP: the API key's principal). ``remember`` is registered only with writes
allowed, so a read-only server does not even list it.

Errors are MCP tool errors (``isError: true``), never a crash of the server, in the REST
API's words: a sessionkeeper error gives its message as the text and the REST error body
(``{"error": code, "detail": …, "field": …}``) as the structured content; arguments that
fail the tool's JSON schema read like the REST API's 422 (``argument 'limit': Input should
be less than or equal to 100``); anything unexpected is ``internal server error (a bug: see
the server log)``, logged with its traceback.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field, ValidationError

from sessionkeeper import __version__
from sessionkeeper.api.errors import error_body
from sessionkeeper.api.schemas import (
    LABEL_SCHEMA,
    MAX_QUERY_LENGTH,
    NO_NUL,
    SEARCH_PATTERN,
    SESSION_ID_SCHEMA,
    documented,
)
from sessionkeeper.errors import InvalidInput, SessionkeeperError
from sessionkeeper.mcp import recall as recall_mod
from sessionkeeper.mcp import tools
from sessionkeeper.mcp.tools import Caller
from sessionkeeper.models import MAX_MESSAGE_LENGTH, MAX_MESSAGES_PAGE, MAX_PAGE_SIZE

logger = logging.getLogger(__name__)

Resolve = Callable[[Context], Awaitable[Caller]]
F = TypeVar("F", bound=Callable[..., Any])

INSTRUCTIONS = (
    "Your past conversations, kept by sessionkeeper. Use recall to bring back what was said "
    "about something (passages with their surrounding messages), search_sessions to find "
    "which sessions mention it, list_sessions to browse, read_session to read one."
)
QUERY_HELP = (
    'Words and "quoted phrases"; a message matches when it holds all of them (case, '
    "accents and word forms are folded)."
)
READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)

# The Store checks these values (so the words of an error are the REST API's); the schemas
# say the same rules to the client, as the REST API's OpenAPI document does.
NULL = {"type": "null"}
Query = Annotated[
    str,
    documented(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_QUERY_LENGTH,
            "pattern": SEARCH_PATTERN,
        },
        QUERY_HELP,
    ),
]


def _optional(schema: dict[str, Any], description: str) -> Any:
    return documented({"anyOf": [schema, NULL], "default": None}, description)


TIME = {"type": "string", "format": "date-time"}
AgentFilter = Annotated[
    str | None, _optional(LABEL_SCHEMA, "Only sessions of this agent id (default: every agent).")
]
UserFilter = Annotated[
    str | None, _optional(LABEL_SCHEMA, "Only sessions of this user id (default: every user).")
]
After = Annotated[
    datetime | None,
    _optional(TIME, "Only messages written after this time (ISO 8601 with a timezone)."),
]
Before = Annotated[
    datetime | None,
    _optional(TIME, "Only messages written before this time (ISO 8601 with a timezone)."),
]


class SessionkeeperMCP(MCPServer[Any]):
    """``MCPServer`` whose failed tool calls answer in the REST API's words."""

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context | None = None
    ) -> Any:
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            return _tool_error(name, exc)


def _tool_error(tool: str, exc: ToolError) -> CallToolResult:
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, SessionkeeperError | ValidationError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, SessionkeeperError):
        body = error_body(cause.code, cause.message, **cause.details)
    elif isinstance(cause, ValidationError):
        body = _validation_body(cause)
    elif exc.__cause__ is None:  # the SDK's own words: an unknown tool
        body = error_body(InvalidInput.code, str(exc))
    else:
        logger.error("tool %s failed", tool, exc_info=exc.__cause__)
        body = error_body("internal_error", "internal server error (a bug: see the server log)")
    return CallToolResult(
        content=[TextContent(type="text", text=body["detail"])],
        structured_content=body,
        is_error=True,
    )


def _validation_body(exc: ValidationError) -> dict[str, Any]:
    problems = []
    for error in exc.errors():
        loc = [str(part) for part in error.get("loc", ()) if not isinstance(part, int)]
        problems.append({"field": ".".join(loc) or "arguments", "message": str(error["msg"])})
    first = problems[0]
    detail = f"argument {first['field']!r}: {first['message']}"
    if len(problems) > 1:
        detail += f" (and {len(problems) - 1} more)"
    return error_body(InvalidInput.code, detail, field=first["field"], errors=problems)


def _tool(server: MCPServer[Any], annotations: ToolAnnotations) -> Callable[[F], F]:
    """Register a tool, its description the function's docstring without its indentation."""

    def register(fn: F) -> F:
        server.add_tool(fn, description=inspect.cleandoc(fn.__doc__ or ""), annotations=annotations)
        return fn

    return register


def build_server(resolve: Resolve, *, allow_writes: bool = False) -> SessionkeeperMCP:
    server = SessionkeeperMCP(
        name="sessionkeeper",
        version=__version__,
        instructions=INSTRUCTIONS,
        log_level="WARNING",
    )

    @_tool(server, READ_ONLY)
    async def search_sessions(
        query: Query,
        ctx: Context,
        agent_id: AgentFilter = None,
        user_id: UserFilter = None,
        created_after: After = None,
        created_before: Before = None,
        limit: Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE, description="Most hits.")] = 10,
    ) -> dict[str, Any]:
        """Full-text search over the messages of your past sessions, best match first.

        Each hit: session_id, seq (the message's position in its session), title, time
        (when the message was written), role, agent_id, snippet (matched words in
        <mark>…</mark>) and rank (higher is better). Read a hit's session with
        read_session, or use recall to get the passages around the hits directly.
        """
        return await tools.search_sessions(
            await resolve(ctx),
            query,
            agent_id=agent_id,
            user_id=user_id,
            created_after=created_after,
            created_before=created_before,
            limit=limit,
        )

    @_tool(server, READ_ONLY)
    async def list_sessions(
        ctx: Context,
        agent_id: AgentFilter = None,
        user_id: UserFilter = None,
        search: Annotated[
            str | None,
            _optional(
                {"type": "string", "maxLength": MAX_QUERY_LENGTH, "pattern": SEARCH_PATTERN},
                "Only sessions whose title or some message matches these words.",
            ),
        ] = None,
        status: Annotated[
            Literal["active", "ended"] | None,
            Field(description="Only active or only ended sessions (default: both)."),
        ] = None,
        updated_after: Annotated[
            datetime | None, _optional(TIME, "Only sessions updated after this time.")
        ] = None,
        updated_before: Annotated[
            datetime | None, _optional(TIME, "Only sessions updated before this time.")
        ] = None,
        limit: Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE, description="Sessions per page.")] = 20,
        cursor: Annotated[
            str | None,
            _optional({"type": "string", "pattern": NO_NUL}, "next_cursor of the previous page."),
        ] = None,
    ) -> dict[str, Any]:
        """Your sessions, most recently updated first, a page at a time.

        Each session: session_id, title, agent_id, user_id, session_type, status,
        created_at, updated_at, message_count, token_count. When has_more is true, pass
        next_cursor as cursor for the next page.
        """
        return await tools.list_sessions(
            await resolve(ctx),
            agent_id=agent_id,
            user_id=user_id,
            search=search,
            status=status,
            updated_after=updated_after,
            updated_before=updated_before,
            limit=limit,
            cursor=cursor,
        )

    @_tool(server, READ_ONLY)
    async def read_session(
        session_id: Annotated[
            str, documented(SESSION_ID_SCHEMA, "The session's id (from a hit or a listing).")
        ],
        ctx: Context,
        last: Annotated[
            int | None,
            Field(
                ge=1,
                le=MAX_MESSAGES_PAGE,
                description=f"The newest N messages (default {tools.DEFAULT_READ_LAST}).",
            ),
        ] = None,
        max_tokens: Annotated[
            int | None,
            Field(
                ge=1,
                description="Instead of last: the newest messages that fit this many tokens "
                "(the system prompt kept, a tool call kept with its results).",
            ),
        ] = None,
    ) -> dict[str, Any]:
        """Read a session's newest messages, oldest first.

        Give last (a count) or max_tokens (a token budget), not both. The answer has the
        session, its messages (seq, role, content, created_at, token_count) and
        dropped_messages: how many older messages were left out.
        """
        return await tools.read_session(
            await resolve(ctx), session_id, last=last, max_tokens=max_tokens
        )

    @_tool(server, READ_ONLY)
    async def recall(
        query: Query,
        ctx: Context,
        max_tokens: Annotated[
            int,
            Field(
                ge=1,
                le=recall_mod.MAX_RECALL_TOKENS,
                description="Token budget for all passages together.",
            ),
        ] = 2000,
        context: Annotated[
            int,
            Field(
                ge=0,
                le=recall_mod.MAX_CONTEXT,
                description="Neighbouring messages to include before and after each hit.",
            ),
        ] = 1,
        limit: Annotated[
            int, Field(ge=1, le=recall_mod.MAX_PASSAGES, description="Most passages.")
        ] = 5,
        agent_id: AgentFilter = None,
        user_id: UserFilter = None,
        created_after: After = None,
        created_before: Before = None,
    ) -> dict[str, Any]:
        """Recall what was said about something across all your past sessions.

        Returns the best-matching passages, best first: each is a matching message (hit:
        true) with its neighbouring messages for context, its session_id, title and rank.
        Passages never repeat a message or a text already given (duplicates counts those
        left out) and together fit max_tokens: a passage that does not fit whole keeps its
        hits and nearest neighbours (complete: false); omitted counts passages left out
        for lack of room.
        """
        return await recall_mod.recall(
            await resolve(ctx),
            query,
            max_tokens=max_tokens,
            context=context,
            limit=limit,
            agent_id=agent_id,
            user_id=user_id,
            created_after=created_after,
            created_before=created_before,
        )

    if allow_writes:

        @_tool(server, ToolAnnotations(read_only_hint=False, destructive_hint=False))
        async def remember(
            note: Annotated[
                str,
                documented(
                    {"type": "string", "minLength": 1, "maxLength": MAX_MESSAGE_LENGTH},
                    "What to remember, in plain words.",
                ),
            ],
            ctx: Context,
            agent_id: Annotated[
                str | None, _optional(LABEL_SCHEMA, "The agent it is for (default: yours).")
            ] = None,
            user_id: Annotated[
                str | None,
                _optional(LABEL_SCHEMA, "The user it is about (default: yours, or none)."),
            ] = None,
        ) -> dict[str, Any]:
            """Write a note to your memory: one memory session per agent and user, which
            search_sessions and recall find like any conversation. Returns its session_id
            and the note's seq."""
            return await tools.remember(
                await resolve(ctx), note, agent_id=agent_id, user_id=user_id
            )

    return server
